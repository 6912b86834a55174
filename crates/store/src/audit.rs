//! The audit trail of who read personal data. Reads are frequent, so records are sent to
//! a background task that writes them in batches instead of one transaction per read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::values::{rows_per_statement, values};
use crate::{Result, Store, to_ms};

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

enum Msg {
    Record(AccessRecord),
    Flush(oneshot::Sender<()>),
}

/// Handle to the batching writer.
#[derive(Debug, Clone)]
pub struct AuditSender(mpsc::UnboundedSender<Msg>);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl AuditSender {
    /// Waits until everything sent so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Writes records with multi-row inserts (100 rows a statement) in one transaction.
async fn write_batch(store: &Store, batch: &[AccessRecord]) -> Result<()> {
    let mut tx = store.write.begin().await?;
    for chunk in batch.chunks(rows_per_statement(4, 100)) {
        let rows = values("($1, $2, $3, $4)", chunk.len());
        let sql = format!("INSERT INTO access_log (at, actor, action, target) VALUES {rows}");
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            insert = insert
                .bind(to_ms(r.at))
                .bind(r.actor.clone())
                .bind(r.action)
                .bind(r.target.clone());
        }
        insert.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Starts the batching audit writer; from now on [`Store::record_access`] is asynchronous.
    pub fn with_audit_writer(mut self) -> Store {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let writer = self.clone();
        tokio::spawn(async move {
            let mut batch: Vec<AccessRecord> = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut flushes = Vec::new();
                let mut handle = |msg: Msg, batch: &mut Vec<AccessRecord>| match msg {
                    Msg::Record(r) => batch.push(r),
                    Msg::Flush(done) => flushes.push(done),
                };
                handle(first, &mut batch);
                // Gather what arrives within a short window into one transaction.
                let deadline = tokio::time::sleep(Duration::from_millis(50));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        msg = rx.recv() => match msg {
                            Some(msg) => handle(msg, &mut batch),
                            None => break,
                        },
                    }
                    if batch.len() >= 500 {
                        break;
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = write_batch(&writer, &batch).await {
                        tracing::error!(error = %e, records = batch.len(), "could not write the access log");
                    }
                    batch.clear();
                }
                for done in flushes {
                    let _ = done.send(());
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
        match &self.audit {
            Some(sender) if sender.0.send(Msg::Record(record.clone())).is_ok() => Ok(()),
            _ => write_batch(self, &[record]).await,
        }
    }

    /// The latest reads, newest first, of one actor or one target if given: the
    /// supervisor's view of who opened which citizen's data.
    pub async fn recent_accesses(
        &self,
        actor: Option<&str>,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, String, String, String)>> {
        if let Some(sender) = &self.audit {
            sender.flush().await;
        }
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
        if let Some(sender) = &self.audit {
            sender.flush().await;
        }
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
}
