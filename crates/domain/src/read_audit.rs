//! The audit of reads: who read which citizen's data, and when. Entries are hash-chained
//! like the protocol register, so that an entry removed, altered or reordered after the
//! fact is detected by re-walking the chain (ASVS V7.3.3: logs protected from tampering).

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// Every kind of read the audit records (`action` of a [`ReadEntry`]), so that the audit
/// page names each in words.
pub const READ_ACTIONS: &[&str] = &[
    "read_case",
    "list_cases",
    "read_citizen",
    "read_contacts",
    "read_permit",
    "reports",
    "read_report",
    "search",
    "login",
    "print_cover_sheet",
    "read_appointments",
    "list_appointments",
    "list_callbacks",
    "read_document",
    "read_document_info",
    "read_document_text",
    "view_document",
    "read_messages",
    "read_outbound",
    "read_evidence",
    "export_citizen",
    "cti_lookup",
];

/// The `prev_hash` of the first chained entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One read, as chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    /// When (millisecond precision, as stored).
    pub at: DateTime<Utc>,
    /// Login of the reader.
    pub actor: String,
    /// What was done (`read_case`, `read_document`…).
    pub action: String,
    /// What was read (case reference, document id…).
    pub target: String,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
}

impl ReadEntry {
    /// SHA-256 over every field, each length-prefixed so that no two entries serialise
    /// alike, including the previous entry's hash.
    pub fn hash(&self) -> String {
        let at = self.at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let fields: [&str; 6] = [
            "sportello-reads-v1",
            &at,
            &self.actor,
            &self.action,
            &self.target,
            &self.prev_hash,
        ];
        let mut h = Sha256::new();
        for field in fields {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Where and why the chain of reads is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChainBreak {
    /// 1-based position among the chained entries.
    pub position: u64,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for ReadChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "read audit entry {}: {}", self.position, self.problem)
    }
}

/// Walks the chain entry by entry, so that a long log is verified while streamed.
#[derive(Debug)]
pub struct ReadChainVerifier {
    prev_hash: String,
    count: u64,
}

impl Default for ReadChainVerifier {
    fn default() -> Self {
        ReadChainVerifier {
            prev_hash: GENESIS_HASH.to_owned(),
            count: 0,
        }
    }
}

impl ReadChainVerifier {
    /// A verifier expecting the first chained entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry, as stored with `stored_hash`.
    pub fn push(&mut self, entry: &ReadEntry, stored_hash: &str) -> Result<(), ReadChainBreak> {
        let position = self.count + 1;
        if entry.prev_hash != self.prev_hash {
            return Err(ReadChainBreak {
                position,
                problem: "does not point at the entry before it (removed or reordered entry)"
                    .into(),
            });
        }
        let computed = entry.hash();
        if computed != stored_hash {
            return Err(ReadChainBreak {
                position,
                problem: "content does not match its hash (altered entry)".into(),
            });
        }
        self.prev_hash = computed;
        self.count += 1;
        Ok(())
    }

    /// Ends the check against the separately kept head (last hash, count), so that
    /// entries removed at the end are detected too. Returns the number of entries.
    pub fn finish(self, head_hash: &str, head_count: u64) -> Result<u64, ReadChainBreak> {
        if head_hash != self.prev_hash || head_count != self.count {
            return Err(ReadChainBreak {
                position: self.count,
                problem: format!(
                    "the log ends after {} entries but {head_count} were recorded (entries removed at the end)",
                    self.count
                ),
            });
        }
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chain(n: usize) -> Vec<(ReadEntry, String)> {
        let mut prev = GENESIS_HASH.to_owned();
        (0..n)
            .map(|i| {
                let entry = ReadEntry {
                    at: Utc
                        .timestamp_millis_opt(1_800_000_000_000 + i as i64)
                        .unwrap(),
                    actor: format!("op{}", i % 3),
                    action: "read_case".into(),
                    target: format!("ZTL-2026-{i:06}"),
                    prev_hash: prev.clone(),
                };
                let hash = entry.hash();
                prev = hash.clone();
                (entry, hash)
            })
            .collect()
    }

    fn verify(entries: &[(ReadEntry, String)], head: (&str, u64)) -> Result<u64, ReadChainBreak> {
        let mut v = ReadChainVerifier::new();
        for (e, h) in entries {
            v.push(e, h)?;
        }
        v.finish(head.0, head.1)
    }

    #[test]
    fn an_intact_chain_verifies_and_every_tampering_is_found() {
        let entries = chain(5);
        let head = entries[4].1.clone();
        assert_eq!(verify(&entries, (&head, 5)), Ok(5));

        let mut altered = entries.clone();
        altered[2].0.actor = "someone-else".into();
        assert_eq!(verify(&altered, (&head, 5)).unwrap_err().position, 3);

        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify(&removed, (&head, 5)).unwrap_err().position, 2);

        let truncated = &entries[..4];
        let err = verify(truncated, (&head, 5)).unwrap_err();
        assert!(err.problem.contains("removed at the end"), "{err}");

        assert_eq!(verify(&[], (GENESIS_HASH, 0)), Ok(0));
    }

    #[test]
    fn fields_cannot_be_shifted_into_one_another() {
        let a = ReadEntry {
            at: Utc.timestamp_millis_opt(0).unwrap(),
            actor: "ab".into(),
            action: "c".into(),
            target: "d".into(),
            prev_hash: GENESIS_HASH.into(),
        };
        let b = ReadEntry {
            actor: "a".into(),
            action: "bc".into(),
            ..a.clone()
        };
        assert_ne!(a.hash(), b.hash());
    }
}
