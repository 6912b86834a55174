//! Messages to citizens: queued in the database in the same transaction as what caused
//! them (so a crash cannot lose one), registered outgoing in the protocol register,
//! taken by the sending worker under a lease, retried with backoff, never queued twice
//! for one idempotency key, and followed to delivery by the receipts intake brings back.
//!
//! States: `queued` → `sending` (leased to a worker) → `sent` → `accepted` → `delivered`
//! (PEC receipts; WhatsApp statuses), or `failed` (a permanent refusal, the provider's
//! error, or too many attempts). A letter is `printed` at once: the office posts it.
//!
//! Split by capability: [`model`] holds the types, the other modules one kind of work each.

mod model;
mod police;
mod queue;
mod receipts;
mod reminders;

pub use model::{
    ANNULMENT_BY_HAND, ANNULMENT_KEY_PREFIX, Claimed, ContactFacts, DeliveryStep, MESSAGE_FAILED,
    NewOutbound, OutboundView, PEC_NOT_DELIVERED, PROTOCOL_RULE,
};
pub(crate) use police::{journal_police_answer, police_answer_case};
pub(crate) use queue::queue_in;
pub(crate) use receipts::receipt_in;

#[cfg(test)]
pub(crate) mod tests {
    use super::NewOutbound;
    use crate::Store;
    use crate::cases::tests::request;

    pub(crate) fn email(key: &str, message_id: &str) -> NewOutbound {
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

    pub(crate) async fn new_case(store: &Store) -> String {
        store
            .create_case(request("ztl_permit"))
            .await
            .unwrap()
            .summary
            .reference
    }
}
