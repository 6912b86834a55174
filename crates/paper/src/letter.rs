//! Letters the office signs: a letterhead, the recipient, place and date, the subject,
//! paragraphs and tables, on as many A4 pages as they need, each numbered. Used for the
//! annulment requests sent to the police and for letters to citizens.

use crate::draw::{Canvas, MARGIN, MM, PAGE_H, PAGE_W};
use crate::helvetica;
use crate::page::{Sheet, Weight};
use crate::text;

/// A part of a letter's body.
#[derive(Clone, Debug)]
pub enum Block {
    /// A paragraph, wrapped to the page width.
    Paragraph(String),
    /// A bold line introducing what follows.
    Heading(String),
    /// A table: column titles with their share of the text width (summing to at most 1),
    /// then rows. Cells too wide for their column are cut with an ellipsis.
    Table {
        /// (title, share of the width) per column.
        columns: Vec<(String, f32)>,
        /// The cells, row by row.
        rows: Vec<Vec<String>>,
    },
}

/// What a letter says.
#[derive(Clone, Debug)]
pub struct Letter<'a> {
    /// The letterhead, one line each (the administration, the office).
    pub letterhead: &'a [String],
    /// The recipient's lines.
    pub recipient: &'a [String],
    /// "Place, date" line, formatted by the caller.
    pub place_date: &'a str,
    /// The case reference the letter belongs to.
    pub reference: &'a str,
    /// The subject ("Oggetto").
    pub subject: &'a str,
    /// The body.
    pub body: &'a [Block],
    /// Who signs, printed under the body.
    pub signature: &'a str,
}

const SIZE: f32 = 11.0;
const LEADING: f32 = 15.0;
const TABLE_SIZE: f32 = 9.0;
const TABLE_LEADING: f32 = 12.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Lowest baseline of body text; the page number sits below it.
const BOTTOM: f32 = MARGIN + 10.0 * MM;

/// Lays text out on pages, starting a new page when the next line would not fit.
struct Pages {
    done: Vec<Canvas>,
    current: Canvas,
    y: f32,
}

impl Pages {
    fn new() -> Pages {
        Pages {
            done: Vec::new(),
            current: Canvas::new(),
            y: PAGE_H - MARGIN,
        }
    }

    /// Makes room for `height` points below the current baseline, on a new page if needed.
    fn room(&mut self, height: f32) {
        if self.y - height < BOTTOM {
            self.done
                .push(std::mem::replace(&mut self.current, Canvas::new()));
            self.y = PAGE_H - MARGIN;
        }
    }

    fn line(&mut self, face: Weight, size: f32, leading: f32, x: f32, text: &[u8]) {
        self.room(leading);
        self.y -= leading;
        self.current.show_at(face, size, text, x, self.y);
    }

    fn wrapped(&mut self, face: Weight, text: &str) {
        for line in text::wrap(&text::to_winansi(text), face, SIZE, TEXT_W, usize::MAX) {
            self.line(face, SIZE, LEADING, MARGIN, &line);
        }
    }

    fn gap(&mut self, points: f32) {
        self.y -= points;
    }

    fn row(&mut self, face: Weight, columns: &[(String, f32)], cells: &[String]) {
        let mut x = MARGIN;
        self.room(TABLE_LEADING);
        self.y -= TABLE_LEADING;
        for ((_, share), cell) in columns.iter().zip(cells) {
            let width = share * TEXT_W;
            let fitted = text::truncate(&text::to_winansi(cell), face, TABLE_SIZE, width - 4.0);
            self.current.show_at(face, TABLE_SIZE, &fitted, x, self.y);
            x += width;
        }
    }

