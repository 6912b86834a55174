//! Reading a scanned batch one page at a time, whatever the scanner wrote: PDF (rendered by
//! poppler), multi-page TIFF (including CCITT Group 4), PNG or JPEG.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::{GrayImage, ImageFormat, ImageReader};
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::{ResolutionUnit, Tag};
use tiff::{ColorType, TiffError};

use crate::error::ScanError;
use crate::samples::{luma, over_white, packed_sample};
use crate::tools;
use crate::{ccitt, jpeg_gray, palette, raster};

/// The lowest resolution a page is rendered at; below it nothing on a page is readable.
pub const MIN_DPI: u32 = 36;
/// The highest resolution a page is rendered at; beyond it memory grows with no gain for
/// office documents.
pub const MAX_DPI: u32 = 600;

/// Bounds on what one uploaded batch may cost, so that a wrong or hostile file cannot
/// exhaust the machine.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most pages a batch may have; more is refused with [`ScanError::TooManyPages`].
    pub max_pages: usize,
    /// Largest file accepted, in bytes; more is refused with [`ScanError::TooLarge`].
    pub max_bytes: u64,
    /// How long one run of an external tool (one PDF page render) may take before it is
    /// killed.
    pub tool_timeout: Duration,
    /// Largest decoded page, in pixels: bounds the memory one page takes. PDF pages bigger
    /// than this at the requested resolution are rendered at a lower one; raster pages
    /// bigger than this are refused with [`ScanError::TooLarge`].
    pub max_page_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pages: 2000,
            max_bytes: 500 * 1024 * 1024,
            tool_timeout: Duration::from_secs(60),
            // An A3 page at 600 dpi is about 70 million pixels.
            max_page_pixels: 100_000_000,
        }
    }
}

/// The file formats a batch can come in, for callers that treat them differently (only a
/// PDF batch can keep a scanner's own text layer, see [`extract_pdf_pages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PDF, rendered page by page with poppler.
    Pdf,
    /// TIFF, single- or multi-page, any compression including CCITT Group 4.
    Tiff,
    /// PNG, a single page.
    Png,
    /// JPEG, a single page.
    Jpeg,
}

/// One scanned batch, opened from a file, handing out one decoded page at a time so that
/// memory does not grow with the number of pages.
pub struct Batch {
    path: PathBuf,
    limits: Limits,
    pages: usize,
    source: Source,
}

enum Source {
    /// Page sizes in points, already turned by the page rotation.
    Pdf(Vec<(f64, f64)>),
    /// The decoder stays open: after counting, it knows every page's directory offset, so
    /// seeking to any page is cheap.
    Tiff(Box<Decoder<BufReader<File>>>),
    Single(ImageFormat),
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("path", &self.path)
            .field("format", &self.format())
            .field("pages", &self.pages)
            .finish()
    }
}

/// Recognises the format from the first bytes, never from the file name (scanners and
/// people name files freely).
fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
        || head.starts_with(b"II+\0")
        || head.starts_with(b"MM\0+")
    {
        Some(Format::Tiff)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if head.windows(5).any(|w| w == b"%PDF-") {
        // The PDF header may follow some junk within the first kilobyte.
        Some(Format::Pdf)
    } else {
        None
    }
}

fn io_error(e: &std::io::Error) -> ScanError {
    ScanError::Corrupt(format!("cannot read the file: {e}"))
}

impl Batch {
    /// Opens a batch, checks it against `limits` and counts its pages; a password-protected
    /// PDF is reported as [`ScanError::Encrypted`] here rather than at the first page.
    pub fn open(path: &Path, limits: Limits) -> Result<Batch, ScanError> {
        let meta = std::fs::metadata(path).map_err(|e| io_error(&e))?;
        if !meta.is_file() {
            return Err(ScanError::Corrupt("not a regular file".to_owned()));
        }
        if meta.len() == 0 {
            return Err(ScanError::Empty);
        }
        if meta.len() > limits.max_bytes {
            return Err(ScanError::TooLarge);
        }
        let mut head = Vec::with_capacity(1024);
        File::open(path)
            .and_then(|f| f.take(1024).read_to_end(&mut head))
            .map_err(|e| io_error(&e))?;
        let format = sniff(&head).ok_or(ScanError::UnknownFormat)?;
        // Absolute, so that a file name starting with '-' is never taken for an option.
        let path = std::fs::canonicalize(path).map_err(|e| io_error(&e))?;
        let (pages, source) = match format {
            Format::Pdf => {
                let sizes = pdf_page_sizes(&path, &limits)?;
                (sizes.len(), Source::Pdf(sizes))
            }
            Format::Tiff => {
                let (pages, decoder) = open_tiff(&path, &limits)?;
                (pages, Source::Tiff(Box::new(decoder)))
            }
            Format::Png | Format::Jpeg => {
                let image_format = if format == Format::Png {
                    ImageFormat::Png
                } else {
                    ImageFormat::Jpeg
                };
                let (w, h) = guarded(|| {
                    reader(&path, image_format, &limits)?
                        .into_dimensions()
                        .map_err(|e| ScanError::Corrupt(e.to_string()))
                })?;
                if u64::from(w) * u64::from(h) > limits.max_page_pixels {
                    return Err(ScanError::TooLarge);
                }
                (1, Source::Single(image_format))
            }
        };
        if pages == 0 {
            return Err(ScanError::Corrupt("the document has no pages".to_owned()));
        }
        if pages > limits.max_pages {
            return Err(ScanError::TooManyPages {
                pages,
                limit: limits.max_pages,
            });
        }
        Ok(Batch {
            path,
            limits,
            pages,
            source,
        })
    }

