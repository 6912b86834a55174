//! Cleaning a scanned page before OCR. Office scanners and fax gateways leave
//! salt-and-pepper speckle on 1-bit pages; tesseract then misreads letters (`rn` as `m`)
//! or finds no text at all. A 3×3 median removes isolated specks and keeps strokes, but
//! it also thins very fine print, so it is applied only to pages that are measurably
//! speckled.

use std::path::Path;

use image::GrayImage;

use crate::error::ScanError;

/// Share of isolated pixels (a dark pixel with no dark neighbour, or a light one with no
/// light neighbour) above which a page counts as speckled. A clean text page has almost
/// none; the scanner noise seen in practice is well above one in a thousand.
const SPECKLE_SHARE: f64 = 0.000_5;

/// The page with its speckle removed, or `None` when it is clean enough as it is.
pub fn clean_for_ocr(page: &GrayImage) -> Option<GrayImage> {
    (speckle_share(page) > SPECKLE_SHARE).then(|| median3(page))
}

/// Cleans the image file at `path` in place (written back as PNG) when it is speckled;
/// says whether it changed it.
pub fn clean_image_file_for_ocr(path: &Path) -> Result<bool, ScanError> {
    let page = image::open(path)
        .map_err(|e| ScanError::Corrupt(format!("page image: {e}")))?
        .into_luma8();
    match clean_for_ocr(&page) {
        Some(clean) => {
            clean
                .save_with_format(path, image::ImageFormat::Png)
                .map_err(|e| ScanError::Tool(format!("writing the cleaned page: {e}")))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn speckle_share(page: &GrayImage) -> f64 {
    let (w, h) = page.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let dark = |x: u32, y: u32| page.get_pixel(x, y).0[0] < 128;
    let mut isolated: u64 = 0;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let centre = dark(x, y);
            let mut alike = false;
            'around: for dy in [-1i32, 0, 1] {
                for dx in [-1i32, 0, 1] {
                    if (dx, dy) != (0, 0)
                        && dark(x.saturating_add_signed(dx), y.saturating_add_signed(dy)) == centre
                    {
                        alike = true;
                        break 'around;
                    }
                }
            }
            if !alike {
                isolated += 1;
            }
        }
    }
    isolated as f64 / (u64::from(w - 2) * u64::from(h - 2)) as f64
}

/// 3×3 median; the border keeps its pixels.
fn median3(page: &GrayImage) -> GrayImage {
    let (w, h) = page.dimensions();
    let mut out = page.clone();
    let mut window = [0u8; 9];
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let mut i = 0;
            for yy in y - 1..=y + 1 {
                for xx in x - 1..=x + 1 {
                    window[i] = page.get_pixel(xx, yy).0[0];
                    i += 1;
                }
            }
            window.sort_unstable();
            out.put_pixel(x, y, image::Luma([window[4]]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_with_text() -> GrayImage {
        let mut page = GrayImage::from_pixel(200, 100, image::Luma([255]));
        // A thick "stroke": a 6-pixel-wide bar.
        for y in 20..80 {
            for x in 50..56 {
                page.put_pixel(x, y, image::Luma([0]));
            }
        }
        page
    }

    #[test]
    fn a_clean_page_is_left_alone() {
        assert!(clean_for_ocr(&page_with_text()).is_none());
    }

    #[test]
    fn speckle_goes_and_strokes_stay() {
        let mut page = page_with_text();
        // Deterministic speckle: one pixel in about a hundred flipped.
        let mut seed: u32 = 7;
        for y in 0..100 {
            for x in 0..200 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if (seed >> 16).is_multiple_of(100) {
                    let v = page.get_pixel(x, y).0[0];
                    page.put_pixel(x, y, image::Luma([255 - v]));
                }
            }
        }
        let clean = clean_for_ocr(&page).expect("speckled");
        assert!(speckle_share(&clean) < SPECKLE_SHARE);
        for y in 22..78 {
            for x in 51..55 {
                assert_eq!(clean.get_pixel(x, y).0[0], 0, "stroke kept at {x},{y}");
            }
        }
    }
}
