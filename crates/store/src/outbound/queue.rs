//! Queueing and sending: a message is queued in the transaction of what caused it,
//! registered outgoing, leased to a worker, retried with backoff or failed for good.

use chrono::{DateTime, Duration, Utc};
use sportello_domain::register::Direction;
use sqlx::{Any, Transaction};

use super::model::{COLUMNS, Claimed, MESSAGE_FAILED, NewOutbound, OutboundView, view_of};
use super::receipts::add_flag;
use crate::journal::insert_event;
use crate::register::{Registration, register_many_in};
use crate::{Result, Store, StoreError, from_ms, get_i64, get_opt_str, get_str, to_ms};

/// Queues `new` on the locked case `case_id` inside `tx`: registers it outgoing, journals
/// it on the timeline; returns its id and whether it is new (`false`: the key was used
/// before, nothing changed).
pub(crate) async fn queue_in(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    reference: &str,
    now: DateTime<Utc>,
    actor: &str,
    new: &NewOutbound,
) -> Result<(i64, bool)> {
    if let Some(row) = sqlx::query("SELECT id FROM outbound_messages WHERE idempotency_key = $1")
        .bind(&new.idempotency_key)
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok((get_i64(&row, "id")?, false));
    }
    for (field, value) in [
        ("channel", &new.channel),
        ("to", &new.recipient),
        ("body", &new.body),
    ] {
        if value.trim().is_empty() {
            return Err(StoreError::invalid(field, "is empty"));
        }
    }
    let numbers = register_many_in(
        tx,
        now,
        &[Registration {
            direction: Direction::Out,
            correspondent: &new.recipient,
            subject: &new.subject,
            document_sha256: &new.content_sha256,
            case_reference: Some(reference),
        }],
    )
    .await?;
    let protocol = numbers.first().map(ToString::to_string);
    let subject = match &protocol {
        Some(number) if new.protocol_in_subject => format!("Prot. n. {number} – {}", new.subject),
        _ => new.subject.clone(),
    };
    let status = if new.printed { "printed" } else { "queued" };
    let row = sqlx::query(
        "INSERT INTO outbound_messages (case_id, idempotency_key, channel, recipient, subject, body, template, lang, \
         message_id, in_reply_to, refs, attachments, whatsapp_template, content_sha256, protocol, status, attempts, \
         next_attempt_at, created_at, created_by, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, $17, $18, $19) RETURNING id",
    )
    .bind(case_id)
    .bind(&new.idempotency_key)
    .bind(&new.channel)
    .bind(&new.recipient)
    .bind(&subject)
    .bind(&new.body)
    .bind(new.template.as_deref())
    .bind(&new.lang)
    .bind(&new.message_id)
    .bind(new.in_reply_to.as_deref())
    .bind(serde_json::to_string(&new.references).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&new.attachments).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(new.whatsapp_template))
    .bind(&new.content_sha256)
    .bind(protocol.as_deref())
    .bind(status)
    .bind(to_ms(now))
    .bind(actor)
    .bind(new.printed.then_some(to_ms(now)))
    .fetch_one(&mut **tx)
    .await?;
    let id = get_i64(&row, "id")?;
    let mut detail = serde_json::json!({
        "outbound_id": id,
        "channel": new.channel,
        "to": new.recipient,
        "subject": subject,
        "text": new.body.chars().take(2000).collect::<String>(),
        "template": new.template,
        "protocol": protocol,
        "status": status,
    });
    if let Some(flag) = &new.flag {
        add_flag(tx, case_id, flag, now).await?;
        detail["flag"] = flag.as_str().into();
    }
    insert_event(tx, case_id, now, actor, "message_queued", &detail).await?;
    sqlx::query("UPDATE cases SET last_event_at = $1 WHERE id = $2")
        .bind(to_ms(now))
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    Ok((id, true))
}

