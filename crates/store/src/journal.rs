//! The case journal: every change to a case locks its row first and appends an entry, so
//! the journal is the case's complete, append-only history.

use chrono::{DateTime, Utc};
use sqlx::{Any, Transaction};

use crate::{Result, StoreError, get_i64, to_ms};

/// Marks a case as changed now (last event, version) inside `tx`, taking its row lock,
/// and returns its id; the first statement of every change that adds to a case.
pub(crate) async fn touch_case(
    tx: &mut Transaction<'static, Any>,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let row = sqlx::query("UPDATE cases SET last_event_at = $1, version = version + 1 WHERE reference = $2 RETURNING id")
        .bind(to_ms(now))
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
    get_i64(&row, "id")
}

/// Appends to a case's journal.
pub(crate) async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_events (case_id, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(case_id)
    .bind(to_ms(at))
    .bind(actor)
    .bind(kind)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