    /// How many pages the batch has (at least one).
    pub fn page_count(&self) -> usize {
        self.pages
    }

    /// The format the file turned out to be.
    pub fn format(&self) -> Format {
        match &self.source {
            Source::Pdf(_) => Format::Pdf,
            Source::Tiff(_) => Format::Tiff,
            Source::Single(ImageFormat::Png) => Format::Png,
            Source::Single(_) => Format::Jpeg,
        }
    }

    /// The file the batch is read from (absolute), e.g. for [`extract_pdf_pages`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decodes page `index` (zero-based) as grayscale at `dpi` (clamped to
    /// [`MIN_DPI`]..=[`MAX_DPI`]), so that every page of every format comes out at the
    /// physical scale the caller works at. PDF pages are rendered at that resolution (lower
    /// if the page would exceed [`Limits::max_page_pixels`]); raster pages are resampled from
    /// their recorded resolution, or, when they record none, as if they were A4 wide.
    ///
    /// Takes `&mut self` because a TIFF batch keeps its decoder open between pages. An
    /// `index` past the last page is reported as [`ScanError::Corrupt`].
    pub fn page(&mut self, index: usize, dpi: u32) -> Result<GrayImage, ScanError> {
        if index >= self.pages {
            return Err(ScanError::Corrupt(format!(
                "page {} was asked for, but the batch has {} pages",
                index + 1,
                self.pages
            )));
        }
        let dpi = dpi.clamp(MIN_DPI, MAX_DPI);
        let limits = &self.limits;
        match &mut self.source {
            Source::Pdf(sizes) => {
                let (w, h) = sizes.get(index).copied().unwrap_or((612.0, 792.0));
                render_pdf_page(&self.path, index, dpi, (w, h), limits)
            }
            Source::Tiff(decoder) => {
                let (img, res) = tiff_page(decoder, &self.path, index, limits)?;
                Ok(to_dpi(img, res, dpi, limits.max_page_pixels))
            }
            Source::Single(format) => {
                let format = *format;
                let img = guarded(|| decode_single(&self.path, format, limits))?;
                let res = single_resolution(&self.path, format);
                Ok(to_dpi(img, res, dpi, limits.max_page_pixels))
            }
        }
    }
}

/// Runs a third-party decoder so that a panic on a malformed file becomes an error for
/// this file instead of taking the worker down.
fn guarded<T>(f: impl FnOnce() -> Result<T, ScanError>) -> Result<T, ScanError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(ScanError::Corrupt(
            "the decoder failed on malformed data".to_owned(),
        ))
    })
}

// ---------------------------------------------------------------------------------------
// PDF

/// Page sizes of a PDF in points (rotation applied), via `pdfinfo`. Only the first
/// `max_pages + 1` pages are listed, which is enough to tell that there are too many.
fn pdf_page_sizes(path: &Path, limits: &Limits) -> Result<Vec<(f64, f64)>, ScanError> {
    let last = (limits.max_pages.saturating_add(1)).to_string();
    let args: [&OsStr; 5] = [
        OsStr::new("-f"),
        OsStr::new("1"),
        OsStr::new("-l"),
        OsStr::new(&last),
        path.as_os_str(),
    ];
    let out = tools::run("pdfinfo", &args, limits.tool_timeout)?;
    if !out.success {
        return Err(pdf_failure(&out.stderr));
    }
    parse_pdfinfo(&out.stdout, limits.max_pages)
}

