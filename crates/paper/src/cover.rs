//! The cover sheet: one A4 page, printed for a case, that the operator lays on top of the
//! case's documents before scanning, so that a batch can later be split by case.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use qrcode::{Color, EcLevel, QrCode};

use crate::text::{self, Face};

/// What the QR code on a cover sheet says before the case reference; a QR code without it
/// (a stamp, a payment code on a form) is never taken for a cover sheet.
pub const COVER_QR_PREFIX: &str = "SPORTELLO:";

/// The Italian instruction printed on every cover sheet.
const INSTRUCTION: &str =
    "Mettere questo foglio sopra i documenti della pratica prima di scansionarli.";

/// What is printed on a cover sheet. Borrowed, because the caller already holds the case.
#[derive(Clone, Copy, Debug)]
pub struct CoverSheet<'a> {
    /// The case reference (e.g. `OSP-2025-000123`); it goes into the QR code and is printed
    /// large so that a person can read it too.
    pub reference: &'a str,
    /// The human label of the case type, as the operator knows it.
    pub case_type: &'a str,
    /// The case subject; long subjects are wrapped and cut.
    pub subject: &'a str,
    /// When the sheet was printed, already formatted by the caller in the office's time zone.
    pub printed_at: &'a str,
}

pub(crate) const MM: f32 = 72.0 / 25.4;
pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
pub(crate) const MARGIN: f32 = 20.0 * MM;
/// Side of the QR code's modules area (without quiet zone): large enough to survive a poor
/// scan at 150 dpi.
pub(crate) const QR_SIDE: f32 = 65.0 * MM;
/// Free space around the QR code, well beyond the 4 modules the standard asks for.
pub(crate) const QR_QUIET: f32 = 12.0 * MM;

/// Renders the cover sheet as a one-page A4 PDF. The QR code (error correction Q, falling
/// back to lower levels only for absurdly long references) is drawn as vector squares so it
/// prints sharply at any printer resolution; all text uses the standard Helvetica fonts, so
/// no font files are needed.
pub fn cover_sheet_pdf(sheet: &CoverSheet) -> Vec<u8> {
    let title = format!("Foglio di accompagnamento {}", sheet.reference);
    one_page_pdf(&title, |content, regular, bold| {
        draw_cover(content, sheet, regular, bold)
    })
}

/// One A4 page with the standard Helvetica fonts (`regular`, `bold`: WinAnsi), its content
/// drawn by `draw`: the frame every printed document of Sportello shares.
pub(crate) fn one_page_pdf(title: &str, draw: impl FnOnce(&mut Content, Name, Name)) -> Vec<u8> {
    let mut content = Content::new();
    draw(&mut content, REGULAR, BOLD);
    pages_pdf(title, vec![content.finish().to_vec()])
}

/// The regular and bold font resources of every page [`pages_pdf`] writes.
pub(crate) const REGULAR: Name<'static> = Name(b"F1");
/// See [`REGULAR`].
pub(crate) const BOLD: Name<'static> = Name(b"F2");

