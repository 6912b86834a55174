//! Following a message to delivery: the receipts intake brings back move it forward only,
//! and a PEC never delivered flags its case for the office.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Any, Transaction};

use super::model::{DeliveryStep, MESSAGE_FAILED, PEC_NOT_DELIVERED};
use crate::journal::insert_event;
use crate::{Result, Store, get_i64, get_str, to_ms};

impl Store {
    /// A receipt about a sent message (named by its Message-ID, or by the provider's id for
    /// WhatsApp): moves it along (sent → accepted → delivered, or failed with the
    /// provider's error, the case flagged), journaled. Returns the case's reference, or
    /// `None` when no message of ours has that id (an unmatched receipt).
    pub async fn outbound_receipt(
        &self,
        refers_to: &str,
        step: DeliveryStep,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let found = receipt_in(&mut tx, refers_to, step, error, at, now).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// PEC messages sent more than `hours` ago without a delivery receipt: each case gets
    /// the flag `pec_not_delivered` once, journaled. Returns how many were flagged.
    pub async fn flag_undelivered_pec(&self, hours: i64) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(
            "UPDATE outbound_messages SET overdue_flagged = 1 WHERE channel = 'pec' \
             AND status IN ('sent', 'accepted') AND overdue_flagged = 0 AND sent_at < $1 \
             RETURNING id, case_id",
        )
        .bind(to_ms(now - Duration::hours(hours)))
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let case_id = get_i64(row, "case_id")?;
            add_flag(&mut tx, case_id, PEC_NOT_DELIVERED, now).await?;
            let detail = serde_json::json!({ "outbound_id": get_i64(row, "id")?, "hours": hours });
            insert_event(
                &mut tx,
                case_id,
                now,
                "system",
                "message_not_delivered",
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

/// [`Store::outbound_receipt`] inside the caller's transaction (intake records the
/// receipt and moves the message along atomically).
pub(crate) async fn receipt_in(
    tx: &mut Transaction<'static, Any>,
    refers_to: &str,
    step: DeliveryStep,
    error: Option<&str>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let id = refers_to
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let Some(row) = sqlx::query(
        "SELECT o.id, o.case_id, o.status, o.channel, c.reference FROM outbound_messages o \
         JOIN cases c ON c.id = o.case_id WHERE o.message_id = $1 OR o.provider_ref = $1 \
         ORDER BY o.id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let (outbound, case_id) = (get_i64(&row, "id")?, get_i64(&row, "case_id")?);
    let reference = get_str(&row, "reference")?;
    let status = get_str(&row, "status")?;
    let rank = |s: &str| match s {
        "queued" | "sending" => 0,
        "sent" => 1,
        "accepted" => 2,
        "delivered" => 3,
        _ => 4,
    };
    let mut changed = false;
    let (kind, change) = match step {
        DeliveryStep::Accepted => ("message_accepted", Some(("accepted", "accepted_at"))),
        DeliveryStep::Delivered => ("message_delivered", Some(("delivered", "delivered_at"))),
        DeliveryStep::Failed => ("message_failed", Some(("failed", "failed_at"))),
        DeliveryStep::Noted => ("message_receipt", None),
    };
    if let Some((to, column)) = change {
        // Receipts may come out of order: a state is never moved backwards.
        changed = rank(to) > rank(&status) || (to == "failed" && status != "failed");
        if changed {
            // A receipt may come before the worker recorded the send: it was sent by then.
            let sql = format!(
                "UPDATE outbound_messages SET status = $1, {column} = $2, last_error = COALESCE($3, last_error), \
                 sent_at = COALESCE(sent_at, $2) WHERE id = $4"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(to)
                .bind(to_ms(at))
                .bind(error)
                .bind(outbound)
                .execute(&mut **tx)
                .await?;
        }
        if changed && to == "failed" {
            add_flag(tx, case_id, MESSAGE_FAILED, now).await?;
        }
    }
    // A receipt that changes nothing (a duplicate, or late) is journaled as a receipt.
    let kind = if changed { kind } else { "message_receipt" };
    let detail = serde_json::json!({
        "outbound_id": outbound,
        "channel": get_str(&row, "channel")?,
        "error": error,
        "at": crate::time::rome_rfc3339(at),
    });
    insert_event(tx, case_id, now, "system", kind, &detail).await?;
    Ok(Some(reference))
}

/// Adds `flag` to the case unless it has it.
pub(crate) async fn add_flag(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    flag: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    // Locks the case's row first, as every other writer of its flags does.
    let row = sqlx::query("UPDATE cases SET version = version + 1 WHERE id = $1 RETURNING flags")
        .bind(case_id)
        .fetch_one(&mut **tx)
        .await?;
    let mut flags: Vec<String> = serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
    if flags.iter().any(|f| f == flag) {
        return Ok(());
    }
    flags.push(flag.to_owned());
    sqlx::query("UPDATE cases SET flags = $1, last_event_at = $2 WHERE id = $3")
        .bind(serde_json::to_string(&flags).unwrap_or_else(|_| "[]".into()))
        .bind(to_ms(now))
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sportello_domain::clock::Clock;

    use super::*;
    use crate::outbound::NewOutbound;

    use crate::outbound::tests::{email, new_case};
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn receipts_move_a_message_forward_only_and_pec_without_delivery_is_flagged() {
        with_test_store(|store, clock| async move {
            let r = new_case(&store).await;
            let pec = NewOutbound {
                channel: "pec".into(),
                ..email("k", "pec-1@x.it")
            };
            let (m, _) = store.queue_message(&r, &pec, "op").await.unwrap();
            store
                .claim_outbound(10, Duration::seconds(60))
                .await
                .unwrap();
            let at = clock.now();
            // The provider's acceptance comes before the worker records the send.
            store
                .outbound_receipt("pec-1@x.it", DeliveryStep::Accepted, None, at)
                .await
                .unwrap();
            store.outbound_sent(m.id, 1, Some("prov-1")).await.unwrap();
            let view = store.outbound_message(m.id).await.unwrap();
            assert_eq!(view.status, "accepted");
            assert!(view.sent_at.is_some());
            assert_eq!(view.provider_ref.as_deref(), Some("prov-1"));
            // Out of order: delivery first, then the acceptance does not move it back.
            let found = store
                .outbound_receipt("<pec-1@x.it>", DeliveryStep::Delivered, None, at)
                .await
                .unwrap();
            assert_eq!(found.as_deref(), Some(r.as_str()));
            store
                .outbound_receipt("pec-1@x.it", DeliveryStep::Accepted, None, at)
                .await
                .unwrap();
            assert_eq!(
                store.outbound_message(m.id).await.unwrap().status,
                "delivered"
            );
            assert_eq!(
                store
                    .outbound_receipt("unknown@x.it", DeliveryStep::Accepted, None, at)
                    .await
                    .unwrap(),
                None
            );
            // A second PEC only accepted: after 24 hours the case is flagged, once.
            let (second, _) = store
                .queue_message(
                    &r,
                    &NewOutbound {
                        channel: "pec".into(),
                        ..email("k2", "pec-2@x.it")
                    },
                    "op",
                )
                .await
                .unwrap();
            store
                .claim_outbound(10, Duration::seconds(60))
                .await
                .unwrap();
            store.outbound_sent(second.id, 1, None).await.unwrap();
            store
                .outbound_receipt("pec-2@x.it", DeliveryStep::Accepted, None, clock.now())
                .await
                .unwrap();
            assert_eq!(store.flag_undelivered_pec(24).await.unwrap(), 0);
            clock.advance(Duration::hours(25));
            assert_eq!(store.flag_undelivered_pec(24).await.unwrap(), 1);
            assert_eq!(store.flag_undelivered_pec(24).await.unwrap(), 0);
            let case = store.get_case(&r).await.unwrap();
            assert!(case.summary.flags.contains(&PEC_NOT_DELIVERED.to_owned()));
            assert!(DeliveryStep::from_receipt("errore-consegna") == DeliveryStep::Failed);
            assert!(DeliveryStep::from_receipt("preavviso-errore-consegna") == DeliveryStep::Noted);
        })
        .await;
    }
}
