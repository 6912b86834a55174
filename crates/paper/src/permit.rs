//! The printed ZTL permit: what the holder keeps behind the windscreen. Its QR code points
//! to the public verification page (`/permits/v/{token}`), so a patrol or a citizen can
//! check it is genuine and valid without any personal data beyond the plate.

use crate::draw::{Canvas, MARGIN, MM, PAGE_H, PAGE_W, QR_QUIET, QR_SIDE};
use crate::helvetica;
use crate::page::Weight;
use crate::text;

/// What is printed on a permit.
#[derive(Clone, Copy, Debug)]
pub struct PrintedPermit<'a> {
    /// Permit number.
    pub number: &'a str,
    /// Category name.
    pub category: &'a str,
    /// Holder's name.
    pub holder: &'a str,
    /// Plates, already normalised.
    pub plates: &'a [String],
    /// Zones covered, as named in the policy.
    pub zones: &'a str,
    /// Validity, already formatted in the office's time zone.
    pub valid_from: &'a str,
    /// Validity end.
    pub valid_to: &'a str,
    /// The verification address the QR code points to.
    pub verify_url: &'a str,
}

/// Renders the permit as a one-page A4 PDF with its verification QR code.
pub fn permit_pdf(permit: &PrintedPermit) -> Vec<u8> {
    let title = format!("Permesso ZTL {}", permit.number);
    let mut canvas = Canvas::new();
    draw_permit(&mut canvas, permit);
    helvetica::write_pdf(&title, &[canvas.into_sheet()])
}

fn draw_permit(canvas: &mut Canvas, permit: &PrintedPermit) {
    let mut y = PAGE_H - MARGIN;
    let header = text::to_winansi("PERMESSO DI ACCESSO ALLA ZONA A TRAFFICO LIMITATO");
    canvas.show_centered(Weight::Bold, 14.0, &header, y);
    y -= 14.0 * MM;
    let number = text::to_winansi(permit.number);
    canvas.show_centered(Weight::Bold, 30.0, &number, y);
    y -= 14.0 * MM;
    y = canvas.labelled("Categoria", permit.category, 2, y);
    y = canvas.labelled("Titolare", permit.holder, 2, y - 2.0);
    y = canvas.labelled("Targhe", &permit.plates.join("  "), 2, y - 2.0);
    y = canvas.labelled("Zone", permit.zones, 2, y - 2.0);
    y = canvas.labelled("Valido dal", permit.valid_from, 1, y - 2.0);
    y = canvas.labelled("al", permit.valid_to, 1, y - 2.0);
    let qr_bottom = y - QR_QUIET - QR_SIDE;
    canvas.qr(permit.verify_url, (PAGE_W - QR_SIDE) / 2.0, qr_bottom);
    let note = text::to_winansi(
        "Inquadrare il codice per verificare che il permesso sia autentico e valido.",
    );
    let note = text::truncate(&note, Weight::Regular, 11.0, PAGE_W - 2.0 * MARGIN);
    canvas.show_centered(Weight::Regular, 11.0, &note, qr_bottom - QR_QUIET / 2.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_is_a_one_page_pdf_with_its_number() {
        let plates = vec!["AB123CD".to_owned()];
        let pdf = permit_pdf(&PrintedPermit {
            number: "RES202600001",
            category: "Residenti",
            holder: "Maria Rossi",
            plates: &plates,
            zones: "ZTL Centro Storico",
            valid_from: "29/11/2026",
            valid_to: "29/11/2028",
            verify_url: "https://comune.example.it/permits/v/abc",
        });
        assert!(pdf.starts_with(b"%PDF"));
        assert!(String::from_utf8_lossy(&pdf).contains("RES202600001"));
    }
}
