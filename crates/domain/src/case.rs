//! Cases ("pratiche"): their types, statuses, channels, priorities and references.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which workflow a case type follows (CONTRACT §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    /// An application that ends in a permit or a rejection (ZTL, CUDE).
    Permit,
    /// An error report about a transit or fine, ending in `confirm` or `annul` (SEG).
    Report,
}

/// A kind of procedure the office handles, with its legal term and service standard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseType {
    /// Stable identifier used in the API, e.g. `ztl_permit`.
    pub id: String,
    /// Reference prefix, e.g. `ZTL` (2–5 capital letters).
    pub prefix: String,
    /// Human name shown to staff and citizens.
    pub name: String,
    /// Legal term of the procedure in calendar days (L. 241/1990 art. 2).
    pub term_days: u32,
    /// The office's own service standard in calendar days.
    pub service_days: u32,
    /// Priority given to new cases of this type.
    pub priority: Priority,
    /// Which workflow applies.
    pub workflow: WorkflowKind,
}

impl CaseType {
    /// The three built-in case types of CONTRACT §1.
    pub fn builtin() -> Vec<CaseType> {
        vec![
            CaseType {
                id: "ztl_permit".into(),
                prefix: "ZTL".into(),
                name: "Permesso ZTL".into(),
                term_days: 30,
                service_days: 15,
                priority: Priority::Normal,
                workflow: WorkflowKind::Permit,
            },
            CaseType {
                id: "cude".into(),
                prefix: "CUD".into(),
                name: "Contrassegno disabili (CUDE)".into(),
                term_days: 30,
                service_days: 10,
                priority: Priority::High,
                workflow: WorkflowKind::Permit,
            },
            CaseType {
                id: "seg".into(),
                prefix: "SEG".into(),
                name: "Segnalazione transito o sanzione".into(),
                term_days: 30,
                service_days: 10,
                priority: Priority::Normal,
                workflow: WorkflowKind::Report,
            },
        ]
    }

    /// Whether `prefix` has the shape references need (2–5 ASCII capitals).
    pub fn valid_prefix(prefix: &str) -> bool {
        (2..=5).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase())
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.chars().take(40).collect(),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A value that is not one of an enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (allowed: {})", allowed.join(", "))]
pub struct UnknownValue {
    /// What kind of value it should have been.
    pub what: &'static str,
    /// The value given (truncated).
    pub value: String,
    /// The accepted names.
    pub allowed: &'static [&'static str],
}

string_enum!(
    /// Where a case stands in its workflow (CONTRACT §7.2).
    Status, "status", {
        /// Registered, nobody working on it yet.
        Received => "received",
        /// An operator is examining it.
        InReview => "in_review",
        /// Integration requested from the citizen; clock paused.
        WaitingCitizen => "waiting_citizen",
        /// Art. 10-bis notice of the reasons against; clock paused for 10 days.
        RejectionNotice => "rejection_notice",
        /// Decided favourably, permit not yet issued.
        Approved => "approved",
        /// Permit issued.
        Issued => "issued",
        /// Rejected with reasons.
        Rejected => "rejected",
        /// Finished and archived.
        Closed => "closed",
    }
);

impl Status {
    /// Open cases still need the office's work.
    pub fn is_open(self) -> bool {
        self != Status::Closed
    }
}

string_enum!(
    /// The channel a case or message came through.
    Channel, "channel", {
        /// Online form on the citizen portal.
        Web => "web",
        /// Ordinary e-mail.
        Email => "email",
        /// Certified e-mail (PEC).
        Pec => "pec",
        /// Fax, usually through a fax-to-mail gateway.
        Fax => "fax",
        /// Telephone.
        Phone => "phone",
        /// At the office counter.
        Counter => "counter",
        /// Paper post.
        Post => "post",
        /// Paper scanned at the office.
        Scan => "scan",
        /// WhatsApp Business.
        Whatsapp => "whatsapp",
        /// Telegram bot.
        Telegram => "telegram",
        /// SMS.
        Sms => "sms",
    }
);

string_enum!(
    /// How urgently a case should be handled; CUDE cases are high by default.
    Priority, "priority", {
        /// Can wait.
        Low => "low",
        /// The usual.
        Normal => "normal",
        /// Disabled citizens and other cases that must not wait.
        High => "high",
        /// Same day.
        Urgent => "urgent",
    }
);

/// Well-known case flags (free-form flags are allowed too).
pub mod flags {
    /// The 30-day integration suspension ran out without an answer.
    pub const INTEGRATION_EXPIRED: &str = "integration_expired";
    /// A message referred to a case that does not exist.
    pub const UNKNOWN_REFERENCE: &str = "unknown_reference";
    /// Something arrived for a closed case.
    pub const NEEDS_ATTENTION: &str = "needs_attention";
    /// A message quoted a permit number but its sender is not known as the permit's
    /// holder: it opened a case of its own instead of joining the holder's (and is also
    /// flagged `needs_attention`, the queue of messages to check).
    pub const PERMIT_REFERENCE_UNVERIFIED: &str = "permit_reference_unverified";

