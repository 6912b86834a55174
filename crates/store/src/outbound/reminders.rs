//! What reminders and acknowledgements are decided on: a case's contact facts and
//! preferences, the cases due for a reminder, the receptions still to acknowledge.

use chrono::{DateTime, Utc};

use super::model::ContactFacts;
use crate::journal::insert_event;
use crate::{
    Result, Store, StoreError, from_ms, get_i64, get_opt_i64, get_opt_str, get_str, to_ms,
};

impl Store {
    /// The contact facts of a case's citizen.
    pub async fn contact_facts(&self, reference: &str) -> Result<ContactFacts> {
        let case = sqlx::query(
            "SELECT c.id, z.address, z.preferred_channel FROM cases c LEFT JOIN citizens z ON z.id = c.citizen_id \
             WHERE c.reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let rows = sqlx::query(
            "SELECT channel, message_id, received_at FROM inbound_messages \
             WHERE case_id = $1 AND message_id IS NOT NULL ORDER BY id",
        )
        .bind(get_i64(&case, "id")?)
        .fetch_all(&self.read)
        .await?;
        let thread = rows
            .iter()
            .map(|r| {
                Ok((
                    get_str(r, "channel")?,
                    get_str(r, "message_id")?,
                    from_ms(get_i64(r, "received_at")?)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ContactFacts {
            address: get_opt_str(&case, "address")?,
            preferred_channel: get_opt_str(&case, "preferred_channel")?,
            thread,
        })
    }

    /// Records the citizen's postal address and preferred channel (`None` leaves a value
    /// as it is), journaled on the case.
    pub async fn set_contact_preferences(
        &self,
        reference: &str,
        address: Option<&str>,
        preferred_channel: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let case = sqlx::query("SELECT id, citizen_id FROM cases WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let Some(citizen) = get_opt_i64(&case, "citizen_id")? else {
            return Err(StoreError::Conflict(
                "the case has no citizen to reach".into(),
            ));
        };
        sqlx::query(
            "UPDATE citizens SET address = COALESCE($1, address), preferred_channel = COALESCE($2, preferred_channel), \
             updated_at = $3 WHERE id = $4",
        )
        .bind(address)
        .bind(preferred_channel)
        .bind(to_ms(now))
        .bind(citizen)
        .execute(&mut *tx)
        .await?;
        let detail =
            serde_json::json!({ "address": address, "preferred_channel": preferred_channel });
        insert_event(
            &mut tx,
            get_i64(&case, "id")?,
            now,
            actor,
            "contact_updated",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cases waiting for the citizen's documents whose integration request started on or
    /// before `started_by` (so the 30-day limit is near), that have had no reminder for
    /// that request yet and have no call-back open (the call is the reminder):
    /// `(reference, the request's day)`. The reminder's idempotency key is
    /// `reminder:{reference}:{day}`.
    pub async fn cases_due_for_reminder(
        &self,
        started_by: chrono::NaiveDate,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT c.reference, c.pause_started_on FROM cases c WHERE c.status = 'waiting_citizen' \
             AND c.pause_kind = 'integration' AND c.pause_started_on <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outbound_messages o \
                 WHERE o.idempotency_key = 'reminder:' || c.reference || ':' || c.pause_started_on) \
             AND NOT EXISTS (SELECT 1 FROM call_tasks t WHERE t.case_id = c.id AND t.status = 'open') \
             ORDER BY c.pause_started_on LIMIT 500",
        )
        .bind(crate::date_text(started_by))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "reference")?, get_str(r, "pause_started_on")?)))
            .collect()
    }

    /// Open cases received since `since` that have no acknowledgement of receipt yet
    /// (idempotency key `ack:{reference}`) and were not acknowledged by another way
    /// (`acknowledgement_skipped` in their journal): the oldest first, at most `limit`.
    pub async fn cases_to_acknowledge(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT c.reference FROM cases c WHERE c.received_at >= $1 AND c.status <> 'closed' \
             AND NOT EXISTS (SELECT 1 FROM outbound_messages o WHERE o.idempotency_key = 'ack:' || c.reference) \
             AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id AND e.kind = 'acknowledgement_skipped') \
             ORDER BY c.received_at, c.id LIMIT $2",
        )
        .bind(to_ms(since))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| get_str(r, "reference")).collect()
    }

    /// Journals that a case's citizen could not be sent the acknowledgement of receipt
    /// (no channel the office can write to), so it is not tried again.
    pub async fn acknowledgement_skipped(&self, reference: &str, why: &str) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        // The case's row is locked first: of two instances' ticks deciding this at once,
        // the second sees the first's entry and writes none.
        let row =
            sqlx::query("UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id")
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let case_id = get_i64(&row, "id")?;
        let journaled = sqlx::query(
            "SELECT 1 AS one FROM case_events WHERE case_id = $1 AND kind = 'acknowledgement_skipped' LIMIT 1",
        )
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        if journaled.is_some() {
            // Nothing changes: the version bump is rolled back with the transaction.
            return Ok(());
        }
        let detail = serde_json::json!({ "note": why });
        insert_event(
            &mut tx,
            case_id,
            now,
            "system",
            "acknowledgement_skipped",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sportello_domain::clock::Clock;

    use chrono::Duration;

    use crate::outbound::tests::{email, new_case};
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn new_cases_are_acknowledged_once() {
        with_test_store(|store, clock| async move {
            let since = clock.now() - Duration::days(1);
            let (a, b) = (new_case(&store).await, new_case(&store).await);
            assert_eq!(
                store.cases_to_acknowledge(since, 10).await.unwrap(),
                vec![a.clone(), b.clone()]
            );
            store
                .queue_message(&a, &email(&format!("ack:{a}"), "m1@x.it"), "system")
                .await
                .unwrap();
            store
                .acknowledgement_skipped(&b, "no channel")
                .await
                .unwrap();
            assert!(
                store
                    .cases_to_acknowledge(since, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Cases from before the window are not acknowledged late.
            clock.advance(Duration::days(2));
            let c = new_case(&store).await;
            let since = clock.now() - Duration::days(1);
            assert_eq!(
                store.cases_to_acknowledge(since, 10).await.unwrap(),
                vec![c]
            );
        })
        .await;
    }
}
