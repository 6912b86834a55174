-- Every inbound message (e-mail, PEC, fax, WhatsApp, Telegram…) and what intake did with it.
-- Keep in step with ../postgres/0002_intake.sql.
CREATE TABLE inbound_messages (
    id          INTEGER PRIMARY KEY,
    dedupe_key  TEXT    NOT NULL UNIQUE,
    channel     TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    message_id  TEXT,
    raw_sha256  TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    case_id     INTEGER REFERENCES cases(id),
    protocol    TEXT,
    flags       TEXT    NOT NULL,
    sender      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX inbound_messages_message_id ON inbound_messages(message_id);
CREATE INDEX inbound_messages_case ON inbound_messages(case_id);

-- The last nine digits of the citizen's telephone, for caller look-up whatever the format typed.
ALTER TABLE citizens ADD COLUMN phone_key TEXT;
CREATE INDEX citizens_phone_key ON citizens(phone_key);