impl Store {
    /// Queues a message to the case's citizen (registered and journaled in one
    /// transaction); the same idempotency key again returns the first message unchanged.
    /// Returns the message and whether it was new.
    pub async fn queue_message(
        &self,
        reference: &str,
        new: &NewOutbound,
        actor: &str,
    ) -> Result<(OutboundView, bool)> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row =
            sqlx::query("UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id")
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let (id, created) =
            queue_in(&mut tx, get_i64(&row, "id")?, reference, now, actor, new).await?;
        if created {
            tx.commit().await?;
        } else {
            drop(tx);
        }
        Ok((self.outbound_message(id).await?, created))
    }

    /// One message.
    pub async fn outbound_message(&self, id: i64) -> Result<OutboundView> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbound_messages o JOIN cases c ON c.id = o.case_id WHERE o.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.write)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("message {id}")))?;
        view_of(&row)
    }

    /// The messages sent to a case's citizen, oldest first.
    pub async fn outbound_of_case(&self, reference: &str) -> Result<Vec<OutboundView>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbound_messages o JOIN cases c ON c.id = o.case_id \
             WHERE c.reference = $1 ORDER BY o.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(view_of)
            .collect()
    }

    /// Takes up to `limit` messages due now for sending, leasing them for `lease`: a
    /// worker that dies mid-send leaves them to be taken again once the lease ends (sent
    /// again with the same Message-ID, which the receiving side deduplicates).
    pub async fn claim_outbound(&self, limit: i64, lease: Duration) -> Result<Vec<Claimed>> {
        let now = self.clock.now();
        let skip_locked = crate::dialect::skip_locked(self.backend);
        let sql = format!(
            "UPDATE outbound_messages SET status = 'sending', attempts = attempts + 1, next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM outbound_messages WHERE status IN ('queued', 'sending') \
             AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3{skip_locked}) \
             RETURNING id, case_id, channel, recipient, subject, body, message_id, in_reply_to, refs, \
             attachments, whatsapp_template, attempts, protocol, created_at"
        );
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_ms(now + lease))
            .bind(to_ms(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // The cases' references in one read (the lease is taken: nothing else changes
        // these messages now).
        let case_ids: Vec<i64> = rows
            .iter()
            .map(|r| get_i64(r, "case_id"))
            .collect::<Result<_>>()?;
        let placeholders = (1..=case_ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT id, reference FROM cases WHERE id IN ({placeholders})");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &case_ids {
            query = query.bind(*id);
        }
        let mut references = std::collections::HashMap::new();
        for row in query.fetch_all(&self.read).await? {
            references.insert(get_i64(&row, "id")?, get_str(&row, "reference")?);
        }
        let mut claimed = Vec::with_capacity(rows.len());
        for (row, case_id) in rows.iter().zip(case_ids) {
            let ids: Vec<String> =
                serde_json::from_str(&get_str(row, "attachments")?).unwrap_or_default();
            // Only a permit's notice carries a document: read per message, when there is one.
            let mut attachments = Vec::with_capacity(ids.len());
            for doc in &ids {
                if let Some(d) = sqlx::query(
                    "SELECT sha256, filename, media_type FROM documents WHERE id = $1 AND case_id = $2",
                )
                .bind(doc)
                .bind(case_id)
                .fetch_optional(&self.read)
                .await?
                {
                    attachments.push((
                        get_str(&d, "sha256")?,
                        get_str(&d, "filename")?,
                        get_str(&d, "media_type")?,
                    ));
                }
            }
            claimed.push(Claimed {
                id: get_i64(row, "id")?,
                case: references.get(&case_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("message of a missing case {case_id}"))
                })?,
                channel: get_str(row, "channel")?,
                recipient: get_str(row, "recipient")?,
                subject: get_str(row, "subject")?,
                body: get_str(row, "body")?,
                message_id: get_str(row, "message_id")?,
                in_reply_to: get_opt_str(row, "in_reply_to")?,
                references: serde_json::from_str(&get_str(row, "refs")?).unwrap_or_default(),
                attachments,
                whatsapp_template: get_i64(row, "whatsapp_template")? != 0,
                attempts: get_i64(row, "attempts")?,
                protocol: get_opt_str(row, "protocol")?,
                queued_at: crate::time::rome_rfc3339(from_ms(get_i64(row, "created_at")?)?),
            });
        }
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// The provider took the message: `sent`, journaled. `attempt` is the claim's
    /// ([`Claimed::attempts`]): the answer of a worker whose lease was taken over by
    /// another is ignored. A receipt that came first (the message already `accepted` or
    /// `delivered`) keeps its state; the sending time and the provider's id are recorded
    /// all the same.
    pub async fn outbound_sent(
        &self,
        id: i64,
        attempt: i64,
        provider_ref: Option<&str>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let Some(row) = sqlx::query(
            "UPDATE outbound_messages SET status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END, \
             sent_at = COALESCE(sent_at, $1), provider_ref = COALESCE($2, provider_ref), last_error = NULL \
             WHERE id = $3 AND attempts = $4 AND status IN ('sending', 'accepted', 'delivered') \
             RETURNING case_id, channel",
        )
        .bind(to_ms(now))
        .bind(provider_ref)
        .bind(id)
        .bind(attempt)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(());
        };
        let detail = serde_json::json!({
            "outbound_id": id,
            "channel": get_str(&row, "channel")?,
            "provider_ref": provider_ref,
        });
        insert_event(
            &mut tx,
            get_i64(&row, "case_id")?,
            now,
            "system",
            "message_sent",
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A send failed: tried again at `retry_at`, or (`None`) failed for good, the case
    /// flagged `message_failed`; journaled either way.
    pub async fn outbound_failed(
        &self,
        id: i64,
        attempt: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let now = self.clock.now();
        let error: String = error.chars().take(1000).collect();
        let mut tx = self.write.begin().await?;
        let row = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbound_messages SET status = 'queued', next_attempt_at = $1, last_error = $2 \
                 WHERE id = $3 AND attempts = $4 AND status = 'sending' RETURNING case_id, channel, attempts",
            )
            .bind(to_ms(at))
            .bind(&error)
            .bind(id)
            .bind(attempt)
            .fetch_optional(&mut *tx)
            .await?,
            None => sqlx::query(
                "UPDATE outbound_messages SET status = 'failed', failed_at = $1, last_error = $2 \
                 WHERE id = $3 AND attempts = $4 AND status = 'sending' RETURNING case_id, channel, attempts",
            )
            .bind(to_ms(now))
            .bind(&error)
            .bind(id)
            .bind(attempt)
            .fetch_optional(&mut *tx)
            .await?,
        };
        let Some(row) = row else {
            return Ok(());
        };
        let case_id = get_i64(&row, "case_id")?;
        let mut detail = serde_json::json!({
            "outbound_id": id,
            "channel": get_str(&row, "channel")?,
            "error": error,
            "attempts": get_i64(&row, "attempts")?,
        });
        let kind = match retry_at {
            Some(at) => {
                detail["retry_at"] = crate::time::rome_rfc3339(at).into();
                "message_retry"
            }
            None => {
                add_flag(&mut tx, case_id, MESSAGE_FAILED, now).await?;
                "message_failed"
            }
        };
        insert_event(&mut tx, case_id, now, "system", kind, &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Messages waiting to be sent and messages that failed, for the metrics and the
    /// office's home page.
    pub async fn outbound_counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbound_messages WHERE status IN ('queued', 'sending')) AS waiting, \
             (SELECT COUNT(*) FROM outbound_messages WHERE status = 'failed') AS failed",
        )
        .fetch_one(&self.read)
        .await?;
        Ok((get_i64(&row, "waiting")?, get_i64(&row, "failed")?))
    }
}