/// Reads the page count and page sizes out of `pdfinfo -f 1 -l N` output.
fn parse_pdfinfo(stdout: &str, max_pages: usize) -> Result<Vec<(f64, f64)>, ScanError> {
    // The document's own metadata (its title) comes first and may contain anything, even
    // lines that look like ours: only the lines after the last "Pages:" line are trusted,
    // and page lines are matched by their number.
    let lines: Vec<&str> = stdout.lines().collect();
    let pages_at = lines.iter().rposition(|l| l.starts_with("Pages:"));
    let pages: Option<usize> = pages_at
        .and_then(|i| lines[i].strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok());
    let mut sizes: std::collections::HashMap<usize, (f64, f64)> = Default::default();
    let mut rotations: std::collections::HashMap<usize, u32> = Default::default();
    for line in lines.iter().skip(pages_at.map_or(lines.len(), |i| i + 1)) {
        // "Page    1 size:  595.276 x 841.89 pts (A4)" / "Page    1 rot:   0"
        let Some(rest) = line.strip_prefix("Page ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(number) = parts.next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        match parts.next() {
            Some("size:") => {
                let w = parts.next().and_then(|v| v.parse::<f64>().ok());
                let _x = parts.next();
                let h = parts.next().and_then(|v| v.parse::<f64>().ok());
                if let (Some(w), Some(h)) = (w, h) {
                    sizes.insert(number, (w, h));
                }
            }
            Some("rot:") => {
                let rot = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                rotations.insert(number, rot);
            }
            _ => {}
        }
    }
    let pages = pages
        .ok_or_else(|| ScanError::Corrupt("the PDF page count could not be read".to_owned()))?;
    if pages > max_pages {
        return Err(ScanError::TooManyPages {
            pages,
            limit: max_pages,
        });
    }
    // Pages whose size was not listed (should not happen) default to US Letter.
    let mut out_sizes = Vec::with_capacity(pages);
    for number in 1..=pages {
        let (w, h) = sizes.get(&number).copied().unwrap_or((612.0, 792.0));
        let rot = rotations.get(&number).copied().unwrap_or(0);
        let (w, h) = if rot % 180 == 90 { (h, w) } else { (w, h) };
        let sane = |v: f64| if v.is_finite() && v > 1.0 { v } else { 612.0 };
        out_sizes.push((sane(w), sane(h)));
    }
    Ok(out_sizes)
}

/// Turns poppler's complaint into the error the operator needs.
fn pdf_failure(stderr: &str) -> ScanError {
    if stderr.contains("Incorrect password") {
        ScanError::Encrypted
    } else {
        ScanError::Corrupt(format!("PDF: {}", tools::tail(stderr)))
    }
}

fn render_pdf_page(
    path: &Path,
    index: usize,
    dpi: u32,
    (w_pt, h_pt): (f64, f64),
    limits: &Limits,
) -> Result<GrayImage, ScanError> {
    // Lower the resolution for pages so large that they would exceed the pixel budget.
    let area_in2 = (w_pt / 72.0) * (h_pt / 72.0);
    let mut dpi = f64::from(dpi);
    let budget = limits.max_page_pixels as f64;
    if area_in2 * dpi * dpi > budget {
        dpi = (budget / area_in2).sqrt().floor().max(1.0);
    }
    let dir = tempfile::tempdir().map_err(|e| ScanError::Tool(format!("temporary folder: {e}")))?;
    let root = dir.path().join("page");
    let number = (index + 1).to_string();
    let dpi_arg = format!("{dpi}");
    let args: [&OsStr; 11] = [
        OsStr::new("-f"),
        OsStr::new(&number),
        OsStr::new("-l"),
        OsStr::new(&number),
        OsStr::new("-r"),
        OsStr::new(&dpi_arg),
        OsStr::new("-gray"),
        OsStr::new("-singlefile"),
        OsStr::new("-q"),
        path.as_os_str(),
        root.as_os_str(),
    ];
    let out = tools::run("pdftoppm", &args, limits.tool_timeout)?;
    let file = dir.path().join("page.pgm");
    if !out.success || !file.exists() {
        // `-q` silences poppler; rerun without it only to learn why.
        let loud: Vec<&OsStr> = args
            .iter()
            .copied()
            .filter(|a| *a != OsStr::new("-q"))
            .collect();
        let reason = tools::run("pdftoppm", &loud, limits.tool_timeout)
            .map(|o| o.stderr)
            .unwrap_or_default();
        return Err(match pdf_failure(&reason) {
            ScanError::Corrupt(detail) => {
                ScanError::Corrupt(format!("page {number} could not be rendered: {detail}"))
            }
            other => other,
        });
    }
    guarded(|| {
        let img = reader(&file, ImageFormat::Pnm, limits)?
            .decode()
            .map_err(|e| match e {
                image::ImageError::Limits(_) => ScanError::TooLarge,
                other => ScanError::Tool(format!("reading pdftoppm output: {other}")),
            })?;
        Ok(img.into_luma8())
    })
}

