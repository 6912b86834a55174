//! Text analysis for full-text search, done here once so that SQLite (FTS5) and
//! PostgreSQL (`tsvector` with the `simple` configuration) index and match exactly the
//! same terms: words are lowercased, reduced to their Italian stem (Snowball), and folded
//! to ASCII (`perché` and `perche` meet); common Italian words are left out.
//!
//! The index holds only these terms; what people read (the snippet) is cut from the
//! original text by [`snippet`], which highlights the words whose term matched.
//!
//! Telephone numbers are written in many ways (`+39 333 1234567`, `333 123 4567`,
//! `0039 3331234567`, `06/5551234`): besides its digit groups as words, every number found
//! in a text is indexed once more as one term made of [`PHONE_TERM_PREFIX`] and its
//! [`phone_key`], the same for every way of writing it; a query that looks like a number
//! matches either its words or that term ([`query_clauses`]).

use std::collections::HashSet;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

/// Words longer than this are not words (base64, hashes, long URLs) and are not indexed.
const MAX_WORD_CHARS: usize = 40;

/// At most this many terms of a query are used; the rest cannot narrow much further.
pub const MAX_QUERY_TERMS: usize = 12;

/// Words too common to help find anything, in their folded form.
const STOPWORDS: &[&str] = &[
    "a", "ad", "al", "alla", "alle", "agli", "ai", "che", "chi", "ci", "con", "da", "dal", "dalla",
    "dei", "del", "della", "delle", "degli", "di", "e", "ed", "gli", "i", "il", "in", "la", "le",
    "lo", "ma", "mi", "ne", "nei", "nel", "nella", "non", "o", "per", "si", "su", "sul", "sulla",
    "tra", "fra", "un", "una", "uno", "the", "of", "and", "to",
];

static STOPWORD_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOPWORDS.iter().copied().collect());

thread_local! {
    static ITALIAN: Stemmer = Stemmer::create(Algorithm::Italian);
}

/// The words of a text with their byte ranges, in order (letters and digits; everything
/// else, apostrophes included, separates words).
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// The index term of one word, or `None` for a word not worth indexing (a stopword, a
/// single letter, an over-long token).
pub fn term(word: &str) -> Option<String> {
    if word.chars().count() > MAX_WORD_CHARS {
        return None;
    }
    let lower = word.to_lowercase();
    let folded_word = fold(&lower);
    if STOPWORD_SET.contains(folded_word.as_str()) {
        return None;
    }
    if folded_word.len() < 2 && !folded_word.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let stem = if lower.chars().any(|c| c.is_ascii_digit()) {
        lower
    } else {
        ITALIAN.with(|s| s.stem(&lower).into_owned())
    };
    let term = fold(&stem);
    (!term.is_empty()).then_some(term)
}

/// Every term of a text, separated by spaces: what goes into the index (with a term for
/// each telephone number in it, see [`phone_key`]).
pub fn analyse(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 2);
    let mut push = |t: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    };
    let mut run = DigitRun::default();
    for (at, w) in words(text) {
        if run.continues_with(text, at, w) {
            run.groups.push((at, w));
        } else {
            run.distinct_phone_terms(&mut push);
            run.start(text, at, w);
        }
        if let Some(t) = term(w) {
            push(&t);
        }
    }
    run.distinct_phone_terms(&mut push);
    out
}

/// The distinct terms of a query, in order, at most [`MAX_QUERY_TERMS`]; every one must
/// match.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for (_, w) in words(query) {
        if let Some(t) = term(w)
            && !terms.contains(&t)
        {
            terms.push(t);
        }
        if terms.len() == MAX_QUERY_TERMS {
            break;
        }
    }
    terms
}

/// One condition of a query: an entry meets it when it holds every term of at least one
/// of the alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryClause {
    /// The alternatives, each a list of terms; never empty.
    pub any_of: Vec<Vec<String>>,
}

