-- Prefix searches (the last word as it is typed) read a prefix index instead of merging
-- the lists of every term that starts with it: 3- and 4-letter prefixes are indexed.
-- PostgreSQL needs no change (../postgres/0010_search_prefixes.sql is a no-op).
DROP TABLE search_fts;
CREATE VIRTUAL TABLE search_fts USING fts5(
    terms, content = 'search_entries', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2', prefix = '3 4'
);
INSERT INTO search_fts (search_fts) VALUES ('rebuild');