/// Cuts the given pages (zero-based, in the order given) out of a PDF into a new PDF with
/// poppler's `pdfseparate` and `pdfunite`, so that whatever the scanner put in the file (its
/// OCR text layer, its compression) is kept, unlike re-assembling rendered pages with
/// [`PdfAssembler`](sportello_paper::PdfAssembler).
pub fn extract_pdf_pages(
    pdf: &Path,
    pages: &[usize],
    timeout: Duration,
) -> Result<Vec<u8>, ScanError> {
    if pages.is_empty() {
        return Err(ScanError::Tool("no pages to extract".to_owned()));
    }
    let pdf = std::fs::canonicalize(pdf).map_err(|e| io_error(&e))?;
    let dir = tempfile::tempdir().map_err(|e| ScanError::Tool(format!("temporary folder: {e}")))?;
    let mut singles: Vec<PathBuf> = Vec::with_capacity(pages.len());
    for (k, &page) in pages.iter().enumerate() {
        let number = (page + 1).to_string();
        let target = dir.path().join(format!("p{k}.pdf"));
        let args: [&OsStr; 6] = [
            OsStr::new("-f"),
            OsStr::new(&number),
            OsStr::new("-l"),
            OsStr::new(&number),
            pdf.as_os_str(),
            target.as_os_str(),
        ];
        let out = tools::run("pdfseparate", &args, timeout)?;
        if !out.success || !target.exists() {
            return Err(match pdf_failure(&out.stderr) {
                ScanError::Corrupt(detail) => {
                    ScanError::Corrupt(format!("page {number} could not be extracted: {detail}"))
                }
                other => other,
            });
        }
        singles.push(target);
    }
    let united = dir.path().join("united.pdf");
    let mut args: Vec<&OsStr> = singles.iter().map(|p| p.as_os_str()).collect();
    args.push(united.as_os_str());
    let out = tools::run("pdfunite", &args, timeout)?;
    if !out.success {
        return Err(ScanError::Tool(format!(
            "pdfunite: {}",
            tools::tail(&out.stderr)
        )));
    }
    std::fs::read(&united).map_err(|e| ScanError::Tool(format!("reading pdfunite output: {e}")))
}

// ---------------------------------------------------------------------------------------
// Raster formats

/// A resolution in dots per inch, horizontally and vertically (fax-style scans differ).
type Resolution = Option<(f64, f64)>;

fn image_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    let side = u32::try_from(limits.max_page_pixels.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
    l.max_image_width = Some(side);
    l.max_image_height = Some(side);
    // Room for an RGBA decode of the largest allowed page.
    l.max_alloc = Some(limits.max_page_pixels.saturating_mul(4).max(1 << 20));
    l
}

fn reader(
    path: &Path,
    format: ImageFormat,
    limits: &Limits,
) -> Result<ImageReader<BufReader<File>>, ScanError> {
    let mut r = ImageReader::open(path).map_err(|e| io_error(&e))?;
    r.set_format(format);
    r.limits(image_limits(limits));
    Ok(r)
}

fn decode_single(
    path: &Path,
    format: ImageFormat,
    limits: &Limits,
) -> Result<GrayImage, ScanError> {
    let img = reader(path, format, limits)?
        .decode()
        .map_err(|e| match e {
            image::ImageError::Limits(_) => ScanError::TooLarge,
            other => ScanError::Corrupt(other.to_string()),
        })?;
    if img.color().has_alpha() {
        // Transparent parts are paper: put them on white.
        let la = img.into_luma_alpha8();
        let (w, h) = la.dimensions();
        let data = la
            .pixels()
            .map(|p| {
                let [l, a] = p.0;
                let (l, a) = (u32::from(l), u32::from(a));
                ((l * a + 255 * (255 - a) + 127) / 255) as u8
            })
            .collect();
        GrayImage::from_raw(w, h, data)
            .ok_or_else(|| ScanError::Corrupt("inconsistent image size".to_owned()))
    } else {
        Ok(img.into_luma8())
    }
}

