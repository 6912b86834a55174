//! Which required documents a received file is, from its name and its text: the clerk
//! ticks the category's checklist from what already came in rather than typing ids. The
//! guess is only a proposal (the operator confirms it by saving), so it looks for the words
//! an Italian citizen or an office would put in a file name or on the first page.
//!
//! Pure: the caller gives the file name and the text read from it (OCR or extracted).

use unicode_normalization::UnicodeNormalization;

/// Only the beginning of a document's text is read: the title and first lines say what
/// it is, while a letter's body may mention every document it encloses.
const TEXT_CHARS: usize = 1_500;

/// The required-document ids of the policies (`categories[].documents`) and the phrases,
/// folded (lowercase, no accents, words separated by one space), that name each.
const KEYWORDS: &[(&str, &[&str])] = &[
    (
        "carta_circolazione",
        &[
            "carta di circolazione",
            "carta circolazione",
            "libretto",
            "libretto di circolazione",
            "documento unico di circolazione",
            "certificato di circolazione",
        ],
    ),
    (
        "documento_identita",
        &[
            "documento d identita",
            "documento di identita",
            "documento identita",
            "carta d identita",
            "carta di identita",
            "carta identita",
            "identita",
            "cie",
            "patente",
            "patente di guida",
            "passaporto",
        ],
    ),
    (
        "contratto_locazione",
        &[
            "contratto di locazione",
            "contratto locazione",
            "locazione",
            "contratto di affitto",
            "affitto",
            "comodato",
            "residenza",
            "certificato di residenza",
            "domicilio",
        ],
    ),
    (
        "contrassegno_cude",
        &[
            "contrassegno cude",
            "cude",
            "contrassegno disabili",
            "contrassegno invalidi",
            "contrassegno unificato disabili europeo",
        ],
    ),
    (
        "visura_camerale",
        &[
            "visura camerale",
            "visura",
            "camera di commercio",
            "registro delle imprese",
            "registro imprese",
        ],
    ),
    (
        "iscrizione_ordine",
        &[
            "iscrizione all ordine",
            "iscrizione ordine",
            "ordine dei medici",
            "albo professionale",
            "iscrizione all albo",
        ],
    ),
];

/// The words of a text, folded: lowercase, accents dropped, every run of other characters
/// (`_`, `-`, `.`, `'`) one space, padded with a space at
/// both ends so that a phrase matches only whole words.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.nfd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The required-document ids (as in `categories[].documents`) that a document with this
/// file name and this text (empty when none was read) appears to be, in a fixed order,
/// each at most once. Unknown kinds give an empty list.
pub fn recognise(filename: &str, text: &str) -> Vec<&'static str> {
    let beginning: String = text.chars().take(TEXT_CHARS).collect();
    let haystack = format!("{}{}", fold(filename), fold(&beginning));
    KEYWORDS
        .iter()
        .filter(|(_, phrases)| phrases.iter().any(|p| haystack.contains(&format!(" {p} "))))
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_what_they_are() {
        assert_eq!(recognise("libretto.pdf", ""), ["carta_circolazione"]);
        assert_eq!(
            recognise("Carta_Identità-fronte.JPG", ""),
            ["documento_identita"]
        );
        assert_eq!(recognise("patente_mario.png", ""), ["documento_identita"]);
        assert_eq!(recognise("passaporto.pdf", ""), ["documento_identita"]);
        assert_eq!(recognise("CUDE-2026.pdf", ""), ["contrassegno_cude"]);
        assert_eq!(
            recognise("contratto-di-locazione.pdf", ""),
            ["contratto_locazione"]
        );
        assert_eq!(recognise("visura.pdf", ""), ["visura_camerale"]);
    }

    #[test]
    fn the_text_is_read_when_the_name_says_nothing() {
        let text = "REPUBBLICA ITALIANA\nCARTA DI CIRCOLAZIONE\nTarga AB123CD";
        assert_eq!(recognise("scan0001.pdf", text), ["carta_circolazione"]);
        let id = "Ministero dell'Interno — Carta d'identità elettronica n. CA00000AA";
        assert_eq!(recognise("IMG_2231.jpg", id), ["documento_identita"]);
        assert_eq!(
            recognise("doc.pdf", "Contrassegno unificato disabili europeo"),
            ["contrassegno_cude"]
        );
    }

    #[test]
    fn one_document_may_satisfy_two_and_order_is_fixed() {
        assert_eq!(
            recognise("patente e libretto.pdf", ""),
            ["carta_circolazione", "documento_identita"]
        );
    }

    #[test]
    fn words_must_be_whole_and_unknown_files_are_nothing() {
        assert!(recognise("specie.pdf", "").is_empty());
        assert!(recognise("foto.jpg", "Una foto del cortile").is_empty());
        assert!(recognise("", "").is_empty());
        // "libretti" is not "libretto"; "cuderi" is not "cude".
        assert!(recognise("libretti_cuderi.pdf", "").is_empty());
    }

    #[test]
    fn only_the_beginning_of_a_long_text_counts() {
        let text = format!("{} passaporto", "parola ".repeat(400));
        assert!(recognise("lettera.pdf", &text).is_empty());
        assert_eq!(
            recognise("lettera.pdf", "Passaporto n. YA1234567"),
            ["documento_identita"]
        );
    }
}
