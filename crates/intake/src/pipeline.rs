//! Runs a raw e-mail through everything: store the raw bytes first, parse, read fax pages
//! with OCR, the intake pipeline, then attach the attachments to the case.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sportello_domain::case::Channel;
use sportello_store::documents::{BlobStore, sniff_media_type};
use sportello_store::intake::{InboundDocument, IntakeOutcome};
use sportello_store::{Store, StoreError};

use crate::email::{Attachment, EmailSource, parse_email};

/// OCR settings (CONTRACT §3 `ocr.command`, `ocr.languages`) and the bounded pool of
/// OCR workers. Clones share the pool: make one per process and hand it around.
#[derive(Debug, Clone)]
pub struct OcrSettings {
    /// The tesseract program.
    pub command: String,
    /// Languages, e.g. `ita+eng`.
    pub languages: String,
    workers: Arc<Semaphore>,
    capacity: usize,
}

impl OcrSettings {
    /// Settings with a pool of `workers` OCR processes at most (0: one per core).
    pub fn new(command: &str, languages: &str, workers: usize) -> OcrSettings {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            workers
        };
        OcrSettings {
            command: command.to_owned(),
            languages: languages.to_owned(),
            workers: Arc::new(Semaphore::new(workers)),
            capacity: workers,
        }
    }

    /// Waits for a free OCR worker; the permit frees it when dropped. `None` only if the
    /// pool was closed.
    pub async fn acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.workers.clone().acquire_owned().await.ok()
    }

    /// How many OCR processes may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// From `[ocr]`.
    pub fn from_config(config: &sportello_config::Config) -> OcrSettings {
        OcrSettings::new(
            &config.ocr.command,
            &config.ocr.languages,
            config.ocr.workers,
        )
    }
}

/// Limits on what a message may bring.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest attachment stored as a document; larger ones are flagged, not stored apart
    /// (they stay inside the stored raw message).
    pub max_attachment_bytes: u64,
    /// Most attachments stored apart from one message; the rest stay inside the stored
    /// raw message and the message is flagged (a 100,000-part mail must not become
    /// 100,000 documents).
    pub max_attachments: usize,
}

/// See [`Limits::max_attachments`].
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 200;

impl Limits {
    /// From `[documents]`.
    pub fn from_config(config: &sportello_config::Config) -> Limits {
        Limits {
            max_attachment_bytes: config.documents.max_upload_bytes,
            max_attachments: MAX_ATTACHMENTS_PER_MESSAGE,
        }
    }
}

/// Ingests one raw RFC 5322 message handed over as it arrives (the MTA pipe, `sportello
/// ingest`): as far as our own systems know, it reached the office now (see
/// [`parse_email`] for when it counts as received).
pub async fn ingest_email(
    store: &Store,
    blobs: &BlobStore,
    raw: Bytes,
    source: &str,
    src: &EmailSource,
    ocr: &OcrSettings,
    limits: Limits,
) -> Result<IntakeOutcome, StoreError> {
    ingest_arrived_email(store, blobs, raw, source, None, src, ocr, limits).await
}

/// Ingests one raw RFC 5322 message that reached the office at `arrived_at` as our own
/// server recorded it (a mailbox's IMAP `INTERNALDATE`); `None` means now.
#[allow(clippy::too_many_arguments)]
pub async fn ingest_arrived_email(
    store: &Store,
    blobs: &BlobStore,
    raw: Bytes,
    source: &str,
    arrived_at: Option<DateTime<Utc>>,
    src: &EmailSource,
    ocr: &OcrSettings,
    limits: Limits,
) -> Result<IntakeOutcome, StoreError> {
    // Nothing is lost: the raw message is stored before anything else happens.
    let raw_sha256 = blobs.put(raw.clone()).await?;
    let arrived_at = arrived_at.unwrap_or_else(|| store.clock().now());
    let mut parsed = parse_email(&raw, source, &raw_sha256, src, arrived_at);
    if parsed.inbound.channel == Channel::Fax && parsed.inbound.receipt.is_none() {
        match ocr_pages(&parsed.attachments, ocr).await {
            Some(text) if !text.trim().is_empty() => {
                parsed.inbound.text.push_str("\n\n[testo letto dal fax]\n");
                parsed.inbound.text.push_str(&text);
            }
            _ => parsed.inbound.flags.push("ocr_failed".into()),
        }
    }
    // Attachments go to the document store now; the pipeline records them on the case in
    // the message's own transaction.
    let total = parsed.attachments.len();
    if total > limits.max_attachments {
        parsed.inbound.flags.push("too_many_attachments".into());
    }
    for attachment in parsed.attachments.into_iter().take(limits.max_attachments) {
        if attachment.bytes.len() as u64 > limits.max_attachment_bytes {
            // Kept inside the stored raw message, not stored apart.
            if !parsed
                .inbound
                .flags
                .iter()
                .any(|f| f == "attachment_too_large")
            {
                parsed.inbound.flags.push("attachment_too_large".into());
            }
            continue;
        }
        let media_type = sniff_media_type(&attachment.bytes[..attachment.bytes.len().min(8192)]);
        let size = attachment.bytes.len() as u64;
        let sha256 = blobs.put(Bytes::from(attachment.bytes)).await?;
        parsed.inbound.attachments.push(InboundDocument {
            sha256,
            size,
            filename: attachment.filename,
            media_type,
        });
    }
    let outcome = store.ingest(parsed.inbound).await?;
    Ok(outcome)
}

