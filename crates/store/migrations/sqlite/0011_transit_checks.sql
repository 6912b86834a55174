-- Every gate file checked (CLI or API): its bytes are kept in the blob store, so a policy
-- draft can be replayed against the transits of the last 30 days (`sportello policy check`).
-- Keep in step with ../postgres/0011_transit_checks.sql.
CREATE TABLE transit_checks (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    checked_at     INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    policy_version INTEGER,
    transits       INTEGER NOT NULL,
    in_active_zone INTEGER NOT NULL,
    violations     INTEGER NOT NULL,
    rejected       INTEGER NOT NULL
);
CREATE INDEX transit_checks_checked_at ON transit_checks(checked_at);
