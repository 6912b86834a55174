//! Palette TIFF pages ("RGB palette", what ImageMagick writes for a page of few colours),
//! decoded in Rust.
//!
//! The `tiff` crate refuses palette pages, although they are stored like gray ones (one
//! index per pixel, compressed with LZW, Deflate, PackBits or nothing). So the page is read
//! through a view of the file in which its PhotometricInterpretation says "BlackIsZero": the
//! crate then hands out the indices, which are looked up in the page's ColorMap.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use image::GrayImage;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

use crate::error::ScanError;
use crate::samples::{luma, packed_raw};

/// PhotometricInterpretation = RGB palette.
const PALETTE: u16 = 3;
/// PhotometricInterpretation = BlackIsZero.
const BLACK_IS_ZERO: u16 = 1;

/// Decodes page `index` of the TIFF at `path` when `decoder` (positioned on that page) says
/// it is a palette page of 1 to 8 bits; `Ok(None)` otherwise.
pub(crate) fn decode_page(
    decoder: &mut Decoder<BufReader<File>>,
    path: &Path,
    index: usize,
    limits: tiff::decoder::Limits,
) -> Result<Option<GrayImage>, ScanError> {
    let photometric = decoder
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .ok()
        .flatten();
    let bits = decoder
        .find_tag_unsigned::<u16>(Tag::BitsPerSample)
        .ok()
        .flatten()
        .unwrap_or(1);
    if photometric != Some(PALETTE) || !matches!(bits, 1 | 2 | 4 | 8) {
        return Ok(None);
    }
    let entries = 1usize << bits;
    let map = decoder
        .find_tag_unsigned_vec::<u16>(Tag::ColorMap)
        .ok()
        .flatten()
        .filter(|m| m.len() >= 3 * entries)
        .ok_or_else(|| {
            ScanError::Corrupt(format!("TIFF page {} has no usable colour map", index + 1))
        })?;
    let gray: Vec<u8> = (0..entries)
        .map(|i| {
            let channel = |c: usize| (map[c * entries + i] >> 8) as u8;
            luma(channel(0), channel(1), channel(2))
        })
        .collect();
    let Some(ifd) = decoder.ifd_pointer() else {
        return Ok(None);
    };
    let big_endian = matches!(decoder.byte_order(), tiff::tags::ByteOrder::BigEndian);
    let mut file = File::open(path).map_err(|e| io_error(&e))?;
    let Some(at) =
        photometric_value_offset(&mut file, ifd.0, big_endian).map_err(|e| io_error(&e))?
    else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(0)).map_err(|e| io_error(&e))?;
    let patched = Patched {
        inner: BufReader::new(file),
        position: 0,
        at,
        bytes: if big_endian {
            BLACK_IS_ZERO.to_be_bytes()
        } else {
            BLACK_IS_ZERO.to_le_bytes()
        },
    };
    let mut as_gray = Decoder::new(patched)
        .map_err(tiff_error)?
        .with_limits(limits);
    as_gray.seek_to_image(index).map_err(tiff_error)?;
    let (w, h) = as_gray.dimensions().map_err(tiff_error)?;
    if !matches!(as_gray.colortype(), Ok(ColorType::Gray(b)) if u16::from(b) == bits) {
        return Ok(None);
    }
    let DecodingResult::U8(indices) = as_gray.read_image().map_err(tiff_error)? else {
        return Ok(None);
    };
    let (w, h) = (w as usize, h as usize);
    let stride = (w * usize::from(bits)).div_ceil(8);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = indices
            .get(y * stride..(y + 1) * stride)
            .ok_or_else(|| ScanError::Corrupt("inconsistent TIFF page size".to_owned()))?;
        for x in 0..w {
            let i = packed_raw(row, x, bits as u8).unwrap_or(0);
            out.push(gray[usize::from(i)]);
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out)
        .map(Some)
        .ok_or_else(|| ScanError::Corrupt("inconsistent TIFF page size".to_owned()))
}

fn io_error(e: &io::Error) -> ScanError {
    ScanError::Corrupt(format!("cannot read the file: {e}"))
}

fn tiff_error(e: tiff::TiffError) -> ScanError {
    ScanError::Corrupt(format!("TIFF: {e}"))
}

/// Where, in the file, the value of the PhotometricInterpretation entry of the directory at
/// `ifd` is (a SHORT kept in the entry itself), for classic and BigTIFF files.
fn photometric_value_offset(
    file: &mut File,
    ifd: u64,
    big_endian: bool,
) -> io::Result<Option<u64>> {
    let mut header = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header)?;
    let u16_at = |b: &[u8]| {
        let b = [b[0], b[1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let bigtiff = u16_at(&header[2..4]) == 43;
    file.seek(SeekFrom::Start(ifd))?;
    let (count, entry_len, value_at) = if bigtiff {
        let mut n = [0u8; 8];
        file.read_exact(&mut n)?;
        let n = if big_endian {
            u64::from_be_bytes(n)
        } else {
            u64::from_le_bytes(n)
        };
        (n, 20u64, 12u64)
    } else {
        let mut n = [0u8; 2];
        file.read_exact(&mut n)?;
        (u64::from(u16_at(&n)), 12u64, 8u64)
    };
    let first = ifd + if bigtiff { 8 } else { 2 };
    let mut entry = [0u8; 4];
    for k in 0..count.min(4096) {
        let start = first + k * entry_len;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut entry)?;
        let (tag, kind) = (u16_at(&entry[0..2]), u16_at(&entry[2..4]));
        // Type 3 = SHORT, the type the specification gives this tag.
        if tag == Tag::PhotometricInterpretation.to_u16() {
            return Ok((kind == 3).then_some(start + value_at));
        }
    }
    Ok(None)
}

/// A file seen with two bytes replaced.
struct Patched {
    inner: BufReader<File>,
    position: u64,
    at: u64,
    bytes: [u8; 2],
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (k, byte) in buf[..n].iter_mut().enumerate() {
            let pos = self.position + k as u64;
            if pos >= self.at && pos < self.at + 2 {
                *byte = self.bytes[(pos - self.at) as usize];
            }
        }
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for Patched {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = self.inner.seek(to)?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_reads_replace_only_the_two_bytes() {
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, b"0123456789").unwrap();
        let mut patched = Patched {
            inner: BufReader::with_capacity(3, tmp),
            position: 0,
            at: 4,
            bytes: *b"ab",
        };
        patched.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        patched.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"0123ab6789");
        patched.seek(SeekFrom::Start(5)).unwrap();
        let mut two = [0u8; 2];
        patched.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"b6");
    }
}
