//! Text for the standard Helvetica fonts: WinAnsi encoding (so accented Italian letters print
//! as themselves without embedding a font), width measurement, wrapping and truncation.

use crate::metrics;
use crate::page::Weight;

/// The Helvetica widths of a weight, by WinAnsi byte.
fn widths(face: Weight) -> &'static [u16; 256] {
    match face {
        Weight::Regular => &metrics::HELVETICA,
        Weight::Bold => &metrics::HELVETICA_BOLD,
    }
}

/// The WinAnsi byte for the ellipsis, used to mark truncated text.
pub(crate) const ELLIPSIS: u8 = 0x85;

/// Encodes `text` in WinAnsiEncoding (Windows-1252). Letters outside it are transliterated to
/// their base letter where we know it, anything else becomes `?`; control characters (tabs,
/// newlines) become spaces so that the caller controls line breaks.
pub(crate) fn to_winansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = c as u32;
        match code {
            0x20..=0x7E => out.push(code as u8),
            0x00..=0x1F | 0x7F..=0x9F => out.push(b' '),
            0xA0..=0xFF => out.push(code as u8),
            _ => match cp1252_extra(c) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(transliterate(c).as_bytes()),
            },
        }
    }
    out
}

/// Decodes WinAnsi bytes as made by [`to_winansi`] back into text, so that laid-out lines
/// can travel in the [page model](crate::page) (the Helvetica writer encodes them again, to
/// the same bytes). DEL and the five bytes Windows-1252 leaves undefined become '?'.
pub(crate) fn from_winansi(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x7F..=0x9F => CP1252_EXTRAS
                .iter()
                .copied()
                .find(|&c| cp1252_extra(c) == Some(b))
                .unwrap_or('?'),
            _ => char::from(b),
        })
        .collect()
}

/// Every character [`cp1252_extra`] knows.
const CP1252_EXTRAS: [char; 27] = [
    '€', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 'Ž', '‘', '’', '“', '”', '•', '–',
    '—', '˜', '™', 'š', '›', 'œ', 'ž', 'Ÿ',
];

/// The characters that Windows-1252 places in 0x80..=0x9F.
fn cp1252_extra(c: char) -> Option<u8> {
    Some(match c {
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => return None,
    })
}

/// A plain-ASCII stand-in for letters WinAnsi lacks (mostly Latin Extended-A, as found in
/// foreign names), and for a few typographic characters.
fn transliterate(c: char) -> &'static str {
    match c {
        'Ā' | 'Ă' | 'Ą' => "A",
        'ā' | 'ă' | 'ą' => "a",
        'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ď' | 'Đ' => "D",
        'ď' | 'đ' => "d",
        'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ń' | 'Ņ' | 'Ň' => "N",
        'ń' | 'ņ' | 'ň' => "n",
        'Ō' | 'Ŏ' | 'Ő' => "O",
        'ō' | 'ŏ' | 'ő' => "o",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Ș' => "S",
        'ś' | 'ŝ' | 'ş' | 'ș' => "s",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ŷ' => "Y",
        'ŷ' => "y",
        'Ź' | 'Ż' => "Z",
        'ź' | 'ż' => "z",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => "-",
        '\u{2032}' => "'",
        '\u{2033}' => "\"",
        '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => " ",
        // Zero-width characters and combining marks vanish.
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{0300}'..='\u{036F}' => "",
        _ => "?",
    }
}

/// Width of WinAnsi-encoded `text` in points at `size`.
pub(crate) fn width(text: &[u8], face: Weight, size: f32) -> f32 {
    let widths = widths(face);
    let units: u32 = text
        .iter()
        .map(|&b| u32::from(widths[usize::from(b)]))
        .sum();
    units as f32 * size / 1000.0
}

