//! The vocabulary of a case's journal and intake, as stored: the kinds of timeline event,
//! the rules that put a message on a case and the states of a message to the citizen.
//! Listed here so that the pages can be checked to name every one in words.

/// Every kind of timeline event the product writes.
pub const EVENT_KINDS: &[&str] = &[
    "created",
    "action",
    "assigned",
    "closed",
    "document_added",
    "document_text_retry",
    "document_text_failed",
    "message_attached",
    "message_received",
    "message_moved_in",
    "message_moved_out",
    "message_queued",
    "message_sent",
    "message_accepted",
    "message_delivered",
    "message_failed",
    "message_retry",
    "message_receipt",
    "message_not_delivered",
    "pause_lapsed",
    "permit_issued",
    "permit_plates_changed",
    "fields_changed",
    "flag_cleared",
    "call",
    "call_task_opened",
    "call_logged",
    "contact_updated",
    "appointment_proposed",
    "appointment_confirmed",
    "appointment_cancelled",
    "acknowledgement_skipped",
    "police_answer",
    "anonymised",
];

/// Every rule by which an inbound message joins a case (`rule` of a message).
pub const INTAKE_RULES: &[&str] = &[
    "reference_in_subject",
    "reference_in_text",
    "in_reply_to",
    "new",
    "moved",
    "cover_sheet",
    "protocol_number",
    "permit_reference",
    "permit_reference_unverified",
    "duplicate",
    "receipt",
];

/// Every state of a message to the citizen (`status` of an outbound message).
pub const MESSAGE_STATES: &[&str] = &[
    "queued",
    "printed",
    "sending",
    "sent",
    "accepted",
    "delivered",
    "failed",
];

/// Every outcome of taking in a message (`outcome` of the intake's answer).
pub const INTAKE_OUTCOMES: &[&str] = &["created", "attached", "duplicate", "receipt"];
