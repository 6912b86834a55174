//! Permit numbers (CONTRACT §1): `{CATEGORY_PREFIX}{YYYY}{NNNNN}` for permits issued here,
//! or any unique string given at import. Issued numbers once had the shape of a case
//! reference (`CUD-2026-000001`), so a message quoting a permit could be filed in a
//! stranger's case; those old numbers live on as aliases, and intake looks every token
//! that could be a permit number up in the register instead of guessing from its shape.

/// The number of the `seq`-th permit of a category prefix in a year, e.g. `CUD202600001`.
/// Five digits; a sequence past 99,999 simply grows longer, still unique.
pub fn permit_number(prefix: &str, year: i32, seq: u64) -> String {
    format!("{prefix}{year:04}{seq:05}")
}

/// The number a permit issued with the old shape `{PREFIX}-{YYYY}-{NNNNNN}` has now;
/// `None` for any other text (an imported number is never renamed). Migration 0019 does
/// the same in SQL; this is its reference.
pub fn renumbered(old: &str) -> Option<String> {
    let mut parts = old.split('-');
    let (prefix, year, seq) = (parts.next()?, parts.next()?, parts.next()?);
    let shaped = parts.next().is_none()
        && (2..=5).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_uppercase())
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && seq.len() == 6
        && seq.bytes().all(|b| b.is_ascii_digit());
    if !shaped {
        return None;
    }
    let seq = seq.strip_prefix('0').unwrap_or(seq);
    Some(format!("{prefix}{year}{seq}"))
}

/// Longest permit number the register accepts at import.
pub const MAX_NUMBER_LEN: usize = 40;

/// At most this many distinct tokens of one message are looked up in the register.
pub const MAX_CANDIDATES: usize = 400;

/// Every token of free text that could be a permit number, to be looked up in the
/// register: words of letters, digits and `-` `/` `_` `.` holding at least one digit, as
/// written and in upper case, and their parts split at `.` and `/` ("Rif.CUD202600001").
/// In order of appearance, without repeats, at most [`MAX_CANDIDATES`].
pub fn candidate_numbers(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let push = |token: &str, found: &mut Vec<String>| {
        let token = token.trim_matches(|c: char| matches!(c, '-' | '/' | '_' | '.'));
        let plausible = token.len() >= 3
            && token.len() <= MAX_NUMBER_LEN
            && token.bytes().any(|b| b.is_ascii_digit());
        if !plausible {
            return;
        }
        for form in [token.to_owned(), token.to_ascii_uppercase()] {
            if found.len() < MAX_CANDIDATES && !found.contains(&form) {
                found.push(form);
            }
        }
    };
    let words =
        text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '.')));
    for word in words {
        if found.len() >= MAX_CANDIDATES {
            break;
        }
        push(word, &mut found);
        if word.contains(['.', '/']) {
            for part in word.split(['.', '/']) {
                push(part, &mut found);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Reference;

    #[test]
    fn issued_numbers_follow_the_contract_and_are_no_case_references() {
        assert_eq!(permit_number("CUD", 2026, 1), "CUD202600001");
        assert_eq!(permit_number("RES", 2026, 12_345), "RES202612345");
        assert_eq!(permit_number("RES", 2026, 123_456), "RES2026123456");
        for n in [1, 99_999, 123_456] {
            let number = permit_number("CUD", 2026, n);
            assert!(Reference::parse(&number).is_none(), "{number}");
            assert!(Reference::find_all(&format!("Permesso {number}.")).is_empty());
        }
    }

    #[test]
    fn only_the_old_issued_shape_is_renumbered() {
        assert_eq!(
            renumbered("CUD-2026-000001").as_deref(),
            Some("CUD202600001")
        );
        assert_eq!(
            renumbered("RESID-2027-012345").as_deref(),
            Some("RESID202712345")
        );
        // Past 99,999 the sequence keeps its six digits.
        assert_eq!(
            renumbered("RES-2026-123456").as_deref(),
            Some("RES2026123456")
        );
        for other in [
            "CUD202600001",
            "P0000001",
            "CUD-2026-0000001",
            "cud-2026-000001",
            "C-2026-000001",
            "CUD-26-000001",
            "CUD-2026-000001-bis",
        ] {
            assert_eq!(renumbered(other), None, "{other}");
        }
    }

    #[test]
    fn candidates_are_the_tokens_with_digits() {
        let text = "Rif.CUD202600001 e il vecchio cud-2026-000001; targa AB123CD, P/123. Grazie";
        let found = candidate_numbers(text);
        for expected in [
            "CUD202600001",
            "cud-2026-000001",
            "CUD-2026-000001",
            "AB123CD",
            "P/123",
            "123",
        ] {
            assert!(found.iter().any(|f| f == expected), "{expected}: {found:?}");
        }
        assert!(
            !found.iter().any(|f| f == "Grazie" || f == "e"),
            "{found:?}"
        );
        let many: String = (0..5_000).map(|i| format!("N{i} ")).collect();
        assert_eq!(candidate_numbers(&many).len(), MAX_CANDIDATES);
    }
}
