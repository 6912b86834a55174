//! Full-text search over cases, documents and inbound messages, the same on both engines:
//! the text is analysed in Rust ([`sportello_domain::text`]: Italian stems, accents
//! folded) and the terms go into SQLite FTS5 or a PostgreSQL `tsvector` (GIN index).
//! Ranking is the engine's (BM25 on SQLite, `ts_rank` on PostgreSQL); snippets are cut
//! from the original text afterwards, for the page of results only.
//!
//! Entries are written in the transaction that creates what they describe (a case, a
//! message) or by the text worker when a document's text is known, so the index never
//! lags behind a commit it depends on. See docs/DESIGN.md, "Search".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_domain::text;
use utoipa::ToSchema;

use crate::citizens::CitizenView;
use crate::dialect;
use crate::values::{rows_per_statement, values};
use crate::{Backend, Result, Store, get_i64, get_opt_str, get_str, to_ms};

/// What a search may look at and how many results it wants.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The words typed.
    pub q: String,
    /// Only cases of this type.
    pub case_type: Option<String>,
    /// Only cases in this status.
    pub status: Option<String>,
    /// Only cases received at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only cases received before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Whether document hits may be shown (the caller's role may read documents).
    pub include_documents: bool,
    /// Page size.
    pub limit: u32,
    /// Results to skip.
    pub offset: u32,
}

/// One result (CONTRACT §5 `{kind, reference, document_id?, snippet}`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SearchHit {
    /// `case`, `document` or `message`.
    pub kind: String,
    /// The case it belongs to.
    pub reference: String,
    /// For document hits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// For document hits: the file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// For document hits: the page the snippet comes from (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// An extract around the words found, HTML-escaped, the words in `<mark>`.
    pub snippet: String,
}

/// Words of the free-text fields of a case, with plates also in their compact form
/// (`AB 123 CD` and `AB123CD` both find it).
pub(crate) fn case_text(
    reference: &str,
    subject: &str,
    description: &str,
    fields: &serde_json::Value,
    citizen: &CitizenView,
) -> String {
    let mut out = format!("{reference}\n{subject}\n{description}\n");
    flatten(fields, &mut out);
    for value in [
        &citizen.name,
        &citizen.fiscal_code,
        &citizen.email,
        &citizen.pec,
        &citizen.phone,
        &citizen.fax,
    ]
    .into_iter()
    .flatten()
    {
        out.push_str(value);
        out.push('\n');
    }
    out
}

fn flatten(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            let compact: String = s.chars().filter(|c| c.is_alphanumeric()).collect();
            if compact.len() != s.len() && (4..=12).contains(&compact.len()) {
                out.push_str(&compact);
                out.push('\n');
            }
        }
        serde_json::Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| flatten(v, out)),
        _ => {}
    }
}

/// Where a new entry points.
pub(crate) enum EntryOf<'a> {
    /// A document, by id.
    Document(&'a str),
    /// An inbound message, by id.
    Message(i64),
}

