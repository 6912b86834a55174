//! The audit trail of who read personal data (CONTRACT §8.6). An entry is durable before
//! the read it records is answered: every caller waits for the commit of its entry. Reads
//! are frequent, so a background task commits whatever has queued up meanwhile in one
//! transaction (group commit) instead of one transaction per read. Entries are
//! append-only (triggers) and hash-chained through a head row, like the protocol register.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sportello_domain::read_audit::{ReadChainBreak, ReadChainVerifier, ReadEntry};
use tokio::sync::{mpsc, oneshot};

use crate::values::{rows_per_statement, values};
use crate::{Result, Store, StoreError, from_ms, get_i64, get_str, to_ms};

/// The most entries committed in one transaction.
const MAX_BATCH: usize = 500;

/// One access to personal data.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Login of the reader.
    pub actor: String,
    /// What was done (`read_case`, `read_document`…).
    pub action: &'static str,
    /// What was read (case reference, document id…).
    pub target: String,
}

/// One read of a case's data, as `GET /api/v1/audit/reads` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseRead {
    /// When.
    pub at: DateTime<Utc>,
    /// Login of the reader.
    pub actor: String,
    /// What was done (`read_case`, `read_document`…).
    pub action: String,
    /// What was read: the case reference or one of its documents' ids.
    pub target: String,
}

/// An entry waiting for its commit, and who to tell.
struct Pending {
    record: AccessRecord,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Handle to the group-committing writer.
#[derive(Debug, Clone)]
pub struct AuditSender(mpsc::UnboundedSender<Pending>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pending access record")
    }
}