#[cfg(test)]
mod tests {
    use sportello_domain::clock::Clock;
    use sportello_domain::workflow::Action;

    use super::*;
    use crate::outbound::{ANNULMENT_BY_HAND, ANNULMENT_KEY_PREFIX};

    use crate::outbound::tests::{email, new_case};
    use crate::testing::with_test_store;

    #[tokio::test]
    async fn a_key_queues_one_message_registered_and_journaled() {
        with_test_store(|store, _clock| async move {
            let r = new_case(&store).await;
            let (first, created) = store
                .queue_message(&r, &email("k", "m1@x.it"), "op")
                .await
                .unwrap();
            assert!(created);
            assert_eq!(first.status, "queued");
            assert!(first.protocol.is_some(), "registered outgoing");
            let (again, created) = store
                .queue_message(&r, &email("k", "m2@x.it"), "op")
                .await
                .unwrap();
            assert!(!created);
            assert_eq!(again.id, first.id);
            assert_eq!(store.outbound_of_case(&r).await.unwrap().len(), 1);
            let case = store.get_case(&r).await.unwrap();
            assert_eq!(
                case.timeline
                    .iter()
                    .filter(|e| e.kind == "message_queued")
                    .count(),
                1
            );
            let empty = NewOutbound {
                body: " ".into(),
                ..email("k2", "m3@x.it")
            };
            assert!(matches!(
                store.queue_message(&r, &empty, "op").await,
                Err(StoreError::Invalid { .. })
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn a_message_to_another_office_carries_its_number_and_a_hand_delivery_flags_the_case() {
        with_test_store(|store, _clock| async move {
            let r = new_case(&store).await;
            let to_police = NewOutbound {
                channel: "pec".into(),
                recipient: "polizia@pec.example.it".into(),
                subject: format!("[{r}] Richiesta di annullamento"),
                protocol_in_subject: true,
                ..email(&format!("{ANNULMENT_KEY_PREFIX}{r}:1"), "p1@x.it")
            };
            let (sent, _) = store.queue_message(&r, &to_police, "op").await.unwrap();
            let protocol = sent.protocol.clone().unwrap();
            assert_eq!(
                sent.subject,
                format!("Prot. n. {protocol} – [{r}] Richiesta di annullamento")
            );
            assert!(store.get_case(&r).await.unwrap().summary.flags.is_empty());
            // Without an address: printed, and the case flagged until done by hand.
            let by_hand = NewOutbound {
                channel: "letter".into(),
                recipient: "Comando di Polizia Locale".into(),
                printed: true,
                flag: Some(ANNULMENT_BY_HAND.into()),
                ..email("k-hand", "p2@x.it")
            };
            let (printed, _) = store.queue_message(&r, &by_hand, "op").await.unwrap();
            assert_eq!(printed.status, "printed");
            assert_eq!(printed.subject, "Pratica", "no number asked in the subject");
            let case = store.get_case(&r).await.unwrap();
            assert_eq!(case.summary.flags, [ANNULMENT_BY_HAND]);
            let queued = case
                .timeline
                .iter()
                .rfind(|e| e.kind == "message_queued")
                .unwrap();
            assert_eq!(queued.detail["flag"], ANNULMENT_BY_HAND);
        })
        .await;
    }

    #[tokio::test]
    async fn a_leased_message_comes_back_after_the_lease_and_failures_back_off() {
        with_test_store(|store, clock| async move {
            let r = new_case(&store).await;
            store
                .queue_message(&r, &email("k", "m1@x.it"), "op")
                .await
                .unwrap();
            let taken = store
                .claim_outbound(10, Duration::seconds(60))
                .await
                .unwrap();
            assert_eq!(taken.len(), 1);
            assert_eq!(taken[0].attempts, 1);
            // Leased: nobody else takes it…
            assert!(
                store
                    .claim_outbound(10, Duration::seconds(60))
                    .await
                    .unwrap()
                    .is_empty()
            );
            // …until the lease ends (the worker died): taken again, same Message-ID.
            clock.advance(Duration::seconds(61));
            let again = store
                .claim_outbound(10, Duration::seconds(60))
                .await
                .unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].message_id, "m1@x.it");
            assert_eq!(again[0].attempts, 2);
            // The first worker's late answer is not the lease holder's: ignored.
            let stale_retry = clock.now() + Duration::seconds(5);
            store
                .outbound_failed(again[0].id, 1, "timeout", Some(stale_retry))
                .await
                .unwrap();
            assert_eq!(
                store.outbound_message(again[0].id).await.unwrap().status,
                "sending"
            );
            // A retryable failure: queued again for later, journaled.
            let later = clock.now() + Duration::seconds(30);
            store
                .outbound_failed(again[0].id, again[0].attempts, "451 try later", Some(later))
                .await
                .unwrap();
            assert!(
                store
                    .claim_outbound(10, Duration::seconds(60))
                    .await
                    .unwrap()
                    .is_empty()
            );
            clock.advance(Duration::seconds(31));
            let third = store
                .claim_outbound(10, Duration::seconds(60))
                .await
                .unwrap();
            // A permanent failure: failed, the case flagged once.
            store
                .outbound_failed(third[0].id, third[0].attempts, "550 no such user", None)
                .await
                .unwrap();
            let view = store.outbound_message(third[0].id).await.unwrap();
            assert_eq!(view.status, "failed");
            assert_eq!(view.last_error.as_deref(), Some("550 no such user"));
            let case = store.get_case(&r).await.unwrap();
            assert_eq!(case.summary.flags, vec![MESSAGE_FAILED.to_owned()]);
            // A late answer of the first worker changes nothing.
            store
                .outbound_sent(taken[0].id, taken[0].attempts, None)
                .await
                .unwrap();
            assert_eq!(
                store.outbound_message(third[0].id).await.unwrap().status,
                "failed"
            );
            assert_eq!(store.outbound_counts().await.unwrap(), (0, 1));
        })
        .await;
    }

    #[tokio::test]
    async fn a_message_queued_with_an_action_shares_its_transaction_and_reminders_come_due() {
        with_test_store(|store, clock| async move {
            let r = new_case(&store).await;
            store
                .apply_action(&r, &Action::StartReview, None, "op")
                .await
                .unwrap();
            let action = Action::RequestIntegration {
                missing: vec!["carta_circolazione".into()],
            };
            let (case, ids) = store
                .apply_action_writing(&r, &action, None, "op", &[], &[email("", "m1@x.it")])
                .await
                .unwrap();
            assert_eq!(case.summary.status, "waiting_citizen");
            assert_eq!(ids.len(), 1);
            // A refused action queues nothing.
            let refused = store
                .apply_action_writing(
                    &r,
                    &Action::Approve,
                    None,
                    "op",
                    &[],
                    &[email("", "m2@x.it")],
                )
                .await;
            assert!(refused.is_err());
            assert_eq!(store.outbound_of_case(&r).await.unwrap().len(), 1);
            // The reminder is due once the request is old enough, until one is queued.
            let today = sportello_domain::calendar::rome_date(clock.now());
            assert!(
                store
                    .cases_due_for_reminder(today - Duration::days(1))
                    .await
                    .unwrap()
                    .is_empty()
            );
            let due = store.cases_due_for_reminder(today).await.unwrap();
            assert_eq!(due.len(), 1);
            let (reference, day) = due[0].clone();
            store
                .queue_message(
                    &reference,
                    &email(&format!("reminder:{reference}:{day}"), "m3@x.it"),
                    "system",
                )
                .await
                .unwrap();
            assert!(
                store
                    .cases_due_for_reminder(today)
                    .await
                    .unwrap()
                    .is_empty()
            );
        })
        .await;
    }
}
