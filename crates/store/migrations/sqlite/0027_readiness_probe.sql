-- One row `/readyz` rewrites to prove the database takes writes (a locked database or a
-- full disk answers 503 there, so a load balancer stops sending work).
-- Keep in step with ../postgres/0027_readiness_probe.sql.
CREATE TABLE readiness_probe (
    id        INTEGER PRIMARY KEY,
    probed_at INTEGER NOT NULL
);
