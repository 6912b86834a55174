-- Private links to follow a case without typing its reference and fiscal code: the link
-- holds a random token, the database only its SHA-256. Keep in step with
-- ../postgres/0015_case_links.sql.
CREATE TABLE case_links (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    case_id    INTEGER NOT NULL REFERENCES cases(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX case_links_case ON case_links(case_id);