/// Cuts `text` so that it fits in `max_width`, ending it with an ellipsis when anything was cut.
pub(crate) fn truncate(text: &[u8], face: Weight, size: f32, max_width: f32) -> Vec<u8> {
    if width(text, face, size) <= max_width {
        return text.to_vec();
    }
    let budget = max_width - width(&[ELLIPSIS], face, size);
    let mut out = Vec::new();
    let mut used = 0.0;
    for &b in text {
        let w = width(&[b], face, size);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(b);
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out.push(ELLIPSIS);
    out
}

/// Breaks `text` into at most `max_lines` lines no wider than `max_width`, at spaces where
/// possible (a word wider than a line is cut); the last line ends with an ellipsis if text
/// remains.
pub(crate) fn wrap(
    text: &[u8],
    face: Weight,
    size: f32,
    max_width: f32,
    max_lines: usize,
) -> Vec<Vec<u8>> {
    // Words, with any word wider than a line cut into pieces that fit.
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut piece = Vec::new();
        for &b in word {
            piece.push(b);
            if piece.len() > 1 && width(&piece, face, size) > max_width {
                piece.pop();
                pieces.push(std::mem::take(&mut piece));
                piece.push(b);
            }
        }
        pieces.push(piece);
    }
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut next = 0;
    while next < pieces.len() && lines.len() < max_lines {
        let piece = &pieces[next];
        let fits = if current.is_empty() {
            true
        } else {
            width(&current, face, size) + width(b" ", face, size) + width(piece, face, size)
                <= max_width
        };
        if fits {
            if !current.is_empty() {
                current.push(b' ');
            }
            current.extend_from_slice(piece);
            next += 1;
        } else {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() && lines.len() < max_lines {
        lines.push(current);
    }
    if next < pieces.len()
        && let Some(last) = lines.last_mut()
    {
        let mark = width(&[ELLIPSIS], face, size);
        while !last.is_empty() && width(last, face, size) + mark > max_width {
            last.pop();
        }
        while last.last() == Some(&b' ') {
            last.pop();
        }
        last.push(ELLIPSIS);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accented_italian_letters_map_to_latin1_bytes() {
        assert_eq!(
            to_winansi("àèéìòù"),
            vec![0xE0, 0xE8, 0xE9, 0xEC, 0xF2, 0xF9]
        );
        assert_eq!(to_winansi("È €"), vec![0xC8, b' ', 0x80]);
        assert_eq!(to_winansi("Łódź\n"), b"L\xF3dz ".to_vec());
        assert_eq!(to_winansi("日本"), b"??".to_vec());
    }

    #[test]
    fn decoding_gives_back_the_text_that_encodes_to_the_same_bytes() {
        let encoded = to_winansi("Città € “così” … Łódź 日本\tfine");
        let decoded = from_winansi(&encoded);
        assert_eq!(decoded, "Città € “così” … Lódz ?? fine");
        assert_eq!(to_winansi(&decoded), encoded);
        // Every byte the encoder can produce comes back as itself.
        let all: Vec<u8> = (0x20..=0xFF_u8)
            .filter(|&b| from_winansi(&[b]) != "?")
            .collect();
        assert_eq!(to_winansi(&from_winansi(&all)), all);
        assert_eq!(from_winansi(&[0x81]), "?");
    }

    #[test]
    fn widths_match_helvetica() {
        // "Hello" in Helvetica: H 722 e 556 l 222 l 222 o 556.
        assert!((width(b"Hello", Weight::Regular, 1000.0) - 2278.0).abs() < 0.01);
        assert!(width(b"W", Weight::Bold, 10.0) > width(b"i", Weight::Bold, 10.0));
    }

    #[test]
    fn wrapping_respects_width_and_line_count() {
        let text = to_winansi(
            "Richiesta di occupazione di suolo pubblico per un dehors stagionale in via Garibaldi",
        );
        let lines = wrap(&text, Weight::Regular, 12.0, 150.0, 2);
        assert_eq!(lines.len(), 2);
        for l in &lines {
            assert!(width(l, Weight::Regular, 12.0) <= 150.0);
        }
        assert_eq!(lines[1].last(), Some(&ELLIPSIS));
        let one = wrap(b"breve", Weight::Regular, 12.0, 150.0, 2);
        assert_eq!(one, vec![b"breve".to_vec()]);
        let long_word = vec![b'W'; 200];
        let lines = wrap(&long_word, Weight::Bold, 12.0, 100.0, 3);
        assert_eq!(lines.len(), 3);
        for l in &lines {
            assert!(width(l, Weight::Bold, 12.0) <= 100.0 + 0.01);
        }
        assert!(wrap(b"", Weight::Regular, 12.0, 100.0, 3).is_empty());
    }
}
