//! The cover sheet: one A4 page, printed for a case, that the operator lays on top of the
//! case's documents before scanning, so that a batch can later be split by case.

use crate::draw::{Canvas, MARGIN, MM, PAGE_H, PAGE_W, QR_QUIET, QR_SIDE};
use crate::helvetica;
use crate::page::Weight;
use crate::text;

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

/// Renders the cover sheet as a one-page A4 PDF. The QR code (error correction Q, falling
/// back to lower levels only for absurdly long references) is drawn as vector squares so it
/// prints sharply at any printer resolution; all text uses the standard Helvetica fonts, so
/// no font files are needed.
pub fn cover_sheet_pdf(sheet: &CoverSheet) -> Vec<u8> {
    let title = format!("Foglio di accompagnamento {}", sheet.reference);
    let mut canvas = Canvas::new();
    draw_cover(&mut canvas, sheet);
    helvetica::write_pdf(&title, &[canvas.into_sheet()])
}

fn draw_cover(canvas: &mut Canvas, sheet: &CoverSheet) {
    let text_width = PAGE_W - 2.0 * MARGIN;

    // Header line.
    let mut y = PAGE_H - MARGIN;
    let header = text::to_winansi("SPORTELLO - FOGLIO DI ACCOMPAGNAMENTO PER LA SCANSIONE");
    let header = text::truncate(&header, Weight::Bold, 11.0, text_width);
    canvas.show_centered(Weight::Bold, 11.0, &header, y);

    // QR code, centered, with its quiet zone kept free of anything else.
    let qr_top = y - 8.0 * MM - QR_QUIET;
    let qr_bottom = qr_top - QR_SIDE;
    canvas.qr(
        &format!("{COVER_QR_PREFIX}{}", sheet.reference),
        (PAGE_W - QR_SIDE) / 2.0,
        qr_bottom,
    );
    y = qr_bottom - QR_QUIET;

    // The reference, as large as fits.
    let reference = text::to_winansi(sheet.reference);
    let mut size: f32 = 54.0;
    let natural = text::width(&reference, Weight::Bold, size);
    if natural > text_width && natural > 0.0 {
        size = (size * text_width / natural).max(14.0);
    }
    let reference = text::truncate(&reference, Weight::Bold, size, text_width);
    y -= size * 0.75;
    canvas.show_centered(Weight::Bold, size, &reference, y);
    y -= 14.0 * MM;

    // Case type and subject.
    y = canvas.labelled("Tipo di pratica:", sheet.case_type, 1, y);
    y -= 4.0 * MM;
    y = canvas.labelled("Oggetto:", sheet.subject, 3, y);
    y -= 4.0 * MM;
    y = canvas.labelled("Stampato il:", sheet.printed_at, 1, y);
    y -= 12.0 * MM;

    // The instruction, boxed so that it reads as one.
    let instruction = text::to_winansi(INSTRUCTION);
    let lines = text::wrap(&instruction, Weight::Bold, 15.0, text_width - 8.0 * MM, 3);
    let line_gap = 20.0;
    let box_h = lines.len() as f32 * line_gap + 6.0 * MM;
    canvas.outline((MARGIN, y - box_h), (text_width, box_h), 1.5);
    let mut line_y = y - 3.0 * MM - 15.0;
    for line in &lines {
        canvas.show_centered(Weight::Bold, 15.0, line, line_y);
        line_y -= line_gap;
    }
}
