-- Users and tokens (CONTRACT §8.6): when a user last signed in, tokens that expire, an
-- optional TOTP second factor, and one counter bumped with every change to users, tokens
-- or sessions, so that every instance's token cache notices a revocation at once.
-- Keep in step with ../postgres/0023_users.sql.
ALTER TABLE users ADD COLUMN last_sign_in_at INTEGER;
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
-- A session opened by a password, waiting for the TOTP code: not yet signed in.
ALTER TABLE sessions ADD COLUMN second_factor_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE auth_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO auth_version (id, version) VALUES (1, 0);