/// The resolution a PNG (`pHYs`) or JPEG (JFIF density) file records, if any.
fn single_resolution(path: &Path, format: ImageFormat) -> Resolution {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(256 * 1024).read_to_end(&mut head))
        .ok()?;
    match format {
        ImageFormat::Png => png_resolution(&head),
        _ => jpeg_resolution(&head),
    }
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn png_resolution(data: &[u8]) -> Resolution {
    let mut pos = 8;
    loop {
        let len = be32(data.get(pos..)?)? as usize;
        let kind = data.get(pos + 4..pos + 8)?;
        if kind == b"IDAT" {
            return None;
        }
        if kind == b"pHYs" {
            let body = data.get(pos + 8..pos + 8 + 9)?;
            let x = f64::from(be32(&body[0..4])?);
            let y = f64::from(be32(&body[4..8])?);
            // Unit 1 = metre; 0 = aspect ratio only.
            return (body[8] == 1 && x > 0.0 && y > 0.0).then_some((x * 0.0254, y * 0.0254));
        }
        pos = pos.checked_add(12)?.checked_add(len)?;
    }
}

fn jpeg_resolution(data: &[u8]) -> Resolution {
    // The JFIF APP0 segment comes right after SOI.
    let seg = data.get(2..20)?;
    if seg[0] != 0xFF || seg[1] != 0xE0 || &seg[4..9] != b"JFIF\0" {
        return None;
    }
    let unit = seg[11];
    let x = f64::from(u16::from_be_bytes([seg[12], seg[13]]));
    let y = f64::from(u16::from_be_bytes([seg[14], seg[15]]));
    if x <= 0.0 || y <= 0.0 {
        return None;
    }
    match unit {
        1 => Some((x, y)),
        2 => Some((x * 2.54, y * 2.54)),
        _ => None,
    }
}

/// Resamples a raster page from its own resolution to `dpi`. A page without a recorded
/// resolution (or an absurd one) is taken to be as wide as an A4 sheet, the likeliest
/// thing for a scan. The result never exceeds `max_pixels` (the resolution is lowered
/// instead), whatever the recorded resolution claims.
fn to_dpi(img: GrayImage, res: Resolution, dpi: u32, max_pixels: u64) -> GrayImage {
    let (w, h) = img.dimensions();
    let plausible = |v: f64| (20.0..=4800.0).contains(&v);
    let (rx, ry) = match res {
        Some((x, y)) if plausible(x) && plausible(y) => (x, y),
        _ => {
            let guess = f64::from(w.min(h)) / (210.0 / 25.4);
            (guess.max(1.0), guess.max(1.0))
        }
    };
    let target = f64::from(dpi);
    let close = |r: f64| ((r - target) / target).abs() < 0.03;
    if close(rx) && close(ry) && u64::from(w) * u64::from(h) <= max_pixels {
        return img;
    }
    let mut nw = f64::from(w) * target / rx;
    let mut nh = f64::from(h) * target / ry;
    let budget = max_pixels.max(1) as f64;
    if nw.round() * nh.round() > budget {
        let f = (budget / (nw * nh)).sqrt();
        nw = (nw * f).floor();
        nh = (nh * f).floor();
    }
    let nw = nw.round().clamp(1.0, 1_000_000.0) as u32;
    let nh = nh.round().clamp(1.0, 1_000_000.0) as u32;
    raster::resize(&img, nw, nh)
}

// ---------------------------------------------------------------------------------------
// TIFF

fn tiff_error(e: TiffError) -> ScanError {
    match e {
        TiffError::LimitsExceeded => ScanError::TooLarge,
        TiffError::UnsupportedError(u) => {
            ScanError::Corrupt(format!("TIFF feature not supported: {u}"))
        }
        other => ScanError::Corrupt(format!("TIFF: {other}")),
    }
}

fn tiff_limits(limits: &Limits) -> tiff::decoder::Limits {
    let mut l = tiff::decoder::Limits::default();
    // Room for a 16-bit RGBA decode of the largest allowed page.
    let bytes = limits.max_page_pixels.saturating_mul(8);
    l.decoding_buffer_size = usize::try_from(bytes).unwrap_or(usize::MAX);
    l.intermediate_buffer_size = l.decoding_buffer_size;
    l
}

/// Opens a TIFF and counts its pages by walking the directory chain (cycles are detected by
/// the decoder), leaving the decoder ready to seek to any page.
fn open_tiff(path: &Path, limits: &Limits) -> Result<(usize, Decoder<BufReader<File>>), ScanError> {
    guarded(|| {
        let file = File::open(path).map_err(|e| io_error(&e))?;
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(tiff_error)?
            .with_limits(tiff_limits(limits));
        let mut pages = 1usize;
        while decoder.more_images() {
            decoder.next_image().map_err(tiff_error)?;
            pages += 1;
            // Keep counting past the limit only as far as it takes to be sure; the exact
            // count of an absurd file does not matter.
            if pages > limits.max_pages.saturating_mul(4).max(100) {
                break;
            }
        }
        if pages > limits.max_pages {
            return Err(ScanError::TooManyPages {
                pages,
                limit: limits.max_pages,
            });
        }
        Ok((pages, decoder))
    })
}

