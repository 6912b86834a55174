//! Reading the text of stored documents, in the background: a PDF's own text layer is
//! extracted (`pdftotext`), and only its pages without one are rendered (`pdftoppm`) and
//! read by OCR; images and faxes (TIFF, PNG, JPEG…) go to tesseract; plain text and HTML
//! are taken as they are. The queue lives in the database ([`sportello_store::texts`]),
//! so work survives restarts and is shared by every instance; OCR runs in the process's
//! bounded pool ([`OcrSettings`]), so it never starves intake or the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sportello_store::Store;
use sportello_store::documents::BlobStore;
use sportello_store::texts::{PageText, TextJob, TextOutcome};
use tokio::io::AsyncWriteExt;

use crate::pipeline::OcrSettings;

/// A page with fewer letters and digits than this has no usable text layer (a scan
/// wrapped in a PDF, or a page with only a stamp): it is read by OCR instead.
const MIN_TEXT_LAYER_CHARS: usize = 20;

/// Most pages of one document read by OCR; a 5,000-page PDF is read up to here and the
/// rest is said to be missing, rather than holding the pool for a day.
const MAX_OCR_PAGES: usize = 2_000;

/// How long a worker holds a document before another may take it; renewed every third
/// of it while reading, so a dead worker's documents wait at most this long.
const LEASE: Duration = Duration::from_secs(60);

/// Reads the file at `path` (of the sniffed `media_type`).
pub async fn read_file(path: &Path, media_type: &str, ocr: &OcrSettings) -> TextOutcome {
    match media_type {
        "application/pdf" => read_pdf(path, ocr).await,
        "image/tiff" | "image/png" | "image/jpeg" => match ocr_raster(path, ocr).await {
            Ok(pages) => TextOutcome::Pages(pages),
            Err(why) => TextOutcome::Failed(why),
        },
        "image/bmp" | "image/gif" | "image/webp" | "image/jp2" => {
            match ocr_image(path, ocr).await {
                Ok(pages) => TextOutcome::Pages(pages),
                Err(why) => TextOutcome::Failed(why),
            }
        }
        "text/plain" | "text/html" | "text/csv" | "message/rfc822" => read_text(path).await,
        _ => TextOutcome::NoText,
    }
}

