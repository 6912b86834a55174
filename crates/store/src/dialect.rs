//! Every difference between the two engines' SQL, in one place: what SQLite and PostgreSQL
//! spell differently (aggregates to JSON or text, full-text search, row locks) is chosen
//! here per [`Backend`], and the rest of the store writes portable SQL around it.

use crate::Backend;

/// The journal and the documents of a case aggregated to JSON arrays of arrays, for
/// `Store::get_case`'s one query (`events_json`, `documents_json`).
pub(crate) fn case_aggregates(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "(SELECT json_group_array(json_array(e.id, e.at, e.actor, e.kind, e.detail)) \
               FROM case_events e WHERE e.case_id = c.id) AS events_json, \
             (SELECT json_group_array(json_array(d.id, d.sha256, d.filename, d.media_type, d.size, d.uploaded_at, d.uploaded_by, d.text_status, d.text_error)) \
               FROM documents d WHERE d.case_id = c.id) AS documents_json"
        }
        Backend::Postgres => {
            "(SELECT COALESCE(json_agg(json_build_array(e.id, e.at, e.actor, e.kind, e.detail)), '[]'::json)::text \
               FROM case_events e WHERE e.case_id = c.id) AS events_json, \
             (SELECT COALESCE(json_agg(json_build_array(d.id, d.sha256, d.filename, d.media_type, d.size, d.uploaded_at, d.uploaded_by, d.text_status, d.text_error)), '[]'::json)::text \
               FROM documents d WHERE d.case_id = c.id) AS documents_json"
        }
    }
}

/// Counts at most `window` full-text matches of `$1`.
pub(crate) fn search_window_count(backend: Backend, window: u32) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT COUNT(*) AS n FROM (SELECT rowid FROM search_fts WHERE search_fts MATCH $1 LIMIT {window}) w"
        ),
        Backend::Postgres => format!(
            "SELECT COUNT(*) AS n FROM (SELECT id FROM search_entries WHERE tsv @@ to_tsquery('simple', $1) LIMIT {window}) w"
        ),
    }
}

/// The full-text matches of `$1` as a derived table `f (id, score)`, newest first, lower
/// scores better; `cap` is empty or a ` LIMIT n`.
pub(crate) fn search_matches(backend: Backend, cap: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "(SELECT rowid AS id, bm25(search_fts) AS score FROM search_fts \
             WHERE search_fts MATCH $1 ORDER BY rowid DESC{cap}) f"
        ),
        Backend::Postgres => format!(
            "(SELECT e0.id, -ts_rank(e0.tsv, q) AS score FROM search_entries e0, to_tsquery('simple', $1) q \
             WHERE e0.tsv @@ q ORDER BY e0.id DESC{cap}) f"
        ),
    }
}

/// How a full-text query is spelled: quoting of a term, the prefix marker, AND, OR.
pub(crate) type MatchSyntax = (fn(&str) -> String, &'static str, &'static str, &'static str);

/// FTS5 `MATCH` syntax on SQLite, `to_tsquery` syntax on PostgreSQL.
pub(crate) fn match_syntax(backend: Backend) -> MatchSyntax {
    match backend {
        Backend::Sqlite => (|t| format!("\"{t}\""), "*", " AND ", " OR "),
        Backend::Postgres => (|t| t.to_owned(), ":*", " & ", " | "),
    }
}

/// Appended to a sub-select of rows to claim, so that workers on PostgreSQL skip each
/// other's rows; SQLite has one writer, so nothing to skip.
pub(crate) fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

/// Whether this process is the only worker on the database (the embedded engine), so that
/// claims left running by a process that died can be released at once.
pub(crate) fn single_process(backend: Backend) -> bool {
    backend == Backend::Sqlite
}

/// Locks a permit's rows (`$1`: the number) for the rest of the transaction: row locks in
/// id order on PostgreSQL; on SQLite the database's write lock, taken by a write.
pub(crate) fn lock_permit(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "SELECT id FROM permit_rows WHERE permit = $1 ORDER BY id FOR UPDATE",
        Backend::Sqlite => {
            "UPDATE permit_rows SET status = status WHERE id = (SELECT MIN(id) FROM permit_rows WHERE permit = $1)"
        }
    }
}

/// Up to `$2` permit rows after id `$1` packed into one text (fields separated by U+001F,
/// rows by U+001E), with the last id read (`last`, `packed`).
pub(crate) fn packed_permit_rows(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT MAX(id) AS last, group_concat(permit || char(31) || category || char(31) || plate || char(31) \
             || country || char(31) || valid_from || char(31) || valid_to || char(31) || status, char(30)) AS packed \
             FROM (SELECT id, permit, category, plate, country, valid_from, valid_to, status FROM permit_rows \
             WHERE id > $1 ORDER BY id LIMIT $2) chunk"
        }
        Backend::Postgres => {
            "SELECT MAX(id) AS last, string_agg(permit || chr(31) || category || chr(31) || plate || chr(31) \
             || country || chr(31) || valid_from::text || chr(31) || valid_to::text || chr(31) || status, chr(30)) AS packed \
             FROM (SELECT id, permit, category, plate, country, valid_from, valid_to, status FROM permit_rows \
             WHERE id > $1 ORDER BY id LIMIT $2) chunk"
        }
    }
}

/// The answer predicate on SQLite, word for word the predicate of the partial index
/// `case_events_answers` (migration 0014), so that the index applies and covers the query.
pub(crate) const ANSWER_PREDICATE_SQLITE: &str = "e.actor <> 'system' AND ((e.kind = 'action' AND json_extract(e.detail, '$.action') IN \
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul')) \
    OR (e.kind = 'document_added' AND json_extract(e.detail, '$.protocol') IS NOT NULL))";

/// The same on PostgreSQL (its index predicate in migration 0014).
pub(crate) const ANSWER_PREDICATE_POSTGRES: &str = "e.actor <> 'system' AND ((e.kind = 'action' AND (e.detail::json ->> 'action') IN \
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul')) \
    OR (e.kind = 'document_added' AND (e.detail::json ->> 'protocol') IS NOT NULL))";

/// The journal entries that are a first answer (see `reports::ANSWER_ACTIONS`).
pub(crate) fn answer_predicate(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => ANSWER_PREDICATE_SQLITE,
        Backend::Postgres => ANSWER_PREDICATE_POSTGRES,
    }
}

/// The aggregate that packs rows of plain `columns` (numbers, identifiers, dates; no
/// NULL) into one text, in whichever form the engine builds fastest: a JSON array of
/// arrays on SQLite (`json_array` is several times cheaper there than chains of `||`),
/// `v,v;v,v` on PostgreSQL (where `json_agg` of `json_build_array` costs twice `string_agg`).
pub(crate) fn packed_rows(backend: Backend, columns: &[&str]) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({}))", columns.join(", ")),
        Backend::Postgres => format!("string_agg({}, ';')", columns.join(" || ',' || ")),
    }
}

/// The aggregate that turns rows of `columns` into one JSON array of arrays.
pub(crate) fn json_rows(backend: Backend, columns: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_group_array(json_array({columns}))"),
        Backend::Postgres => {
            format!("COALESCE(json_agg(json_build_array({columns})), '[]'::json)::text")
        }
    }
}

/// Day counts (`g.d, g.t, g.ch, g.n`) packed as `d,t,ch,n;…`.
pub(crate) fn pack_day_counts(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "group_concat(g.d || ',' || g.t || ',' || g.ch || ',' || g.n, ';')",
        Backend::Postgres => "string_agg(g.d || ',' || g.t || ',' || g.ch || ',' || g.n, ';')",
    }
}