/// A4 pages, each drawn with [`REGULAR`] and [`BOLD`] (Helvetica, WinAnsi), in one PDF.
pub(crate) fn pages_pdf(title: &str, contents: Vec<Vec<u8>>) -> Vec<u8> {
    let (catalog_id, page_tree_id, font_id, bold_id, info_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    let ids: Vec<(Ref, Ref)> = (0..contents.len() as i32)
        .map(|i| (Ref::new(6 + 2 * i), Ref::new(7 + 2 * i)))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id)
        .kids(ids.iter().map(|(page, _)| *page))
        .count(ids.len() as i32);
    for ((page_id, content_id), content) in ids.iter().zip(contents) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(page_tree_id);
        page.contents(*content_id);
        {
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            fonts.pair(REGULAR, font_id);
            fonts.pair(BOLD, bold_id);
        }
        page.finish();
        pdf.stream(*content_id, &content);
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

fn draw_cover(content: &mut Content, sheet: &CoverSheet, regular: Name, bold: Name) {
    let text_width = PAGE_W - 2.0 * MARGIN;

    // Header line.
    let mut y = PAGE_H - MARGIN;
    let header = text::to_winansi("SPORTELLO - FOGLIO DI ACCOMPAGNAMENTO PER LA SCANSIONE");
    let header = text::truncate(&header, Face::Bold, 11.0, text_width);
    show_centered(content, bold, Face::Bold, 11.0, &header, y);

    // QR code, centered, with its quiet zone kept free of anything else.
    let qr_top = y - 8.0 * MM - QR_QUIET;
    let qr_bottom = qr_top - QR_SIDE;
    draw_qr(
        content,
        &format!("{COVER_QR_PREFIX}{}", sheet.reference),
        (PAGE_W - QR_SIDE) / 2.0,
        qr_bottom,
        bold,
    );
    y = qr_bottom - QR_QUIET;

    // The reference, as large as fits.
    let reference = text::to_winansi(sheet.reference);
    let mut size: f32 = 54.0;
    let natural = text::width(&reference, Face::Bold, size);
    if natural > text_width && natural > 0.0 {
        size = (size * text_width / natural).max(14.0);
    }
    let reference = text::truncate(&reference, Face::Bold, size, text_width);
    y -= size * 0.75;
    show_centered(content, bold, Face::Bold, size, &reference, y);
    y -= 14.0 * MM;

    // Case type and subject.
    y = labelled(
        content,
        (regular, bold),
        "Tipo di pratica:",
        sheet.case_type,
        1,
        y,
    );
    y -= 4.0 * MM;
    y = labelled(content, (regular, bold), "Oggetto:", sheet.subject, 3, y);
    y -= 4.0 * MM;
    y = labelled(
        content,
        (regular, bold),
        "Stampato il:",
        sheet.printed_at,
        1,
        y,
    );
    y -= 12.0 * MM;

    // The instruction, boxed so that it reads as one.
    let instruction = text::to_winansi(INSTRUCTION);
    let lines = text::wrap(&instruction, Face::Bold, 15.0, text_width - 8.0 * MM, 3);
    let line_gap = 20.0;
    let box_h = lines.len() as f32 * line_gap + 6.0 * MM;
    content.set_line_width(1.5);
    content.rect(MARGIN, y - box_h, text_width, box_h);
    content.stroke();
    let mut line_y = y - 3.0 * MM - 15.0;
    for line in &lines {
        show_centered(content, bold, Face::Bold, 15.0, line, line_y);
        line_y -= line_gap;
    }
}

/// Writes "label value" lines starting at baseline `y`, the value wrapped to at most
/// `max_lines`; returns the baseline below the last line.
pub(crate) fn labelled(
    content: &mut Content,
    (regular, bold): (Name, Name),
    label: &str,
    value: &str,
    max_lines: usize,
    y: f32,
) -> f32 {
    const SIZE: f32 = 14.0;
    const LEADING: f32 = 18.0;
    let label = text::to_winansi(label);
    let label_w = 40.0 * MM;
    let value_w = PAGE_W - 2.0 * MARGIN - label_w;
    let mut lines = text::wrap(
        &text::to_winansi(value),
        Face::Regular,
        SIZE,
        value_w,
        max_lines,
    );
    if lines.is_empty() {
        lines.push(b"-".to_vec());
    }
    show_at(content, bold, SIZE, &label, MARGIN, y);
    let mut line_y = y;
    for line in &lines {
        show_at(content, regular, SIZE, line, MARGIN + label_w, line_y);
        line_y -= LEADING;
    }
    line_y
}

pub(crate) fn show_at(content: &mut Content, font: Name, size: f32, text: &[u8], x: f32, y: f32) {
    content.begin_text();
    content.set_font(font, size);
    content.set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
    content.show(Str(text));
    content.end_text();
}

pub(crate) fn show_centered(
    content: &mut Content,
    font: Name,
    face: Face,
    size: f32,
    text: &[u8],
    y: f32,
) {
    let w = text::width(text, face, size);
    show_at(content, font, size, text, (PAGE_W - w) / 2.0, y);
}

/// Draws the QR code for `data` with its lower-left corner at (`x`, `y`), merging each row's
/// runs of dark modules into one rectangle (fewer operators, no hairline seams between
/// modules).
pub(crate) fn draw_qr(content: &mut Content, data: &str, x: f32, y: f32, font: Name) {
    let code = [EcLevel::Q, EcLevel::M, EcLevel::L]
        .into_iter()
        .find_map(|level| QrCode::with_error_correction_level(data.as_bytes(), level).ok());
    let Some(code) = code else {
        // Only a reference of thousands of characters gets here: say so on the sheet
        // rather than print a code that says something else.
        let msg = text::to_winansi("CODICE QR NON GENERABILE: riferimento troppo lungo");
        show_at(content, font, 14.0, &msg, x, y + QR_SIDE / 2.0);
        return;
    };
    let n = code.width();
    let colors = code.to_colors();
    let module = QR_SIDE / n as f32;
    content.set_fill_gray(0.0);
    for row in 0..n {
        let top = y + QR_SIDE - (row as f32 + 1.0) * module;
        let mut col = 0;
        while col < n {
            if colors[row * n + col] == Color::Dark {
                let start = col;
                while col < n && colors[row * n + col] == Color::Dark {
                    col += 1;
                }
                content.rect(
                    x + start as f32 * module,
                    top,
                    (col - start) as f32 * module,
                    module,
                );
            } else {
                col += 1;
            }
        }
    }
    content.fill_nonzero();
}