async fn read_text(path: &Path) -> TextOutcome {
    const MAX_TEXT: u64 = 5 * 1024 * 1024;
    let bytes = match tokio::fs::File::open(path).await {
        Ok(f) => {
            use tokio::io::AsyncReadExt;
            let mut buf = Vec::new();
            match f.take(MAX_TEXT).read_to_end(&mut buf).await {
                Ok(_) => buf,
                Err(e) => return TextOutcome::Failed(format!("lettura del file: {e}")),
            }
        }
        Err(e) => return TextOutcome::Failed(format!("lettura del file: {e}")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = if text.contains("<html") || text.contains("<HTML") || text.contains("<body") {
        ammonia::Builder::empty().clean(&text).to_string()
    } else {
        text.into_owned()
    };
    TextOutcome::Pages(vec![PageText {
        page: 1,
        method: "plain".into(),
        text,
    }])
}

async fn read_pdf(path: &Path, ocr: &OcrSettings) -> TextOutcome {
    let out = match run_tool(
        "pdftotext",
        &[
            "-enc".as_ref(),
            "UTF-8".as_ref(),
            path.as_os_str(),
            "-".as_ref(),
        ],
        Duration::from_secs(300),
    )
    .await
    {
        Ok(out) => out,
        Err(ToolError::Failed(stderr))
            if stderr.contains("Incorrect password") || stderr.contains("ncrypt") =>
        {
            return TextOutcome::Failed("PDF protetto da password: non si può leggere".into());
        }
        Err(e) => return TextOutcome::Failed(format!("PDF non leggibile: {e}")),
    };
    let text = String::from_utf8_lossy(&out);
    // pdftotext ends every page with a form feed.
    let mut layers: Vec<&str> = text.split('\u{c}').collect();
    if layers.last().is_some_and(|l| l.trim().is_empty()) {
        layers.pop();
    }
    let mut pages = Vec::with_capacity(layers.len());
    let mut ocr_done = 0;
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return TextOutcome::Failed(format!("cartella temporanea: {e}")),
    };
    for (i, layer) in layers.iter().enumerate() {
        let page = i + 1;
        if layer.chars().filter(|c| c.is_alphanumeric()).count() >= MIN_TEXT_LAYER_CHARS {
            pages.push(PageText {
                page: page as i64,
                method: "text_layer".into(),
                text: layer.trim().to_owned(),
            });
            continue;
        }
        if ocr_done == MAX_OCR_PAGES {
            continue;
        }
        ocr_done += 1;
        let prefix = dir.path().join(format!("p{page}"));
        let n = page.to_string();
        let dpi = scan_resolution(path, page).await.to_string();
        if let Err(e) = run_tool(
            "pdftoppm",
            &[
                "-f".as_ref(),
                n.as_ref(),
                "-l".as_ref(),
                n.as_ref(),
                "-r".as_ref(),
                dpi.as_ref(),
                "-gray".as_ref(),
                "-png".as_ref(),
                "-singlefile".as_ref(),
                path.as_os_str(),
                prefix.as_os_str(),
            ],
            Duration::from_secs(120),
        )
        .await
        {
            return TextOutcome::Failed(format!("pagina {page} non leggibile: {e}"));
        }
        let image = prefix.with_extension("png");
        clean_page(&image).await;
        match ocr_image(&image, ocr).await {
            Ok(read) => pages.push(PageText {
                page: page as i64,
                method: "ocr".into(),
                text: one_text(read),
            }),
            Err(why) => return TextOutcome::Failed(format!("pagina {page}: {why}")),
        }
        let _ = tokio::fs::remove_file(&image).await;
    }
    TextOutcome::Pages(pages)
}

/// The resolution a page's scanned image was made at (from `pdfimages -list`), so the page
/// is rendered for OCR at its own scale: tesseract reads a 200 dpi scan well, but the same
/// scan blown up to 300 dpi (its noise with it) can come out blank. 300 dpi when the page
/// has no image or the tool cannot tell; always within 100–400.
async fn scan_resolution(pdf: &Path, page: usize) -> u32 {
    let n = page.to_string();
    let Ok(out) = run_tool(
        "pdfimages",
        &[
            "-f".as_ref(),
            n.as_ref(),
            "-l".as_ref(),
            n.as_ref(),
            "-list".as_ref(),
            pdf.as_os_str(),
        ],
        Duration::from_secs(30),
    )
    .await
    else {
        return 300;
    };
    // Columns: page num type width height color comp bpc enc interp object ID x-ppi y-ppi …
    String::from_utf8_lossy(&out)
        .lines()
        .skip(2)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(2) == Some(&"image")).then(|| cols.get(12)?.parse::<u32>().ok())?
        })
        .max()
        .map_or(300, |ppi| ppi.clamp(100, 400))
}

/// Removes scanner speckle from a page image before OCR, when it has any (a failure
/// leaves the page as it was: OCR of a speckled page beats none).
async fn clean_page(image: &Path) {
    let path = image.to_owned();
    let cleaned =
        tokio::task::spawn_blocking(move || sportello_scan::clean_image_file_for_ocr(&path)).await;
    if let Ok(Err(e)) = cleaned {
        tracing::debug!(error = %e, "page not cleaned before OCR");
    }
}

/// Resolution raster pages (scans, faxes, photos) are brought to before OCR: faxes' uneven
/// 204×98 dpi becomes square, a photo without a recorded resolution is sized as an A4 page.
const RASTER_DPI: u32 = 200;

