//! What a message to a citizen looks like: the message to queue, the view, the claim a
//! worker takes, the delivery steps, and the facts reminders are decided on.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Result, from_ms, get_i64, get_opt_i64, get_opt_str, get_str};

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

pub(super) const COLUMNS: &str = "o.id, c.reference, o.channel, o.recipient, o.subject, o.body, o.template, o.status, \
     o.attempts, o.last_error, o.provider_ref, o.protocol, o.message_id, o.attachments, o.created_by, \
     o.created_at, o.sent_at, o.accepted_at, o.delivered_at, o.failed_at";

pub(super) fn view_of(row: &sqlx::any::AnyRow) -> Result<OutboundView> {
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

/// The linking rule of an answer from the police found by the protocol number it quotes.
pub const PROTOCOL_RULE: &str = "protocol_number";

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