    /// The pages, each with "Pagina i di n" at its foot.
    fn finish(mut self) -> Vec<Sheet> {
        self.done.push(self.current);
        let total = self.done.len();
        self.done
            .into_iter()
            .enumerate()
            .map(|(i, mut canvas)| {
                let footer = text::to_winansi(&format!("Pagina {} di {total}", i + 1));
                let w = text::width(&footer, Weight::Regular, 8.0);
                canvas.show_at(Weight::Regular, 8.0, &footer, PAGE_W - MARGIN - w, MARGIN);
                canvas.into_sheet()
            })
            .collect()
    }
}

/// Renders the letter as an A4 PDF.
pub fn letter_pdf(letter: &Letter) -> Vec<u8> {
    let mut pages = Pages::new();
    for line in letter.letterhead {
        pages.wrapped(Weight::Bold, line);
    }
    pages.gap(10.0 * MM);
    for line in letter.recipient {
        let text = text::to_winansi(line);
        let text = text::truncate(&text, Weight::Regular, SIZE, TEXT_W / 2.0);
        pages.line(Weight::Regular, SIZE, LEADING, PAGE_W / 2.0, &text);
    }
    pages.gap(8.0 * MM);
    pages.wrapped(Weight::Regular, letter.place_date);
    pages.wrapped(Weight::Regular, &format!("Pratica {}", letter.reference));
    pages.gap(4.0 * MM);
    pages.wrapped(Weight::Bold, &format!("Oggetto: {}", letter.subject));
    for block in letter.body {
        pages.gap(3.0 * MM);
        match block {
            Block::Paragraph(text) => pages.wrapped(Weight::Regular, text),
            Block::Heading(text) => pages.wrapped(Weight::Bold, text),
            Block::Table { columns, rows } => {
                let titles: Vec<String> = columns.iter().map(|(t, _)| t.clone()).collect();
                pages.row(Weight::Bold, columns, &titles);
                for row in rows {
                    pages.row(Weight::Regular, columns, row);
                }
            }
        }
    }
    pages.gap(12.0 * MM);
    let signature = text::to_winansi(letter.signature);
    let signature = text::truncate(&signature, Weight::Regular, SIZE, TEXT_W / 2.0);
    pages.line(Weight::Regular, SIZE, LEADING, PAGE_W / 2.0, &signature);
    helvetica::write_pdf(letter.subject, &pages.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(rows: usize) -> Vec<u8> {
        let letterhead = vec![
            "Comune di Esempio".to_owned(),
            "Ufficio Permessi".to_owned(),
        ];
        let recipient = vec!["Comando di Polizia Locale".to_owned()];
        let body = vec![
            Block::Paragraph("Si chiede l'annullamento in autotutela dei verbali.".into()),
            Block::Table {
                columns: vec![("Transito".into(), 0.5), ("Varco".into(), 0.5)],
                rows: (0..rows)
                    .map(|i| vec![format!("T{i:05}"), "V01".into()])
                    .collect(),
            },
        ];
        letter_pdf(&Letter {
            letterhead: &letterhead,
            recipient: &recipient,
            place_date: "Esempio, 29/11/2026",
            reference: "SEG-2026-000001",
            subject: "Richiesta di annullamento di verbali per transito in ZTL",
            body: &body,
            signature: "Il responsabile del procedimento",
        })
    }

    #[test]
    fn a_short_letter_is_one_page_with_its_text() {
        let pdf = letter(3);
        let text = String::from_utf8_lossy(&pdf);
        assert!(pdf.starts_with(b"%PDF"));
        assert!(text.contains("/Count 1"), "one page");
        assert!(text.contains("SEG-2026-000001"));
        assert!(text.contains("T00002"));
        assert!(text.contains("Pagina 1 di 1"));
    }

    #[test]
    fn a_long_table_flows_onto_numbered_pages() {
        // About 58 table rows fit on a page: 150 rows need 3 pages.
        let pdf = letter(150);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/Count 3"), "150 rows need 3 pages");
        assert!(text.contains("T00149"), "the last row is printed");
        assert_eq!(text.matches("(Pagina ").count(), 3, "every page numbered");
        assert!(text.contains("Pagina 3 di 3"));
    }
}
