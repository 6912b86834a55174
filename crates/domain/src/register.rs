//! The protocol register (registro di protocollo, DPR 445/2000 art. 53 and 57):
//! numbering and the hash chain that makes alteration, removal and reordering detectable.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first entry of the chain points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A protocol number `YYYY/NNNNNNN`: one gap-free sequence per year for the whole office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProtocolNumber {
    /// Calendar year (Europe/Rome) of registration.
    pub year: i32,
    /// Position in the year, from 1.
    pub seq: u64,
}

impl ProtocolNumber {
    /// The number that follows `last` for a registration made in `year`.
    pub fn next(last: Option<ProtocolNumber>, year: i32) -> ProtocolNumber {
        match last {
            Some(last) if last.year == year => ProtocolNumber {
                year,
                seq: last.seq + 1,
            },
            _ => ProtocolNumber { year, seq: 1 },
        }
    }

    /// Parses `YYYY/NNNNNNN` (at least 7 digits).
    pub fn parse(s: &str) -> Option<ProtocolNumber> {
        let (year, seq) = s.split_once('/')?;
        if year.len() != 4
            || seq.len() < 7
            || !year.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(ProtocolNumber {
            year: year.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for ProtocolNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}/{:07}", self.year, self.seq)
    }
}

/// Incoming or outgoing document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received by the office.
    In,
    /// Sent by the office.
    Out,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            _ => None,
        }
    }
}

/// The content of one registration, as covered by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntry {
    /// Protocol number.
    pub number: ProtocolNumber,
    /// Registration instant, assigned by the system.
    pub registered_at: DateTime<Utc>,
    /// In or out.
    pub direction: Direction,
    /// Sender (in) or recipient (out).
    pub correspondent: String,
    /// Subject (oggetto).
    pub subject: String,
    /// SHA-256 (hex) of the registered document (impronta).
    pub document_sha256: String,
    /// The case the document belongs to, if any.
    pub case_reference: Option<String>,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
}

impl RegisterEntry {
    /// The entry's own hash: SHA-256 over every field, each length-prefixed so that no
    /// two different entries serialise alike, including the previous entry's hash.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        let number = self.number.to_string();
        let at = self
            .registered_at
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        // "case:" keeps "no case" distinct from an (impossible) empty reference.
        let case = self
            .case_reference
            .as_ref()
            .map(|r| format!("case:{r}"))
            .unwrap_or_default();
        let fields: [&str; 8] = [
            "sportello-register-v1",
            &number,
            &at,
            self.direction.as_str(),
            &self.correspondent,
            &self.subject,
            &self.document_sha256,
            &case,
        ];
        for field in fields
            .iter()
            .chain(std::iter::once(&self.prev_hash.as_str()))
        {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("register entry {number} (position {position}): {problem}")]
pub struct ChainBreak {
    /// 1-based position in the register.
    pub position: usize,
    /// The protocol number stored there.
    pub number: String,
    /// What is wrong.
    pub problem: String,
}

/// Checks a register entry by entry, in order, without holding it in memory: every hash
/// recomputes, every entry points at its predecessor, numbers run without gaps and restart
/// at 1 only with a new year.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: String,
    prev_number: Option<ProtocolNumber>,
    count: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            prev_hash: GENESIS_HASH.to_owned(),
            prev_number: None,
            count: 0,
        }
    }
}

impl ChainVerifier {
    /// A verifier expecting the first entry of the register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry, as stored with `stored_hash`.
    pub fn push(&mut self, entry: &RegisterEntry, stored_hash: &str) -> Result<(), ChainBreak> {
        let position = (self.count + 1) as usize;
        let brk = |problem: String| ChainBreak {
            position,
            number: entry.number.to_string(),
            problem,
        };
        if entry.prev_hash != self.prev_hash {
            return Err(brk(
                "does not point at the entry before it (removed or reordered entry)".into(),
            ));
        }
        let computed = entry.hash();
        if computed != stored_hash {
            return Err(brk("content does not match its hash (altered entry)".into()));
        }
        let expected = match self.prev_number {
            Some(p) if entry.number.year > p.year => ProtocolNumber {
                year: entry.number.year,
                seq: 1,
            },
            // A year lower than the previous one is never right: the sequence goes on.
            Some(p) if entry.number.year < p.year => ProtocolNumber {
                year: p.year,
                seq: p.seq + 1,
            },
            other => ProtocolNumber::next(other, entry.number.year),
        };
        if entry.number != expected {
            return Err(brk(format!("number should be {expected}")));
        }
        self.prev_hash = computed;
        self.prev_number = Some(entry.number);
        self.count += 1;
        Ok(())
    }

    /// Ends the check: the last hash and the count must match the separately kept head,
    /// so that removing entries at the end is detected too. Returns the number of entries.
    pub fn finish(self, head: Option<(&str, u64)>) -> Result<u64, ChainBreak> {
        if let Some((head_hash, head_count)) = head
            && (head_hash != self.prev_hash || head_count != self.count)
        {
            return Err(ChainBreak {
                position: self.count as usize,
                number: self.prev_number.map(|n| n.to_string()).unwrap_or_default(),
                problem: format!(
                    "register ends after {} entries but {head_count} were recorded (entries removed at the end)",
                    self.count
                ),
            });
        }
        Ok(self.count)
    }
}

