//! Gray TIFF pages compressed with JPEG (what office scanners write for gray scans), decoded
//! in Rust: each strip or tile is a JPEG stream of its own (after the page's shared
//! JPEGTables), decoded with the `image` crate's JPEG decoder. The `tiff` crate garbles
//! them (a gray page comes out striped and doubled).

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};

use image::codecs::jpeg::JpegDecoder;
use image::{GrayImage, ImageDecoder};
use tiff::decoder::Decoder;
use tiff::tags::Tag;

use crate::error::ScanError;

/// TIFF compression 7: JPEG as of TIFF Technical Note 2.
const JPEG: u32 = 7;

/// Decodes the decoder's current page when it is one-sample 8-bit BlackIsZero JPEG, reading
/// its strips or tiles from `file`; `Ok(None)` for anything else (left to other decoders).
pub(crate) fn decode_page<R: Read + Seek>(
    decoder: &mut Decoder<R>,
    file: &mut File,
    (w, h): (u32, u32),
    page: usize,
) -> Result<Option<GrayImage>, ScanError> {
    let tag = |decoder: &mut Decoder<R>, tag: Tag| -> Option<u32> {
        decoder.find_tag_unsigned::<u32>(tag).ok().flatten()
    };
    let gray = tag(decoder, Tag::Compression) == Some(JPEG)
        && tag(decoder, Tag::SamplesPerPixel).unwrap_or(1) == 1
        && tag(decoder, Tag::BitsPerSample).unwrap_or(8) == 8
        && tag(decoder, Tag::PhotometricInterpretation) == Some(1);
    if !gray {
        return Ok(None);
    }
    let tiled = decoder.find_tag(Tag::TileOffsets).ok().flatten().is_some();
    let (chunk_w, chunk_h, offsets_tag, counts_tag) = if tiled {
        let (Some(tw), Some(th)) = (tag(decoder, Tag::TileWidth), tag(decoder, Tag::TileLength))
        else {
            return Err(damaged(page, "its tile size is missing"));
        };
        (tw, th, Tag::TileOffsets, Tag::TileByteCounts)
    } else {
        let rows = tag(decoder, Tag::RowsPerStrip).unwrap_or(h).clamp(1, h);
        (w, rows, Tag::StripOffsets, Tag::StripByteCounts)
    };
    if chunk_w == 0 || chunk_h == 0 {
        return Err(damaged(page, "its strips or tiles have no size"));
    }
    let list = |decoder: &mut Decoder<R>, tag: Tag| {
        decoder
            .find_tag_unsigned_vec::<u64>(tag)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let offsets = list(decoder, offsets_tag);
    let counts = list(decoder, counts_tag);
    let tables = decoder
        .find_tag(Tag::JPEGTables)
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok());
    let across = w.div_ceil(chunk_w) as usize;
    let down = h.div_ceil(chunk_h) as usize;
    if offsets.len() < across * down || counts.len() < across * down {
        return Err(damaged(page, "its strips or tiles are not all listed"));
    }
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut img = GrayImage::from_pixel(w, h, image::Luma([255]));
    for row in 0..down {
        for col in 0..across {
            let k = row * across + col;
            let (offset, count) = (offsets[k], counts[k]);
            if offset.checked_add(count).is_none_or(|end| end > file_len) {
                return Err(damaged(page, "a strip lies past the end of the file"));
            }
            let mut data = Vec::with_capacity(count as usize);
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.by_ref().take(count).read_to_end(&mut data))
                .map_err(|e| ScanError::Corrupt(format!("cannot read the file: {e}")))?;
            let stream = with_tables(tables.as_deref(), &data);
            let chunk = decode_jpeg(&stream, (chunk_w, chunk_h))
                .ok_or_else(|| damaged(page, "its JPEG data is invalid"))?;
            let (x0, y0) = (col as u32 * chunk_w, row as u32 * chunk_h);
            for (x, y, pixel) in chunk.enumerate_pixels() {
                // Tiles overhang the page at the right and bottom edges.
                if x < chunk_w && y < chunk_h && x0 + x < w && y0 + y < h {
                    img.put_pixel(x0 + x, y0 + y, *pixel);
                }
            }
        }
    }
    Ok(Some(img))
}

/// One strip's JPEG stream: the shared tables (without their end-of-image marker) followed
/// by the strip (without its start-of-image marker).
fn with_tables(tables: Option<&[u8]>, strip: &[u8]) -> Vec<u8> {
    match tables {
        Some(t) if t.len() > 4 && strip.starts_with(&[0xFF, 0xD8]) => {
            let mut out = t[..t.len() - 2].to_vec();
            out.extend_from_slice(&strip[2..]);
            out
        }
        _ => strip.to_vec(),
    }
}

/// Decodes one strip or tile, refusing one larger than the `chunk` size the page declares
/// (so a forged header cannot make it allocate more than the page).
fn decode_jpeg(stream: &[u8], chunk: (u32, u32)) -> Option<GrayImage> {
    let decoder = JpegDecoder::new(Cursor::new(stream)).ok()?;
    if decoder.color_type() != image::ColorType::L8 {
        return None;
    }
    let (w, h) = decoder.dimensions();
    if w > chunk.0 || h > chunk.1 {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(decoder.total_bytes()).ok()?];
    decoder.read_image(&mut buf).ok()?;
    GrayImage::from_raw(w, h, buf)
}

fn damaged(page: usize, why: &str) -> ScanError {
    ScanError::Corrupt(format!("TIFF page {} cannot be decoded: {why}", page + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_follow_the_shared_tables() {
        let tables = [0xFF, 0xD8, 1, 2, 0xFF, 0xD9];
        let strip = [0xFF, 0xD8, 3, 4, 0xFF, 0xD9];
        assert_eq!(
            with_tables(Some(&tables), &strip),
            vec![0xFF, 0xD8, 1, 2, 3, 4, 0xFF, 0xD9]
        );
        assert_eq!(with_tables(None, &strip), strip.to_vec());
    }
}