fn tiff_resolution(decoder: &mut Decoder<BufReader<File>>) -> Resolution {
    use tiff::decoder::ifd::Value;
    let rational = |v: Value| -> Option<f64> {
        match v {
            Value::Rational(n, d) if d != 0 => Some(f64::from(n) / f64::from(d)),
            Value::Float(f) => Some(f64::from(f)),
            Value::Double(f) => Some(f),
            Value::Short(n) => Some(f64::from(n)),
            Value::Unsigned(n) => Some(f64::from(n)),
            _ => None,
        }
    };
    let x = decoder
        .find_tag(Tag::XResolution)
        .ok()
        .flatten()
        .and_then(rational)?;
    let y = decoder
        .find_tag(Tag::YResolution)
        .ok()
        .flatten()
        .and_then(rational)
        .unwrap_or(x);
    let unit = decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .and_then(ResolutionUnit::from_u16)
        .unwrap_or(ResolutionUnit::Inch);
    match unit {
        ResolutionUnit::Inch => Some((x, y)),
        ResolutionUnit::Centimeter => Some((x * 2.54, y * 2.54)),
        _ => None,
    }
}

fn tiff_page(
    decoder: &mut Decoder<BufReader<File>>,
    path: &Path,
    index: usize,
    limits: &Limits,
) -> Result<(GrayImage, Resolution), ScanError> {
    decoder.seek_to_image(index).map_err(tiff_error)?;
    let (w, h) = decoder.dimensions().map_err(tiff_error)?;
    if w == 0 || h == 0 {
        return Err(ScanError::Corrupt(format!(
            "page {} has no pixels",
            index + 1
        )));
    }
    if u64::from(w) * u64::from(h) > limits.max_page_pixels {
        return Err(ScanError::TooLarge);
    }
    let res = tiff_resolution(decoder);
    let decoded = guarded(|| {
        // Fax codings, palettes and gray JPEG, which the `tiff` crate cannot read (or reads
        // wrongly), are decoded here.
        let mut file = File::open(path).map_err(|e| io_error(&e))?;
        if let Some(img) = ccitt::decode_page(decoder, &mut file, (w, h), index)? {
            return Ok(Some(img));
        }
        if let Some(img) = palette::decode_page(decoder, path, index, tiff_limits(limits))? {
            return Ok(Some(img));
        }
        if let Some(img) = jpeg_gray::decode_page(decoder, &mut file, (w, h), index)? {
            return Ok(Some(img));
        }
        decode_tiff_page(decoder, w, h)
    });
    match decoded {
        Ok(Some(img)) => Ok((img, res)),
        // Something the Rust decoder cannot do (or does wrong): let libtiff do it.
        Ok(None) => Ok((libtiff_page(path, index, limits)?, res)),
        Err(e) => Err(e),
    }
}

/// Decodes the current TIFF page in Rust; `Ok(None)` when the page uses something the
/// `tiff` crate does not support (Group 3 two-dimensional, JPEG other than three-channel
/// or plain gray, which it decodes wrongly, fax codings in tiles written least-significant
/// bit first) and libtiff must be asked instead.
fn decode_tiff_page(
    decoder: &mut Decoder<BufReader<File>>,
    w: u32,
    h: u32,
) -> Result<Option<GrayImage>, ScanError> {
    let color = match decoder.colortype() {
        Ok(c) => c,
        Err(TiffError::UnsupportedError(_)) => return Ok(None),
        Err(e) => return Err(tiff_error(e)),
    };
    let compression = decoder
        .find_tag_unsigned::<u16>(Tag::Compression)
        .ok()
        .flatten()
        .unwrap_or(1);
    // 6 and 7 are old- and new-style JPEG: the tiff crate garbles anything but 3-channel
    // ones (a gray page comes out striped and doubled).
    if matches!(compression, 6 | 7) && !matches!(color, ColorType::RGB(_) | ColorType::YCbCr(_)) {
        return Ok(None);
    }
    if matches!(color, ColorType::Palette(_)) {
        return Ok(None);
    }
    // The `tiff` crate ignores FillOrder: fax codings written least-significant bit first
    // that were not decoded in Rust (tiles) go to libtiff.
    let lsb_first = decoder
        .find_tag_unsigned::<u16>(Tag::FillOrder)
        .ok()
        .flatten()
        == Some(2);
    if lsb_first && matches!(compression, 2..=4) {
        return Ok(None);
    }
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .ok()
        .flatten()
        == Some(2);
    // Unlike `read_image`, this reads every plane of a planar (RRR…GGG…BBB…) page.
    let mut data = DecodingResult::U8(Vec::new());
    match decoder.read_image_to_buffer(&mut data) {
        Ok(_) => {}
        Err(TiffError::UnsupportedError(_)) => return Ok(None),
        Err(e) => return Err(tiff_error(e)),
    }
    let pixels = Pixels {
        w: w as usize,
        h: h as usize,
        planar,
    };
    let Some(gray) = tiff_to_gray(pixels, color, &data) else {
        return Ok(None);
    };
    GrayImage::from_raw(w, h, gray)
        .map(Some)
        .ok_or_else(|| ScanError::Corrupt("inconsistent TIFF page size".to_owned()))
}

