-- The outbound half of every channel (issue #7): messages to citizens queued in the same
-- transaction as what caused them, sent by a worker with retries, their delivery state
-- followed by receipts; the call-back queue; appointments at the counter. Keep in step
-- with ../postgres/0018_outbound.sql.
CREATE TABLE outbound_messages (
    id                INTEGER PRIMARY KEY,
    case_id           INTEGER NOT NULL REFERENCES cases(id),
    -- Never sent twice: one row per key (the action's event, or the caller's key).
    idempotency_key   TEXT    NOT NULL UNIQUE,
    channel           TEXT    NOT NULL,
    recipient         TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    body              TEXT    NOT NULL,
    template          TEXT,
    lang              TEXT    NOT NULL,
    -- RFC 5322 Message-ID without brackets (threading, PEC receipts, idempotency downstream).
    message_id        TEXT    NOT NULL,
    in_reply_to       TEXT,
    refs              TEXT    NOT NULL,
    -- JSON list of document ids sent along (a permit's PDF, the letter itself for fax).
    attachments       TEXT    NOT NULL,
    whatsapp_template INTEGER NOT NULL DEFAULT 0,
    -- The registered content: SHA-256 of the message as sent (text, or the letter's PDF).
    content_sha256    TEXT    NOT NULL,
    protocol          TEXT,
    -- queued, sending, sent, accepted, delivered, failed, printed.
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    -- When the worker may take it (again): the retry's backoff, or the lease of a send.
    next_attempt_at   INTEGER NOT NULL,
    last_error        TEXT,
    provider_ref      TEXT,
    created_at        INTEGER NOT NULL,
    created_by        TEXT    NOT NULL,
    sent_at           INTEGER,
    accepted_at       INTEGER,
    delivered_at      INTEGER,
    failed_at         INTEGER,
    -- Set once the missing PEC delivery receipt has raised its flag.
    overdue_flagged   INTEGER NOT NULL DEFAULT 0
);
-- The worker's queue: only the messages still to send.
CREATE INDEX outbound_due ON outbound_messages(next_attempt_at, id) WHERE status IN ('queued', 'sending');
CREATE INDEX outbound_case ON outbound_messages(case_id, id);
CREATE INDEX outbound_message_id ON outbound_messages(message_id);
CREATE INDEX outbound_provider_ref ON outbound_messages(provider_ref) WHERE provider_ref IS NOT NULL;
-- PEC sent but not delivered yet (the 24-hour check).
CREATE INDEX outbound_pec_pending ON outbound_messages(sent_at) WHERE channel = 'pec' AND status IN ('sent', 'accepted') AND overdue_flagged = 0;

-- Calls to make: citizens without digital contact, or who have not answered.
CREATE TABLE call_tasks (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    -- no_digital_contact, no_answer, operator.
    reason      TEXT    NOT NULL,
    phone       TEXT,
    script      TEXT    NOT NULL,
    -- open, done.
    status      TEXT    NOT NULL,
    -- reached, not_reached, appointment.
    outcome     TEXT,
    note        TEXT,
    call_id     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    done_at     INTEGER,
    done_by     TEXT
);
-- At most one open call per case.
CREATE UNIQUE INDEX call_tasks_open ON call_tasks(case_id) WHERE status = 'open';
CREATE INDEX call_tasks_queue ON call_tasks(due_at, id) WHERE status = 'open';

-- Slots at the counter, only when the citizen's presence is indispensable.
CREATE TABLE appointments (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES cases(id),
    starts_at     INTEGER NOT NULL,
    place         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    -- proposed, confirmed, cancelled, done.
    status        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    confirmed_at  INTEGER,
    confirmed_via TEXT
);
CREATE INDEX appointments_day ON appointments(starts_at);
CREATE INDEX appointments_case ON appointments(case_id);

-- What the office needs to write a letter, and how the citizen prefers to be reached.
ALTER TABLE citizens ADD COLUMN address TEXT;
ALTER TABLE citizens ADD COLUMN preferred_channel TEXT;
