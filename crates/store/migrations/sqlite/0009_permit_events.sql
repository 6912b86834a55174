-- The history of each permit: issued, temporary plate, suspended, revoked, reinstated —
-- who, when and why. Keep in step with ../postgres/0009_permit_events.sql.
CREATE TABLE permit_events (
    id     INTEGER PRIMARY KEY,
    permit TEXT NOT NULL,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX permit_events_permit ON permit_events(permit, at);
