-- Every gate file checked (CLI or API): its bytes are kept in the blob store, so a policy
-- draft can be replayed against the transits of the last 30 days (`sportello policy check`).
-- Keep in step with ../sqlite/0011_transit_checks.sql.
CREATE TABLE transit_checks (
    id             BIGSERIAL PRIMARY KEY,
    sha256         TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    checked_at     BIGINT  NOT NULL,
    actor          TEXT    NOT NULL,
    policy_version BIGINT,
    transits       BIGINT  NOT NULL,
    in_active_zone BIGINT  NOT NULL,
    violations     BIGINT  NOT NULL,
    rejected       BIGINT  NOT NULL
);
CREATE INDEX transit_checks_checked_at ON transit_checks(checked_at);
