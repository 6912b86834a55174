//! The Helvetica writer: sheets of the [page model](crate::page) written with the two
//! standard PDF fonts in WinAnsi encoding, so no font file is embedded and accented Italian
//! letters print as themselves. Cover sheets, letters and permits are written this way;
//! their text is laid out with the Helvetica metrics of [`text`](crate::text).

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::page::{self, Mark, Sheet, Weight};
use crate::text;

/// The regular and bold font resources of every page.
const REGULAR: Name<'static> = Name(b"F1");
/// See [`REGULAR`].
const BOLD: Name<'static> = Name(b"F2");

/// Writes `sheets` as one PDF titled `title`.
pub(crate) fn write_pdf(title: &str, sheets: &[Sheet]) -> Vec<u8> {
    let (catalog_id, page_tree_id, font_id, bold_id, info_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    let ids: Vec<(Ref, Ref)> = (0..sheets.len() as i32)
        .map(|i| (Ref::new(6 + 2 * i), Ref::new(7 + 2 * i)))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id)
        .kids(ids.iter().map(|(page, _)| *page))
        .count(ids.len() as i32);
    for ((page_id, content_id), sheet) in ids.iter().zip(sheets) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, sheet.width, sheet.height));
        page.parent(page_tree_id);
        page.contents(*content_id);
        {
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            fonts.pair(REGULAR, font_id);
            fonts.pair(BOLD, bold_id);
        }
        page.finish();
        pdf.stream(*content_id, &content(sheet));
    }
    pdf.type1_font(font_id)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold_id)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info_id)
        .title(TextStr(title))
        .producer(TextStr("Sportello"));
    pdf.finish()
}

/// The content stream of one sheet. PDF counts y from the bottom of the page, the page model
/// from the top.
fn content(sheet: &Sheet) -> Vec<u8> {
    let mut content = Content::new();
    let flip = |y: f32| sheet.height - y;
    for mark in &sheet.marks {
        match mark {
            Mark::Text {
                x,
                baseline,
                size,
                weight,
                text,
            } => {
                let font = match weight {
                    Weight::Regular => REGULAR,
                    Weight::Bold => BOLD,
                };
                content.begin_text();
                content.set_font(font, *size);
                content.set_text_matrix([1.0, 0.0, 0.0, 1.0, *x, flip(*baseline)]);
                content.show(Str(&text::to_winansi(text)));
                content.end_text();
            }
            Mark::Rule { from, to, width } => {
                content.set_line_width(*width);
                content.move_to(from.0, flip(from.1));
                content.line_to(to.0, flip(to.1));
                content.stroke();
            }
            Mark::Filled { rects } => {
                content.set_fill_gray(0.0);
                for rect in rects {
                    let (x, y, w, h) = bottom_left(rect, sheet.height);
                    content.rect(x, y, w, h);
                }
                content.fill_nonzero();
            }
            Mark::Outline { rect, width } => {
                content.set_line_width(*width);
                let (x, y, w, h) = bottom_left(rect, sheet.height);
                content.rect(x, y, w, h);
                content.stroke();
            }
        }
    }
    content.finish().to_vec()
}

/// `rect` as PDF wants it: lower-left corner, width, height.
fn bottom_left(rect: &page::Rect, page_height: f32) -> (f32, f32, f32, f32) {
    (
        rect.x,
        page_height - rect.top - rect.height,
        rect.width,
        rect.height,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_placed_from_the_bottom_of_the_page_in_winansi() {
        let sheet = Sheet {
            width: 200.0,
            height: 100.0,
            marks: vec![
                Mark::Text {
                    x: 10.0,
                    baseline: 30.0,
                    size: 12.0,
                    weight: Weight::Bold,
                    text: "Città".into(),
                },
                Mark::Filled {
                    rects: vec![page::Rect {
                        x: 5.0,
                        top: 10.0,
                        width: 4.0,
                        height: 20.0,
                    }],
                },
                Mark::Outline {
                    rect: page::Rect {
                        x: 1.0,
                        top: 2.0,
                        width: 3.0,
                        height: 4.0,
                    },
                    width: 1.5,
                },
            ],
        };
        let stream = content(&sheet);
        let text = String::from_utf8_lossy(&stream);
        assert!(text.contains("/F2 12 Tf"), "{text}");
        assert!(text.contains("1 0 0 1 10 70 Tm"), "{text}");
        // "Città" in WinAnsi: à is the single byte E0.
        assert!(text.contains("<43697474E0> Tj"), "{text}");
        assert!(text.contains("5 70 4 20 re\nf"), "{text}");
        assert!(text.contains("1.5 w\n1 94 3 4 re\nS"), "{text}");
        let pdf = write_pdf("Prova", &[sheet.clone(), sheet]);
        let raw = String::from_utf8_lossy(&pdf);
        assert!(raw.contains("/Count 2"));
        assert!(raw.contains("/MediaBox [0 0 200 100]"));
        assert!(raw.contains("/BaseFont /Helvetica-Bold"));
    }
}