/// A query as conditions that must all be met, at most [`MAX_QUERY_TERMS`]: each word is
/// one condition of one term (as [`query_terms`]), except a run of digit groups that
/// makes a telephone number (`333 123 4567`, `+393331234567`), which is one condition met
/// by its words or by the number's term, however the text wrote the number.
pub fn query_clauses(query: &str) -> Vec<QueryClause> {
    let mut clauses: Vec<QueryClause> = Vec::new();
    let add = |clauses: &mut Vec<QueryClause>, clause: QueryClause| {
        if clauses.len() < MAX_QUERY_TERMS && !clauses.contains(&clause) {
            clauses.push(clause);
        }
    };
    let single = |w: &str| {
        term(w).map(|t| QueryClause {
            any_of: vec![vec![t]],
        })
    };
    let flush = |clauses: &mut Vec<QueryClause>, run: &DigitRun<'_>| {
        if run.groups.is_empty() {
            return;
        }
        let digits: String = run.groups.iter().map(|(_, g)| *g).collect();
        match plausible_phone_key(&digits, run.plus) {
            Some(key) => {
                let mut words: Vec<String> = Vec::new();
                for t in run.groups.iter().filter_map(|(_, g)| term(g)) {
                    if !words.contains(&t) {
                        words.push(t);
                    }
                }
                let mut any_of = vec![words];
                any_of.push(vec![format!("{PHONE_TERM_PREFIX}{key}")]);
                any_of.retain(|a| !a.is_empty());
                add(clauses, QueryClause { any_of });
            }
            None => {
                for clause in run.groups.iter().filter_map(|(_, g)| single(g)) {
                    add(clauses, clause);
                }
            }
        }
    };
    let mut run = DigitRun::default();
    for (at, w) in words(query) {
        if run.continues_with(query, at, w) {
            run.groups.push((at, w));
            continue;
        }
        flush(&mut clauses, &run);
        run.start(query, at, w);
        if run.groups.is_empty()
            && let Some(clause) = single(w)
        {
            add(&mut clauses, clause);
        }
    }
    flush(&mut clauses, &run);
    clauses
}

/// Every term a query's clauses name (for highlighting what matched).
pub fn clause_terms(clauses: &[QueryClause]) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for t in clauses.iter().flat_map(|c| c.any_of.iter().flatten()) {
        if !terms.contains(t) {
            terms.push(t.clone());
        }
    }
    terms
}

/// What starts the index term of a telephone number: `tel` and the number's
/// [`phone_key`], e.g. `tel331234567` for `+39 333 1234567`.
pub const PHONE_TERM_PREFIX: &str = "tel";

/// Fewer digits than this (without the international prefix) are not a telephone number.
const MIN_PHONE_DIGITS: usize = 6;

/// The most digits of a number, international prefix included (E.164 allows 15).
const MAX_PHONE_DIGITS: usize = 15;

/// The most digit groups one number is written in (`+39 06 555 12 34` has five).
const MAX_PHONE_GROUPS: usize = 5;

/// The key of a telephone number as the CTI look-up keys callers: its last nine digits,
/// here after taking off the international prefix (`+39`, `0039`), so that
/// `+39 333 1234567`, `0039 333 123 4567` and `3331234567` have one key
/// (`331234567`), and so have `+39 0587 1234` and `0587 1234`. `None` under six digits.
pub fn phone_key(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let plus = number.trim_start().starts_with('+');
    let national = national_digits(&digits, plus);
    (national.len() >= MIN_PHONE_DIGITS).then(|| last_nine(national).to_owned())
}

/// The digits after the international prefix: after `+39`/`0039` the Italian number,
/// after another `+`/`00` prefix the country code and number, otherwise all of them.
fn national_digits(digits: &str, plus: bool) -> &str {
    let international = if plus {
        Some(digits)
    } else {
        digits.strip_prefix("00")
    };
    match international {
        Some(rest) => rest.strip_prefix("39").unwrap_or(rest),
        None => digits,
    }
}

fn last_nine(digits: &str) -> &str {
    &digits[digits.len().saturating_sub(9)..]
}

