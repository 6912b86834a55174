-- Sessions of the web pages (back office): the cookie holds a random token, the database
-- only its SHA-256; each session has its CSRF token. Keep in step with
-- ../postgres/0013_sessions.sql.
CREATE TABLE sessions (
    token_hash   TEXT    NOT NULL PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
