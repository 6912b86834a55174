-- Sessions of the web pages (back office): the cookie holds a random token, the database
-- only its SHA-256; each session has its CSRF token. Keep in step with
-- ../sqlite/0013_sessions.sql.
CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      BIGINT  NOT NULL REFERENCES users(id),
    csrf_token   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
