//! Small grayscale image operations: resampling a page to the resolution the caller asked
//! for, and the clean-ups tried before reading a QR code on a noisy scan.

use image::GrayImage;
use image::imageops::{self, FilterType};

/// Resizes `img` to `new_w`×`new_h`: area averaging when shrinking (every source pixel
/// counts, so thin strokes and isolated noise are averaged rather than aliased), a triangle
/// filter when enlarging.
pub(crate) fn resize(img: &GrayImage, new_w: u32, new_h: u32) -> GrayImage {
    let new_w = new_w.max(1);
    let new_h = new_h.max(1);
    if new_w == img.width() && new_h == img.height() {
        return img.clone();
    }
    if new_w <= img.width() && new_h <= img.height() {
        shrink_area(img, new_w, new_h)
    } else {
        imageops::resize(img, new_w, new_h, FilterType::Triangle)
    }
}

/// The source pixels each destination pixel covers along one axis, as (first source index,
/// weight of each covered source pixel in 1/256ths of its extent).
fn spans(src: u32, dst: u32) -> Vec<(usize, Vec<u32>)> {
    let src = u64::from(src);
    let dst = u64::from(dst);
    // Work in units of 1/(dst) source pixels: destination pixel i covers [i*src, (i+1)*src).
    (0..dst)
        .map(|i| {
            let start = i * src;
            let end = (i + 1) * src;
            let first = start / dst;
            let last = (end - 1) / dst;
            let weights = (first..=last)
                .map(|s| {
                    let lo = start.max(s * dst);
                    let hi = end.min((s + 1) * dst);
                    // Weight in 1/256 of one source pixel.
                    ((hi - lo) * 256 / dst) as u32
                })
                .collect();
            (first as usize, weights)
        })
        .collect()
}

fn shrink_area(img: &GrayImage, new_w: u32, new_h: u32) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let xs = spans(img.width(), new_w);
    let ys = spans(img.height(), new_h);
    let src = img.as_raw();
    // Horizontal pass into u32 sums (scaled by 256 per source pixel), then vertical.
    let nw = new_w as usize;
    let mut rows = vec![0u32; nw * h];
    for y in 0..h {
        let line = &src[y * w..(y + 1) * w];
        let out = &mut rows[y * nw..(y + 1) * nw];
        for (o, (first, weights)) in out.iter_mut().zip(&xs) {
            let mut acc = 0u32;
            for (k, wt) in weights.iter().enumerate() {
                acc += u32::from(line[first + k]) * wt;
            }
            *o = acc;
        }
    }
    let mut out = GrayImage::new(new_w, new_h);
    // Each destination pixel is normalised by its own weight total, so rounding in the
    // weights never shows as banding.
    let x_totals: Vec<u64> = xs
        .iter()
        .map(|(_, w)| u64::from(w.iter().sum::<u32>().max(1)))
        .collect();
    let dst = out.as_mut();
    for (oy, (first, weights)) in ys.iter().enumerate() {
        let y_total = u64::from(weights.iter().sum::<u32>().max(1));
        for ox in 0..nw {
            let denom = x_totals[ox] * y_total;
            let mut acc = 0u64;
            for (k, wt) in weights.iter().enumerate() {
                acc += u64::from(rows[(first + k) * nw + ox]) * u64::from(*wt);
            }
            dst[oy * nw + ox] = ((acc + denom / 2) / denom).min(255) as u8;
        }
    }
    out
}

/// A 3×3 median filter, the classic cure for salt-and-pepper noise: an isolated wrong pixel
/// is outvoted by its neighbours while the edges of QR modules (many pixels wide) stay put.
pub(crate) fn median3(img: &GrayImage) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let mut out = img.clone();
    if w < 3 || h < 3 {
        return out;
    }
    let dst = out.as_mut();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut v = [0u8; 9];
            for (k, (dy, dx)) in [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (1, 1),
                (1, 2),
                (2, 0),
                (2, 1),
                (2, 2),
            ]
            .iter()
            .enumerate()
            {
                v[k] = src[(y + dy - 1) * w + (x + dx - 1)];
            }
            v.sort_unstable();
            dst[y * w + x] = v[4];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_averages_area() {
        let mut img = GrayImage::new(4, 2);
        // Left half black, right half white.
        for y in 0..2 {
            for x in 0..4 {
                img.put_pixel(x, y, image::Luma([if x < 2 { 0 } else { 255 }]));
            }
        }
        let half = resize(&img, 2, 1);
        assert_eq!(half.as_raw(), &vec![0, 255]);
        let one = resize(&img, 1, 1);
        assert_eq!(one.as_raw(), &vec![128]);
        // Fractional factor: 3 -> 2.
        let img = GrayImage::from_raw(3, 1, vec![0, 255, 0]).unwrap();
        let two = resize(&img, 2, 1);
        assert_eq!(two.as_raw(), &vec![85, 85]);
    }

    #[test]
    fn enlarge_and_identity() {
        let img = GrayImage::from_raw(2, 2, vec![0, 255, 255, 0]).unwrap();
        assert_eq!(resize(&img, 2, 2), img);
        let big = resize(&img, 4, 4);
        assert_eq!(big.dimensions(), (4, 4));
    }

    #[test]
    fn median_removes_isolated_pixels() {
        let mut img = GrayImage::from_pixel(5, 5, image::Luma([255]));
        img.put_pixel(2, 2, image::Luma([0]));
        assert!(median3(&img).as_raw().iter().all(|&p| p == 255));
    }
}
