//! The queue of documents waiting for their text (a PDF's own text layer, or OCR of
//! scanned pages): a column of `documents`, so every document enters the queue the moment
//! it is recorded, whoever records it, and the queue survives restarts. Workers claim
//! documents for a limited time (a dead worker's claim expires and another takes the
//! document), and a document that has broken three workers is failed rather than retried
//! forever. The text is kept per content hash and page, so the same bytes are read once.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::journal::insert_event;
use crate::search::{EntryOf, upsert_entry};
use crate::values::{rows_per_statement, values};
use crate::{Result, Store, StoreError, get_i64, get_str, to_ms};

/// A claimed document to read.
#[derive(Debug, Clone)]
pub struct TextJob {
    /// Document id.
    pub document_id: String,
    /// Content address of its bytes.
    pub sha256: String,
    /// Sniffed media type.
    pub media_type: String,
    /// Display file name.
    pub filename: String,
    /// Size in bytes.
    pub size: i64,
}

/// The text of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    /// 1-based page number (1 for files without pages).
    pub page: i64,
    /// How it was read: `text_layer`, `ocr`, `message` or `plain`.
    pub method: String,
    /// The text.
    pub text: String,
}

/// What reading a document gave.
#[derive(Debug, Clone)]
pub enum TextOutcome {
    /// Text, page by page.
    Pages(Vec<PageText>),
    /// A kind of file without text (an archive, audio…): only its name is searchable.
    NoText,
    /// Could not be read; the reason is shown to staff, who can retry.
    Failed(String),
}

/// How many documents are in each state, for the dashboard and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct TextQueueStats {
    /// Waiting.
    pub pending: i64,
    /// Being read now.
    pub running: i64,
    /// Read.
    pub done: i64,
    /// Nothing to read.
    pub none: i64,
    /// Failed (can be retried).
    pub failed: i64,
}

/// After this many claims without a result, the document is failed: it probably kills
/// the worker (a decompression bomb, a tool crash) and must not do so forever.
const MAX_ATTEMPTS: i64 = 3;

impl Store {
    /// Claims up to `max` documents for `lease`: the oldest pending ones, and those whose
    /// previous claim expired.
    pub async fn claim_text_jobs(&self, max: usize, lease: Duration) -> Result<Vec<TextJob>> {
        let now = self.clock.now();
        let until = to_ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let candidates = sqlx::query(
            "SELECT id, text_status, text_attempts FROM documents \
             WHERE text_status IN ('pending', 'running') AND (text_status = 'pending' OR text_claimed_until < $1) \
             ORDER BY uploaded_at, id LIMIT $2",
        )
        .bind(to_ms(now))
        .bind(i64::try_from(max).unwrap_or(100))
        .fetch_all(&self.read)
        .await?;
        let mut jobs = Vec::new();
        for row in candidates {
            let id = get_str(&row, "id")?;
            if get_i64(&row, "text_attempts")? >= MAX_ATTEMPTS {
                let reason = format!(
                    "lettura interrotta {MAX_ATTEMPTS} volte (il file potrebbe bloccare l'OCR)"
                );
                sqlx::query(
                    "UPDATE documents SET text_status = 'failed', text_error = $1, text_claimed_until = NULL \
                     WHERE id = $2 AND text_status IN ('pending', 'running') AND (text_status = 'pending' OR text_claimed_until < $3)",
                )
                .bind(reason)
                .bind(&id)
                .bind(to_ms(now))
                .execute(&self.write)
                .await?;
                continue;
            }
            // Compare-and-set: of two workers racing for it, one wins.
            let claimed = sqlx::query(
                "UPDATE documents SET text_status = 'running', text_claimed_until = $1, text_attempts = text_attempts + 1 \
                 WHERE id = $2 AND text_status IN ('pending', 'running') AND (text_status = 'pending' OR text_claimed_until < $3) \
                 RETURNING id, sha256, media_type, filename, size",
            )
            .bind(until)
            .bind(&id)
            .bind(to_ms(now))
            .fetch_optional(&self.write)
            .await?;
            if let Some(row) = claimed {
                jobs.push(TextJob {
                    document_id: get_str(&row, "id")?,
                    sha256: get_str(&row, "sha256")?,
                    media_type: get_str(&row, "media_type")?,
                    filename: get_str(&row, "filename")?,
                    size: get_i64(&row, "size")?,
                });
            }
        }
        Ok(jobs)
    }

