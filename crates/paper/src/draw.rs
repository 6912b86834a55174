//! Drawing A4 sheets for the Helvetica writer: text already laid out with the Helvetica
//! metrics (WinAnsi bytes), labelled fields and QR codes, placed with y counted from the
//! bottom of the page as PDF does, and kept as marks of the [page model](crate::page).

use qrcode::{Color, EcLevel, QrCode};

use crate::page::{Mark, Rect, Sheet, Weight};
use crate::text;

pub(crate) const MM: f32 = 72.0 / 25.4;
pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
pub(crate) const MARGIN: f32 = 20.0 * MM;
/// Side of the QR code's modules area (without quiet zone): large enough to survive a poor
/// scan at 150 dpi.
pub(crate) const QR_SIDE: f32 = 65.0 * MM;
/// Free space around the QR code, well beyond the 4 modules the standard asks for.
pub(crate) const QR_QUIET: f32 = 12.0 * MM;

/// One A4 sheet being drawn.
#[derive(Debug, Default)]
pub(crate) struct Canvas {
    marks: Vec<Mark>,
}

impl Canvas {
    pub(crate) fn new() -> Canvas {
        Canvas::default()
    }

    /// The finished A4 sheet.
    pub(crate) fn into_sheet(self) -> Sheet {
        Sheet {
            width: PAGE_W,
            height: PAGE_H,
            marks: self.marks,
        }
    }

    /// WinAnsi `text` starting at `x` on the baseline `y` (from the bottom).
    pub(crate) fn show_at(&mut self, weight: Weight, size: f32, text: &[u8], x: f32, y: f32) {
        self.marks.push(Mark::Text {
            x,
            baseline: PAGE_H - y,
            size,
            weight,
            text: text::from_winansi(text),
        });
    }

    /// WinAnsi `text` centred on the page, on the baseline `y` (from the bottom).
    pub(crate) fn show_centered(&mut self, weight: Weight, size: f32, text: &[u8], y: f32) {
        let w = text::width(text, weight, size);
        self.show_at(weight, size, text, (PAGE_W - w) / 2.0, y);
    }

    /// The outline of the rectangle with lower-left corner (`x`, `y`).
    pub(crate) fn outline(&mut self, (x, y): (f32, f32), (width, height): (f32, f32), line: f32) {
        self.marks.push(Mark::Outline {
            rect: Rect {
                x,
                top: PAGE_H - y - height,
                width,
                height,
            },
            width: line,
        });
    }

    /// Writes "label value" lines starting at baseline `y`, the value wrapped to at most
    /// `max_lines`; returns the baseline below the last line.
    pub(crate) fn labelled(&mut self, label: &str, value: &str, max_lines: usize, y: f32) -> f32 {
        const SIZE: f32 = 14.0;
        const LEADING: f32 = 18.0;
        let label = text::to_winansi(label);
        let label_w = 40.0 * MM;
        let value_w = PAGE_W - 2.0 * MARGIN - label_w;
        let mut lines = text::wrap(
            &text::to_winansi(value),
            Weight::Regular,
            SIZE,
            value_w,
            max_lines,
        );
        if lines.is_empty() {
            lines.push(b"-".to_vec());
        }
        self.show_at(Weight::Bold, SIZE, &label, MARGIN, y);
        let mut line_y = y;
        for line in &lines {
            self.show_at(Weight::Regular, SIZE, line, MARGIN + label_w, line_y);
            line_y -= LEADING;
        }
        line_y
    }

    /// Draws the QR code for `data` (error correction Q, falling back to lower levels only
    /// for absurdly long data) with its lower-left corner at (`x`, `y`), [`QR_SIDE`] wide,
    /// merging each row's runs of dark modules into one rectangle (fewer operators, no
    /// hairline seams between modules).
    pub(crate) fn qr(&mut self, data: &str, x: f32, y: f32) {
        let code = [EcLevel::Q, EcLevel::M, EcLevel::L]
            .into_iter()
            .find_map(|level| QrCode::with_error_correction_level(data.as_bytes(), level).ok());
        let Some(code) = code else {
            // Only a reference of thousands of characters gets here: say so on the sheet
            // rather than print a code that says something else.
            let msg = text::to_winansi("CODICE QR NON GENERABILE: riferimento troppo lungo");
            self.show_at(Weight::Bold, 14.0, &msg, x, y + QR_SIDE / 2.0);
            return;
        };
        let n = code.width();
        let colors = code.to_colors();
        let module = QR_SIDE / n as f32;
        let mut rects = Vec::new();
        for row in 0..n {
            let bottom = y + QR_SIDE - (row as f32 + 1.0) * module;
            let mut col = 0;
            while col < n {
                if colors[row * n + col] == Color::Dark {
                    let start = col;
                    while col < n && colors[row * n + col] == Color::Dark {
                        col += 1;
                    }
                    rects.push(Rect {
                        x: x + start as f32 * module,
                        top: PAGE_H - bottom - module,
                        width: (col - start) as f32 * module,
                        height: module,
                    });
                } else {
                    col += 1;
                }
            }
        }
        self.marks.push(Mark::Filled { rects });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_the_bottom_become_positions_from_the_top() {
        let mut canvas = Canvas::new();
        canvas.show_at(Weight::Regular, 10.0, b"Citt\xE0", 50.0, 100.0);
        canvas.outline((10.0, 20.0), (30.0, 40.0), 1.5);
        let sheet = canvas.into_sheet();
        assert_eq!((sheet.width, sheet.height), (PAGE_W, PAGE_H));
        assert_eq!(
            sheet.marks[0],
            Mark::Text {
                x: 50.0,
                baseline: PAGE_H - 100.0,
                size: 10.0,
                weight: Weight::Regular,
                text: "Città".into(),
            }
        );
        let Mark::Outline { rect, width } = &sheet.marks[1] else {
            panic!("{:?}", sheet.marks[1]);
        };
        assert_eq!(*width, 1.5);
        assert!((rect.top - (PAGE_H - 60.0)).abs() < 1e-3, "{rect:?}");
    }

    #[test]
    fn a_qr_code_fills_its_square_and_an_impossible_one_says_so() {
        let mut canvas = Canvas::new();
        canvas.qr("SPORTELLO:OSP-2025-000123", MARGIN, 100.0);
        let Some(Mark::Filled { rects }) = canvas.marks.first() else {
            panic!("no QR code drawn");
        };
        for rect in rects {
            assert!(rect.x >= MARGIN - 1e-3 && rect.x + rect.width <= MARGIN + QR_SIDE + 1e-3);
            assert!(rect.top >= PAGE_H - 100.0 - QR_SIDE - 1e-3);
            assert!(rect.top + rect.height <= PAGE_H - 100.0 + 1e-3);
        }
        let mut canvas = Canvas::new();
        canvas.qr(&"X".repeat(8000), MARGIN, 100.0);
        assert!(matches!(
            canvas.marks.as_slice(),
            [Mark::Text { text, .. }] if text.starts_with("CODICE QR NON GENERABILE")
        ));
    }
}