/// Appends records to the chain in one transaction. The head row is updated first, which
/// takes the write lock (SQLite) or the row lock (PostgreSQL), so instances sharing the
/// database chain their entries one transaction after the other.
async fn write_batch(store: &Store, batch: &[AccessRecord]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = store.write.begin().await?;
    let head = sqlx::query(
        "UPDATE access_log_head SET count = count + $1 WHERE id = 1 RETURNING last_hash, count",
    )
    .bind(batch.len() as i64)
    .fetch_one(&mut *tx)
    .await?;
    let mut prev_hash = get_str(&head, "last_hash")?;
    let count = get_i64(&head, "count")?;
    let mut chained = Vec::with_capacity(batch.len());
    for r in batch {
        // Millisecond precision is what the database keeps; hash exactly that.
        let entry = ReadEntry {
            at: from_ms(to_ms(r.at))?,
            actor: r.actor.clone(),
            action: r.action.to_owned(),
            target: r.target.clone(),
            prev_hash: prev_hash.clone(),
        };
        let hash = entry.hash();
        prev_hash = hash.clone();
        chained.push((entry, hash));
    }
    for chunk in chained.chunks(rows_per_statement(6, 100)) {
        let rows = values("($1, $2, $3, $4, $5, $6)", chunk.len());
        let sql = format!(
            "INSERT INTO access_log (at, actor, action, target, prev_hash, entry_hash) VALUES {rows}"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (e, hash) in chunk {
            insert = insert
                .bind(to_ms(e.at))
                .bind(e.actor.clone())
                .bind(e.action.clone())
                .bind(e.target.clone())
                .bind(e.prev_hash.clone())
                .bind(hash.clone());
        }
        insert.execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE access_log_head SET last_hash = $1 WHERE id = 1 AND count = $2")
        .bind(prev_hash)
        .bind(count)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Starts the group-committing audit writer used by [`Store::record_access`].
    pub fn with_audit_writer(mut self) -> Store {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        let writer = self.clone();
        tokio::spawn(async move {
            let mut pending: Vec<Pending> = Vec::new();
            while let Some(first) = rx.recv().await {
                pending.push(first);
                // Everything that queued up while the last batch was being committed.
                while pending.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => pending.push(p),
                        Err(_) => break,
                    }
                }
                let records: Vec<AccessRecord> = pending.iter().map(|p| p.record.clone()).collect();
                let outcome = write_batch(&writer, &records)
                    .await
                    .map_err(|e| e.to_string());
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, records = records.len(), "could not write the access log");
                }
                for p in pending.drain(..) {
                    let _ = p.done.send(outcome.clone());
                }
            }
        });
        self.audit = Some(AuditSender(tx));
        self
    }

    /// Records that `actor` read `target`.
    pub async fn record_access(
        &self,
        actor: &str,
        action: &'static str,
        target: &str,
    ) -> Result<()> {
        let record = AccessRecord {
            at: self.clock.now(),
            actor: actor.to_owned(),
            action,
            target: target.to_owned(),
        };
        let Some(sender) = &self.audit else {
            return write_batch(self, &[record]).await;
        };
        let (done, committed) = oneshot::channel();
        let pending = Pending {
            record: record.clone(),
            done,
        };
        if sender.0.send(pending).is_err() {
            return write_batch(self, &[record]).await;
        }
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Database(sqlx::Error::Io(
                std::io::Error::other(format!("access log not written: {e}")),
            ))),
            Err(_) => write_batch(self, &[record]).await,
        }
    }

    /// Records that `actor` read each of `targets`: sent together, so the group commit
    /// writes them in one transaction instead of one round trip each.
    pub async fn record_accesses(
        &self,
        actor: &str,
        action: &'static str,
        targets: &[String],
    ) -> Result<()> {
        futures::future::try_join_all(
            targets
                .iter()
                .map(|target| self.record_access(actor, action, target)),
        )
        .await?;
        Ok(())
    }

    /// The latest reads, newest first, of one actor or one target if given: the
    /// supervisor's view of who opened which citizen's data.
    pub async fn recent_accesses(
        &self,
        actor: Option<&str>,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, target FROM access_log \
             WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR target = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(actor.unwrap_or_default())
        .bind(target.unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    crate::from_ms(crate::get_i64(r, "at")?)?,
                    crate::get_str(r, "actor")?,
                    crate::get_str(r, "action")?,
                    crate::get_str(r, "target")?,
                ))
            })
            .collect()
    }

    /// Who read `target`, newest first.
    pub async fn accesses_of(&self, target: &str) -> Result<Vec<(DateTime<Utc>, String, String)>> {
        let rows = sqlx::query(
            "SELECT at, actor, action FROM access_log WHERE target = $1 ORDER BY id DESC",
        )
        .bind(target)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    crate::from_ms(crate::get_i64(r, "at")?)?,
                    crate::get_str(r, "actor")?,
                    crate::get_str(r, "action")?,
                ))
            })
            .collect()
    }

    /// Who read case `reference` or one of its documents, oldest first (at most `limit`).
    pub async fn reads_of_case(&self, reference: &str, limit: i64) -> Result<Vec<CaseRead>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target FROM access_log WHERE target = $1 \
             UNION ALL \
             SELECT a.id, a.at, a.actor, a.action, a.target FROM cases c \
             JOIN documents d ON d.case_id = c.id \
             JOIN access_log a ON a.target = CAST(d.id AS TEXT) \
             WHERE c.reference = $1 AND a.action LIKE '%document%' \
             ORDER BY id LIMIT $2",
        )
        .bind(reference)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CaseRead {
                    at: from_ms(get_i64(r, "at")?)?,
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    target: get_str(r, "target")?,
                })
            })
            .collect()
    }

    /// Re-walks the chain of reads; returns how many entries it holds, or the first break.
    pub async fn verify_read_audit(&self) -> Result<std::result::Result<u64, ReadChainBreak>> {
        let head = sqlx::query("SELECT last_hash, count FROM access_log_head WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        let head_hash = get_str(&head, "last_hash")?;
        let head_count = get_i64(&head, "count")?;
        let mut verifier = ReadChainVerifier::new();
        let mut rows = sqlx::query(
            "SELECT at, actor, action, target, prev_hash, entry_hash FROM access_log \
             WHERE entry_hash IS NOT NULL ORDER BY id",
        )
        .fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            let entry = ReadEntry {
                at: from_ms(get_i64(&row, "at")?)?,
                actor: get_str(&row, "actor")?,
                action: get_str(&row, "action")?,
                target: get_str(&row, "target")?,
                prev_hash: get_str(&row, "prev_hash")?,
            };
            if let Err(brk) = verifier.push(&entry, &get_str(&row, "entry_hash")?) {
                return Ok(Err(brk));
            }
        }
        Ok(verifier.finish(&head_hash, u64::try_from(head_count).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn reads_are_durable_when_recorded_chained_and_append_only() {
        with_test_store(|store, _clock| async move {
            // Two writers on one database, as two instances would have.
            let a = store.clone().with_audit_writer();
            let b = store.clone().with_audit_writer();
            let mut tasks = Vec::new();
            for i in 0..60 {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    let target = format!("ZTL-2026-{:06}", i % 3);
                    s.record_access(&format!("op{i}"), "read_case", &target)
                        .await
                        .unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            // Every call returned, so every entry is there without any flush.
            let reads = store.reads_of_case("ZTL-2026-000001", 1000).await.unwrap();
            assert_eq!(reads.len(), 20);
            assert!(reads.iter().all(|r| r.action == "read_case"));
            assert_eq!(store.verify_read_audit().await.unwrap(), Ok(60));
            for sql in [
                "UPDATE access_log SET actor = 'nobody'",
                "DELETE FROM access_log",
            ] {
                assert!(
                    sqlx::query(sql).execute(&store.write).await.is_err(),
                    "{sql} was allowed"
                );
            }
            // A head that says more than the log holds is a break (entries removed at the end).
            sqlx::query("UPDATE access_log_head SET count = count + 1")
                .execute(&store.write)
                .await
                .unwrap();
            let broken = store.verify_read_audit().await.unwrap().unwrap_err();
            assert!(broken.problem.contains("removed at the end"), "{broken}");
        })
        .await;
    }
}