/// Decodes page `index` of a TIFF with libtiff's own tools (libtiff-tools): `tiffcp` cuts
/// the page out uncompressed, `tiff2rgba` turns whatever it is into plain RGBA, which the
/// Rust decoder then reads.
fn libtiff_page(path: &Path, index: usize, limits: &Limits) -> Result<GrayImage, ScanError> {
    let dir = tempfile::tempdir().map_err(|e| ScanError::Tool(format!("temporary folder: {e}")))?;
    // tiffcp reads "FILE,N" as page N of FILE, so the file must have a name without commas.
    let input = dir.path().join("in.tif");
    std::os::unix::fs::symlink(path, &input)
        .map_err(|e| ScanError::Tool(format!("temporary link: {e}")))?;
    let page = format!("{},{index}", input.display());
    let one = dir.path().join("one.tif");
    let rgba = dir.path().join("rgba.tif");
    let steps: [(&str, Vec<&OsStr>); 2] = [
        (
            "tiffcp",
            vec![
                OsStr::new("-c"),
                OsStr::new("none"),
                OsStr::new(&page),
                one.as_os_str(),
            ],
        ),
        (
            "tiff2rgba",
            vec![
                OsStr::new("-c"),
                OsStr::new("none"),
                one.as_os_str(),
                rgba.as_os_str(),
            ],
        ),
    ];
    for (tool, args) in &steps {
        let out = tools::run(tool, args, limits.tool_timeout)?;
        if !out.success {
            return Err(ScanError::Corrupt(format!(
                "TIFF page {} could not be decoded: {}",
                index + 1,
                tools::tail(&out.stderr)
            )));
        }
    }
    guarded(|| {
        let file = File::open(&rgba).map_err(|e| io_error(&e))?;
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(tiff_error)?
            .with_limits(tiff_limits(limits));
        let (w, h) = decoder.dimensions().map_err(tiff_error)?;
        if u64::from(w) * u64::from(h) > limits.max_page_pixels {
            return Err(ScanError::TooLarge);
        }
        decode_tiff_page(&mut decoder, w, h)?.ok_or_else(|| {
            ScanError::Corrupt(format!("TIFF page {} has an unsupported format", index + 1))
        })
    })
}

/// The geometry of a decoded TIFF page.
#[derive(Clone, Copy)]
struct Pixels {
    w: usize,
    h: usize,
    /// Samples stored plane after plane rather than pixel by pixel.
    planar: bool,
}

