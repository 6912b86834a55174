//! End-to-end tests of the paper path with the real tools: cover sheets printed to PDF,
//! rendered by poppler, dirtied by ImageMagick the way a poor scanner would, bundled into
//! Group 4 TIFF and PDF batches, then read back, split and re-assembled.
//!
//! Inputs are generated at test time. A missing tool skips the test with "skipped: …",
//! unless `SPORTELLO_REQUIRE_SERVICES=1`, when it fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image::GrayImage;
use sportello_paper::{COVER_QR_PREFIX, CoverSheet, PdfAssembler, cover_sheet_pdf};
use sportello_scan::{
    Batch, Format, Limits, Part, ScanError, cover_reference, extract_pdf_pages, split_at_covers,
};

const REF_A: &str = "OSP-2025-000001";
const REF_B: &str = "EDIL-2024-123456";

// ----------------------------------------------------------------------------------------
// Helpers

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    })
}

/// True when all `tools` are installed; otherwise skips (or, when services are required,
/// fails) the calling test.
fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("tools not installed: {}", missing.join(", "));
    if std::env::var("SPORTELLO_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("SPORTELLO_REQUIRE_SERVICES=1 but {msg}");
    }
    println!("skipped: {msg}");
    false
}

/// Runs a tool, failing the test with its stderr if it fails.
fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout_of(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sheet(reference: &str) -> CoverSheet<'_> {
    CoverSheet {
        reference,
        case_type: "Occupazione di suolo pubblico",
        subject: "Dehors stagionale per il bar Caffè Città in via dell'Università, lato più \
                  lungo, con fioriere, ombrelloni e pedana in legno rimovibile, secondo il \
                  progetto allegato alla domanda del marzo scorso: è richiesta la proroga",
        printed_at: "29/11/2025 10:42",
    }
}

/// A scanned cover sheet: the PDF rendered at `dpi`, slightly rotated, with salt-and-pepper
/// noise, thresholded to 1 bit.
fn scanned_cover(dir: &Path, reference: &str, dpi: u32) -> PathBuf {
    let pdf = dir.join(format!("cover-{reference}.pdf"));
    std::fs::write(&pdf, cover_sheet_pdf(&sheet(reference))).unwrap();
    let root = dir.join(format!("cover-{reference}-{dpi}"));
    run(
        "pdftoppm",
        &[
            "-r",
            &dpi.to_string(),
            "-gray",
            "-png",
            "-singlefile",
            s(&pdf),
            s(&root),
        ],
    );
    let clean = root.with_extension("png");
    let noisy = dir.join(format!("cover-{reference}-{dpi}-noisy.png"));
    run(
        "convert",
        &[
            s(&clean),
            "-background",
            "white",
            "-rotate",
            "0.7",
            "+repage",
            // The same noise on every run: a test that passes or fails by chance tests nothing.
            "-seed",
            "7",
            "-attenuate",
            "0.15",
            "+noise",
            "Impulse",
            "-monochrome",
            s(&noisy),
        ],
    );
    noisy
}

/// A plain text page at 200 dpi, like an identity document or a letter.
fn text_page(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join(format!("text-{n}.png"));
    run(
        "convert",
        &[
            "-size",
            "1700x2200",
            "xc:white",
            "-font",
            "DejaVu-Sans",
            "-pointsize",
            "40",
            "-fill",
            "black",
            "-annotate",
            "+150+200",
            "Carta di circolazione",
            "-annotate",
            "+150+300",
            &format!("Documento allegato numero {n}"),
            "-annotate",
            "+150+400",
            "Il sottoscritto Mario Rossi, nato a Città di Castello",
            "-monochrome",
            s(&out),
        ],
    );
    out
}

/// The batch of the brief, [text, cover A, text, text, cover B, text], built once.
struct Fixture {
    dir: PathBuf,
    tiff: PathBuf,
    pdf: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sportello-scan-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pages = [
            text_page(&dir, 1),
            scanned_cover(&dir, REF_A, 200),
            text_page(&dir, 2),
            text_page(&dir, 3),
            scanned_cover(&dir, REF_B, 200),
            text_page(&dir, 4),
        ];
        let tiff = dir.join("batch.tif");
        let mut args: Vec<&str> = pages.iter().map(|p| s(p)).collect();
        args.extend([
            "-units",
            "PixelsPerInch",
            "-density",
            "200",
            "-compress",
            "Group4",
            s(&tiff),
        ]);
        run("convert", &args);
        // ImageMagick may not write PDF (Debian's policy forbids it); tiff2pdf keeps the
        // Group 4 data as it is, like a scanner's own PDF.
        let pdf = dir.join("batch.pdf");
        run("tiff2pdf", &["-o", s(&pdf), s(&tiff)]);
        Fixture { dir, tiff, pdf }
    })
}

