//! Bilevel TIFF pages compressed the way fax machines and office scanners do it (CCITT
//! Group 3 one-dimensional and Group 4), decoded in Rust with the `fax` crate straight from
//! the page's strips, in either bit order.
//!
//! The `tiff` crate decodes Group 4 only, and ignores the FillOrder tag: a Group 4 page
//! written least-significant bit first (as fax gateways and some scanners do) came out as a
//! decoding error, which the operator was told was a damaged file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use image::GrayImage;
use tiff::decoder::Decoder;
use tiff::tags::Tag;

use crate::error::ScanError;

/// TIFF tag 292: Group 3 options (bit 0: two-dimensional coding, bit 1: uncompressed mode).
const T4_OPTIONS: Tag = Tag::Unknown(292);
/// TIFF tag 293: Group 4 options (bit 1: uncompressed mode).
const T6_OPTIONS: Tag = Tag::Unknown(293);

/// The kinds of CCITT coding decoded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    /// T.4 one-dimensional (TIFF compression 3 without the 2-D option).
    Group3,
    /// T.6 (TIFF compression 4).
    Group4,
}

/// Decodes the decoder's current page when it is CCITT Group 3 (one-dimensional) or Group 4
/// in strips, reading the strips from `file`; black is 0, white 255. `Ok(None)` when the page
/// is something else, or a variant left to libtiff (Group 3 two-dimensional, uncompressed
/// mode, tiles, or Group 3 data this decoder cannot follow).
pub(crate) fn decode_page<R: Read + Seek>(
    decoder: &mut Decoder<R>,
    file: &mut File,
    (w, h): (u32, u32),
    page: usize,
) -> Result<Option<GrayImage>, ScanError> {
    let tag = |decoder: &mut Decoder<R>, tag: Tag| -> Option<u32> {
        decoder.find_tag_unsigned::<u32>(tag).ok().flatten()
    };
    let coding = match tag(decoder, Tag::Compression) {
        Some(3) if tag(decoder, T4_OPTIONS).unwrap_or(0) & 0b11 == 0 => Coding::Group3,
        Some(4) if tag(decoder, T6_OPTIONS).unwrap_or(0) & 0b10 == 0 => Coding::Group4,
        _ => return Ok(None),
    };
    let bilevel = tag(decoder, Tag::BitsPerSample).unwrap_or(1) == 1
        && tag(decoder, Tag::SamplesPerPixel).unwrap_or(1) == 1;
    // 0 = WhiteIsZero (the usual for fax), 1 = BlackIsZero.
    let photometric = tag(decoder, Tag::PhotometricInterpretation).unwrap_or(0);
    let tiled = decoder.find_tag(Tag::TileOffsets).ok().flatten().is_some();
    let Ok(width) = u16::try_from(w) else {
        return Ok(None);
    };
    if !bilevel || photometric > 1 || tiled {
        return Ok(None);
    }
    let lsb_first = tag(decoder, Tag::FillOrder) == Some(2);
    let offsets = decoder
        .find_tag_unsigned_vec::<u64>(Tag::StripOffsets)
        .ok()
        .flatten()
        .unwrap_or_default();
    let counts = decoder
        .find_tag_unsigned_vec::<u64>(Tag::StripByteCounts)
        .ok()
        .flatten()
        .unwrap_or_default();
    let rows_per_strip = tag(decoder, Tag::RowsPerStrip).unwrap_or(h).clamp(1, h);
    let strips = h.div_ceil(rows_per_strip) as usize;
    if offsets.len() < strips || counts.len() < strips {
        return Err(damaged(page, "its strips are not all listed"));
    }
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);

    // A set bit is a black run of the coding; what it looks like depends on the photometric
    // interpretation, as in libtiff.
    let (ink, paper) = if photometric == 0 { (0, 255) } else { (255, 0) };
    let mut img = GrayImage::from_pixel(w, h, image::Luma([paper]));
    let row_len = w as usize;
    let pixels: &mut [u8] = &mut img;
    for strip in 0..strips {
        let first_row = strip * rows_per_strip as usize;
        let rows = (rows_per_strip as usize).min(h as usize - first_row);
        let (offset, count) = (offsets[strip], counts[strip]);
        if offset.checked_add(count).is_none_or(|end| end > file_len) {
            return Err(damaged(page, "a strip lies past the end of the file"));
        }
        let mut data = Vec::with_capacity(count as usize);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.by_ref().take(count).read_to_end(&mut data))
            .map_err(|e| ScanError::Corrupt(format!("cannot read the file: {e}")))?;
        if lsb_first {
            data.iter_mut().for_each(|b| *b = b.reverse_bits());
        }
        let strip_pixels = &mut pixels[first_row * row_len..(first_row + rows) * row_len];
        let mut lines = strip_pixels.chunks_exact_mut(row_len);
        let mut decoded = 0usize;
        let mut put_line = |transitions: &[u16]| {
            if let Some(line) = lines.next() {
                paint_runs(line, transitions, ink, paper);
                decoded += 1;
            }
        };
        let finished = match coding {
            Coding::Group4 => {
                let height = u16::try_from(rows).unwrap_or(u16::MAX);
                fax::decoder::decode_g4(data.into_iter(), width, Some(height), &mut put_line)
            }
            Coding::Group3 => decode_g3(data, width, rows, &mut put_line),
        };
        match (coding, finished) {
            (_, Some(())) => {}
            // Group 3 data need not end with a return-to-control: running out of data once
            // every row is there is the normal end.
            (Coding::Group3, None) if decoded >= rows => {}
            // Group 3 comes in many dialects; libtiff knows them all.
            (Coding::Group3, None) => return Ok(None),
            (Coding::Group4, None) => return Err(damaged(page, "its Group 4 data is invalid")),
        }
    }
    Ok(Some(img))
}

