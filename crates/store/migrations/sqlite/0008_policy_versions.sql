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
