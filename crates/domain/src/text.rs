//! Text analysis for full-text search, done here once so that SQLite (FTS5) and
//! PostgreSQL (`tsvector` with the `simple` configuration) index and match exactly the
//! same terms: words are lowercased, reduced to their Italian stem (Snowball), and folded
//! to ASCII (`perché` and `perche` meet); common Italian words are left out.
//!
//! The index holds only these terms; what people read (the snippet) is cut from the
//! original text by [`snippet`], which highlights the words whose term matched.

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

/// Every term of a text, separated by spaces: what goes into the index.
pub fn analyse(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 2);
    for (_, w) in words(text) {
        if let Some(t) = term(w) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&t);
        }
    }
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

/// Lowercase ASCII where the letter has an ASCII base (accents and other marks dropped).
fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// A short extract of `text` around the first words matching `terms`, HTML-escaped, with
/// the matching words in `<mark>`; `None` when no word matches. About `width` characters.
pub fn snippet(text: &str, terms: &[String], width: usize) -> Option<String> {
    let hits: Vec<(usize, usize)> = words(text)
        .filter(|(_, w)| term(w).is_some_and(|t| terms.contains(&t)))
        .map(|(at, w)| (at, at + w.len()))
        .take(50)
        .collect();
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
}