    /// Every flag the product sets, so that each has its words on the pages.
    pub const ALL: &[&str] = &[
        INTEGRATION_EXPIRED,
        UNKNOWN_REFERENCE,
        NEEDS_ATTENTION,
        PERMIT_REFERENCE_UNVERIFIED,
        "unsorted_scan",
        "ocr_failed",
        "message_failed",
        "pec_not_delivered",
        "annulment_by_hand",
        // Intake: the message as it arrived (PEC envelope, attachments, edits).
        "pec_anomaly",
        "pec_signature_invalid",
        "pec_without_postacert",
        "unmatched_receipt",
        "attachment_too_large",
        "too_many_attachments",
        "edited_message",
        // The Redmine import: what an issue's data could not give.
        "invalid_fiscal_code",
        "invalid_contact",
        "missing_attachment",
        "attachment_digest_mismatch",
        "unknown_author",
    ];
}

/// A case reference `{PREFIX}-{YYYY}-{NNNNNN}` (CONTRACT §1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Case type prefix.
    pub prefix: String,
    /// Year of registration (Europe/Rome).
    pub year: i32,
    /// Sequence within prefix and year, from 1.
    pub seq: u64,
}

impl Reference {
    /// Parses a whole reference; `None` when it does not have the shape.
    pub fn parse(s: &str) -> Option<Reference> {
        let mut parts = s.split('-');
        let prefix = parts.next()?;
        let year = parts.next()?;
        let seq = parts.next()?;
        if parts.next().is_some()
            || !CaseType::valid_prefix(prefix)
            || year.len() != 4
            || seq.len() < 6
            || seq.len() > 10
            || !year.bytes().all(|b| b.is_ascii_digit())
            || !seq.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        if seq == 0 {
            return None;
        }
        Some(Reference {
            prefix: prefix.to_owned(),
            year: year.parse().ok()?,
            seq,
        })
    }

    /// Every reference-shaped token in free text (any letter case), in order of appearance, without repeats.
    pub fn find_all(text: &str) -> Vec<Reference> {
        let mut found: Vec<Reference> = Vec::new();
        // Citizens type references in lower case too.
        let upper = text.to_ascii_uppercase();
        let tokens = upper.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
        for token in tokens {
            // A token may carry surrounding dashes or glue ("Rif.ZTL-2026-000001-bis").
            let bytes = token.as_bytes();
            for start in 0..bytes.len() {
                let at_word_start = start == 0 || !bytes[start - 1].is_ascii_uppercase();
                if !at_word_start || !bytes[start].is_ascii_uppercase() {
                    continue;
                }
                if let Some(reference) = Self::parse_prefix_of(&token[start..])
                    && !found.contains(&reference)
                {
                    found.push(reference);
                }
            }
        }
        found
    }

    fn parse_prefix_of(s: &str) -> Option<Reference> {
        let letters = s.bytes().take_while(|b| b.is_ascii_uppercase()).count();
        let rest = s.get(letters..)?;
        let rest = rest.strip_prefix('-')?;
        let year = rest.get(..4)?;
        let rest = rest.get(4..)?.strip_prefix('-')?;
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if !(6..=10).contains(&digits) {
            return None;
        }
        Reference::parse(&format!("{}-{}-{}", &s[..letters], year, &rest[..digits]))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:04}-{:06}", self.prefix, self.year, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_round_trips() {
        let r = Reference {
            prefix: "ZTL".into(),
            year: 2026,
            seq: 123,
        };
        assert_eq!(r.to_string(), "ZTL-2026-000123");
        assert_eq!(Reference::parse("ZTL-2026-000123"), Some(r));
        assert_eq!(Reference::parse("ZTL-2026-0001"), None);
        assert_eq!(Reference::parse("ztl-2026-000123"), None);
        assert_eq!(Reference::parse("ZTL-2026-000000"), None);
        assert_eq!(Reference::parse("ZTL-26-000001"), None);
    }

    #[test]
    fn finds_references_in_text() {
        let text = "Re: pratica ZTL-2026-000001, vedi anche (CUD-2025-000042). ztl-2026-000001 ancora; ABCDEFZTL-2026-000009 SEG-2026-12";
        let found: Vec<String> = Reference::find_all(text)
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(found, vec!["ZTL-2026-000001", "CUD-2025-000042"]);
        assert!(Reference::find_all("nessun riferimento 2026-000001").is_empty());
    }

    #[test]
    fn enums_parse_and_reject() {
        assert_eq!("in_review".parse::<Status>(), Ok(Status::InReview));
        let err = "bogus".parse::<Channel>().unwrap_err();
        assert!(err.to_string().contains("unknown channel 'bogus'"));
        assert!(err.to_string().contains("counter"));
        assert!(!Status::Closed.is_open());
        assert!(Status::Rejected.is_open());
    }

    #[test]
    fn builtin_types_match_the_contract() {
        let types = CaseType::builtin();
        let pairs: Vec<(&str, &str)> = types
            .iter()
            .map(|t| (t.id.as_str(), t.prefix.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![("ztl_permit", "ZTL"), ("cude", "CUD"), ("seg", "SEG")]
        );
        assert_eq!(types[1].priority, Priority::High);
        assert!(types.iter().all(|t| CaseType::valid_prefix(&t.prefix)));
    }
}
