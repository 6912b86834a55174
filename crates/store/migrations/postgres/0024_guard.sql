-- Sign-in throttling and rate limits (issue 16 §2), kept in the database so that they
-- survive a restart and are shared by every instance: one row per counter key (an account
-- and client, a client, a reference and client…) with the start of its window and the
-- attempts counted in it. Old rows are purged.
-- Device cookies (OWASP): a browser that signed in to an account gets a random token, kept
-- here by its hash; its owner's attempts are counted apart from strangers'.
-- Keep in step with ../sqlite/0024_guard.sql.
CREATE TABLE throttle_counters (
    key          TEXT    NOT NULL PRIMARY KEY,
    window_start BIGINT  NOT NULL,
    count        BIGINT  NOT NULL
);
CREATE INDEX throttle_counters_start ON throttle_counters(window_start);
CREATE TABLE device_cookies (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    login      TEXT    NOT NULL,
    issued_at  BIGINT  NOT NULL
);
CREATE INDEX device_cookies_issued ON device_cookies(issued_at);