/// Reads the fax pages (TIFF, PNG, JPEG; PDF through `pdftoppm`) with tesseract, off the
/// async threads, each under a time limit. `None` when OCR is unavailable or fails.
async fn ocr_pages(attachments: &[Attachment], ocr: &OcrSettings) -> Option<String> {
    let pages: Vec<&Attachment> = attachments
        .iter()
        .filter(|a| {
            let head = &a.bytes[..a.bytes.len().min(16)];
            head.starts_with(b"II*\0")
                || head.starts_with(b"MM\0*")
                || head.starts_with(b"\x89PNG")
                || head.starts_with(&[0xff, 0xd8])
                || head.starts_with(b"%PDF")
        })
        .collect();
    if pages.is_empty() {
        return None;
    }
    // One message's pages at a time per worker; the others wait here, not in a process.
    let _worker = ocr.workers.acquire().await.ok()?;
    let dir = tempfile::tempdir().ok()?;
    let mut text = String::new();
    for (i, page) in pages.iter().enumerate() {
        let input = dir.path().join(format!("page-{i}"));
        tokio::fs::write(&input, &page.bytes).await.ok()?;
        let images = if page.bytes.starts_with(b"%PDF") {
            pdf_to_images(&input, dir.path(), i).await?
        } else {
            vec![input]
        };
        for image in images {
            text.push_str(&run_tesseract(&image, ocr).await?);
            text.push('\n');
        }
    }
    Some(text)
}

async fn pdf_to_images(pdf: &Path, dir: &Path, i: usize) -> Option<Vec<std::path::PathBuf>> {
    let prefix = dir.join(format!("pdf-{i}"));
    let status = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("pdftoppm")
            .arg("-r")
            .arg("200")
            .arg("-png")
            .arg(pdf)
            .arg(&prefix)
            .kill_on_drop(true)
            .status(),
    )
    .await
    .ok()?
    .ok()?;
    if !status.success() {
        return None;
    }
    let mut images: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("pdf-{i}-")))
        })
        .collect();
    images.sort();
    Some(images)
}

async fn run_tesseract(image: &Path, ocr: &OcrSettings) -> Option<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&ocr.command)
            .env("OMP_THREAD_LIMIT", "1")
            .arg(image)
            .arg("stdout")
            .arg("-l")
            .arg(&ocr.languages)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?;
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).chars().take(300).collect::<String>(), "OCR failed");
            None
        }
        Err(e) => {
            tracing::warn!(command = %ocr.command, error = %e, "OCR unavailable");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A stand-in OCR program that logs when it starts and ends, to see the pool's bound.
    fn logging_ocr(dir: &Path) -> String {
        let script = dir.join("ocr.sh");
        let log = dir.join("ocr.log");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho start >> {log}\nsleep 0.3\necho end >> {log}\necho testo\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        script.display().to_string()
    }

    fn page() -> Attachment {
        Attachment {
            filename: "fax.tif".into(),
            content_type: "image/tiff".into(),
            bytes: b"II*\0fake".to_vec(),
        }
    }

    #[tokio::test]
    async fn ocr_runs_at_most_as_many_at_once_as_there_are_workers() {
        let dir = tempfile::tempdir().unwrap();
        let ocr = OcrSettings::new(&logging_ocr(dir.path()), "ita", 1);
        let pages = [page()];
        let runs: Vec<_> = (0..3).map(|_| ocr_pages(&pages, &ocr)).collect();
        for text in futures::future::join_all(runs).await {
            assert_eq!(text.unwrap().trim(), "testo");
        }
        let log = std::fs::read_to_string(dir.path().join("ocr.log")).unwrap();
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            ["start", "end", "start", "end", "start", "end"],
            "one worker: never two at once"
        );

        let wide = OcrSettings::new(&logging_ocr(dir.path()), "ita", 3);
        std::fs::remove_file(dir.path().join("ocr.log")).unwrap();
        let runs: Vec<_> = (0..3).map(|_| ocr_pages(&pages, &wide)).collect();
        futures::future::join_all(runs).await;
        let log = std::fs::read_to_string(dir.path().join("ocr.log")).unwrap();
        assert!(
            log.starts_with("start\nstart\nstart\n"),
            "three workers run together: {log}"
        );
    }

    #[tokio::test]
    async fn a_missing_ocr_program_is_a_failure_not_a_hang() {
        let ocr = OcrSettings::new("/nonexistent/tesseract", "ita", 1);
        assert_eq!(ocr_pages(&[page()], &ocr).await, None);
    }
}
