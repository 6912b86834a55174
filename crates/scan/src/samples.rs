//! Pixel samples as the decoders find them: packed rows of 1 to 8 bits, colours turned to
//! gray. A leaf module, shared by the TIFF reader and the palette decoder.

/// Reads sample `i` of a row of `bits`-bit samples (1, 2, 4 or 8) packed MSB first.
pub(crate) fn packed_raw(row: &[u8], i: usize, bits: u8) -> Option<u16> {
    let bits = usize::from(bits);
    let bit = i * bits;
    let byte = *row.get(bit / 8)?;
    let shift = 8 - bits - bit % 8;
    let max = (1u16 << bits) - 1;
    Some(u16::from(byte >> shift) & max)
}

/// Like [`packed_raw`], scaled to 0..=255.
pub(crate) fn packed_sample(row: &[u8], i: usize, bits: u8) -> Option<u8> {
    let max = (1u16 << bits) - 1;
    Some((packed_raw(row, i, bits)? * 255 / max) as u8)
}

/// The gray an RGB colour prints as (ITU-R BT.601 weights).
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    let (r, g, b) = (u32::from(r), u32::from(g), u32::from(b));
    ((r * 299 + g * 587 + b * 114 + 500) / 1000).min(255) as u8
}

/// A gray `l` with opacity `a`, laid over white paper.
pub(crate) fn over_white(l: u8, a: u8) -> u8 {
    let (l, a) = (u32::from(l), u32::from(a));
    ((l * a + 255 * (255 - a) + 127) / 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_samples() {
        let row = [0b1010_0000u8];
        assert_eq!(packed_sample(&row, 0, 1), Some(255));
        assert_eq!(packed_sample(&row, 1, 1), Some(0));
        assert_eq!(packed_sample(&row, 2, 1), Some(255));
        assert_eq!(packed_sample(&row, 8, 1), None);
        assert_eq!(packed_sample(&[0xF0], 0, 4), Some(255));
        assert_eq!(packed_sample(&[0xF0], 1, 4), Some(0));
    }
}