    /// At start-up on the embedded database, where this process is the only worker, a
    /// document left `running` was being read by a process that died: it goes back to the
    /// queue at once. (On PostgreSQL other instances may be reading: their claims lapse.)
    pub async fn release_stale_text_claims(&self) -> Result<u64> {
        if !crate::dialect::single_process(self.backend) {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE documents SET text_status = 'pending', text_claimed_until = NULL WHERE text_status = 'running'",
        )
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Extends a claim while a long document is being read, so no other worker takes it.
    pub async fn renew_text_claim(&self, document_id: &str, lease: Duration) -> Result<()> {
        let until =
            to_ms(self.clock.now()) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        sqlx::query("UPDATE documents SET text_claimed_until = $1 WHERE id = $2 AND text_status = 'running'")
            .bind(until)
            .bind(document_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The text already read from the same bytes (another copy of the document), if any.
    pub async fn known_text(&self, sha256: &str) -> Result<Option<Vec<PageText>>> {
        let rows = sqlx::query(
            "SELECT page, method, text FROM document_texts WHERE sha256 = $1 ORDER BY page",
        )
        .bind(sha256)
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        rows.iter()
            .map(|r| {
                Ok(PageText {
                    page: get_i64(r, "page")?,
                    method: get_str(r, "method")?,
                    text: get_str(r, "text")?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The text read from each of these documents (pages joined), in one read: the case
    /// page recognises what its documents are. Documents with no text are absent.
    pub async fn known_texts(
        &self,
        sha256s: &[String],
    ) -> Result<std::collections::HashMap<String, String>> {
        let mut found: std::collections::HashMap<String, String> = Default::default();
        for chunk in sha256s.chunks(rows_per_statement(1, 500)) {
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT sha256, text FROM document_texts WHERE sha256 IN ({placeholders}) \
                 ORDER BY sha256, page"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for sha in chunk {
                query = query.bind(sha);
            }
            for row in query.fetch_all(&self.read).await? {
                let text = found.entry(get_str(&row, "sha256")?).or_default();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&get_str(&row, "text")?);
            }
        }
        Ok(found)
    }

    /// Records what reading a claimed document gave, and makes it searchable (its name
    /// always, its text when there is one), in one transaction.
    pub async fn finish_text_job(&self, job: &TextJob, outcome: TextOutcome) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let mut index_text = format!("{}\n", job.filename);
        let (status, error, pages) = match &outcome {
            TextOutcome::Pages(pages) => {
                for chunk in pages.chunks(rows_per_statement(4, 100)) {
                    let rows = values("($1, $2, $3, $4)", chunk.len());
                    let sql = format!(
                        "INSERT INTO document_texts (sha256, page, method, text) VALUES {rows} \
                         ON CONFLICT (sha256, page) DO NOTHING"
                    );
                    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for p in chunk {
                        // PostgreSQL refuses NUL in text; the bytes stay in the store.
                        insert = insert
                            .bind(job.sha256.clone())
                            .bind(p.page)
                            .bind(p.method.clone())
                            .bind(p.text.replace('\0', ""));
                    }
                    insert.execute(&mut *tx).await?;
                }
                for p in pages {
                    index_text.push_str(&p.text);
                    index_text.push('\n');
                }
                (
                    "done",
                    None,
                    Some(i64::try_from(pages.len()).unwrap_or(i64::MAX)),
                )
            }
            TextOutcome::NoText => ("none", None, None),
            TextOutcome::Failed(why) => (
                "failed",
                Some(why.chars().take(500).collect::<String>()),
                None,
            ),
        };
        // Only the claim's holder records a result: a document put back in the queue (or
        // taken over after an expired claim) meanwhile is left to its new reader.
        let row = sqlx::query(
            "UPDATE documents SET text_status = $1, text_error = $2, text_pages = $3, text_claimed_until = NULL \
             WHERE id = $4 AND text_status = 'running' RETURNING case_id",
        )
        .bind(status)
        .bind(error.clone())
        .bind(pages)
        .bind(&job.document_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(());
        };
        upsert_entry(&mut tx, EntryOf::Document(&job.document_id), &index_text).await?;
        if let Some(why) = &error
            && let Some(case_id) = crate::get_opt_i64(&row, "case_id")?
        {
            let detail = serde_json::json!({ "document_id": job.document_id, "filename": job.filename, "error": why });
            insert_event(
                &mut tx,
                case_id,
                now,
                "system",
                "document_text_failed",
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a document back in the queue (after a failure, or to read it again with a
    /// better OCR), journaled on its case.
    pub async fn retry_text(&self, document_id: &str, actor: &str) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE documents SET text_status = 'pending', text_error = NULL, text_attempts = 0, text_claimed_until = NULL \
             WHERE id = $1 RETURNING case_id, sha256",
        )
        .bind(document_id)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("document {document_id}")))?;
        // Read afresh: forget the text of these bytes.
        sqlx::query("DELETE FROM document_texts WHERE sha256 = $1")
            .bind(get_str(&row, "sha256")?)
            .execute(&mut *tx)
            .await?;
        if let Some(case_id) = crate::get_opt_i64(&row, "case_id")? {
            let detail = serde_json::json!({ "document_id": document_id });
            insert_event(&mut tx, case_id, now, actor, "document_text_retry", &detail).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Documents per text state.
    pub async fn text_queue(&self) -> Result<TextQueueStats> {
        let rows =
            sqlx::query("SELECT text_status, COUNT(*) AS n FROM documents GROUP BY text_status")
                .fetch_all(&self.read)
                .await?;
        let mut stats = TextQueueStats::default();
        for row in rows {
            let n = get_i64(&row, "n")?;
            match get_str(&row, "text_status")?.as_str() {
                "pending" => stats.pending = n,
                "running" => stats.running = n,
                "done" => stats.done = n,
                "none" => stats.none = n,
                "failed" => stats.failed = n,
                _ => {}
            }
        }
        Ok(stats)
    }
}