/// The [`phone_key`] of a run of digits when it has the shape of a telephone number: after
/// an international prefix for Italy, or with none, an Italian number (a landline `0`
/// and an area code not starting with `0`, 6 to 11 digits; a mobile `3`, 9 to 11; a
/// non-geographic `8`, 6 to 10); after another international prefix, 7 to 15 digits.
/// Dates, amounts, protocol numbers and case references mostly fail the shape, so they
/// add no term.
fn plausible_phone_key(digits: &str, plus: bool) -> Option<&str> {
    if digits.len() > MAX_PHONE_DIGITS {
        return None;
    }
    let international = if plus {
        Some(digits)
    } else {
        digits.strip_prefix("00")
    };
    let (national, italian) = match international {
        Some(rest) => match rest.strip_prefix("39") {
            Some(italian) => (italian, true),
            None => (rest, false),
        },
        None => (digits, true),
    };
    let n = national.len();
    let b = national.as_bytes();
    let shaped = if italian {
        match b.first() {
            Some(b'0') => (6..=11).contains(&n) && b.get(1).is_some_and(|&d| d != b'0'),
            Some(b'3') => (9..=11).contains(&n),
            Some(b'8') => (6..=10).contains(&n),
            _ => false,
        }
    } else {
        (7..=MAX_PHONE_DIGITS).contains(&n) && b.first().is_some_and(|&d| d != b'0')
    };
    shaped.then(|| last_nine(national))
}

/// Consecutive words made only of digits, separated by at most three characters of
/// ` .-/()` on one line: where telephone numbers are looked for.
#[derive(Default)]
struct DigitRun<'a> {
    /// The groups with their byte offsets.
    groups: Vec<(usize, &'a str)>,
    /// Whether a `+` stands right before the first group.
    plus: bool,
}

impl<'a> DigitRun<'a> {
    fn is_group(word: &str) -> bool {
        word.len() <= MAX_PHONE_DIGITS && word.bytes().all(|b| b.is_ascii_digit())
    }

    /// Whether `word` at `at` is one more group of this run.
    fn continues_with(&self, text: &str, at: usize, word: &str) -> bool {
        let Some(&(last_at, last)) = self.groups.last() else {
            return false;
        };
        let gap = text.get(last_at + last.len()..at).unwrap_or("");
        Self::is_group(word)
            && (1..=3).contains(&gap.len())
            && gap
                .bytes()
                .all(|b| matches!(b, b' ' | b'.' | b'-' | b'/' | b'(' | b')'))
    }

    /// Starts a run at `word`, or leaves it empty when the word is not digits.
    fn start(&mut self, text: &str, at: usize, word: &'a str) {
        self.groups.clear();
        self.plus = false;
        if Self::is_group(word) {
            self.plus = text[..at].ends_with('+');
            self.groups.push((at, word));
        }
    }

    /// The numbers in the run, as (start, end, term): every stretch of up to
    /// [`MAX_PHONE_GROUPS`] groups with the shape of a number (a text may put two numbers
    /// side by side, or a number next to other figures).
    fn phone_terms(&self, mut emit: impl FnMut(usize, usize, &str)) {
        // On the stack: most runs are a lone short figure, and indexing must stay fast.
        let mut digits = [0u8; MAX_PHONE_DIGITS];
        for i in 0..self.groups.len() {
            let plus = self.plus && i == 0;
            let mut len = 0;
            for (at, group) in self.groups[i..].iter().take(MAX_PHONE_GROUPS) {
                if len + group.len() > MAX_PHONE_DIGITS {
                    break;
                }
                digits[len..len + group.len()].copy_from_slice(group.as_bytes());
                len += group.len();
                if len < MIN_PHONE_DIGITS {
                    continue;
                }
                let number = std::str::from_utf8(&digits[..len]).unwrap_or_default();
                if let Some(key) = plausible_phone_key(number, plus) {
                    let term = format!("{PHONE_TERM_PREFIX}{key}");
                    emit(
                        self.groups[i].0 - usize::from(plus),
                        at + group.len(),
                        &term,
                    );
                }
            }
        }
    }

    /// Each number's term once (the same number written with and without its prefix is
    /// found twice in `+39 333 1234567`).
    fn distinct_phone_terms(&self, push: &mut impl FnMut(&str)) {
        if self.groups.is_empty() {
            return;
        }
        let mut seen: Vec<String> = Vec::new();
        self.phone_terms(|_, _, term| {
            if !seen.iter().any(|s| s == term) {
                push(term);
                seen.push(term.to_owned());
            }
        });
    }
}

