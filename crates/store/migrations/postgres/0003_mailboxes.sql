-- Where each configured mailbox's poller has got to, and which instance polls it now.
-- Keep in step with ../sqlite/0003_mailboxes.sql.
CREATE TABLE mailbox_state (
    mailbox      TEXT    NOT NULL PRIMARY KEY,
    -- The folder's UIDVALIDITY when last_uid was recorded; a new value voids last_uid.
    uidvalidity  BIGINT,
    -- Every message up to this UID is committed (and marked \Seen on the server).
    last_uid     BIGINT  NOT NULL DEFAULT 0,
    -- The instance allowed to poll, until lease_until (UTC ms); anyone may take a lapsed lease.
    lease_owner  TEXT,
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    last_poll_at BIGINT,
    last_error   TEXT
);
