//! Reading scanned paper: batches read page by page and split at the cover sheets printed
//! for each case (the printing is `sportello-paper`'s).
//!
//! The flow the office follows: print a cover sheet per case, lay it on top of that case's
//! papers, scan the whole pile as one batch. Then [`Batch`] hands out the pages one at a
//! time (a batch can have a thousand pages, so only one decoded page is held at a time),
//! [`cover_reference`] tells which pages are cover sheets, [`split_at_covers`] groups the
//! other pages by case, and the paper crate's `PdfAssembler` writes each group back out as
//! a PDF.
//!
//! PDF batches are rendered with poppler-utils (`pdfinfo`, `pdftoppm`) run as subprocesses
//! under a time limit; TIFF (including CCITT Group 3 and Group 4 fax in either bit order,
//! LZW, palettes and gray JPEG), PNG and JPEG are decoded in Rust, except the few TIFF
//! pages the Rust decoders cannot handle (Group 3 two-dimensional, old-style JPEG), which
//! go through libtiff-tools (`tiffcp`, `tiff2rgba`). A tool that is not installed is
//! reported as [`ScanError::ToolMissing`], never as a damaged file. Only a PDF batch split
//! with [`extract_pdf_pages`] uses `pdfseparate` and `pdfunite`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod batch;
mod ccitt;
mod clean;
mod error;
mod jpeg_gray;
mod palette;
mod qr;
mod raster;
mod samples;
mod split;
mod tools;

pub use batch::{Batch, Format, Limits, MAX_DPI, MIN_DPI, extract_pdf_pages};
pub use clean::{clean_for_ocr, clean_image_file_for_ocr};
pub use error::ScanError;
pub use qr::cover_reference;
pub use split::{Part, split_at_covers};

#[cfg(test)]
mod tests {
    /// Batches are opened in one task and read in a blocking worker.
    #[test]
    fn handles_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<super::Batch>();
        send::<super::ScanError>();
    }
}
