-- SQLite gains an FTS5 prefix index here (../sqlite/0010_search_prefixes.sql); the
-- PostgreSQL GIN index already serves `:*` prefixes. Kept so both engines number alike.
SELECT 1;
