//! Recognising a cover sheet on a scanned page by its QR code.

use image::GrayImage;

use crate::raster;
use sportello_paper::COVER_QR_PREFIX;

/// Pages are first searched shrunk to about this many pixels on their longer side (an A4
/// page at about 60 dpi): the cover's QR modules are then still 5 pixels wide (2.5 on a
/// sheet printed at half size, which still reads), the area averaging washes out the
/// speckle of a 1-bit scan, and a page without a code is rejected in a few milliseconds
/// whatever the scan resolution.
const WORK_SIDE: u32 = 700;

/// Sizes tried, after a median filter, when a code was located but could not be read.
const RETRY_SIDES: [u32; 2] = [1000, 1400];

/// The case reference on a cover sheet, or `None` when the page is not one. Looks for QR
/// codes whose text starts with [`COVER_QR_PREFIX`] followed by a reference shaped like
/// `ABC-2025-000123` (2–10 capital letters, a four-digit year, six digits), and returns the
/// first such reference.
///
/// The first attempt works on a small copy of the page, which is cheap enough for a
/// thousand-page batch of ordinary pages. Only when a QR code is located but cannot be read
/// are more expensive attempts made (a 3×3 median filter against salt-and-pepper noise, at
/// larger sizes); a page where no code is located at all is rejected after the first.
pub fn cover_reference(page: &GrayImage) -> Option<String> {
    find(page).0
}

/// [`cover_reference`], also telling how many attempts it took (for tests).
fn find(page: &GrayImage) -> (Option<String>, usize) {
    let (w, h) = page.dimensions();
    if w < 21 || h < 21 {
        return (None, 0);
    }
    match scan(&shrink_to(page, WORK_SIDE)) {
        Found::Reference(r) => return (Some(r), 1),
        Found::Nothing => return (None, 1),
        Found::Unreadable => {}
    }
    let mut attempts = 1;
    for side in RETRY_SIDES {
        attempts += 1;
        if let Found::Reference(r) = scan(&raster::median3(&shrink_to(page, side))) {
            return (Some(r), attempts);
        }
        if side >= w.max(h) {
            break;
        }
    }
    (None, attempts)
}

/// `page` shrunk (never enlarged) so that its longer side is at most `side` pixels.
fn shrink_to(page: &GrayImage, side: u32) -> GrayImage {
    let (w, h) = page.dimensions();
    let longer = w.max(h);
    if longer <= side {
        return page.clone();
    }
    let f = f64::from(side) / f64::from(longer);
    let nw = (f64::from(w) * f).round().max(1.0) as u32;
    let nh = (f64::from(h) * f).round().max(1.0) as u32;
    raster::resize(page, nw, nh)
}

enum Found {
    /// A cover-sheet reference.
    Reference(String),
    /// Something QR-like was located, but no cover reference could be read from it.
    Unreadable,
    /// No QR code at all, or only codes that were read and are not cover sheets'.
    Nothing,
}

fn scan(img: &GrayImage) -> Found {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let result = std::panic::catch_unwind(|| {
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| raw[y * w + x]);
        let grids = prepared.detect_grids();
        if grids.is_empty() {
            return Found::Nothing;
        }
        let mut unreadable = false;
        for grid in &grids {
            match grid.decode() {
                Ok((_, content)) => {
                    if let Some(r) = parse(&content) {
                        return Found::Reference(r);
                    }
                }
                Err(_) => unreadable = true,
            }
        }
        // Codes that were read and are not ours (a payment notice) need no second look.
        if unreadable {
            Found::Unreadable
        } else {
            Found::Nothing
        }
    });
    result.unwrap_or(Found::Nothing)
}

/// Extracts the reference from a QR code's text, if it is a cover sheet's.
fn parse(content: &str) -> Option<String> {
    let reference = content.trim().strip_prefix(COVER_QR_PREFIX)?.trim();
    valid_reference(reference).then(|| reference.to_owned())
}

/// `[A-Z]{2,10}-\d{4}-\d{6}`, checked loosely (no year range): enough to tell a cover
/// sheet's code from a stray one.
fn valid_reference(r: &str) -> bool {
    let mut parts = r.split('-');
    let (Some(kind), Some(year), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (2..=10).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_uppercase())
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number.len() == 6
        && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shape() {
        assert!(valid_reference("OSP-2025-000123"));
        assert!(valid_reference("AB-2025-000001"));
        assert!(valid_reference("ABCDEFGHIJ-1999-999999"));
        assert!(!valid_reference("A-2025-000123"));
        assert!(!valid_reference("ABCDEFGHIJK-2025-000123"));
        assert!(!valid_reference("osp-2025-000123"));
        assert!(!valid_reference("OSP-25-000123"));
        assert!(!valid_reference("OSP-2025-00123"));
        assert!(!valid_reference("OSP-2025-000123-1"));
        assert!(!valid_reference("OSP-2025-00012X"));
        assert!(!valid_reference(""));
    }

    #[test]
    fn parse_requires_prefix() {
        assert_eq!(
            parse("SPORTELLO:OSP-2025-000123"),
            Some("OSP-2025-000123".to_owned())
        );
        assert_eq!(parse("OSP-2025-000123"), None);
        assert_eq!(parse("https://example.org"), None);
        assert_eq!(parse("SPORTELLO:nonsense"), None);
    }

    /// A synthetic 150 dpi A4 page with a cover QR code of `module` pixels per module, and a
    /// fraction `noise` of its pixels flipped at random.
    fn synthetic_page(reference: &str, module: u32, noise: f64, seed: u64) -> GrayImage {
        let code = qrcode::QrCode::with_error_correction_level(
            format!("{COVER_QR_PREFIX}{reference}"),
            qrcode::EcLevel::Q,
        )
        .unwrap();
        let n = code.width() as u32;
        let colors = code.to_colors();
        let mut page = GrayImage::from_pixel(1240, 1754, image::Luma([255]));
        let (x0, y0) = (400, 200);
        for y in 0..n * module {
            for x in 0..n * module {
                let c = colors[((y / module) * n + x / module) as usize];
                if c == qrcode::Color::Dark {
                    page.put_pixel(x0 + x, y0 + y, image::Luma([0]));
                }
            }
        }
        let mut state = seed;
        for p in page.pixels_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if ((state >> 11) as f64 / (1u64 << 53) as f64) < noise {
                p.0[0] = 255 - p.0[0];
            }
        }
        page
    }

    #[test]
    fn clean_code_reads_at_first_attempt() {
        let page = synthetic_page("OSP-2025-000123", 13, 0.0, 1);
        assert_eq!(find(&page), (Some("OSP-2025-000123".to_owned()), 1));
    }

    #[test]
    fn heavy_noise_is_read_after_median_filter() {
        // 10% of the pixels flipped (a real scan's speckle is under 1%): the shrunken
        // page shows a code that does not decode, the median-filtered retries read it.
        let page = synthetic_page("OSP-2025-000123", 8, 0.1, 1);
        let (found, attempts) = find(&page);
        assert_eq!(found.as_deref(), Some("OSP-2025-000123"));
        assert!(attempts > 1, "expected the retry path, took {attempts}");
    }

    #[test]
    fn blank_and_tiny_pages_are_not_covers() {
        assert_eq!(cover_reference(&GrayImage::new(0, 0)), None);
        assert_eq!(cover_reference(&GrayImage::new(5, 5)), None);
        let blank = GrayImage::from_pixel(1240, 1754, image::Luma([255]));
        assert_eq!(find(&blank), (None, 1));
    }
}
