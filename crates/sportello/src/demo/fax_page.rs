//! A faxed page for the demo's fax-to-mail messages: a TIFF like a fax server's, with a
//! few lines of text in capitals drawn in a 5x7 dot font (as fax machines print their
//! headers), so that OCR has something to read when tesseract is installed.

/// A faxed page: a TIFF (deflate, 200 dpi) with `lines` of text in capitals, drawn in a
/// 5x7 dot font as a fax machine prints its header, so OCR has something to read.
pub(super) fn fax_page(lines: &[String]) -> Result<Vec<u8>, tiff::TiffError> {
    const SCALE: usize = 4;
    const ADVANCE: usize = 6 * SCALE;
    const LINE: usize = 12 * SCALE;
    const MARGIN: usize = 120;
    let width = 1728usize;
    let height = MARGIN * 2 + LINE * lines.len().max(1);
    let mut pixels = vec![255u8; width * height];
    for (row, line) in lines.iter().enumerate() {
        let top = MARGIN + row * LINE;
        for (col, c) in line.chars().enumerate() {
            let left = MARGIN + col * ADVANCE;
            if left + ADVANCE >= width {
                break;
            }
            for (dy, bits) in glyph(c).iter().enumerate() {
                for dx in 0..5 {
                    if bits & (0x10 >> dx) == 0 {
                        continue;
                    }
                    for y in 0..SCALE {
                        let start = (top + dy * SCALE + y) * width + left + dx * SCALE;
                        pixels[start..start + SCALE].fill(0);
                    }
                }
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out)?.with_compression(
        tiff::encoder::Compression::Deflate(tiff::encoder::DeflateLevel::Fast),
    );
    let mut image =
        encoder.new_image::<tiff::encoder::colortype::Gray8>(width as u32, height as u32)?;
    let dpi = tiff::encoder::Rational { n: 200, d: 1 };
    image.resolution(tiff::tags::ResolutionUnit::Inch, dpi);
    image.write_data(&pixels)?;
    Ok(out.into_inner())
}

/// The rows (5 bits each, high bit on the left) of a character; lower case is drawn as
/// capitals, anything unknown as a space.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::demo::messages::{FAX_GATEWAY, fax_to_mail};

    #[test]
    fn a_fax_arrives_as_a_fax_with_its_tiff_page() {
        let page = fax_page(&["RICHIESTA PERMESSO ZTL".into(), "TARGA AB123CD".into()]).unwrap();
        let decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(page.clone()));
        assert_eq!(decoder.unwrap().dimensions().unwrap(), (1728, 336));
        let at = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let raw = fax_to_mail("0655512345", "fax-1@fax.comune.example.it", at, page);
        let source = {
            let mut source = sportello_intake::email::EmailSource::from_config(
                &sportello_config::Config::default(),
                None,
                None,
            )
            .unwrap();
            source.fax_gateway_senders = vec![FAX_GATEWAY.into()];
            source
        };
        let parsed = sportello_intake::email::parse_email(&raw, "demo", "00", &source, at);
        assert_eq!(parsed.inbound.channel, sportello_domain::case::Channel::Fax);
        assert_eq!(parsed.inbound.sender.fax.as_deref(), Some("0655512345"));
        assert_eq!(parsed.attachments.len(), 1);
        assert!(parsed.attachments[0].bytes.starts_with(b"II*\0"));
    }
}
