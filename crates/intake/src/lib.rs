//! Channel adapters. Each turns what its channel delivers into
//! [`sportello_store::intake::Inbound`] messages for the one intake pipeline
//! (`Store::ingest`), after checking that the delivery is authentic.

pub mod daticert;
pub mod email;
pub mod imap;
pub mod pec;
pub mod pipeline;
pub mod reading;
pub mod telegram;
pub mod whatsapp;

/// Why a delivery is refused or cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntakeError {
    /// Missing or wrong signature or secret: refused, nothing stored.
    #[error("the request is not authentic: {0}")]
    NotAuthentic(&'static str),
    /// The channel is not configured on this installation.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// Authentic but unreadable.
    #[error("the payload cannot be read: {0}")]
    Malformed(String),
}

/// The first words of a text, for a subject line.
pub(crate) fn subject_from(text: &str, fallback: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.is_empty() {
        return fallback.to_owned();
    }
    let mut subject: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        subject.push('…');
    }
    subject
}

/// An instant from a Unix timestamp in seconds (as WhatsApp and Telegram send them).
pub(crate) fn from_unix(
    secs: i64,
    fallback: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or(fallback)
}