fn batch_tools() -> bool {
    have(&["pdftoppm", "pdfinfo", "convert", "tiff2pdf"])
}

fn mean(img: &GrayImage) -> f64 {
    img.as_raw().iter().map(|&p| f64::from(p)).sum::<f64>() / img.as_raw().len() as f64
}

fn expected_parts() -> Vec<Part> {
    vec![
        Part {
            reference: None,
            pages: vec![0],
        },
        Part {
            reference: Some(REF_A.to_owned()),
            pages: vec![2, 3],
        },
        Part {
            reference: Some(REF_B.to_owned()),
            pages: vec![5],
        },
    ]
}

fn covers_of(batch: &mut Batch, dpi: u32) -> Vec<Option<String>> {
    (0..batch.page_count())
        .map(|i| cover_reference(&batch.page(i, dpi).unwrap()))
        .collect()
}

// ----------------------------------------------------------------------------------------
// Cover sheet

#[test]
fn cover_sheet_is_a4_with_readable_latin1_text() {
    if !have(&["pdfinfo", "pdftotext", "pdffonts"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("cover.pdf");
    std::fs::write(&pdf, cover_sheet_pdf(&sheet(REF_A))).unwrap();
    let info = stdout_of("pdfinfo", &[s(&pdf)]);
    assert!(info.contains("Pages:           1"), "{info}");
    assert!(info.contains("(A4)"), "{info}");
    let fonts = stdout_of("pdffonts", &[s(&pdf)]);
    assert!(
        fonts.contains("Helvetica") && fonts.contains("WinAnsi"),
        "{fonts}"
    );
    assert!(!fonts.contains(" yes "), "no font may be embedded: {fonts}");
    let text = stdout_of("pdftotext", &[s(&pdf), "-"]);
    for expected in [
        REF_A,
        "Occupazione di suolo pubblico",
        "Caffè Città",
        "dell'Università",
        "29/11/2025 10:42",
        "Mettere questo foglio sopra i documenti della pratica prima di",
        "scansionarli.",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // The subject is cut, not spilled over the page.
    assert!(!text.contains("proroga"), "{text}");
    assert!(text.contains('…'), "{text}");
}

#[test]
fn cover_sheet_survives_odd_input() {
    for reference in [
        "",
        "X",
        &"W".repeat(300),
        &"Z".repeat(5000),
        "àèìòù€日本\n\t\u{0}",
    ] {
        let pdf = cover_sheet_pdf(&CoverSheet {
            reference,
            case_type: reference,
            subject: reference,
            printed_at: reference,
        });
        assert!(pdf.starts_with(b"%PDF-"));
    }
    if have(&["pdfinfo"]) {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("long.pdf");
        std::fs::write(
            &pdf,
            cover_sheet_pdf(&CoverSheet {
                reference: &"Z".repeat(5000),
                case_type: "",
                subject: "",
                printed_at: "",
            }),
        )
        .unwrap();
        run("pdfinfo", &[s(&pdf)]);
    }
}

#[test]
fn qr_is_found_on_noisy_rotated_scans_at_150_200_300_dpi() {
    if !have(&["pdftoppm", "convert"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for dpi in [150, 200, 300] {
        let scan = scanned_cover(dir.path(), REF_B, dpi);
        let page = image::open(&scan).unwrap().into_luma8();
        let t = Instant::now();
        let found = cover_reference(&page);
        println!(
            "cover at {dpi} dpi ({}x{}): decoded in {:?}",
            page.width(),
            page.height(),
            t.elapsed()
        );
        assert_eq!(found.as_deref(), Some(REF_B), "at {dpi} dpi");
    }
}

#[test]
fn pages_without_cover_qr_are_rejected_quickly() {
    if !have(&["convert"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = image::open(text_page(dir.path(), 9)).unwrap().into_luma8();
    let blank = GrayImage::from_pixel(2480, 3508, image::Luma([255]));
    // A QR code that is not a cover sheet's (e.g. a payment notice).
    let foreign = dir.path().join("foreign.png");
    std::fs::write(
        dir.path().join("foreign.pdf"),
        cover_sheet_pdf(&sheet("not-a-reference")),
    )
    .unwrap();
    if have(&["pdftoppm"]) {
        run(
            "pdftoppm",
            &[
                "-r",
                "150",
                "-gray",
                "-png",
                "-singlefile",
                s(&dir.path().join("foreign.pdf")),
                s(&dir.path().join("foreign")),
            ],
        );
        let img = image::open(&foreign).unwrap().into_luma8();
        assert_eq!(cover_reference(&img), None);
    }
    for (name, page) in [("text page 200 dpi", &text), ("blank A4 300 dpi", &blank)] {
        let runs = 3;
        let t = Instant::now();
        for _ in 0..runs {
            assert_eq!(cover_reference(page), None);
        }
        let per_page = t.elapsed() / runs;
        println!("no-QR rejection, {name}: {per_page:?} per page");
    }
}

// ----------------------------------------------------------------------------------------
// Batches

#[test]
fn group4_tiff_batch_is_split_at_cover_sheets() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let mut batch = Batch::open(&fx.tiff, Limits::default()).unwrap();
    assert_eq!(batch.format(), Format::Tiff);
    assert_eq!(batch.page_count(), 6);

    // Group 4 pages decode with the right polarity: white paper, some black ink.
    let t = Instant::now();
    let first = batch.page(0, 200).unwrap();
    println!("TIFF G4 page decode at 200 dpi: {:?}", t.elapsed());
    assert_eq!(first.dimensions(), (1700, 2200));
    assert!(mean(&first) > 230.0, "page should be mostly white");
    assert!(first.as_raw().contains(&0), "page should have black text");
    // Resampled to the resolution asked for.
    assert_eq!(batch.page(0, 100).unwrap().dimensions(), (850, 1100));

    let covers = covers_of(&mut batch, 150);
    assert_eq!(
        covers,
        vec![
            None,
            Some(REF_A.to_owned()),
            None,
            None,
            Some(REF_B.to_owned()),
            None
        ]
    );
    assert_eq!(split_at_covers(&covers), expected_parts());
    // Pages can be read again, in any order.
    assert_eq!(
        cover_reference(&batch.page(1, 150).unwrap()).as_deref(),
        Some(REF_A)
    );
    assert!(batch.page(6, 150).is_err());
}

#[test]
fn pdf_batch_is_split_at_cover_sheets() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let mut batch = Batch::open(&fx.pdf, Limits::default()).unwrap();
    assert_eq!(batch.format(), Format::Pdf);
    assert_eq!(batch.page_count(), 6);
    let t = Instant::now();
    let first = batch.page(0, 150).unwrap();
    println!("PDF page render at 150 dpi: {:?}", t.elapsed());
    // 8.5 x 11 in at 150 dpi.
    assert_eq!(first.dimensions(), (1275, 1650));
    assert!(mean(&first) > 230.0);
    let covers = covers_of(&mut batch, 150);
    assert_eq!(split_at_covers(&covers), expected_parts());
    assert!(batch.page(6, 150).is_err());
}

#[test]
fn single_png_and_jpeg_pages() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let png = fx.dir.join("cover-OSP-2025-000001-200-noisy.png");
    let jpeg = fx.dir.join("single.jpg");
    run(
        "convert",
        &[
            s(&png),
            "-density",
            "200",
            "-units",
            "PixelsPerInch",
            s(&jpeg),
        ],
    );
    // A phone-style picture with no resolution recorded.
    let bare = fx.dir.join("bare.png");
    run("convert", &[s(&png), "-strip", s(&bare)]);
    for (path, format) in [
        (&png, Format::Png),
        (&jpeg, Format::Jpeg),
        (&bare, Format::Png),
    ] {
        let mut batch = Batch::open(path, Limits::default()).unwrap();
        assert_eq!(batch.format(), format);
        assert_eq!(batch.page_count(), 1);
        let page = batch.page(0, 150).unwrap();
        assert_eq!(
            cover_reference(&page).as_deref(),
            Some(REF_A),
            "{}",
            path.display()
        );
    }
    // With its resolution known, a 200 dpi page is shrunk to 150 dpi exactly.
    let mut batch = Batch::open(&jpeg, Limits::default()).unwrap();
    let source = image::open(&jpeg).unwrap();
    let page = batch.page(0, 150).unwrap();
    assert_eq!(page.width(), (source.width() * 150 + 100) / 200);
}

#[test]
fn assembled_pdf_opens_and_renders_in_poppler() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let mut batch = Batch::open(&fx.tiff, Limits::default()).unwrap();
    let mut assembler = PdfAssembler::new();
    // Two bilevel pages at their own 200 dpi, and one page resampled to 150 dpi (gray).
    let bilevel = batch.page(2, 200).unwrap();
    assembler.add_page(&bilevel, 200);
    assembler.add_page(&batch.page(3, 200).unwrap(), 200);
    let gray = batch.page(5, 150).unwrap();
    assert!(gray.as_raw().iter().any(|&p| p != 0 && p != 255));
    assembler.add_page(&gray, 150);
    assert_eq!(assembler.page_count(), 3);
    let bytes = assembler.finish();
    // Bilevel pages are stored at 1 bit per pixel: the whole file stays small.
    println!("assembled PDF: {} bytes", bytes.len());
    assert!(bytes.len() < 1_000_000, "{} bytes", bytes.len());

    let out = fx.dir.join("assembled.pdf");
    std::fs::write(&out, &bytes).unwrap();
    let info = stdout_of("pdfinfo", &["-f", "1", "-l", "3", s(&out)]);
    assert!(info.contains("Pages:           3"), "{info}");
    assert!(
        info.contains("612 x 792 pts"),
        "8.5x11 in pages expected: {info}"
    );

    // Rendered back at 200 dpi, the first page is the page that went in.
    let mut again = Batch::open(&out, Limits::default()).unwrap();
    let rendered = again.page(0, 200).unwrap();
    assert_eq!(rendered.dimensions(), bilevel.dimensions());
    let differing = rendered
        .as_raw()
        .iter()
        .zip(bilevel.as_raw())
        .filter(|(a, b)| a.abs_diff(**b) > 64)
        .count();
    // Only edge pixels may differ (poppler's sampling): under 1%.
    assert!(
        differing < bilevel.as_raw().len() / 100,
        "{differing} pixels differ"
    );
    assert!(
        mean(&rendered) > 230.0,
        "the page must not come out inverted"
    );
    let third = again.page(2, 150).unwrap();
    assert_eq!(third.dimensions(), gray.dimensions());
}

#[test]
fn pdf_pages_can_be_extracted_keeping_the_original() {
    if !batch_tools() || !have(&["pdfseparate", "pdfunite"]) {
        return;
    }
    let fx = fixture();
    let part = extract_pdf_pages(&fx.pdf, &[2, 3], Duration::from_secs(30)).unwrap();
    let out = fx.dir.join("part.pdf");
    std::fs::write(&out, part).unwrap();
    let mut batch = Batch::open(&out, Limits::default()).unwrap();
    assert_eq!(batch.page_count(), 2);
    assert_eq!(cover_reference(&batch.page(0, 150).unwrap()), None);
    let cover = extract_pdf_pages(&fx.pdf, &[4], Duration::from_secs(30)).unwrap();
    let out = fx.dir.join("cover-only.pdf");
    std::fs::write(&out, cover).unwrap();
    let mut batch = Batch::open(&out, Limits::default()).unwrap();
    assert_eq!(
        cover_reference(&batch.page(0, 150).unwrap()).as_deref(),
        Some(REF_B)
    );
    assert!(extract_pdf_pages(&fx.pdf, &[], Duration::from_secs(30)).is_err());
    assert!(extract_pdf_pages(&fx.pdf, &[99], Duration::from_secs(30)).is_err());
}

#[test]
fn tiff_variants_decode_like_imagemagick() {
    // Group 3 two-dimensional goes through libtiff's tools.
    if !have(&["convert", "tiffcp", "tiff2rgba"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.png");
    run(
        "convert",
        &[
            "-size",
            "400x300",
            "gradient:white-black",
            "-fill",
            "red",
            "-draw",
            "rectangle 50,50 150,150",
            "-fill",
            "blue",
            "-draw",
            "circle 300,150 330,180",
            s(&src),
        ],
    );
    let variants: &[(&str, &[&str])] = &[
        (
            "gray8-lzw",
            &["-colorspace", "Gray", "-depth", "8", "-compress", "LZW"],
        ),
        (
            "gray16-zip",
            &["-colorspace", "Gray", "-depth", "16", "-compress", "Zip"],
        ),
        (
            "gray-jpeg",
            &["-colorspace", "Gray", "-depth", "8", "-compress", "JPEG"],
        ),
        (
            "gray-jpeg-opaque",
            &[
                "-alpha",
                "off",
                "-colorspace",
                "Gray",
                "-depth",
                "8",
                "-compress",
                "JPEG",
            ],
        ),
        (
            "rgb-jpeg-opaque",
            &["-alpha", "off", "-depth", "8", "-compress", "JPEG"],
        ),
        // Opaque only: with an alpha channel ImageMagick reads its own min-is-white file
        // inverted, against libtiff and the TIFF specification.
        (
            "min-is-white",
            &[
                "-alpha",
                "off",
                "-colorspace",
                "Gray",
                "-depth",
                "8",
                "-define",
                "quantum:polarity=min-is-white",
            ],
        ),
        ("rgb8", &["-depth", "8"]),
        ("rgb16-zip", &["-depth", "16", "-compress", "Zip"]),
        ("rgb-jpeg", &["-depth", "8", "-compress", "JPEG"]),
        (
            "rgb-planar",
            &["-depth", "8", "-interlace", "Plane", "-compress", "LZW"],
        ),
        (
            "rgb-tiled",
            &["-depth", "8", "-define", "tiff:tile-geometry=64x64"],
        ),
        (
            "palette",
            &["-depth", "8", "-type", "Palette", "-compress", "LZW"],
        ),
        ("cmyk", &["-depth", "8", "-colorspace", "CMYK"]),
        (
            "rgba",
            &[
                "-depth",
                "8",
                "-alpha",
                "set",
                "-channel",
                "A",
                "-evaluate",
                "set",
                "100%",
                "+channel",
            ],
        ),
        ("bilevel-g3", &["-monochrome", "-compress", "Fax"]),
        ("bilevel-g4", &["-monochrome", "-compress", "Group4"]),
        ("bilevel-packbits", &["-monochrome", "-compress", "RLE"]),
    ];
    for (name, opts) in variants {
        let tif = dir.path().join(format!("{name}.tif"));
        let mut args = vec![s(&src)];
        args.extend_from_slice(opts);
        args.extend(["-density", "100", "-units", "PixelsPerInch", s(&tif)]);
        run("convert", &args);
        let reference = dir.path().join(format!("{name}.png"));
        run(
            "convert",
            &[
                s(&tif),
                "-background",
                "white",
                "-flatten",
                "-colorspace",
                "Gray",
                "-depth",
                "8",
                s(&reference),
            ],
        );
        let expected = image::open(&reference).unwrap().into_luma8();
        let mut batch = Batch::open(&tif, Limits::default()).unwrap();
        let t = Instant::now();
        let page = batch.page(0, 100).unwrap_or_else(|e| panic!("{name}: {e}"));
        let took = t.elapsed();
        assert_eq!(page.dimensions(), expected.dimensions(), "{name}");
        let diff = page
            .as_raw()
            .iter()
            .zip(expected.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / page.as_raw().len() as f64;
        println!("{name}: decoded in {took:?}, mean difference from ImageMagick {diff:.2}");
        assert!(diff < 6.0, "{name}: mean difference {diff:.2}");
    }
}

// ----------------------------------------------------------------------------------------
// Without the external tools

/// Set in the child process that runs a test of this binary again without any external
/// program on its PATH: the folder with the files the parent made.
const NO_TOOLS_DIR: &str = "SPORTELLO_SCAN_TEST_NO_TOOLS_DIR";
/// What the child prints when it has made its checks, so that the parent knows they ran.
const CHECKED: &str = "checked without tools:";

/// Runs the test `name` of this binary again in a child process whose PATH is only `bin`
/// (an empty folder, or one with stand-ins), handing it `dir`; fails with the child's output
/// when the child fails or did not make its checks.
fn rerun_without_tools(name: &str, dir: &Path, bin: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PATH", bin)
        .env(NO_TOOLS_DIR, dir)
        .env_remove("SPORTELLO_REQUIRE_SERVICES")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} without tools failed:\n{text}");
    assert!(text.contains(CHECKED), "{name} made no checks:\n{text}");
    text
}

/// The folder of the parent when this process is the child of [`rerun_without_tools`].
fn child_dir() -> Option<PathBuf> {
    std::env::var_os(NO_TOOLS_DIR).map(PathBuf::from)
}

/// The scanner and fax gateway formats of the paper path: Group 4 written most or least
/// significant bit first (fax gateways write the latter; it was rejected as damaged),
/// Group 3, LZW in gray and palette (what ImageMagick writes for a page of few colours;
/// it failed when libtiff-tools was missing) and gray JPEG. All are multi-page and are
/// decoded in Rust:
/// the check runs in a process that cannot find any external program.
#[test]
fn fax_and_lzw_tiffs_decode_in_rust_without_libtiff() {
    const NAME: &str = "fax_and_lzw_tiffs_decode_in_rust_without_libtiff";
    const VARIANTS: &[(&str, &[&str])] = &[
        ("g4-msb", &["-monochrome", "-compress", "Group4"]),
        (
            "g4-lsb",
            &[
                "-monochrome",
                "-compress",
                "Group4",
                "-define",
                "tiff:fill-order=lsb",
            ],
        ),
        ("g3", &["-monochrome", "-compress", "Fax"]),
        (
            "g3-lsb",
            &[
                "-monochrome",
                "-compress",
                "Fax",
                "-define",
                "tiff:fill-order=lsb",
            ],
        ),
        (
            "lzw-gray",
            &["-colorspace", "Gray", "-depth", "8", "-compress", "LZW"],
        ),
        (
            "lzw-palette",
            &["-depth", "8", "-type", "Palette", "-compress", "LZW"],
        ),
        (
            "jpeg-gray",
            &[
                "-alpha",
                "off",
                "-colorspace",
                "Gray",
                "-depth",
                "8",
                "-compress",
                "JPEG",
            ],
        ),
    ];
    const PAGES: usize = 3;

    if let Some(dir) = child_dir() {
        // The child: nothing but Rust may read these files.
        for (name, _) in VARIANTS {
            let tif = dir.join(format!("{name}.tif"));
            let mut batch =
                Batch::open(&tif, Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(batch.page_count(), PAGES, "{name}");
            for page in 0..PAGES {
                let expected = image::open(dir.join(format!("{name}-{page}.png")))
                    .unwrap()
                    .into_luma8();
                let got = batch
                    .page(page, 100)
                    .unwrap_or_else(|e| panic!("{name} page {}: {e}", page + 1));
                assert_eq!(got.dimensions(), expected.dimensions(), "{name}");
                let diff = got
                    .as_raw()
                    .iter()
                    .zip(expected.as_raw())
                    .map(|(a, b)| f64::from(a.abs_diff(*b)))
                    .sum::<f64>()
                    / got.as_raw().len() as f64;
                assert!(
                    diff < 1.0,
                    "{name} page {}: mean difference {diff:.2}",
                    page + 1
                );
                assert!(
                    got.as_raw().iter().any(|&p| p < 32),
                    "{name}: the page has black ink"
                );
            }
        }
        println!("{CHECKED} {} files", VARIANTS.len());
        return;
    }

    if !have(&["convert"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.png");
    // A page with text, a black block and a red mark (so that a palette has a colour).
    run(
        "convert",
        &[
            "-size",
            "850x1100",
            "xc:white",
            "-font",
            "DejaVu-Sans",
            "-pointsize",
            "30",
            "-fill",
            "black",
            "-annotate",
            "+80+120",
            "Pratica ZTL-2026-000042, pagina allegata",
            "-draw",
            "rectangle 80,300 400,500",
            "-fill",
            "red",
            "-draw",
            "circle 600,700 640,740",
            s(&src),
        ],
    );
    for (name, opts) in VARIANTS {
        let tif = dir.path().join(format!("{name}.tif"));
        let mut args: Vec<&str> = vec![s(&src); PAGES];
        args.extend_from_slice(opts);
        args.extend(["-density", "100", "-units", "PixelsPerInch", s(&tif)]);
        run("convert", &args);
        // ImageMagick's own reading of each page, to compare with.
        for page in 0..PAGES {
            let one = format!("{}[{page}]", s(&tif));
            let png = dir.path().join(format!("{name}-{page}.png"));
            run(
                "convert",
                &[&one, "-colorspace", "Gray", "-depth", "8", s(&png)],
            );
        }
    }
    let empty = dir.path().join("no-tools");
    std::fs::create_dir(&empty).unwrap();
    rerun_without_tools(NAME, dir.path(), &empty);
}

/// A program the scan path needs and cannot find is named as missing, never taken for a
/// damaged file: neither when it is not on the PATH at all nor when what is there cannot
/// start it (a wrapper script whose program was removed exits with 127).
#[test]
fn a_missing_tool_is_reported_as_missing_not_as_damage() {
    const NAME: &str = "a_missing_tool_is_reported_as_missing_not_as_damage";
    if let Some(dir) = child_dir() {
        let expect_missing = |file: &str, tool: &str| {
            let err = Batch::open(&dir.join(file), Limits::default())
                .and_then(|mut b| b.page(0, 100).map(|_| ()))
                .expect_err(file);
            let msg = err.to_string();
            assert!(
                matches!(err, ScanError::ToolMissing(_)),
                "{file}: expected a missing tool, got {err:?}"
            );
            assert!(msg.starts_with(&format!("tool missing: {tool}")), "{msg}");
            assert!(!msg.contains("damaged"), "{msg}");
        };
        // pdfinfo is a stand-in that cannot start the real program.
        expect_missing("cover.pdf", "pdfinfo");
        // No pdftoppm at all.
        expect_missing("renders.pdf", "pdftoppm");
        let mut checked = 2;
        // Group 3 two-dimensional still needs libtiff's tiffcp.
        if dir.join("g3-2d.tif").exists() {
            expect_missing("g3-2d.tif", "tiffcp");
            checked += 1;
        }
        println!("{CHECKED} {checked} files");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let pdf = cover_sheet_pdf(&sheet(REF_A));
    std::fs::write(dir.path().join("cover.pdf"), &pdf).unwrap();
    std::fs::write(dir.path().join("renders.pdf"), &pdf).unwrap();
    if on_path("convert") && on_path("tiffcp") {
        let png = dir.path().join("page.png");
        run(
            "convert",
            &["-size", "200x100", "xc:white", "-monochrome", s(&png)],
        );
        let g3 = dir.path().join("g3-1d.tif");
        run("convert", &[s(&png), "-compress", "Fax", s(&g3)]);
        run(
            "tiffcp",
            &["-c", "g3:2d", s(&g3), s(&dir.path().join("g3-2d.tif"))],
        );
    }
    // The stand-ins: pdfinfo runs a program that is gone; pdftoppm is absent.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pdfinfo = bin.join("pdfinfo");
    // renders.pdf must get past pdfinfo to need pdftoppm: the stand-in answers for it.
    let answer =
        "Pages:          1\nPage    1 size: 595.276 x 841.89 pts (A4)\nPage    1 rot:  0\n";
    std::fs::write(
        &pdfinfo,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *renders.pdf) printf '{}' ;;\n  *) exec /nonexistent/pdfinfo \"$@\" ;;\nesac\n",
            answer.replace('\n', "\\n")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pdfinfo, std::fs::Permissions::from_mode(0o755)).unwrap();
    rerun_without_tools(NAME, dir.path(), &bin);
}

// ----------------------------------------------------------------------------------------
// Bad input

#[test]
fn empty_unknown_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pdf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Batch::open(&empty, Limits::default()),
        Err(ScanError::Empty)
    ));

    let random = dir.path().join("random.pdf");
    std::fs::write(&random, pseudo_random(4096, 7)).unwrap();
    assert!(matches!(
        Batch::open(&random, Limits::default()),
        Err(ScanError::UnknownFormat)
    ));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "solo testo, nessuna immagine").unwrap();
    assert!(matches!(
        Batch::open(&text, Limits::default()),
        Err(ScanError::UnknownFormat)
    ));
    assert!(Batch::open(&dir.path().join("missing.tif"), Limits::default()).is_err());
    assert!(Batch::open(dir.path(), Limits::default()).is_err());
}

#[test]
fn damaged_files_are_errors_not_panics() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let tiff = std::fs::read(&fx.tiff).unwrap();
    let pdf = std::fs::read(&fx.pdf).unwrap();
    let png = std::fs::read(fx.dir.join("text-1.png")).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.tif", tiff[..tiff.len() / 3].to_vec()),
        ("header-only.tif", tiff[..8].to_vec()),
        (
            "tiff-then-noise.tif",
            [&tiff[..4], &pseudo_random(5000, 3)[..]].concat(),
        ),
        ("truncated.pdf", pdf[..pdf.len() / 2].to_vec()),
        (
            "pdf-then-noise.pdf",
            [&b"%PDF-1.4\n"[..], &pseudo_random(5000, 5)[..]].concat(),
        ),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        (
            "png-then-noise.png",
            [&png[..8], &pseudo_random(5000, 9)[..]].concat(),
        ),
        (
            "jpeg-then-noise.jpg",
            [&[0xFF, 0xD8, 0xFF][..], &pseudo_random(5000, 11)[..]].concat(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let result = Batch::open(&path, Limits::default())
            .and_then(|mut b| (0..b.page_count()).try_for_each(|i| b.page(i, 150).map(drop)));
        match result {
            Err(ScanError::Corrupt(detail)) => println!("{name}: corrupt ({detail})"),
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn mutated_tiffs_never_panic() {
    if !have(&["convert"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.tif");
    run(
        "convert",
        &[
            "-size",
            "120x90",
            "xc:white",
            "-fill",
            "black",
            "-draw",
            "rectangle 10,10 60,40",
            "-size",
            "100x100",
            "xc:white",
            "-draw",
            "circle 50,50 20,20",
            "-monochrome",
            "-density",
            "100",
            "-units",
            "PixelsPerInch",
            "-compress",
            "Group4",
            s(&small),
        ],
    );
    let original = std::fs::read(&small).unwrap();
    let path = dir.path().join("mutated.tif");
    // A mutated width or height must not make a test page of gigabytes.
    let small_pages = Limits {
        max_page_pixels: 200_000,
        ..Limits::default()
    };
    let mut seed = 1u64;
    for round in 0..300 {
        let mut bytes = original.clone();
        for _ in 0..1 + round % 4 {
            seed = lcg(seed);
            let at = 4 + (seed >> 33) as usize % (bytes.len() - 4);
            seed = lcg(seed);
            bytes[at] = (seed >> 40) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();
        // Errors are fine; panics and hangs are not.
        if let Ok(mut batch) = Batch::open(&path, small_pages.clone()) {
            for i in 0..batch.page_count() {
                if let Ok(page) = batch.page(i, 100) {
                    let _ = cover_reference(&page);
                }
            }
        }
    }
}

#[test]
fn password_protected_pdf_is_reported_as_encrypted() {
    if !batch_tools() || !have(&["qpdf"]) {
        return;
    }
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked.pdf");
    run(
        "qpdf",
        &[
            "--encrypt",
            "utente",
            "proprietario",
            "256",
            "--",
            s(&fx.pdf),
            s(&locked),
        ],
    );
    assert!(matches!(
        Batch::open(&locked, Limits::default()),
        Err(ScanError::Encrypted)
    ));
    // Restrictions without an opening password do not stop reading.
    let restricted = dir.path().join("restricted.pdf");
    run(
        "qpdf",
        &[
            "--encrypt",
            "",
            "proprietario",
            "256",
            "--print=none",
            "--",
            s(&fx.pdf),
            s(&restricted),
        ],
    );
    let mut batch = Batch::open(&restricted, Limits::default()).unwrap();
    assert_eq!(batch.page_count(), 6);
    assert_eq!(
        cover_reference(&batch.page(1, 150).unwrap()).as_deref(),
        Some(REF_A)
    );
}

#[test]
fn limits_are_enforced() {
    if !batch_tools() {
        return;
    }
    let fx = fixture();
    let few_pages = Limits {
        max_pages: 3,
        ..Limits::default()
    };
    for path in [&fx.pdf, &fx.tiff] {
        match Batch::open(path, few_pages.clone()) {
            Err(ScanError::TooManyPages { pages, limit }) => {
                assert_eq!((pages, limit), (6, 3), "{}", path.display());
            }
            other => panic!("{}: expected TooManyPages, got {other:?}", path.display()),
        }
    }
    let tiny_files = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        Batch::open(&fx.pdf, tiny_files),
        Err(ScanError::TooLarge)
    ));
    let tiny_pages = Limits {
        max_page_pixels: 1000,
        ..Limits::default()
    };
    let mut batch = Batch::open(&fx.tiff, tiny_pages.clone()).unwrap();
    assert!(matches!(batch.page(0, 200), Err(ScanError::TooLarge)));
    // A PDF page over the pixel budget is rendered smaller instead.
    let mut batch = Batch::open(&fx.pdf, tiny_pages).unwrap();
    let page = batch.page(0, 300).unwrap();
    assert!(u64::from(page.width()) * u64::from(page.height()) <= 1000);
    // A tool that runs past its time limit is stopped and reported.
    let no_time = Limits {
        tool_timeout: Duration::ZERO,
        ..Limits::default()
    };
    match Batch::open(&fx.pdf, no_time) {
        Err(ScanError::Tool(msg)) => assert!(msg.contains("did not finish"), "{msg}"),
        other => panic!("expected a time-out, got {other:?}"),
    }
}

#[test]
fn error_messages_speak_to_the_operator() {
    let msg = ScanError::TooManyPages {
        pages: 2500,
        limit: 2000,
    }
    .to_string();
    assert!(msg.contains("2500") && msg.contains("2000"), "{msg}");
    assert!(ScanError::Encrypted.to_string().contains("password"));
    assert!(
        ScanError::ToolMissing("pdftoppm (Debian package poppler-utils)".into())
            .to_string()
            .contains("poppler-utils")
    );
    assert!(COVER_QR_PREFIX.ends_with(':'));
}

fn lcg(seed: u64) -> u64 {
    seed.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = lcg(seed);
            (seed >> 56) as u8
        })
        .collect()
}
