-- The citizen's data rights and retention (CONTRACT §8.5). Keep in step with
-- ../postgres/0026_privacy.sql.

-- The pseudonym a person's data is replaced with (`ANON-` and 10 random hex digits),
-- drawn once, so that every case of the same person carries the same one.
ALTER TABLE citizens ADD COLUMN pseudonym TEXT;
CREATE INDEX citizens_pseudonym ON citizens(pseudonym);

-- What anonymisation and retention did, without the personal data they removed: one row
-- per case anonymised (which case, how many fields, the reason, who) and one per
-- retention run. A row is written unfinished at the start of a case's transaction and
-- finished at its end, in the same transaction: while it is unfinished — and only then —
-- the case's journal entries may have their text rewritten (see case_events below).
-- Rows are never deleted, and a finished row never changes.
CREATE TABLE privacy_journal (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    case_id     INTEGER REFERENCES cases(id),
    pseudonym   TEXT,
    detail      TEXT    NOT NULL,
    finished_at INTEGER
);
CREATE INDEX privacy_journal_case ON privacy_journal(case_id, action);
CREATE TRIGGER privacy_journal_no_delete BEFORE DELETE ON privacy_journal
BEGIN SELECT RAISE(ABORT, 'privacy_journal is append-only'); END;
CREATE TRIGGER privacy_journal_no_update BEFORE UPDATE ON privacy_journal
WHEN old.finished_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'privacy_journal is append-only'); END;

-- The case journal stays append-only: no entry is ever deleted, and its instant, actor,
-- kind and case never change. Its text (detail) may be rewritten only inside an
-- anonymisation of that case, i.e. while an unfinished privacy_journal row names it.
DROP TRIGGER case_events_no_update;
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
WHEN NOT (new.id = old.id AND new.case_id = old.case_id AND new.at = old.at
          AND new.actor = old.actor AND new.kind = old.kind
          AND EXISTS (SELECT 1 FROM privacy_journal j
                      WHERE j.case_id = old.case_id AND j.finished_at IS NULL))
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;

-- Document bytes to delete once the transaction that deleted their last row committed:
-- retention deletes the rows, commits, then the bytes; a run killed in between finds the
-- hashes here and sweeps them (unless a row names them again).
CREATE TABLE privacy_blob_sweep (
    sha256    TEXT    NOT NULL PRIMARY KEY,
    queued_at INTEGER NOT NULL
);