/// Writes (or rewrites) the index entry of one thing, inside the caller's transaction.
pub(crate) async fn upsert_entry(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    of: EntryOf<'_>,
    text_to_index: &str,
) -> Result<()> {
    let terms = text::analyse(text_to_index);
    let (key, kind, case_id, document_id, message_id): (_, _, Option<i64>, _, _) = match of {
        EntryOf::Document(id) => (
            format!("d:{id}"),
            "document",
            None,
            Some(id.to_owned()),
            None,
        ),
        EntryOf::Message(id) => (format!("m:{id}"), "message", None, None, Some(id)),
    };
    sqlx::query(
        "INSERT INTO search_entries (key, kind, case_id, document_id, message_id, terms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (key) DO UPDATE SET terms = excluded.terms",
    )
    .bind(key)
    .bind(kind)
    .bind(case_id)
    .bind(document_id)
    .bind(message_id)
    .bind(terms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Index entries of many new cases in one statement.
pub(crate) async fn insert_case_entries(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cases: &[(i64, String)],
) -> Result<()> {
    const ROW: &str = "($1, 'case', $2, $3)";
    for chunk in cases.chunks(rows_per_statement(3, 200)) {
        let rows = values(ROW, chunk.len());
        let sql = format!(
            "INSERT INTO search_entries (key, kind, case_id, terms) VALUES {rows} \
             ON CONFLICT (key) DO UPDATE SET terms = excluded.terms"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, text_to_index) in chunk {
            insert = insert
                .bind(format!("c:{id}"))
                .bind(*id)
                .bind(text::analyse(text_to_index));
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Ranked results for a query, with snippets. An empty query (or one made only of
    /// common words) finds nothing rather than everything.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let clauses = text::query_clauses(&query.q);
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let match_arg = match_expression(self.backend, &query.q, &clauses);
        let terms = text::clause_terms(&clauses);
        // Ranking every match of a common word costs seconds (every match scored and
        // joined before the LIMIT): the newest RANK_WINDOW matches are ranked first, and
        // only when they do not fill the page is everything ranked.
        let hits = self
            .search_window(query, &match_arg, Some(RANK_WINDOW))
            .await?;
        // A short page means more only if the window was full: a rare word's few matches
        // were all ranked already, and ranking them again would only repeat the work.
        let hits = if hits.len() < query.limit.clamp(1, 200) as usize
            && self.window_is_full(&match_arg).await?
        {
            self.search_window(query, &match_arg, None).await?
        } else {
            hits
        };
        self.with_snippets(hits, &terms).await
    }

    /// Whether a query has at least [`RANK_WINDOW`] matching entries (counting stops there).
    async fn window_is_full(&self, match_arg: &str) -> Result<bool> {
        let sql = dialect::search_window_count(self.backend, RANK_WINDOW);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(match_arg.to_owned())
            .fetch_one(&self.read)
            .await?;
        Ok(get_i64(&row, "n")? >= i64::from(RANK_WINDOW))
    }

    /// One page of ranked matches among the newest `window` matching entries (all when
    /// `None`), filtered.
    async fn search_window(
        &self,
        query: &SearchQuery,
        match_arg: &str,
        window: Option<u32>,
    ) -> Result<Vec<RawHit>> {
        let cap = window.map_or_else(String::new, |w| format!(" LIMIT {w}"));
        let matches = dialect::search_matches(self.backend, &cap);
        let mut filters = String::new();
        let mut n = 1;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if query.case_type.is_some() {
            filters.push_str(&format!(" AND c.case_type = {}", next()));
        }
        if query.status.is_some() {
            filters.push_str(&format!(" AND c.status = {}", next()));
        }
        if query.from.is_some() {
            filters.push_str(&format!(" AND c.received_at >= {}", next()));
        }
        if query.to.is_some() {
            filters.push_str(&format!(" AND c.received_at < {}", next()));
        }
        if !query.include_documents {
            filters.push_str(" AND e.kind <> 'document'");
        }
        let (limit, offset) = (next(), next());
        let sql = format!(
            "SELECT e.kind, e.case_id AS entry_case, e.document_id, e.message_id, c.reference, c.id AS case_id, \
             f.score AS score \
             FROM {matches} JOIN search_entries e ON e.id = f.id \
             LEFT JOIN documents d ON d.id = e.document_id \
             LEFT JOIN inbound_messages m ON m.id = e.message_id \
             JOIN cases c ON c.id = COALESCE(e.case_id, d.case_id, m.case_id) \
             WHERE 1 = 1{filters} \
             ORDER BY f.score, e.id DESC LIMIT {limit} OFFSET {offset}"
        );
        let mut select = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(match_arg.to_owned());
        if let Some(v) = &query.case_type {
            select = select.bind(v.clone());
        }
        if let Some(v) = &query.status {
            select = select.bind(v.clone());
        }
        if let Some(v) = query.from {
            select = select.bind(to_ms(v));
        }
        if let Some(v) = query.to {
            select = select.bind(to_ms(v));
        }
        let rows = select
            .bind(i64::from(query.limit.clamp(1, 200)))
            .bind(i64::from(query.offset))
            .fetch_all(&self.read)
            .await?;
        let mut hits = Vec::with_capacity(rows.len());
        for row in &rows {
            hits.push(RawHit {
                kind: get_str(row, "kind")?,
                case_id: get_i64(row, "case_id")?,
                reference: get_str(row, "reference")?,
                document_id: get_opt_str(row, "document_id")?,
                message_id: crate::get_opt_i64(row, "message_id")?,
            });
        }
        Ok(hits)
    }

    /// Cuts a snippet for each hit from the original text, reading the texts of the whole
    /// page of results in three queries (cases, messages, document pages).
    async fn with_snippets(&self, hits: Vec<RawHit>, terms: &[String]) -> Result<Vec<SearchHit>> {
        let case_ids: Vec<i64> = hits
            .iter()
            .filter(|h| h.kind == "case")
            .map(|h| h.case_id)
            .collect();
        let message_ids: Vec<i64> = hits.iter().filter_map(|h| h.message_id).collect();
        let document_ids: Vec<&str> = hits
            .iter()
            .filter_map(|h| h.document_id.as_deref())
            .collect();

        let mut case_texts: HashMap<i64, String> = HashMap::new();
        if !case_ids.is_empty() {
            let sql = format!(
                "SELECT {CASE_TEXT_COLUMNS} FROM cases c LEFT JOIN citizens z ON z.id = c.citizen_id WHERE c.id IN ({})",
                placeholders(case_ids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &case_ids {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.read).await? {
                let (id, text_of_case) = case_text_of_row(&row)?;
                case_texts.insert(id, text_of_case);
            }
        }
        let mut message_texts: HashMap<i64, String> = HashMap::new();
        if !message_ids.is_empty() {
            let sql = format!(
                "SELECT id, subject, sender, body_text FROM inbound_messages WHERE id IN ({})",
                placeholders(message_ids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &message_ids {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.read).await? {
                message_texts.insert(
                    get_i64(&row, "id")?,
                    format!(
                        "{}\n{}\n{}",
                        get_str(&row, "subject")?,
                        get_str(&row, "sender")?,
                        get_opt_str(&row, "body_text")?.unwrap_or_default()
                    ),
                );
            }
        }
        // Document pages: (document id) -> [(filename, page, text)].
        let mut pages: HashMap<String, (String, Vec<(i64, String)>)> = HashMap::new();
        if !document_ids.is_empty() {
            let sql = format!(
                "SELECT d.id, d.filename, t.page, t.text FROM documents d \
                 LEFT JOIN document_texts t ON t.sha256 = d.sha256 WHERE d.id IN ({}) ORDER BY d.id, t.page",
                placeholders(document_ids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in &document_ids {
                q = q.bind((*id).to_owned());
            }
            for row in q.fetch_all(&self.read).await? {
                let entry = pages
                    .entry(get_str(&row, "id")?)
                    .or_insert_with(|| (String::new(), Vec::new()));
                entry.0 = get_str(&row, "filename")?;
                if let (Some(page), Some(text)) = (
                    crate::get_opt_i64(&row, "page")?,
                    get_opt_str(&row, "text")?,
                ) {
                    entry.1.push((page, text));
                }
            }
        }

        const WIDTH: usize = 160;
        let mut out = Vec::with_capacity(hits.len());
        for hit in hits {
            let (snippet, filename, page) = match hit.kind.as_str() {
                "document" => {
                    let id = hit.document_id.clone().unwrap_or_default();
                    let (filename, texts) = pages.remove(&id).unwrap_or_default();
                    let found = texts
                        .iter()
                        .find_map(|(page, t)| text::snippet(t, terms, WIDTH).map(|s| (s, *page)));
                    match found {
                        Some((s, page)) => (s, Some(filename), Some(page)),
                        None => (
                            text::snippet(&filename, terms, WIDTH)
                                .unwrap_or_else(|| escape(&filename)),
                            Some(filename),
                            None,
                        ),
                    }
                }
                "message" => {
                    let t = hit
                        .message_id
                        .and_then(|id| message_texts.get(&id))
                        .cloned()
                        .unwrap_or_default();
                    (first_lines(&t, terms, WIDTH), None, None)
                }
                _ => {
                    let t = case_texts.get(&hit.case_id).cloned().unwrap_or_default();
                    (first_lines(&t, terms, WIDTH), None, None)
                }
            };
            out.push(SearchHit {
                kind: hit.kind,
                reference: hit.reference,
                document_id: hit.document_id,
                filename,
                page,
                snippet,
            });
        }
        Ok(out)
    }

    /// Entries for cases and messages written before the index existed (an upgrade):
    /// done once at start-up, in batches, so an old installation becomes searchable.
    pub async fn index_backlog(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let sql = format!(
                "SELECT {CASE_TEXT_COLUMNS} FROM cases c LEFT JOIN citizens z ON z.id = c.citizen_id \
                 WHERE NOT EXISTS (SELECT 1 FROM search_entries e WHERE e.key = 'c:' || c.id) \
                 ORDER BY c.id LIMIT 500"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&self.read)
                .await?;
            if rows.is_empty() {
                break;
            }
            let batch = rows
                .iter()
                .map(case_text_of_row)
                .collect::<Result<Vec<_>>>()?;
            let mut tx = self.write.begin().await?;
            insert_case_entries(&mut tx, &batch).await?;
            tx.commit().await?;
            total += batch.len();
        }
        Ok(total)
    }
}

/// The engine's match expression for a query's clauses: every clause, each met by all the
/// terms of one of its alternatives (a telephone number: its words, or its number's term).
/// The last word may be unfinished (search as you type): it matches as a prefix.
fn match_expression(backend: Backend, q: &str, clauses: &[text::QueryClause]) -> String {
    let last_is_word = q
        .trim_end()
        .chars()
        .last()
        .is_some_and(char::is_alphanumeric);
    let (quote, prefix, and, or) = dialect::match_syntax(backend);
    let group = |parts: Vec<String>, op: &str| {
        if parts.len() == 1 {
            parts.into_iter().collect()
        } else {
            format!("({})", parts.join(op))
        }
    };
    let rendered: Vec<String> = clauses
        .iter()
        .enumerate()
        .map(|(c, clause)| {
            let alternatives = clause
                .any_of
                .iter()
                .enumerate()
                .map(|(a, terms)| {
                    let parts = terms
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let last = c + 1 == clauses.len() && a == 0 && i + 1 == terms.len();
                            let mut part = quote(t);
                            if last && last_is_word && t.chars().count() >= 3 {
                                part.push_str(prefix);
                            }
                            part
                        })
                        .collect();
                    group(parts, and)
                })
                .collect();
            group(alternatives, or)
        })
        .collect();
    rendered.join(and)
}

/// How many of the newest matching entries are ranked before looking further.
const RANK_WINDOW: u32 = 2_000;

/// The columns [`case_text_of_row`] reads (cases as `c`, citizens as `z`).
const CASE_TEXT_COLUMNS: &str = "c.id, c.reference, c.subject, c.description, c.fields, \
     z.name, z.fiscal_code, z.email, z.pec, z.phone, z.fax";

/// A case's id and searchable text from a row of [`CASE_TEXT_COLUMNS`].
fn case_text_of_row(row: &sqlx::any::AnyRow) -> Result<(i64, String)> {
    let fields: serde_json::Value =
        serde_json::from_str(&get_str(row, "fields")?).unwrap_or_default();
    let citizen = CitizenView::from_row(row)?;
    Ok((
        get_i64(row, "id")?,
        case_text(
            &get_str(row, "reference")?,
            &get_str(row, "subject")?,
            &get_str(row, "description")?,
            &fields,
            &citizen,
        ),
    ))
}

struct RawHit {
    kind: String,
    case_id: i64,
    reference: String,
    document_id: Option<String>,
    message_id: Option<i64>,
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A snippet around the words found, else the text's beginning (the hit may be a prefix
/// match the snippet cannot see).
fn first_lines(text_to_cut: &str, terms: &[String], width: usize) -> String {
    text::snippet(text_to_cut, terms, width).unwrap_or_else(|| {
        let head: String = text_to_cut.chars().take(width).collect();
        escape(head.trim())
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use sportello_domain::case::Channel;

    use super::*;
    use crate::cases::NewCase;
    use crate::citizens::CitizenInput;
    use crate::intake::{Inbound, InboundDocument};
    use crate::testing::{fixture_now, with_test_store};
    use crate::texts::{PageText, TextOutcome};

    fn new_case(subject: &str, description: &str, plates: &[&str], name: &str) -> NewCase {
        let mut fields = serde_json::Map::new();
        fields.insert("plates".into(), serde_json::json!(plates));
        NewCase {
            case_type: "ztl_permit".into(),
            subject: subject.into(),
            description: description.into(),
            channel: Channel::Counter,
            citizen: CitizenInput {
                name: Some(name.into()),
                ..CitizenInput::default()
            },
            fields,
            flags: Vec::new(),
            actor: "op".into(),
            document_sha256: None,
            registered_as: None,
            terms: None,
        }
    }

    fn query(q: &str) -> SearchQuery {
        SearchQuery {
            q: q.into(),
            include_documents: true,
            limit: 20,
            ..SearchQuery::default()
        }
    }

    #[tokio::test]
    async fn cases_are_found_by_stem_accent_plate_and_name() {
        with_test_store(|store, _clock| async move {
            let a = store
                .create_case(new_case(
                    "Rinnovo permessi residenti",
                    "La città vecchia: chiedo il rinnovo perché scaduto",
                    &["AB 123 CD"],
                    "Maria Rossi",
                ))
                .await
                .unwrap();
            let b = store
                .create_case(new_case(
                    "Contrassegno CUDE",
                    "Disabile, accesso in ZTL",
                    &["ZZ999ZZ"],
                    "Luca Bianchi",
                ))
                .await
                .unwrap();
            let refs =
                |hits: Vec<SearchHit>| hits.into_iter().map(|h| h.reference).collect::<Vec<_>>();
            assert_eq!(
                refs(store.search(&query("permesso")).await.unwrap()),
                vec![a.summary.reference.clone()]
            );
            assert_eq!(
                refs(store.search(&query("citta perche")).await.unwrap()),
                vec![a.summary.reference.clone()]
            );
            assert_eq!(
                refs(store.search(&query("AB123CD")).await.unwrap()),
                vec![a.summary.reference.clone()]
            );
            assert_eq!(
                refs(store.search(&query("ab 123 cd")).await.unwrap()),
                vec![a.summary.reference.clone()]
            );
            assert_eq!(
                refs(store.search(&query("bianchi")).await.unwrap()),
                vec![b.summary.reference.clone()]
            );
            assert_eq!(
                refs(store.search(&query("contrass")).await.unwrap()),
                vec![b.summary.reference.clone()],
                "prefix of the last word"
            );
            assert_eq!(
                refs(store.search(&query(&b.summary.reference)).await.unwrap()),
                vec![b.summary.reference.clone()]
            );
            assert!(
                store
                    .search(&query("permesso bianchi"))
                    .await
                    .unwrap()
                    .is_empty(),
                "every word must match"
            );
            assert!(store.search(&query("")).await.unwrap().is_empty());
            assert!(
                store
                    .search(&query("di la \"' OR 1=1 --"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            let hit = &store.search(&query("rinnovi")).await.unwrap()[0];
            assert_eq!(hit.kind, "case");
            assert!(
                hit.snippet.contains("<mark>rinnovo</mark>")
                    || hit.snippet.contains("<mark>Rinnovo</mark>"),
                "{}",
                hit.snippet
            );
            // Filters.
            let mut only_closed = query("permesso");
            only_closed.status = Some("closed".into());
            assert!(store.search(&only_closed).await.unwrap().is_empty());
            let mut by_type = query("permesso");
            by_type.case_type = Some("ztl_permit".into());
            by_type.from = Some(fixture_now() - chrono::Duration::days(1));
            by_type.to = Some(fixture_now() + chrono::Duration::days(1));
            assert_eq!(store.search(&by_type).await.unwrap().len(), 1);
            by_type.from = Some(fixture_now() + chrono::Duration::days(1));
            assert!(store.search(&by_type).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn document_text_is_queued_read_once_and_found_on_its_page() {
        with_test_store(|store, _clock| async move {
            let case = store
                .create_case(new_case("Domanda", "", &[], "Anna Neri"))
                .await
                .unwrap();
            let sha = "ab".repeat(32);
            let doc = store
                .add_document(
                    &case.summary.reference,
                    &sha,
                    10,
                    "libretto.pdf",
                    "application/pdf",
                    "op",
                )
                .await
                .unwrap();
            // Before its text is read, nothing about it is found; then it is claimed once.
            assert!(
                store
                    .search(&query("ornitorinco"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            let jobs = store
                .claim_text_jobs(10, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(jobs.len(), 1);
            assert!(
                store
                    .claim_text_jobs(10, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_empty(),
                "claimed"
            );
            let pages = vec![
                PageText {
                    page: 1,
                    method: "ocr".into(),
                    text: "Prima pagina".into(),
                },
                PageText {
                    page: 2,
                    method: "ocr".into(),
                    text: "Parola chiave: ornitorinco".into(),
                },
            ];
            store
                .finish_text_job(&jobs[0], TextOutcome::Pages(pages.clone()))
                .await
                .unwrap();
            let hits = store.search(&query("ornitorinchi")).await.unwrap();
            assert_eq!(hits.len(), 1);
            assert_eq!(hits[0].kind, "document");
            assert_eq!(hits[0].document_id.as_deref(), Some(doc.id.as_str()));
            assert_eq!(hits[0].page, Some(2));
            assert!(
                hits[0].snippet.contains("<mark>ornitorinco</mark>"),
                "{}",
                hits[0].snippet
            );
            assert_eq!(
                store.search(&query("libretto")).await.unwrap().len(),
                1,
                "file names are searchable"
            );
            // Roles that may not read documents do not see document hits.
            let mut no_docs = query("ornitorinco");
            no_docs.include_documents = false;
            assert!(store.search(&no_docs).await.unwrap().is_empty());
            // The same bytes again: their text is already known.
            assert_eq!(store.known_text(&sha).await.unwrap(), Some(pages));
            // Many documents' texts in one read: pages joined in order, unknown ones absent.
            let texts = store
                .known_texts(&[sha.clone(), "0".repeat(64)])
                .await
                .unwrap();
            assert_eq!(texts.len(), 1);
            assert_eq!(texts[&sha], "Prima pagina\nParola chiave: ornitorinco");
            let stats = store.text_queue().await.unwrap();
            assert_eq!((stats.done, stats.pending), (1, 0));
            // A failure is visible on the case and can be retried.
            store.retry_text(&doc.id, "op").await.unwrap();
            let jobs = store
                .claim_text_jobs(10, Duration::from_secs(60))
                .await
                .unwrap();
            store
                .finish_text_job(
                    &jobs[0],
                    TextOutcome::Failed("PDF protetto da password".into()),
                )
                .await
                .unwrap();
            let view = store.get_case(&case.summary.reference).await.unwrap();
            assert!(
                view.timeline
                    .iter()
                    .any(|e| e.kind == "document_text_failed")
            );
            assert_eq!(store.text_queue().await.unwrap().failed, 1);
            assert!(
                store
                    .search(&query("ornitorinco"))
                    .await
                    .unwrap()
                    .is_empty(),
                "a failed read forgets the old text"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn an_expired_claim_is_taken_again_and_a_poison_document_fails() {
        with_test_store(|store, clock| async move {
            let case = store
                .create_case(new_case("Domanda", "", &[], "Anna"))
                .await
                .unwrap();
            store
                .add_document(
                    &case.summary.reference,
                    &"cd".repeat(32),
                    1,
                    "x.tif",
                    "image/tiff",
                    "op",
                )
                .await
                .unwrap();
            for attempt in 1..=3 {
                let jobs = store
                    .claim_text_jobs(5, Duration::from_secs(60))
                    .await
                    .unwrap();
                assert_eq!(jobs.len(), 1, "attempt {attempt}");
                // The worker dies: its claim expires.
                clock.advance(chrono::Duration::seconds(61));
            }
            assert!(
                store
                    .claim_text_jobs(5, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(store.text_queue().await.unwrap().failed, 1);
        })
        .await;
    }

    #[tokio::test]
    async fn attached_messages_are_found_in_their_case() {
        with_test_store(|store, _clock| async move {
            let case = store
                .create_case(new_case("Domanda", "", &[], "Anna"))
                .await
                .unwrap();
            let msg = Inbound {
                explicit_case: None,
                channel: Channel::Email,
                source: "m.eml".into(),
                dedupe_key: "email:m1".into(),
                message_id: Some("m1@example.it".into()),
                in_reply_to: Vec::new(),
                received_at: fixture_now(),
                sender: CitizenInput::default(),
                sender_label: "anna@example.it".into(),
                subject: format!("Re: [{}] integrazione", case.summary.reference),
                text: "Allego il contratto di locazione dell'appartamento".into(),
                receipt: None,
                flags: Vec::new(),
                default_case_type: "ztl_permit".into(),
                raw_sha256: "ef".repeat(32),
                attachments: Vec::<InboundDocument>::new(),
            };
            store.ingest(msg).await.unwrap();
            let hits = store
                .search(&query("locazione appartamenti"))
                .await
                .unwrap();
            assert_eq!(hits.len(), 1);
            assert_eq!(
                (hits[0].kind.as_str(), hits[0].reference.as_str()),
                ("message", case.summary.reference.as_str())
            );
            assert!(
                hits[0].snippet.contains("<mark>locazione</mark>"),
                "{}",
                hits[0].snippet
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_phone_number_is_found_without_its_prefix_and_in_any_grouping() {
        with_test_store(|store, _clock| async move {
            let mut by_citizen = new_case("Permesso residenti", "", &[], "Maria Rossi");
            by_citizen.citizen.phone = Some("+39 333 1234567".into());
            let by_citizen = store.create_case(by_citizen).await.unwrap();
            let other = store
                .create_case(new_case("Contrassegno", "", &[], "Luca Bianchi"))
                .await
                .unwrap();
            // A message of the other case that gives the number in its text.
            let msg = Inbound {
                explicit_case: None,
                channel: Channel::Email,
                source: "m.eml".into(),
                dedupe_key: "email:phone".into(),
                message_id: Some("phone@example.it".into()),
                in_reply_to: Vec::new(),
                received_at: fixture_now(),
                sender: CitizenInput::default(),
                sender_label: "luca@example.it".into(),
                subject: format!("Re: [{}] recapito", other.summary.reference),
                text: "Potete richiamarmi al 0039 06 5551 2345 dopo le 15.".into(),
                receipt: None,
                flags: Vec::new(),
                default_case_type: "ztl_permit".into(),
                raw_sha256: "cd".repeat(32),
                attachments: Vec::<InboundDocument>::new(),
            };
            store.ingest(msg).await.unwrap();
            let found = |q: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .search(&query(q))
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|h| (h.kind, h.reference, h.snippet))
                        .collect::<Vec<_>>()
                }
            };
            for q in [
                "3331234567",
                "333 123 4567",
                "+393331234567",
                "0039 333 1234567",
                "00393331234567",
                "+39 333 1234567",
            ] {
                let hits = found(q).await;
                assert_eq!(hits.len(), 1, "{q}: {hits:?}");
                assert_eq!(
                    (hits[0].0.as_str(), hits[0].1.as_str()),
                    ("case", by_citizen.summary.reference.as_str()),
                    "{q}"
                );
                assert!(hits[0].2.contains("<mark>"), "{q}: {}", hits[0].2);
            }
            for q in ["0655512345", "06 555 12345", "+39 06 55512345"] {
                let hits = found(q).await;
                assert_eq!(hits.len(), 1, "{q}: {hits:?}");
                assert_eq!(
                    (hits[0].0.as_str(), hits[0].1.as_str()),
                    ("message", other.summary.reference.as_str()),
                    "{q}"
                );
                assert!(
                    hits[0].2.contains("<mark>0039 06 5551 2345</mark>"),
                    "{q}: {}",
                    hits[0].2
                );
            }
            // Another number, and a number with a word that is not there, find nothing.
            assert!(found("3331234568").await.is_empty());
            assert!(found("3331234567 bianchi").await.is_empty());
            assert_eq!(found("3331234567 rossi").await.len(), 1);
        })
        .await;
    }
}

#[cfg(test)]
mod retention_tests {
    #![allow(clippy::unwrap_used)]

    use crate::testing::with_test_store;

    /// Whatever asks (a bug, a person at the SQL prompt), the database keeps a document
    /// whose case is open or whose bytes the protocol register names.
    #[tokio::test]
    async fn documents_are_retained_while_their_case_is_open_or_registered() {
        with_test_store(|store, _clock| async move {
            let case = store
                .create_case(crate::cases::NewCase {
                    case_type: "ztl_permit".into(),
                    subject: "Domanda".into(),
                    description: String::new(),
                    channel: sportello_domain::case::Channel::Counter,
                    citizen: crate::citizens::CitizenInput::default(),
                    fields: serde_json::Map::new(),
                    flags: Vec::new(),
                    actor: "op".into(),
                    document_sha256: None,
                    registered_as: None,
                    terms: None,
                })
                .await
                .unwrap();
            let reference = case.summary.reference.clone();
            let doc = store
                .add_document(
                    &reference,
                    &"ab".repeat(32),
                    3,
                    "a.pdf",
                    "application/pdf",
                    "op",
                )
                .await
                .unwrap();
            let delete = |id: String| {
                let store = store.clone();
                async move {
                    sqlx::query("DELETE FROM documents WHERE id = $1")
                        .bind(id)
                        .execute(&store.write)
                        .await
                }
            };
            let refused = delete(doc.id.clone()).await.unwrap_err();
            assert!(
                refused.to_string().contains("document retained"),
                "{refused}"
            );
            // Closed, the case no longer holds it, but a registered document stays.
            sqlx::query("UPDATE cases SET status = 'closed' WHERE reference = $1")
                .bind(&reference)
                .execute(&store.write)
                .await
                .unwrap();
            delete(doc.id.clone()).await.unwrap();
            let registered = store
                .add_document(
                    &reference,
                    &"cd".repeat(32),
                    3,
                    "b.pdf",
                    "application/pdf",
                    "op",
                )
                .await
                .unwrap();
            sqlx::query("UPDATE protocol_register SET document_sha256 = $1")
                .bind("cd".repeat(32))
                .execute(&store.write)
                .await
                .unwrap_err();
            // The register is append-only; a registered document is one whose hash it holds.
            let registered_sha: String =
                sqlx::query_scalar("SELECT document_sha256 FROM protocol_register LIMIT 1")
                    .fetch_one(&store.write)
                    .await
                    .unwrap();
            sqlx::query("UPDATE documents SET sha256 = $1 WHERE id = $2")
                .bind(&registered_sha)
                .bind(&registered.id)
                .execute(&store.write)
                .await
                .unwrap();
            let refused = delete(registered.id.clone()).await.unwrap_err();
            assert!(
                refused.to_string().contains("document retained"),
                "{refused}"
            );
        })
        .await;
    }
}
