-- The history of each permit: issued, temporary plate, suspended, revoked, reinstated —
-- who, when and why. Keep in step with ../sqlite/0009_permit_events.sql.
CREATE TABLE permit_events (
    id     BIGSERIAL PRIMARY KEY,
    permit TEXT NOT NULL,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX permit_events_permit ON permit_events(permit, at);
