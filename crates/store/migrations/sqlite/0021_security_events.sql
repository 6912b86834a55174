-- The security log (CONTRACT §8.6): failed and throttled sign-ins, invalid tokens, CSRF
-- refusals, refused permissions, user and token changes. Append-only like the register:
-- an intruder who gets write access cannot wipe their traces through the application.
-- Keep in step with ../postgres/0021_security_events.sql.
CREATE TABLE security_events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    login   TEXT,
    address TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX security_events_at ON security_events(at, id);
CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
BEGIN SELECT RAISE(ABORT, 'security_events is append-only'); END;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
BEGIN SELECT RAISE(ABORT, 'security_events is append-only'); END;