/// Decodes one strip of Group 3 one-dimensional data, line by line, up to `rows` lines.
/// Unlike `fax::decoder::decode_g3`, it keeps the last line when the data ends right after
/// it without an end-of-line code (libtiff writes no return-to-control).
fn decode_g3(data: Vec<u8>, width: u16, rows: usize, line: &mut impl FnMut(&[u16])) -> Option<()> {
    let bytes = data.into_iter().map(Ok::<u8, std::convert::Infallible>);
    let mut decoder = fax::decoder::Group3Decoder::new(bytes).ok()?;
    for _ in 0..rows {
        match decoder.advance() {
            Ok(status) => {
                line(decoder.transitions());
                if status == fax::decoder::DecodeStatus::End {
                    return Some(());
                }
            }
            Err(_) => {
                // A complete line followed by nothing is the end of the data.
                if decoder.transitions().last() == Some(&width) {
                    line(decoder.transitions());
                    return Some(());
                }
                return None;
            }
        }
    }
    Some(())
}

fn damaged(page: usize, why: &str) -> ScanError {
    ScanError::Corrupt(format!("TIFF page {} cannot be decoded: {why}", page + 1))
}

/// Paints one decoded line: `transitions` are the positions where the colour changes,
/// starting with a white (unset) run; what follows the last change keeps its colour.
fn paint_runs(line: &mut [u8], transitions: &[u16], ink: u8, paper: u8) {
    let mut x = 0usize;
    let mut black = false;
    for &change in transitions {
        let end = usize::from(change).min(line.len());
        if end > x {
            line[x..end].fill(if black { ink } else { paper });
            x = end;
        }
        black = !black;
    }
    line[x..].fill(if black { ink } else { paper });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_alternate_from_white() {
        let mut line = [7u8; 10];
        paint_runs(&mut line, &[2, 5], 0, 255);
        assert_eq!(line, [255, 255, 0, 0, 0, 255, 255, 255, 255, 255]);
        // An odd number of changes leaves the rest of the line black.
        paint_runs(&mut line, &[3], 0, 255);
        assert_eq!(line, [255, 255, 255, 0, 0, 0, 0, 0, 0, 0]);
        // Changes past the end are cut; a BlackIsZero page swaps the two.
        paint_runs(&mut line, &[0, 20], 255, 0);
        assert_eq!(line, [255; 10]);
    }
}