/// Whether an index term is a telephone number's (see [`PHONE_TERM_PREFIX`]).
fn is_phone_term(term: &str) -> bool {
    term.strip_prefix(PHONE_TERM_PREFIX)
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// The byte ranges of the telephone numbers in `text` whose term is one of `terms`.
fn phone_hits(text: &str, terms: &[String]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    let mut run = DigitRun::default();
    let mut collect = |run: &DigitRun<'_>| {
        run.phone_terms(|start, end, t| {
            if terms.iter().any(|x| x == t) {
                hits.push((start, end));
            }
        });
    };
    for (at, w) in words(text) {
        if run.continues_with(text, at, w) {
            run.groups.push((at, w));
        } else {
            collect(&run);
            run.start(text, at, w);
        }
    }
    collect(&run);
    hits
}

/// Lowercase ASCII where the letter has an ASCII base (accents and other marks dropped).
fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// A short extract of `text` around the first words matching `terms`, HTML-escaped, with
/// the matching words in `<mark>`; `None` when no word matches. About `width` characters.
pub fn snippet(text: &str, terms: &[String], width: usize) -> Option<String> {
    let mut hits: Vec<(usize, usize)> = words(text)
        .filter(|(_, w)| term(w).is_some_and(|t| terms.contains(&t)))
        .map(|(at, w)| (at, at + w.len()))
        .take(50)
        .collect();
    if terms.iter().any(|t| is_phone_term(t)) {
        // A number matched by its term: mark the whole number, merged with its groups.
        hits.extend(phone_hits(text, terms));
        hits.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(hits.len());
        for (s, e) in hits {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged.truncate(50);
        hits = merged;
    }
    let &(first, _) = hits.first()?;
    // Start a little before the first hit, on a character boundary and at a word start.
    let mut start = text[..first]
        .char_indices()
        .rev()
        .nth(width / 4)
        .map_or(0, |(i, _)| i);
    if start > 0 {
        start = text[start..]
            .find(char::is_whitespace)
            .map_or(start, |i| start + i + 1)
            .min(first);
    }
    let mut end = text[start..]
        .char_indices()
        .nth(width)
        .map_or(text.len(), |(i, _)| start + i);
    if end < text.len() {
        end = text[..end]
            .rfind(char::is_whitespace)
            .filter(|&i| i > first)
            .unwrap_or(end);
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in hits.iter().filter(|(s, e)| *s >= start && *e <= end) {
        push_escaped(&mut out, &text[at..s]);
        out.push_str("<mark>");
        push_escaped(&mut out, &text[s..e]);
        out.push_str("</mark>");
        at = e;
    }
    push_escaped(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    Some(out)
}

/// Appends `s` with HTML's special characters escaped and runs of whitespace made one space.
fn push_escaped(out: &mut String, s: &str) {
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_words_meet_their_forms_and_accents() {
        assert_eq!(term("Permessi"), term("permesso"));
        assert_eq!(term("perché"), term("perche"));
        assert_eq!(term("città"), term("citta"));
        assert_eq!(term("Circolazione"), term("circolazioni"));
        assert_eq!(term("della"), None);
        assert_eq!(term("x"), None);
        assert_eq!(term("7").as_deref(), Some("7"));
        assert_eq!(term("AB123CD").as_deref(), Some("ab123cd"));
        assert_eq!(term(&"a".repeat(41)), None);
    }

    #[test]
    fn analysis_and_queries_agree() {
        let indexed = analyse("Carta di circolazione del veicolo targato AB 123 CD, dell'auto");
        for t in query_terms("CIRCOLAZIONI veicoli auto") {
            assert!(indexed.split(' ').any(|x| x == t), "{t} not in {indexed}");
        }
        assert_eq!(query_terms("di la il"), Vec::<String>::new());
        assert_eq!(query_terms(&"parola ".repeat(100)).len(), 1);
    }

    #[test]
    fn snippets_mark_matches_and_escape_the_rest() {
        let text = format!(
            "{} Il contratto di <locazione> registrato & firmato. {}",
            "parola ".repeat(40),
            "fine ".repeat(60)
        );
        let s = snippet(&text, &query_terms("locazioni"), 80).unwrap();
        assert!(s.contains("<mark>locazione</mark>"), "{s}");
        assert!(s.contains("&lt;") && s.contains("&amp;"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.chars().count() < 200, "{s}");
        assert_eq!(snippet("niente qui", &query_terms("locazione"), 80), None);
        // Multi-byte text never splits a character.
        let accented = "è".repeat(300) + " pangolino " + &"à".repeat(300);
        assert!(
            snippet(&accented, &query_terms("pangolino"), 50)
                .unwrap()
                .contains("<mark>pangolino</mark>")
        );
    }

    /// The index term a query clause offers for a telephone number, if any.
    fn phone_alternative(q: &str) -> Option<String> {
        query_clauses(q)
            .into_iter()
            .flat_map(|c| c.any_of)
            .flatten()
            .find(|t| is_phone_term(t))
    }

    #[test]
    fn phone_numbers_have_one_key_however_written() {
        for written in [
            "+39 333 1234567",
            "3331234567",
            "333 123 4567",
            "+393331234567",
            "0039 333 1234567",
            "00393331234567",
            "333-123.45.67",
        ] {
            assert_eq!(
                phone_key(written).as_deref(),
                Some("331234567"),
                "{written}"
            );
        }
        assert_eq!(phone_key("+39 0587 1234"), phone_key("0587 1234"));
        assert_eq!(phone_key("12345"), None);
    }

    #[test]
    fn a_number_in_a_text_is_found_without_its_prefix_and_in_any_grouping() {
        let indexed = analyse("Anna Neri\ntelefono: +39 333 1234567\nfax 06/5551234");
        let terms: Vec<&str> = indexed.split(' ').collect();
        for q in [
            "3331234567",
            "333 123 4567",
            "+393331234567",
            "0039 333 1234567",
            "00393331234567",
            "+39 333 1234567",
        ] {
            let phone = phone_alternative(q).unwrap_or_else(|| panic!("{q}: no number"));
            assert!(
                terms.contains(&phone.as_str()),
                "{q}: {phone} not in {indexed}"
            );
        }
        let landline = phone_alternative("06 555 1234").unwrap();
        assert!(terms.contains(&landline.as_str()), "{indexed}");
        // The number's words still match as words (an old query keeps its meaning).
        assert_eq!(
            query_clauses("333 1234567")[0].any_of[0],
            vec!["333".to_string(), "1234567".to_string()]
        );
        // Each number once, even though `+39 333 1234567` holds it twice.
        assert_eq!(indexed.matches("tel331234567").count(), 1, "{indexed}");
    }

    #[test]
    fn dates_references_and_amounts_are_not_numbers() {
        let indexed = analyse(
            "Pratica ZTL-2026-000123 del 26/11/2026, protocollo 2026/0000123, euro 1.234,56, 333",
        );
        assert!(!indexed.contains(PHONE_TERM_PREFIX), "{indexed}");
        for q in [
            "ZTL-2026-000123",
            "2026/0000123",
            "26/11/2026",
            "333",
            "permesso 2026",
        ] {
            let clauses = query_clauses(q);
            let plain: Vec<QueryClause> = query_terms(q)
                .into_iter()
                .map(|t| QueryClause {
                    any_of: vec![vec![t]],
                })
                .collect();
            assert_eq!(clauses, plain, "{q}");
        }
        // Two numbers side by side are both found.
        let two = analyse("tel. 06 5551234 / 333 1234567 ore 9");
        assert!(
            two.contains("tel065551234") && two.contains("tel331234567"),
            "{two}"
        );
    }

    #[test]
    fn a_number_found_by_its_term_is_marked_in_the_snippet() {
        let terms = clause_terms(&query_clauses("3331234567"));
        let s = snippet("Richiamare il numero +39 333 1234567 domani", &terms, 80).unwrap();
        assert!(s.contains("<mark>+39 333 1234567</mark>"), "{s}");
        let terms = clause_terms(&query_clauses("333 1234567"));
        let s = snippet("Richiamare il numero +39 333 1234567 domani", &terms, 80).unwrap();
        assert!(s.contains("<mark>+39 333 1234567</mark>"), "{s}");
    }
}
