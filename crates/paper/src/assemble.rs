//! Writing the pages of one case back out as a PDF.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use image::GrayImage;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref};

/// Builds an image-only PDF one page at a time. Only the compressed page data is kept
/// between pages (a part can have hundreds of pages): a bilevel page is stored at 1 bit per
/// pixel, anything else as 8-bit gray, both Flate-compressed.
pub struct PdfAssembler {
    pdf: Pdf,
    page_ids: Vec<Ref>,
    next_id: i32,
}

const CATALOG_ID: Ref = Ref::new(1);
const PAGE_TREE_ID: Ref = Ref::new(2);

impl Default for PdfAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PdfAssembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfAssembler")
            .field("pages", &self.page_ids.len())
            .field("bytes", &self.pdf.len())
            .finish()
    }
}

impl PdfAssembler {
    /// Starts an empty document.
    pub fn new() -> Self {
        PdfAssembler {
            pdf: Pdf::new(),
            page_ids: Vec::new(),
            next_id: 3,
        }
    }

    /// How many pages have been added so far.
    pub fn page_count(&self) -> usize {
        self.page_ids.len()
    }

    fn alloc(&mut self) -> Ref {
        let id = Ref::new(self.next_id);
        self.next_id += 1;
        id
    }

    /// Appends `page`, sized on paper from its pixels and `dpi` (so a page rendered at
    /// 150 dpi from an A4 scan comes out A4). A zero `dpi` is taken as 150.
    pub fn add_page(&mut self, page: &GrayImage, dpi: u32) {
        let dpi = if dpi == 0 { 150 } else { dpi };
        let (w, h) = page.dimensions();
        let (w, h, bilevel) = if w == 0 || h == 0 {
            (1, 1, true)
        } else {
            (w, h, is_bilevel(page))
        };
        let (data, bits) = if page.width() == 0 || page.height() == 0 {
            (deflate(&[0x80]), 1)
        } else if bilevel {
            (deflate(&pack_bits(page)), 1)
        } else {
            (deflate(page.as_raw()), 8)
        };

        let page_id = self.alloc();
        let content_id = self.alloc();
        let image_id = self.alloc();
        let image_name = Name(b"Im0");
        let width_pt = w as f32 * 72.0 / dpi as f32;
        let height_pt = h as f32 * 72.0 / dpi as f32;

        let mut image = self.pdf.image_xobject(image_id, &data);
        image.filter(Filter::FlateDecode);
        image.width(w as i32);
        image.height(h as i32);
        image.color_space().device_gray();
        image.bits_per_component(bits);
        image.finish();

        let mut content = Content::new();
        content.save_state();
        content.transform([width_pt, 0.0, 0.0, height_pt, 0.0, 0.0]);
        content.x_object(image_name);
        content.restore_state();
        self.pdf.stream(content_id, &content.finish());

        let mut pdf_page = self.pdf.page(page_id);
        pdf_page.media_box(Rect::new(0.0, 0.0, width_pt, height_pt));
        pdf_page.parent(PAGE_TREE_ID);
        pdf_page.contents(content_id);
        pdf_page.resources().x_objects().pair(image_name, image_id);
        pdf_page.finish();
        self.page_ids.push(page_id);
    }

    /// Closes the document and returns its bytes. A document with no pages still gets one
    /// blank A4 page, since a PDF with none is not valid.
    pub fn finish(mut self) -> Vec<u8> {
        if self.page_ids.is_empty() {
            let page_id = self.alloc();
            let mut page = self.pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, 595.28, 841.89));
            page.parent(PAGE_TREE_ID);
            page.resources();
            page.finish();
            self.page_ids.push(page_id);
        }
        self.pdf.catalog(CATALOG_ID).pages(PAGE_TREE_ID);
        let count = i32::try_from(self.page_ids.len()).unwrap_or(i32::MAX);
        self.pdf
            .pages(PAGE_TREE_ID)
            .kids(self.page_ids.iter().copied())
            .count(count);
        self.pdf.finish()
    }
}

/// True when every pixel is pure black or pure white, i.e. the page can be stored at one bit
/// per pixel without loss.
fn is_bilevel(img: &GrayImage) -> bool {
    img.as_raw().iter().all(|&p| p == 0 || p == 255)
}

/// 1 bit per pixel, rows padded to whole bytes, 1 = white (DeviceGray).
fn pack_bits(page: &GrayImage) -> Vec<u8> {
    let w = page.width() as usize;
    let stride = w.div_ceil(8);
    let mut out = vec![0u8; stride * page.height() as usize];
    for (y, row) in page.as_raw().chunks_exact(w).enumerate() {
        let line = &mut out[y * stride..(y + 1) * stride];
        for (x, &p) in row.iter().enumerate() {
            if p >= 128 {
                line[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::with_capacity(data.len() / 8), Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_bits_msb_first() {
        let img = GrayImage::from_raw(10, 1, vec![255, 0, 255, 0, 0, 0, 0, 0, 255, 255]).unwrap();
        assert_eq!(pack_bits(&img), vec![0b1010_0000, 0b1100_0000]);
    }

    #[test]
    fn only_pure_black_and_white_is_bilevel() {
        let mut img = GrayImage::from_pixel(5, 5, image::Luma([255]));
        img.put_pixel(2, 2, image::Luma([0]));
        assert!(is_bilevel(&img));
        img.put_pixel(1, 1, image::Luma([7]));
        assert!(!is_bilevel(&img));
    }

    #[test]
    fn empty_document_is_still_a_pdf() {
        let bytes = PdfAssembler::new().finish();
        assert!(bytes.starts_with(b"%PDF-"));
    }
}
