-- Several instances on one database: each background duty (the minute ticks, the search
-- backlog, a scanner folder) is done by the one instance holding its lease, renewed by
-- that instance and taken over by another once it lapses (instants in UTC ms).
-- Keep in step with ../sqlite/0029_scale_out.sql.
CREATE TABLE duty_leases (
    duty        TEXT NOT NULL PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
-- A permit's expiry is journaled once, whoever runs the tick: two ticks racing on
-- PostgreSQL must not both insert it (any duplicate an older release wrote goes first).
DELETE FROM permit_events WHERE kind = 'expired' AND id NOT IN
    (SELECT MIN(id) FROM permit_events WHERE kind = 'expired' GROUP BY permit);
CREATE UNIQUE INDEX permit_events_expired_once ON permit_events(permit) WHERE kind = 'expired';
