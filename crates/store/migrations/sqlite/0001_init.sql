-- Sportello schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql
-- (a test compares the two). Instants are UTC milliseconds, dates are 'YYYY-MM-DD' in Europe/Rome.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    login         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    token_hash TEXT    NOT NULL UNIQUE,
    label      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE citizens (
    id          INTEGER PRIMARY KEY,
    fiscal_code TEXT    UNIQUE,
    name        TEXT,
    email       TEXT,
    pec         TEXT,
    phone       TEXT,
    fax         TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX citizens_email ON citizens(email);
CREATE INDEX citizens_phone ON citizens(phone);

-- Gap-free counters: case references per prefix and year.
CREATE TABLE sequences (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE cases (
    id                    INTEGER PRIMARY KEY,
    reference             TEXT    NOT NULL UNIQUE,
    case_type             TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    subject               TEXT    NOT NULL,
    description           TEXT    NOT NULL,
    channel               TEXT    NOT NULL,
    citizen_id            INTEGER REFERENCES citizens(id),
    assignee_id           INTEGER REFERENCES users(id),
    priority              TEXT    NOT NULL,
    protocol              TEXT,
    received_at           INTEGER NOT NULL,
    received_on           TEXT    NOT NULL,
    term_days             INTEGER NOT NULL,
    service_days          INTEGER NOT NULL,
    paused_days           INTEGER NOT NULL,
    due_on                TEXT    NOT NULL,
    pause_kind            TEXT,
    pause_started_on      TEXT,
    integration_requested INTEGER NOT NULL,
    rejection_notified    INTEGER NOT NULL,
    flags                 TEXT    NOT NULL,
    fields                TEXT    NOT NULL,
    last_event_at         INTEGER NOT NULL,
    closed_at             INTEGER,
    version               INTEGER NOT NULL
);
CREATE INDEX cases_status_type ON cases(status, case_type, received_at, id);
CREATE INDEX cases_type ON cases(case_type, received_at, id);
CREATE INDEX cases_channel ON cases(channel, received_at, id);
CREATE INDEX cases_assignee ON cases(assignee_id, status);
CREATE INDEX cases_received ON cases(received_at, id);
CREATE INDEX cases_citizen ON cases(citizen_id);
CREATE INDEX cases_due ON cases(due_on);
CREATE INDEX cases_idle ON cases(last_event_at);

CREATE TABLE case_pauses (
    id         INTEGER PRIMARY KEY,
    case_id    INTEGER NOT NULL REFERENCES cases(id),
    kind       TEXT    NOT NULL,
    started_on TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    ended_on   TEXT,
    ended_at   INTEGER,
    counted_days INTEGER
);
CREATE INDEX case_pauses_case ON case_pauses(case_id);
CREATE INDEX case_pauses_open ON case_pauses(ended_on, started_on);

-- The journal of every case: append-only.
CREATE TABLE case_events (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX case_events_case ON case_events(case_id, id);
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;

-- The protocol register (DPR 445/2000 art. 53): append-only and hash-chained.
CREATE TABLE protocol_register (
    id              INTEGER PRIMARY KEY,
    number          TEXT    NOT NULL UNIQUE,
    year            INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    registered_at   INTEGER NOT NULL,
    direction       TEXT    NOT NULL,
    correspondent   TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    document_sha256 TEXT    NOT NULL,
    case_reference  TEXT,
    prev_hash       TEXT    NOT NULL,
    entry_hash      TEXT    NOT NULL UNIQUE,
    UNIQUE (year, seq)
);
CREATE INDEX protocol_register_at ON protocol_register(registered_at);
CREATE TRIGGER protocol_register_no_update BEFORE UPDATE ON protocol_register
BEGIN SELECT RAISE(ABORT, 'protocol_register is append-only'); END;
CREATE TRIGGER protocol_register_no_delete BEFORE DELETE ON protocol_register
BEGIN SELECT RAISE(ABORT, 'protocol_register is append-only'); END;

-- The register's head, kept apart so that removing the last entries is detected.
CREATE TABLE register_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_hash TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    last_year INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL
);
INSERT INTO register_head (id, last_hash, count, last_year, last_seq)
VALUES (1, '0000000000000000000000000000000000000000000000000000000000000000', 0, 0, 0);

CREATE TABLE documents (
    id          TEXT    NOT NULL PRIMARY KEY,
    case_id     INTEGER REFERENCES cases(id),
    sha256      TEXT    NOT NULL,
    filename    TEXT    NOT NULL,
    media_type  TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    uploaded_by TEXT    NOT NULL
);
CREATE INDEX documents_case ON documents(case_id);
CREATE INDEX documents_sha ON documents(sha256);

-- Who read which personal data, and when.
CREATE TABLE access_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL
);
CREATE INDEX access_log_target ON access_log(target, at);