/// Verifies a whole register held in memory (see [`ChainVerifier`]).
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = (&'a RegisterEntry, &'a str)>,
    head: Option<(&str, u64)>,
) -> Result<u64, ChainBreak> {
    let mut verifier = ChainVerifier::new();
    for (entry, hash) in entries {
        verifier.push(entry, hash)?;
    }
    verifier.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn chain(n: usize, year_break_at: Option<usize>) -> Vec<(RegisterEntry, String)> {
        let mut out: Vec<(RegisterEntry, String)> = Vec::new();
        let mut last: Option<ProtocolNumber> = None;
        for i in 0..n {
            let year = if year_break_at.is_some_and(|b| i >= b) {
                2027
            } else {
                2026
            };
            let number = ProtocolNumber::next(last, year);
            let entry = RegisterEntry {
                number,
                registered_at: Utc.with_ymd_and_hms(year, 6, 1, 8, 0, 0).unwrap()
                    + chrono::Duration::minutes(i as i64),
                direction: if i % 3 == 0 {
                    Direction::Out
                } else {
                    Direction::In
                },
                correspondent: format!("cittadino {i}"),
                subject: format!("domanda {i}"),
                document_sha256: format!("{:064x}", i),
                case_reference: (i % 2 == 0).then(|| format!("ZTL-2026-{:06}", i + 1)),
                prev_hash: out
                    .last()
                    .map(|(_, h)| h.clone())
                    .unwrap_or_else(|| GENESIS_HASH.to_owned()),
            };
            let hash = entry.hash();
            out.push((entry, hash));
            last = Some(number);
        }
        out
    }

    fn verify(c: &[(RegisterEntry, String)], head: bool) -> Result<u64, ChainBreak> {
        let head_val = c.last().map(|(_, h)| (h.as_str(), c.len() as u64));
        verify_chain(
            c.iter().map(|(e, h)| (e, h.as_str())),
            if head { head_val } else { None },
        )
    }

    #[test]
    fn numbers_format_and_restart_each_year() {
        let n = ProtocolNumber {
            year: 2026,
            seq: 42,
        };
        assert_eq!(n.to_string(), "2026/0000042");
        assert_eq!(ProtocolNumber::parse("2026/0000042"), Some(n));
        assert_eq!(ProtocolNumber::next(Some(n), 2026).seq, 43);
        assert_eq!(
            ProtocolNumber::next(Some(n), 2027),
            ProtocolNumber { year: 2027, seq: 1 }
        );
        assert_eq!(ProtocolNumber::next(None, 2026).seq, 1);
        assert_eq!(ProtocolNumber::parse("2026/42"), None);
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(10, Some(6));
        assert_eq!(verify(&c, true), Ok(10));
        assert_eq!(c[6].0.number.to_string(), "2027/0000001");
    }

    #[test]
    fn removal_with_a_repointed_successor_is_found() {
        // Remove entry 3 and make entry 4 point at entry 2 without re-hashing it: the
        // pointer is part of what the hash covers, so entry 4 no longer matches its hash.
        let mut c = chain(6, None);
        let removed = c.remove(2);
        c[2].0.prev_hash = removed.0.prev_hash.clone();
        let err = verify(&c, false).unwrap_err();
        assert_eq!(err.position, 3);
        assert!(err.problem.contains("altered"), "{}", err.problem);
    }

    #[test]
    fn a_year_going_backwards_is_refused() {
        let mut c = chain(4, Some(2));
        // Re-number the last entry as 2026/0000003 after 2027/0000001 and re-hash it.
        c[3].0.number = ProtocolNumber { year: 2026, seq: 3 };
        c[3].1 = c[3].0.hash();
        let err = verify(&c, false).unwrap_err();
        assert_eq!(err.position, 4);
        assert!(err.problem.contains("2027/0000002"), "{}", err.problem);
    }

    #[test]
    fn alteration_is_found() {
        let mut c = chain(6, None);
        c[3].0.subject.push('!');
        let err = verify(&c, true).unwrap_err();
        assert_eq!(err.position, 4);
        assert!(err.problem.contains("altered"));
    }

    #[test]
    fn alteration_with_rehash_is_found_at_the_next_entry() {
        let mut c = chain(6, None);
        c[2].0.correspondent = "qualcun altro".into();
        c[2].1 = c[2].0.hash();
        let err = verify(&c, true).unwrap_err();
        assert_eq!(err.position, 4);
    }

    #[test]
    fn removal_and_reordering_are_found() {
        let mut removed = chain(6, None);
        removed.remove(2);
        assert_eq!(verify(&removed, false).unwrap_err().position, 3);
        let mut swapped = chain(6, None);
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, false).unwrap_err().position, 2);
        let full = chain(6, None);
        let head = full.last().map(|(_, h)| (h.as_str(), 6));
        let truncated = &full[..5];
        let err = verify_chain(truncated.iter().map(|(e, h)| (e, h.as_str())), head).unwrap_err();
        assert!(err.problem.contains("removed at the end"));
    }

    proptest! {
        #[test]
        fn any_single_field_change_breaks_the_chain(n in 2usize..12, at in 0usize..12, field in 0u8..6) {
            let at = at % n;
            let mut c = chain(n, None);
            let e = &mut c[at].0;
            match field {
                0 => e.subject.push('x'),
                1 => e.correspondent.push('x'),
                2 => e.document_sha256 = "f".repeat(64),
                3 => e.registered_at += chrono::Duration::milliseconds(1),
                4 => e.direction = if e.direction == Direction::In { Direction::Out } else { Direction::In },
                _ => e.case_reference = Some("SEG-2026-000001".into()),
            }
            prop_assert!(verify(&c, true).is_err());
        }
    }
}