/// OCR of a raster file page by page (every page of a multi-page TIFF), each page
/// brought to [`RASTER_DPI`] and cleaned of speckle first.
async fn ocr_raster(path: &Path, ocr: &OcrSettings) -> Result<Vec<PageText>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cartella temporanea: {e}"))?;
    let source = path.to_owned();
    let out_dir = dir.path().to_owned();
    // Decode and clean every page off the async threads, one page in memory at a time.
    let images = tokio::task::spawn_blocking(move || -> Result<Vec<PathBuf>, String> {
        let limits = sportello_scan::Limits {
            max_pages: MAX_OCR_PAGES,
            ..sportello_scan::Limits::default()
        };
        let mut batch = sportello_scan::Batch::open(&source, limits).map_err(|e| e.to_string())?;
        let mut images = Vec::with_capacity(batch.page_count());
        for i in 0..batch.page_count() {
            let page = batch
                .page(i, RASTER_DPI)
                .map_err(|e| format!("pagina {}: {e}", i + 1))?;
            let page = sportello_scan::clean_for_ocr(&page).unwrap_or(page);
            let file = out_dir.join(format!("page-{i:05}.png"));
            page.save(&file)
                .map_err(|e| format!("pagina {}: {e}", i + 1))?;
            images.push(file);
        }
        Ok(images)
    })
    .await
    .map_err(|e| format!("lettura interrotta: {e}"))??;
    let mut pages = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let read = ocr_image(image, ocr).await?;
        pages.push(PageText {
            page: i as i64 + 1,
            method: "ocr".into(),
            text: one_text(read),
        });
        let _ = tokio::fs::remove_file(image).await;
    }
    Ok(pages)
}

/// The text of one image read by OCR (tesseract may split it in pages), as one text.
fn one_text(read: Vec<PageText>) -> String {
    read.into_iter()
        .map(|p| p.text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// OCR of an image file (every page of a multi-page TIFF), in the bounded pool.
async fn ocr_image(path: &Path, ocr: &OcrSettings) -> Result<Vec<PageText>, String> {
    let _worker = ocr
        .acquire()
        .await
        .ok_or_else(|| "OCR non disponibile".to_owned())?;
    let out = run_tool(
        &ocr.command,
        &[
            path.as_os_str(),
            "stdout".as_ref(),
            "-l".as_ref(),
            ocr.languages.as_ref(),
        ],
        Duration::from_secs(600),
    )
    .await
    .map_err(|e| format!("OCR non riuscito: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    // tesseract ends every page with a form feed.
    let mut pages: Vec<PageText> = text
        .split('\u{c}')
        .enumerate()
        .map(|(i, t)| PageText {
            page: i as i64 + 1,
            method: "ocr".into(),
            text: t.trim().to_owned(),
        })
        .collect();
    if pages.len() > 1 && pages.last().is_some_and(|p| p.text.is_empty()) {
        pages.pop();
    }
    Ok(pages)
}

/// Why a helper program failed.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("{0} non è installato")]
    Missing(String),
    #[error("tempo scaduto")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

async fn run_tool(
    program: &str,
    args: &[&std::ffi::OsStr],
    limit: Duration,
) -> Result<Vec<u8>, ToolError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        // tesseract would start a thread per core for each page; the pool already runs
        // one process per core, so more threads only fight over the cores.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, child).await {
        Err(_) => Err(ToolError::Timeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ToolError::Missing(program.to_owned()))
        }
        Ok(Err(e)) => Err(ToolError::Failed(e.to_string())),
        Ok(Ok(out)) if out.status.success() => Ok(out.stdout),
        Ok(Ok(out)) => Err(ToolError::Failed(
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(300)
                .collect::<String>()
                .trim()
                .to_owned(),
        )),
    }
}

/// Reads one claimed document: the text already known for the same bytes, else the
/// bytes are streamed to a temporary file and read.
pub async fn read_job(
    blobs: &BlobStore,
    ocr: &OcrSettings,
    job: &TextJob,
    store: &Store,
) -> TextOutcome {
    match store.known_text(&job.sha256).await {
        Ok(Some(pages)) => return TextOutcome::Pages(pages),
        Ok(None) => {}
        Err(e) => return TextOutcome::Failed(format!("database: {e}")),
    }
    if !is_readable(&job.media_type) {
        return TextOutcome::NoText;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return TextOutcome::Failed(format!("cartella temporanea: {e}")),
    };
    let path = dir.path().join("document");
    if let Err(e) = download(blobs, &job.sha256, &path).await {
        return TextOutcome::Failed(e);
    }
    read_file(&path, &job.media_type, ocr).await
}

fn is_readable(media_type: &str) -> bool {
    media_type == "application/pdf"
        || media_type.starts_with("image/")
        || matches!(
            media_type,
            "text/plain" | "text/html" | "text/csv" | "message/rfc822"
        )
}

async fn download(blobs: &BlobStore, sha256: &str, path: &PathBuf) -> Result<(), String> {
    let mut stream = blobs
        .get_stream(sha256)
        .await
        .map_err(|e| format!("contenuto del documento: {e}"))?;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("file temporaneo: {e}"))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("contenuto del documento: {e}"))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("file temporaneo: {e}"))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("file temporaneo: {e}"))
}

