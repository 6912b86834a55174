-- The audit of reads becomes append-only and hash-chained (issue #16): each entry keeps
-- the hash of the one before it and its own, and a head row keeps the last hash and the
-- count, so that removing, altering or reordering entries is detected. Entries written
-- before this version have no hashes and are not part of the chain.
-- Keep in step with ../postgres/0022_read_audit_chain.sql.
ALTER TABLE access_log ADD COLUMN prev_hash TEXT;
ALTER TABLE access_log ADD COLUMN entry_hash TEXT;
CREATE TABLE access_log_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_hash TEXT    NOT NULL,
    count     INTEGER NOT NULL
);
INSERT INTO access_log_head (id, last_hash, count)
VALUES (1, '0000000000000000000000000000000000000000000000000000000000000000', 0);
CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END;
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END;
