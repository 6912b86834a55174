//! Messages to citizens: queued in the database in the same transaction as what caused
//! them (so a crash cannot lose one), registered outgoing in the protocol register,
//! taken by the sending worker under a lease, retried with backoff, never queued twice
//! for one idempotency key, and followed to delivery by the receipts intake brings back.
//!
//! States: `queued` → `sending` (leased to a worker) → `sent` → `accepted` → `delivered`
//! (PEC receipts; WhatsApp statuses), or `failed` (a permanent refusal, the provider's
//! error, or too many attempts). A letter is `printed` at once: the office posts it.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Any, Transaction};

use crate::journal::insert_event;
use crate::register::{Registration, register_many_in};
use crate::{
    Result, Store, StoreError, from_ms, get_i64, get_opt_i64, get_opt_str, get_str, to_ms,
};
use sportello_domain::register::Direction;

/// The flag a case gets when one of its messages could not be delivered.
pub const MESSAGE_FAILED: &str = "message_failed";
/// The flag a case gets when a PEC it sent has no delivery receipt in time.
pub const PEC_NOT_DELIVERED: &str = "pec_not_delivered";
/// The flag a case gets when its annulment request cannot be sent to the police (no
/// address configured): the office must deliver it by hand.
pub const ANNULMENT_BY_HAND: &str = "annulment_by_hand";
/// How the idempotency keys of annulment requests to the police begin
/// (`annulment:{reference}:{n}`): an answer from the police on such a case is their answer.
pub const ANNULMENT_KEY_PREFIX: &str = "annulment:";

/// A message to queue.
#[derive(Debug, Clone, Default)]
pub struct NewOutbound {
    /// `email`, `pec`, `fax`, `sms`, `whatsapp`, `telegram` or `letter`.
    pub channel: String,
    /// Address, number, chat id or postal address.
    pub recipient: String,
    /// Subject (with the case reference, so replies thread back).
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// The template it was composed from, if any.
    pub template: Option<String>,
    /// `it` or `en`.
    pub lang: String,
    /// One message per key: the same key again returns the first message.
    pub idempotency_key: String,
    /// RFC 5322 Message-ID without brackets.
    pub message_id: String,
    /// The citizen's message this answers.
    pub in_reply_to: Option<String>,
    /// The thread's ids.
    pub references: Vec<String>,
    /// Ids of the case's documents sent along.
    pub attachments: Vec<String>,
    /// Also send the documents the same action attaches (the printed permit).
    pub with_outgoing_documents: bool,
    /// Send WhatsApp's pre-approved template (outside the 24-hour window).
    pub whatsapp_template: bool,
    /// SHA-256 of the registered content (already in the blob store).
    pub content_sha256: String,
    /// `true` for a letter: printed at once, nothing for the worker.
    pub printed: bool,
    /// Head the subject with the protocol number the message gets (`Prot. n. 2026/0000123
    /// – …`), as a message to another administration carries it, so that its answer can
    /// quote it. The registered text is the message as composed: the number cannot be part
    /// of what it registers.
    pub protocol_in_subject: bool,
    /// A flag the case gets with this message: what the office must still do itself (a
    /// request to deliver by hand).
    pub flag: Option<String>,
}

/// A message as the office sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboundView {
    /// Its id (the API's `message_id`).
    pub id: i64,
    /// The case.
    pub case: String,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
    /// Template, if any.
    pub template: Option<String>,
    /// Delivery state.
    pub status: String,
    /// Sending attempts so far.
    pub attempts: i64,
    /// The last error (the provider's words).
    pub last_error: Option<String>,
    /// The provider's id of the message.
    pub provider_ref: Option<String>,
    /// Protocol number (outgoing).
    pub protocol: Option<String>,
    /// RFC 5322 Message-ID.
    pub message_id: String,
    /// Documents sent along.
    pub attachments: Vec<String>,
    /// Who wrote it.
    pub created_by: String,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When the provider took it.
    pub sent_at: Option<String>,
    /// When the PEC provider accepted it.
    pub accepted_at: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<String>,
    /// When it failed for good.
    pub failed_at: Option<String>,
}

