-- Text of documents (their own text layer, or OCR) and the full-text index of cases,
-- documents and inbound messages. Keep in step with ../sqlite/0005_search.sql.

-- Every document waits for text extraction until a worker has read it: 'pending',
-- 'running' (claimed until text_claimed_until, so a dead worker's claim expires),
-- 'done', 'none' (a kind of file with no text) or 'failed' (text_error says why).
ALTER TABLE documents ADD COLUMN text_status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE documents ADD COLUMN text_error TEXT;
ALTER TABLE documents ADD COLUMN text_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN text_claimed_until BIGINT;
ALTER TABLE documents ADD COLUMN text_pages BIGINT;
CREATE INDEX documents_text_queue ON documents(text_status, uploaded_at);

-- The text of an inbound message, for the snippets of search results.
ALTER TABLE inbound_messages ADD COLUMN body_text TEXT;

-- Text per content hash and page: the same bytes are read once, however many cases hold them.
CREATE TABLE document_texts (
    sha256 TEXT    NOT NULL,
    page   BIGINT  NOT NULL,
    method TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    PRIMARY KEY (sha256, page)
);

-- One row per searchable thing ('c:<case id>', 'd:<document id>', 'm:<message id>');
-- `terms` is the text as analysed by sportello_domain::text (folded, Italian stems), so
-- the 'simple' configuration is right: the analysis is done once, the same on both
-- databases.
CREATE TABLE search_entries (
    id          BIGSERIAL PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    case_id     BIGINT,
    document_id TEXT,
    message_id  BIGINT,
    terms       TEXT    NOT NULL,
    tsv         TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED
);
CREATE INDEX search_entries_tsv ON search_entries USING GIN (tsv);
