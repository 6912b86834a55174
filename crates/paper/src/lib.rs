//! Printed paper: every PDF Sportello writes is made here.
//!
//! Every document is drawn in one [page model](page): sheets of text runs, rules and
//! rectangles (a QR code is a filled set of them). Two back ends write those sheets:
//! - [`pdfa`] sets them in DejaVu Sans embedded in the file, through krilla, as PDF/A-2b
//!   when the document says when it was made. The [`table`] documents (the daily protocol
//!   register, the demo's forms) use it.
//! - The Helvetica writer, for [`cover_sheet_pdf`], [`letter_pdf`] and [`permit_pdf`], uses
//!   the standard PDF fonts in WinAnsi encoding, so it embeds nothing. Moving these three
//!   to [`pdfa`] is a change of the back end they call (and of the metrics they lay text
//!   out with), not of their drawing. Cover sheets carry the QR code that the scan reader
//!   (`sportello-scan`) finds again on a scanned batch, with [`COVER_QR_PREFIX`] in front
//!   of the case reference.
//!
//! [`PdfAssembler`] writes scanned pages back out as an image-only PDF, one case's part of a
//! batch at a time.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod assemble;
mod cover;
mod draw;
mod helvetica;
mod letter;
mod metrics;
pub mod page;
pub mod pdfa;
mod permit;
pub mod table;
mod text;

pub use assemble::PdfAssembler;
pub use cover::{COVER_QR_PREFIX, CoverSheet, cover_sheet_pdf};
pub use letter::{Block, Letter, letter_pdf};
pub use pdfa::PdfError;
pub use permit::{PrintedPermit, permit_pdf};

#[cfg(test)]
mod tests {
    /// Parts of a batch are assembled in a blocking worker.
    #[test]
    fn the_assembler_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<super::PdfAssembler>();
    }
}
