//! What every change to a permit goes through: finding it by its number or a former one,
//! locking its row, and appending to its own journal. A leaf the other permit modules share.

use crate::{Result, get_str};

/// The number a permit is known by now: `number` itself when some permit has it, else the
/// permit `number` was an alias of (a number issued in the old shape), else `number`
/// unchanged (and nothing will be found under it).
pub(crate) async fn resolve_permit_number<'c, E>(db: E, number: &str) -> Result<String>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT COALESCE((SELECT permit FROM permit_rows WHERE permit = $1 LIMIT 1), \
         (SELECT permit FROM permit_aliases WHERE alias = $1)) AS permit",
    )
    .bind(number)
    .fetch_one(db)
    .await?;
    Ok(crate::get_opt_str(&row, "permit")?.unwrap_or_else(|| number.to_owned()))
}

/// The former numbers of a permit, oldest first.
pub(super) async fn permit_aliases<'c, E>(db: E, number: &str) -> Result<Vec<String>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("SELECT alias FROM permit_aliases WHERE permit = $1 ORDER BY alias")
        .bind(number)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| get_str(r, "alias"))
        .collect()
}

/// Takes the permit's lock for the rest of the transaction, before its rows are read, so
/// that a rule checked over them (the plates at one instant) still holds when the
/// transaction writes: on PostgreSQL a row lock on each of its rows (in one order, so two
/// takers cannot deadlock); on SQLite the database's write lock, taken by a write.
pub(super) async fn lock_permit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: crate::Backend,
    number: &str,
) -> Result<()> {
    let sql = crate::dialect::lock_permit(backend);
    sqlx::query(sql).bind(number).execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn record_permit_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    permit: &str,
    at: i64,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO permit_events (permit, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(permit)
    .bind(at)
    .bind(actor)
    .bind(kind)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