/// The background reader: claims documents, reads them a few at a time, records the text.
/// Runs until the task is dropped; a database that does not answer is retried.
pub async fn run_text_worker(store: Store, blobs: BlobStore, ocr: OcrSettings) {
    match store.release_stale_text_claims().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            documents = n,
            "text queue: documents of a stopped process back in the queue"
        ),
        Err(e) => tracing::warn!(error = %e, "text queue: stale claims not released"),
    }
    let parallel = ocr.capacity().max(1) * 2;
    loop {
        let jobs = match store.claim_text_jobs(parallel, LEASE).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "text queue: cannot claim documents");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        futures::stream::iter(jobs)
            .for_each_concurrent(parallel, |job| {
                let (store, blobs, ocr) = (store.clone(), blobs.clone(), ocr.clone());
                async move {
                    let started = std::time::Instant::now();
                    let outcome = {
                        let reading = read_job(&blobs, &ocr, &job, &store);
                        tokio::pin!(reading);
                        let mut renew = tokio::time::interval(LEASE / 3);
                        renew.tick().await;
                        loop {
                            tokio::select! {
                                outcome = &mut reading => break outcome,
                                _ = renew.tick() => {
                                    if let Err(e) = store.renew_text_claim(&job.document_id, LEASE).await {
                                        tracing::warn!(document = %job.document_id, error = %e, "text queue: cannot renew the claim");
                                    }
                                }
                            }
                        }
                    };
                    match &outcome {
                        TextOutcome::Failed(why) => tracing::warn!(document = %job.document_id, %why, "document text not read"),
                        TextOutcome::Pages(p) => tracing::info!(document = %job.document_id, pages = p.len(), ms = started.elapsed().as_millis() as u64, "document text read"),
                        TextOutcome::NoText => {}
                    }
                    if let Err(e) = store.finish_text_job(&job, outcome).await {
                        tracing::warn!(document = %job.document_id, error = %e, "text queue: cannot record the text (the claim will expire and it will be read again)");
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use sportello_store::testing::tools_present;

    fn text_page(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
        let out = dir.join(name);
        let mut args: Vec<String> = [
            "-size",
            "1240x1754",
            "xc:white",
            "-font",
            "DejaVu-Sans",
            "-pointsize",
            "36",
            "-fill",
            "black",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for (i, line) in lines.iter().enumerate() {
            args.extend([
                "-annotate".into(),
                format!("+120+{}", 200 + 80 * i),
                (*line).to_owned(),
            ]);
        }
        args.push(out.display().to_string());
        let status = std::process::Command::new("convert")
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success());
        out
    }

    /// A one-page PDF with a real text layer (Helvetica), written by hand.
    fn text_pdf(text: &str) -> Vec<u8> {
        let content = format!("BT /F1 18 Tf 72 720 Td ({text}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ];
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for o in offsets {
            pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }

    fn ocr() -> OcrSettings {
        OcrSettings::new("tesseract", "ita+eng", 1)
    }

    fn pages(outcome: TextOutcome) -> Vec<PageText> {
        match outcome {
            TextOutcome::Pages(p) => p,
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_text_layer_is_extracted_and_scans_are_read_by_ocr() {
        if !tools_present(&["pdftotext", "pdftoppm", "tesseract", "convert", "tiff2pdf"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("text.pdf");
        std::fs::write(
            &pdf,
            text_pdf("Contratto di locazione registrato a Pisa nel 2026"),
        )
        .unwrap();
        let read = pages(read_file(&pdf, "application/pdf", &ocr()).await);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].method, "text_layer");
        assert!(read[0].text.contains("locazione"), "{read:?}");

        let png = text_page(
            dir.path(),
            "scan.png",
            &["Carta di circolazione", "Parola chiave: ornitorinco"],
        );
        let read = pages(read_file(&png, "image/png", &ocr()).await);
        assert_eq!(read[0].method, "ocr");
        assert!(
            read[0].text.to_lowercase().contains("ornitorinco"),
            "{read:?}"
        );

        // A scan wrapped in a PDF has no text layer: its page is rendered and read.
        let scanned = dir.path().join("scanned.pdf");
        let single = dir.path().join("single.tif");
        assert!(
            std::process::Command::new("convert")
                .arg(&png)
                .arg(&single)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            std::process::Command::new("tiff2pdf")
                .arg("-o")
                .arg(&scanned)
                .arg(&single)
                .status()
                .unwrap()
                .success()
        );
        let read = pages(read_file(&scanned, "application/pdf", &ocr()).await);
        assert_eq!((read.len(), read[0].method.as_str()), (1, "ocr"));
        assert!(
            read[0].text.to_lowercase().contains("ornitorinco"),
            "{read:?}"
        );

        // A two-page TIFF gives two pages.
        let second = text_page(dir.path(), "p2.png", &["Seconda pagina: pangolino"]);
        let tiff = dir.path().join("fax.tif");
        assert!(
            std::process::Command::new("convert")
                .args([
                    png.as_os_str(),
                    second.as_os_str(),
                    "-monochrome".as_ref(),
                    "-compress".as_ref(),
                    "Group4".as_ref(),
                    tiff.as_os_str()
                ])
                .status()
                .unwrap()
                .success()
        );
        let read = pages(read_file(&tiff, "image/tiff", &ocr()).await);
        assert_eq!(read.len(), 2, "{read:?}");
        assert!(
            read[1].text.to_lowercase().contains("pangolino"),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn unreadable_files_fail_with_a_reason() {
        if !tools_present(&["pdftotext", "qpdf"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.pdf");
        std::fs::write(&plain, text_pdf("Segreto")).unwrap();
        let locked = dir.path().join("locked.pdf");
        let status = std::process::Command::new("qpdf")
            .args(["--encrypt", "utente", "proprietario", "256", "--"])
            .arg(&plain)
            .arg(&locked)
            .status()
            .unwrap();
        assert!(status.success());
        match read_file(&locked, "application/pdf", &ocr()).await {
            TextOutcome::Failed(why) => assert!(why.contains("password"), "{why}"),
            other => panic!("{other:?}"),
        }
        let broken = dir.path().join("broken.pdf");
        std::fs::write(&broken, b"%PDF-1.4\n garbage \x00\x01").unwrap();
        assert!(matches!(
            read_file(&broken, "application/pdf", &ocr()).await,
            TextOutcome::Failed(_)
        ));
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            read_file(&empty, "image/png", &ocr()).await,
            TextOutcome::Failed(_)
        ));
        let missing = OcrSettings::new("/nonexistent/tesseract", "ita", 1);
        match read_file(&empty, "image/gif", &missing).await {
            TextOutcome::Failed(why) => assert!(why.contains("non è installato"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_file(&empty, "application/zip", &ocr()).await,
            TextOutcome::NoText
        ));
    }
}
