-- Every ZTL policy that was ever in force, by the SHA-256 of its text: who loaded it and
-- when; each permit row records the version it was recorded under.
-- Keep in step with ../postgres/0008_policy_versions.sql.
CREATE TABLE policy_versions (
    id              INTEGER PRIMARY KEY,
    sha256          TEXT NOT NULL UNIQUE,
    text            TEXT NOT NULL,
    first_loaded_at INTEGER NOT NULL,
    loaded_by       TEXT NOT NULL
);
ALTER TABLE permit_rows ADD COLUMN policy_version INTEGER REFERENCES policy_versions(id);
-- Permits issued here: the case they were issued from, and the unguessable token of their
-- public verification page (the QR code on the printed permit).
ALTER TABLE permit_rows ADD COLUMN case_reference TEXT;
ALTER TABLE permit_rows ADD COLUMN verify_token TEXT;
CREATE INDEX permit_rows_token ON permit_rows(verify_token);
CREATE INDEX permit_rows_permit ON permit_rows(permit);
