//! Answers to what the office sent to another administration: a PEC or e-mail from the
//! police command about an annulment request quotes its protocol number (`Vs. prot. n.
//! 2026/0000123`), often without the case reference. This finds the numbers quoted; the
//! store decides whether one names an outgoing entry of a case.

use crate::register::ProtocolNumber;

/// At most this many numbers are taken from one text: an answer quotes one or two, and
/// a text full of them must not cost a look-up each.
pub const MAX_QUOTED: usize = 10;

/// The protocol numbers `YYYY/NNNNNNN` quoted in `text`, in order of appearance, each
/// once, at most [`MAX_QUOTED`]. A number must stand alone: no digit or `/` right before
/// it and no digit right after it (so `12026/0000001` and a date such as `2026/01/05` are
/// not numbers).
pub fn quoted_protocol_numbers(text: &str) -> Vec<ProtocolNumber> {
    let bytes = text.as_bytes();
    let mut found: Vec<ProtocolNumber> = Vec::new();
    let mut i = 0;
    while i + 4 < bytes.len() && found.len() < MAX_QUOTED {
        let starts_alone = i == 0 || !(bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'/');
        let year = &bytes[i..i + 4];
        if !(starts_alone && year.iter().all(u8::is_ascii_digit) && bytes[i + 4] == b'/') {
            i += 1;
            continue;
        }
        let seq_start = i + 5;
        let seq_len = bytes[seq_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let seq_end = seq_start + seq_len;
        let ends_alone = bytes.get(seq_end) != Some(&b'/');
        if ends_alone
            && let Some(number) = text.get(i..seq_end).and_then(ProtocolNumber::parse)
            && !found.contains(&number)
        {
            found.push(number);
        }
        i = seq_end.max(i + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(text: &str) -> Vec<String> {
        quoted_protocol_numbers(text)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn quoted_numbers_are_found_alone_and_once() {
        assert_eq!(
            numbers("Oggetto: Vs. prot. n. 2026/0000123 del 03/12/2026 - riscontro"),
            ["2026/0000123"]
        );
        assert_eq!(
            numbers("Rif. prot.2026/0000007, cfr. anche 2025/0001234 e 2026/0000007."),
            ["2026/0000007", "2025/0001234"]
        );
        // Not protocol numbers: too short, glued to other digits, dates, paths.
        for text in [
            "",
            "2026/123",
            "12026/0000001",
            "2026/00000011/5",
            "x/2026/0000001",
            "data 2026/01/05",
            "verbale VB-2026-77",
        ] {
            assert!(numbers(text).is_empty(), "{text:?}");
        }
        // Accented text around it is fine.
        assert_eq!(numbers("è la n°2026/0000042, già"), ["2026/0000042"]);
        let many: String = (1..=30).map(|n| format!("2026/{n:07} ")).collect();
        assert_eq!(numbers(&many).len(), MAX_QUOTED);
    }
}