/// A message taken by the worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id.
    pub id: i64,
    /// The case.
    pub case: String,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
    /// Message-ID without brackets.
    pub message_id: String,
    /// The citizen's message answered.
    pub in_reply_to: Option<String>,
    /// Thread ids.
    pub references: Vec<String>,
    /// Documents to send along: `(sha256, filename, media_type)`.
    pub attachments: Vec<(String, String, String)>,
    /// WhatsApp template instead of text.
    pub whatsapp_template: bool,
    /// Attempts including this one.
    pub attempts: i64,
    /// Its protocol number (printed on a faxed page).
    pub protocol: Option<String>,
    /// When it was queued (RFC 3339, Rome): the date printed on a faxed page.
    pub queued_at: String,
}

/// What a receipt says of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStep {
    /// The provider took it (PEC `accettazione`, WhatsApp `sent`).
    Accepted,
    /// It reached the citizen's mailbox or phone (`avvenuta-consegna`, `delivered`, `read`).
    Delivered,
    /// It will not arrive (`non-accettazione`, `errore-consegna`, WhatsApp `failed`).
    Failed,
    /// A warning that carries no change (`preavviso-errore-consegna`, PEC `presa-in-carico`).
    Noted,
}

impl DeliveryStep {
    /// The step named by a PEC receipt type (`daticert.xml` `tipo`, `X-Ricevuta`) or a
    /// WhatsApp status.
    pub fn from_receipt(kind: &str) -> DeliveryStep {
        match kind.trim().to_ascii_lowercase().as_str() {
            "accettazione" | "sent" => DeliveryStep::Accepted,
            "avvenuta-consegna" | "delivered" | "read" => DeliveryStep::Delivered,
            "non-accettazione" | "errore-consegna" | "rilevazione-virus" | "failed" => {
                DeliveryStep::Failed
            }
            _ => DeliveryStep::Noted,
        }
    }
}

const COLUMNS: &str = "o.id, c.reference, o.channel, o.recipient, o.subject, o.body, o.template, o.status, \
     o.attempts, o.last_error, o.provider_ref, o.protocol, o.message_id, o.attachments, o.created_by, \
     o.created_at, o.sent_at, o.accepted_at, o.delivered_at, o.failed_at";

fn view_of(row: &sqlx::any::AnyRow) -> Result<OutboundView> {
    let time = |col: &str| -> Result<Option<String>> {
        get_opt_i64(row, col)?
            .map(|ms| from_ms(ms).map(crate::time::rome_rfc3339))
            .transpose()
    };
    Ok(OutboundView {
        id: get_i64(row, "id")?,
        case: get_str(row, "reference")?,
        channel: get_str(row, "channel")?,
        recipient: get_str(row, "recipient")?,
        subject: get_str(row, "subject")?,
        body: get_str(row, "body")?,
        template: get_opt_str(row, "template")?,
        status: get_str(row, "status")?,
        attempts: get_i64(row, "attempts")?,
        last_error: get_opt_str(row, "last_error")?,
        provider_ref: get_opt_str(row, "provider_ref")?,
        protocol: get_opt_str(row, "protocol")?,
        message_id: get_str(row, "message_id")?,
        attachments: serde_json::from_str(&get_str(row, "attachments")?).unwrap_or_default(),
        created_by: get_str(row, "created_by")?,
        created_at: crate::time::rome_rfc3339(from_ms(get_i64(row, "created_at")?)?),
        sent_at: time("sent_at")?,
        accepted_at: time("accepted_at")?,
        delivered_at: time("delivered_at")?,
        failed_at: time("failed_at")?,
    })
}

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

/// The linking rule of an answer from the police found by the protocol number it quotes.
pub const PROTOCOL_RULE: &str = "protocol_number";