/// Converts a decoded TIFF page to 8-bit gray, 0 = black. The decoder has already turned
/// WhiteIsZero pages (as fax and Group 4 files usually are) around; JPEG-compressed YCbCr
/// comes without colour conversion, so its first sample is the luma.
fn tiff_to_gray(px: Pixels, color: ColorType, data: &DecodingResult) -> Option<Vec<u8>> {
    let Pixels { w, h, planar } = px;
    let n = w.checked_mul(h)?;
    let mut out = Vec::with_capacity(n);

    // Bit-packed pages: bilevel scans, low-depth gray.
    if let (ColorType::Gray(bits @ (1 | 2 | 4)), DecodingResult::U8(buf)) = (color, data) {
        let stride = (w * usize::from(bits)).div_ceil(8);
        for y in 0..h {
            let row = buf.get(y * stride..(y + 1) * stride)?;
            for x in 0..w {
                out.push(packed_sample(row, x, bits)?);
            }
        }
        return Some(out);
    }

    // Whole-byte samples, 8 or 16 bits, chunky or planar.
    let samples_per_pixel = match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) | ColorType::YCbCr(_) => 3,
        ColorType::RGBA(_) | ColorType::CMYK(_) => 4,
        ColorType::CMYKA(_) => 5,
        ColorType::Multiband { num_samples, .. } => usize::from(num_samples),
        _ => return None,
    };
    if samples_per_pixel == 0 {
        return None;
    }
    let total = n.checked_mul(samples_per_pixel)?;
    let sample: Box<dyn Fn(usize) -> u8 + '_> = match data {
        DecodingResult::U8(buf) if buf.len() >= total => Box::new(move |i| buf[i]),
        DecodingResult::U16(buf) if buf.len() >= total => Box::new(move |i| (buf[i] >> 8) as u8),
        _ => return None,
    };
    let at = |i: usize, c: usize| {
        if planar {
            sample(c * n + i)
        } else {
            sample(i * samples_per_pixel + c)
        }
    };
    for i in 0..n {
        let v = match color {
            // Gray with extra samples comes as Multiband; the first sample is the gray.
            ColorType::Gray(_) | ColorType::Multiband { .. } | ColorType::YCbCr(_) => at(i, 0),
            ColorType::GrayA(_) => over_white(at(i, 0), at(i, 1)),
            ColorType::RGB(_) => luma(at(i, 0), at(i, 1), at(i, 2)),
            ColorType::RGBA(_) => over_white(luma(at(i, 0), at(i, 1), at(i, 2)), at(i, 3)),
            ColorType::CMYK(_) | ColorType::CMYKA(_) => {
                let k = u32::from(at(i, 3));
                let ink = |c: u8| (255 - (u32::from(c) + k).min(255)) as u8;
                luma(ink(at(i, 0)), ink(at(i, 1)), ink(at(i, 2)))
            }
            _ => return None,
        };
        out.push(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Format::Pdf));
        assert_eq!(sniff(b"\xEF\xBB\xBF%PDF-1.4"), Some(Format::Pdf));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Some(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn pdfinfo_output_is_parsed_after_the_metadata() {
        let out = "Title:          Page 1 size: 1 x 1 pts\nPages:  99\n\
                   Producer:       x\nPages:           2\nEncrypted:       no\n\
                   Page    1 size: 595.276 x 841.89 pts (A4)\nPage    1 rot:  0\n\
                   Page    2 size: 595.276 x 841.89 pts (A4)\nPage    2 rot:  90\n";
        let sizes = parse_pdfinfo(out, 10).unwrap();
        assert_eq!(sizes, vec![(595.276, 841.89), (841.89, 595.276)]);
        assert!(matches!(
            parse_pdfinfo(out, 1),
            Err(ScanError::TooManyPages { pages: 2, limit: 1 })
        ));
        assert!(matches!(parse_pdfinfo("", 10), Err(ScanError::Corrupt(_))));
    }

    #[test]
    fn resolution_headers() {
        // PNG with a pHYs chunk of 7874 px/m (200 dpi) before IDAT.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&[0; 13 + 4]);
        png.extend_from_slice(&9u32.to_be_bytes());
        png.extend_from_slice(b"pHYs");
        png.extend_from_slice(&7874u32.to_be_bytes());
        png.extend_from_slice(&7874u32.to_be_bytes());
        png.push(1);
        png.extend_from_slice(&[0; 4]);
        let (x, y) = png_resolution(&png).unwrap();
        assert!((x - 200.0).abs() < 0.1 && (y - 200.0).abs() < 0.1);
        assert_eq!(png_resolution(b"\x89PNG\r\n\x1a\n\0\0"), None);

        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 1, 0, 150, 0, 150, 0, 0,
        ];
        assert_eq!(jpeg_resolution(&jpeg), Some((150.0, 150.0)));
        assert_eq!(jpeg_resolution(&jpeg[..10]), None);
    }

    #[test]
    fn unknown_resolution_is_taken_as_a4_wide() {
        let img = GrayImage::new(2480, 3508); // A4 at 300 dpi
        let out = to_dpi(img, None, 150, 100_000_000);
        assert_eq!(out.dimensions(), (1240, 1754));
        let img = GrayImage::new(100, 100);
        assert_eq!(
            to_dpi(img.clone(), Some((200.0, 100.0)), 200, 100_000_000).dimensions(),
            (100, 200)
        );
        // A tiny claimed resolution cannot blow a page up past the pixel budget.
        let big = to_dpi(img, Some((20.0, 20.0)), 600, 1_000_000);
        assert!(u64::from(big.width()) * u64::from(big.height()) <= 1_000_000);
    }
}
