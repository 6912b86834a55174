//! The protocol register on disk: numbers assigned atomically inside the caller's
//! transaction, entries append-only (enforced by triggers) and hash-chained.

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::register::{
    ChainBreak, ChainVerifier, Direction, ProtocolNumber, RegisterEntry,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::values::values;
use crate::{Result, Store, StoreError, from_ms, get_i64, get_opt_str, get_str, to_ms};

/// What a registration records besides its number and time.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// In or out.
    pub direction: Direction,
    /// Sender (in) or recipient (out).
    pub correspondent: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// SHA-256 of the registered document.
    pub document_sha256: &'a str,
    /// The case, if any.
    pub case_reference: Option<&'a str>,
}

/// Registers one document inside `tx` (see [`register_many_in`]).
pub(crate) async fn register_in(
    tx: &mut Transaction<'static, Any>,
    at: DateTime<Utc>,
    reg: &Registration<'_>,
) -> Result<ProtocolNumber> {
    let numbers = register_many_in(tx, at, std::slice::from_ref(reg)).await?;
    numbers
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("no protocol number assigned".into()))
}

/// Registers documents inside `tx`, in order. The head row is updated first, which takes
/// the write lock (SQLite) or the row lock (PostgreSQL), so numbers and the chain are
/// assigned atomically; a transaction that does not commit leaves no gap. All entries go
/// in with one statement.
pub(crate) async fn register_many_in(
    tx: &mut Transaction<'static, Any>,
    at: DateTime<Utc>,
    regs: &[Registration<'_>],
) -> Result<Vec<ProtocolNumber>> {
    if regs.is_empty() {
        return Ok(Vec::new());
    }
    let head = sqlx::query("UPDATE register_head SET count = count + $1 WHERE id = 1 RETURNING last_hash, count, last_year, last_seq")
        .bind(regs.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
    let mut prev_hash = get_str(&head, "last_hash")?;
    let count = get_i64(&head, "count")?;
    let last_year = get_i64(&head, "last_year")?;
    let last_seq = get_i64(&head, "last_seq")?;
    // A clock stepped back across New Year must not reopen the previous year's numbering.
    let year = chrono::Datelike::year(&rome_date(at)).max(last_year as i32);
    let mut last = (last_year > 0).then_some(ProtocolNumber {
        year: last_year as i32,
        seq: last_seq as u64,
    });
    // Millisecond precision is what the database keeps; hash exactly that.
    let registered_at = from_ms(to_ms(at))?;
    let mut rows: Vec<(RegisterEntry, String)> = Vec::with_capacity(regs.len());
    for reg in regs {
        let number = ProtocolNumber::next(last, year);
        let entry = RegisterEntry {
            number,
            registered_at,
            direction: reg.direction,
            correspondent: reg.correspondent.to_owned(),
            subject: reg.subject.to_owned(),
            document_sha256: reg.document_sha256.to_owned(),
            case_reference: reg.case_reference.map(str::to_owned),
            prev_hash: prev_hash.clone(),
        };
        let hash = entry.hash();
        prev_hash = hash.clone();
        last = Some(number);
        rows.push((entry, hash));
    }
    let placeholders = values("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", rows.len());
    let sql = format!(
        "INSERT INTO protocol_register (number, year, seq, registered_at, direction, correspondent, subject, \
         document_sha256, case_reference, prev_hash, entry_hash) VALUES {placeholders}"
    );
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (entry, hash) in &rows {
        insert = insert
            .bind(entry.number.to_string())
            .bind(i64::from(entry.number.year))
            .bind(entry.number.seq as i64)
            .bind(to_ms(entry.registered_at))
            .bind(entry.direction.as_str())
            .bind(entry.correspondent.clone())
            .bind(entry.subject.clone())
            .bind(entry.document_sha256.clone())
            .bind(entry.case_reference.clone())
            .bind(entry.prev_hash.clone())
            .bind(hash.clone());
    }
    insert.execute(&mut **tx).await?;
    let last = last.ok_or_else(|| StoreError::Corrupt("no protocol number assigned".into()))?;
    sqlx::query("UPDATE register_head SET last_hash = $1, last_year = $2, last_seq = $3 WHERE id = 1 AND count = $4")
        .bind(prev_hash)
        .bind(i64::from(last.year))
        .bind(last.seq as i64)
        .bind(count)
        .execute(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|(entry, _)| entry.number).collect())
}

fn entry_from_row(row: &AnyRow) -> Result<(RegisterEntry, String)> {
    let number_text = get_str(row, "number")?;
    let number = ProtocolNumber::parse(&number_text)
        .ok_or_else(|| StoreError::Corrupt(format!("protocol number {number_text:?}")))?;
    let direction_text = get_str(row, "direction")?;
    let entry = RegisterEntry {
        number,
        registered_at: from_ms(get_i64(row, "registered_at")?)?,
        direction: Direction::parse(&direction_text)
            .ok_or_else(|| StoreError::Corrupt(format!("direction {direction_text:?}")))?,
        correspondent: get_str(row, "correspondent")?,
        subject: get_str(row, "subject")?,
        document_sha256: get_str(row, "document_sha256")?,
        case_reference: get_opt_str(row, "case_reference")?,
        prev_hash: get_str(row, "prev_hash")?,
    };
    Ok((entry, get_str(row, "entry_hash")?))
}

const ENTRY_COLUMNS: &str = "number, registered_at, direction, correspondent, subject, document_sha256, case_reference, prev_hash, entry_hash";

impl Store {
    /// Registers a document in its own transaction (for registrations not tied to a case change).
    pub async fn register(&self, reg: &Registration<'_>) -> Result<ProtocolNumber> {
        let mut tx = self.write.begin().await?;
        let number = register_in(&mut tx, self.clock.now(), reg).await?;
        tx.commit().await?;
        Ok(number)
    }

    /// Re-checks the whole chain, streaming it in order; safe while the server registers
    /// more. `Ok(Err(..))` is a broken register.
    pub async fn verify_register(&self) -> Result<Result<u64, ChainBreak>> {
        let head = sqlx::query("SELECT last_hash, count FROM register_head WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        let head_hash = get_str(&head, "last_hash")?;
        let head_count = get_i64(&head, "count")?;
        let mut verifier = ChainVerifier::new();
        // Only the entries the head accounts for: registrations committed after the head
        // was read (the server may be running) belong to the next verification.
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM protocol_register ORDER BY id LIMIT {head_count}");
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&self.read);
        while let Some(row) = rows.try_next().await? {
            let (entry, hash) = entry_from_row(&row)?;
            if let Err(brk) = verifier.push(&entry, &hash) {
                return Ok(Err(brk));
            }
        }
        Ok(verifier.finish(Some((&head_hash, head_count as u64))))
    }

    /// The protocol entries of a document: those that register its very bytes (a scanned
    /// part, an uploaded request) and that of the message it came with (an attachment).
    pub async fn register_entries_of_document(
        &self,
        document_id: &str,
        sha256: &str,
    ) -> Result<Vec<(RegisterEntry, String)>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM protocol_register WHERE document_sha256 = $1 \
             OR number = (SELECT m.protocol FROM documents d JOIN inbound_messages m ON m.id = d.inbound_message_id WHERE d.id = $2) \
             ORDER BY id LIMIT 100"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sha256)
            .bind(document_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The entries registered on a local (Europe/Rome) day, in order: the daily register.
    pub async fn register_entries_on(
        &self,
        day: NaiveDate,
    ) -> Result<Vec<(RegisterEntry, String)>> {
        let from = rome_start_of_day(day);
        let to = rome_start_of_day(day.succ_opt().unwrap_or(day));
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM protocol_register WHERE registered_at >= $1 AND registered_at < $2 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(from))
            .bind(to_ms(to))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;
    use chrono::{Duration, TimeZone};

    fn reg(subject: &str) -> Registration<'_> {
        Registration {
            direction: Direction::In,
            correspondent: "Mario Rossi",
            subject,
            document_sha256: "ab",
            case_reference: None,
        }
    }

    #[tokio::test]
    async fn numbers_chain_and_restart_on_new_year() {
        with_test_store(|store, clock| async move {
            clock.set(Utc.with_ymd_and_hms(2026, 12, 31, 22, 30, 0).unwrap()); // 23:30 in Rome
            assert_eq!(
                store.register(&reg("a")).await.unwrap().to_string(),
                "2026/0000001"
            );
            assert_eq!(
                store.register(&reg("b")).await.unwrap().to_string(),
                "2026/0000002"
            );
            clock.advance(Duration::hours(1)); // 00:30 on 1 January in Rome
            assert_eq!(
                store.register(&reg("c")).await.unwrap().to_string(),
                "2027/0000001"
            );
            assert_eq!(store.verify_register().await.unwrap(), Ok(3));
            clock.set(Utc.with_ymd_and_hms(2026, 12, 31, 23, 50, 0).unwrap()); // stepped back into 2026
            assert_eq!(
                store.register(&reg("d")).await.unwrap().to_string(),
                "2027/0000002"
            );
            assert_eq!(store.verify_register().await.unwrap(), Ok(4));
            let day = store
                .register_entries_on(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap())
                .await
                .unwrap();
            assert_eq!(day.len(), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn register_is_append_only_in_the_database() {
        with_test_store(|store, _clock| async move {
            store.register(&reg("a")).await.unwrap();
            let update = sqlx::query("UPDATE protocol_register SET subject = 'x'")
                .execute(&store.write)
                .await;
            assert!(update.is_err(), "an update of the register must be refused");
            let delete = sqlx::query("DELETE FROM protocol_register")
                .execute(&store.write)
                .await;
            assert!(
                delete.is_err(),
                "a deletion from the register must be refused"
            );
        })
        .await;
    }
}