/// Whether `sender` is one of the police command's configured `police` addresses.
fn is_police(police: &[String], sender: &crate::citizens::CitizenInput) -> bool {
    [&sender.pec, &sender.email]
        .into_iter()
        .flatten()
        .any(|address| {
            police
                .iter()
                .any(|p| p.trim().eq_ignore_ascii_case(address.trim()))
        })
}

/// The case an answer from the police belongs to by the protocol number it quotes (in
/// `texts`: the subject, then the text): only a message from one of the `police`
/// addresses, and only a number whose register entry is outgoing and names a case, so a
/// stranger quoting a number, or a number of something the office received, links
/// nothing. Returns the case's reference.
pub(crate) async fn police_answer_case(
    tx: &mut Transaction<'static, Any>,
    police: &[String],
    sender: &crate::citizens::CitizenInput,
    texts: [&str; 2],
) -> Result<Option<String>> {
    if !is_police(police, sender) {
        return Ok(None);
    }
    for text in texts {
        for number in sportello_domain::outbound::answers::quoted_protocol_numbers(text) {
            let row = sqlx::query(
                "SELECT case_reference FROM protocol_register WHERE number = $1 AND direction = $2 \
                 AND case_reference IS NOT NULL",
            )
            .bind(number.to_string())
            .bind(Direction::Out.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(row) = row {
                return get_opt_str(&row, "case_reference");
            }
        }
    }
    Ok(None)
}

/// Journals a message from the police attached to a case as the police's answer
/// (`police_answer`) when it is one: from a `police` address, and linked by the protocol
/// number it quotes or on a case whose annulment request went to the police.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn journal_police_answer(
    tx: &mut Transaction<'static, Any>,
    police: &[String],
    sender: &crate::citizens::CitizenInput,
    case_id: i64,
    rule: &str,
    protocol: Option<&str>,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if !is_police(police, sender) {
        return Ok(());
    }
    let answers_a_request = rule == PROTOCOL_RULE
        || sqlx::query(
            "SELECT 1 AS one FROM outbound_messages WHERE case_id = $1 AND idempotency_key LIKE $2 LIMIT 1",
        )
        .bind(case_id)
        .bind(format!("{ANNULMENT_KEY_PREFIX}%"))
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !answers_a_request {
        return Ok(());
    }
    let address = [&sender.pec, &sender.email].into_iter().flatten().next();
    let detail = serde_json::json!({
        "protocol": protocol,
        "rule": rule,
        "subject": subject,
        "sender": address,
    });
    insert_event(tx, case_id, now, "system", "police_answer", &detail).await
}

/// What the office knows of how to reach a case's citizen beyond the case itself.
#[derive(Debug, Clone, Default)]
pub struct ContactFacts {
    /// Postal address (for letters).
    pub address: Option<String>,
    /// The channel the citizen said they prefer.
    pub preferred_channel: Option<String>,
    /// The citizen's messages on the case: `(channel, message_id, received_at)`, oldest
    /// first (threading, the Telegram chat, WhatsApp's 24-hour window).
    pub thread: Vec<(String, String, DateTime<Utc>)>,
}

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
}

impl Store {
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
}

impl Store {
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
        let row = sqlx::query("SELECT id FROM cases WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let detail = serde_json::json!({ "note": why });
        insert_event(
            &mut tx,
            get_i64(&row, "id")?,
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
    use sportello_domain::workflow::Action;

    use super::*;
    use crate::cases::tests::request;
    use crate::testing::with_test_store;

    fn email(key: &str, message_id: &str) -> NewOutbound {
        NewOutbound {
            channel: "email".into(),
            recipient: "mario.rossi@example.it".into(),
            subject: "Pratica".into(),
            body: "Buongiorno.".into(),
            lang: "it".into(),
            idempotency_key: key.into(),
            message_id: message_id.into(),
            content_sha256: "ab".repeat(32),
            ..NewOutbound::default()
        }
    }

    async fn new_case(store: &Store) -> String {
        store
            .create_case(request("ztl_permit"))
            .await
            .unwrap()
            .summary
            .reference
    }

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
