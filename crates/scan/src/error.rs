//! Why reading a scan failed: one error type shared by every decoder, kept apart so that
//! the decoders and the batch reader all depend on it and not on each other.

/// Why a batch or one of its pages could not be read. The messages are meant to be shown to
/// the operator as they are.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file has no content at all, usually an interrupted scan or upload.
    #[error(
        "the file is empty (0 bytes): the scan or the upload was probably interrupted, please scan the batch again"
    )]
    Empty,
    /// The file is none of the formats a scanner writes.
    #[error("the file is not a scanned document: only PDF, TIFF, PNG and JPEG files are accepted")]
    UnknownFormat,
    /// A PDF that needs a password to open.
    #[error(
        "the PDF is protected by a password: save or scan it again without a password and upload that file"
    )]
    Encrypted,
    /// The file claims a known format but cannot be read; the detail says where it failed.
    #[error(
        "the file is damaged or incomplete and cannot be read ({0}); please scan the batch again"
    )]
    Corrupt(String),
    /// More pages than [`Limits::max_pages`](crate::Limits::max_pages).
    #[error(
        "the batch has {pages} pages, more than the {limit} allowed in one upload: please split it into smaller batches"
    )]
    TooManyPages {
        /// Pages the file has (for a TIFF, counted only up to four times the limit).
        pages: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The file exceeds [`Limits::max_bytes`](crate::Limits::max_bytes), or a page exceeds [`Limits::max_page_pixels`](crate::Limits::max_page_pixels).
    #[error(
        "the file or one of its pages is too large to be processed: please scan at a lower resolution or split the batch"
    )]
    TooLarge,
    /// An external program this needs is not installed; the detail names it and its package.
    /// Never reported as a damaged file: the file may well be fine.
    #[error(
        "tool missing: {0}; a program needed to read this scan is not installed on the server, please tell the system administrator"
    )]
    ToolMissing(String),
    /// An external program failed for a reason other than a damaged file (time limit,
    /// resources); the detail says which and why.
    #[error("reading the scan failed: {0}")]
    Tool(String),
}
