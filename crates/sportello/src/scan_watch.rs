//! The scanner folder (`scan.watch_dir`): every complete PDF/TIFF batch a network scanner
//! writes there is stored, read page by page, split at its cover sheets, and each part is
//! attached to its case through the intake pipeline (registered in the protocol register,
//! journaled, queued for OCR). Pages without a cover sheet open a new case flagged
//! `unsorted_scan` for triage. A file that cannot be read still becomes a flagged case
//! with the file attached: nothing is lost, and the watcher keeps running.
//!
//! A file counts as complete when its size and modification time have not changed for
//! two looks in a row; names starting with `.` or ending in `.tmp`, `.part` or `~` are
//! being written and are left alone. Processed files move to `processed/` (renamed if a
//! file of that name is there already); processing is idempotent, so a crash half-way
//! re-processes the file without duplicating a part.
//!
//! Several instances may watch one shared (network) folder: the folder has an id of its
//! own (a hidden marker file) and a duty lease named after it, so only the instance
//! holding the lease looks at the files; another takes over when that one dies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sportello_domain::case::Channel;
use sportello_paper::PdfAssembler;
use sportello_scan::{Batch, Limits, ScanError, cover_reference, split_at_covers};
use sportello_store::Store;
use sportello_store::cases::CitizenInput;
use sportello_store::documents::BlobStore;
use sportello_store::intake::{Inbound, InboundDocument, IntakeOutcome};

/// Resolution pages are read and re-assembled at: enough for QR codes and OCR, small
/// enough for a thousand pages.
const DPI: u32 = 200;

/// The folder's watcher.
pub struct ScanWatcher {
    dir: PathBuf,
    store: Store,
    blobs: BlobStore,
    staging: PathBuf,
    default_case_type: String,
    poll: Duration,
    max_bytes: u64,
    duties: Arc<crate::duties::Duties>,
}

impl ScanWatcher {
    /// A watcher of `[scan]`'s folder, or `None` when none is configured.
    pub fn from_config(
        config: &sportello_config::Config,
        store: Store,
        blobs: BlobStore,
        duties: Arc<crate::duties::Duties>,
    ) -> Option<ScanWatcher> {
        let dir = config.scan.watch_dir.clone()?;
        Some(ScanWatcher {
            dir,
            store,
            blobs,
            staging: config.data_dir.join("staging"),
            default_case_type: config.scan.default_case_type.clone(),
            poll: Duration::from_secs(config.scan.poll_seconds),
            max_bytes: config.documents.max_upload_bytes.max(500 * 1024 * 1024),
            duties,
        })
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Watches until the task is dropped. A folder that is missing or unreadable is
    /// reported (once per minute) and looked at again; it is never created here, since a
    /// missing network share must be noticed, not papered over.
    pub async fn run(self) {
        let mut seen: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
        let mut last_complaint: Option<std::time::Instant> = None;
        let mut duty: Option<String> = None;
        // The folder's lease outlasts a few looks, however slowly the folder is looked at.
        let lease = self.duties.lease().max(self.poll * 3);
        loop {
            if duty.is_none() {
                match crate::duties::scan_duty(&self.dir) {
                    Ok(name) => duty = Some(name),
                    Err(e) => {
                        if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(dir = %self.dir.display(), error = %e, "scanner folder not readable");
                            last_complaint = Some(std::time::Instant::now());
                        }
                        tokio::time::sleep(self.poll).await;
                        continue;
                    }
                }
            }
            let name = duty.clone().unwrap_or_default();
            if !self.duties.hold_for(&name, lease).await {
                // Another instance watches this folder; what was seen here may change.
                seen.clear();
                tokio::time::sleep(self.poll).await;
                continue;
            }
            match candidates(&self.dir) {
                Ok(files) => {
                    last_complaint = None;
                    let mut still_here = HashMap::new();
                    for (path, size, modified) in files {
                        let stable = seen.get(&path) == Some(&(size, modified));
                        if stable && (size > 0 || is_old(modified)) {
                            match self
                                .duties
                                .renewing(&name, lease, self.process(&path))
                                .await
                            {
                                Ok(parts) => {
                                    tracing::info!(file = %path.display(), parts = parts.len(), "scanned batch filed")
                                }
                                Err(e) => {
                                    tracing::error!(file = %path.display(), error = %e, "scanned batch not processed; it stays in the folder and is tried again");
                                    still_here.insert(path, (size, modified));
                                }
                            }
                        } else {
                            still_here.insert(path, (size, modified));
                        }
                    }
                    seen = still_here;
                }
                Err(e) => {
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "scanner folder not readable");
                        last_complaint = Some(std::time::Instant::now());
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Processes one complete batch file and moves it to `processed/`; one outcome per
    /// part, as intake reports messages.
    pub async fn process(&self, path: &Path) -> anyhow::Result<Vec<IntakeOutcome>> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scansione".into());
        // The original is stored before anything else.
        let file = tokio::fs::File::open(path).await?;
        let staged =
            sportello_app::documents::keep(&self.blobs, &self.staging, file, self.max_bytes)
                .await?;
        let received_at = self.store.clock().now();

        let read = {
            let path = path.to_owned();
            let max_bytes = self.max_bytes;
            tokio::task::spawn_blocking(move || split_batch(&path, max_bytes)).await?
        };
        let mut outcomes = Vec::new();
        match read {
            Ok(parts) => {
                for (i, part) in parts.into_iter().enumerate() {
                    let sha = self.blobs.put(bytes::Bytes::from(part.pdf)).await?;
                    let pages = describe_pages(&part.pages);
                    let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
                    let mut flags = Vec::new();
                    if part.reference.is_none() {
                        flags.push("unsorted_scan".to_owned());
                    } else if let Some(r) = &part.reference
                        && self.store.get_case(r).await.is_err()
                    {
                        // A cover sheet of a case that does not exist (a forged or damaged
                        // sheet): the pages need a person too.
                        flags.push("unsorted_scan".to_owned());
                    }
                    let subject = match &part.reference {
                        Some(r) => format!("Documenti scansionati per {r} ({pages})"),
                        None => format!("Documenti scansionati senza copertina ({pages})"),
                    };
                    let size = part.size;
                    let inbound = Inbound {
                        explicit_case: part.reference.clone(),
                        channel: Channel::Scan,
                        source: format!("{name} {pages}"),
                        dedupe_key: format!("scan:{}:{i}", staged.sha256),
                        message_id: None,
                        in_reply_to: Vec::new(),
                        received_at,
                        sender: CitizenInput::default(),
                        sender_label: "Scanner dell'ufficio".into(),
                        subject,
                        text: String::new(),
                        receipt: None,
                        flags,
                        default_case_type: self.default_case_type.clone(),
                        raw_sha256: sha.clone(),
                        attachments: vec![InboundDocument {
                            sha256: sha,
                            size,
                            filename: format!("{stem}-{}.pdf", pages.replace([' ', '.'], "")),
                            media_type: "application/pdf".into(),
                        }],
                    };
                    let outcome = self.store.ingest(inbound).await?;
                    tracing::info!(file = %name, case = ?outcome.case, outcome = %outcome.outcome, rule = %outcome.rule, "scanned pages filed");
                    outcomes.push(outcome);
                }
            }
            Err(why) => {
                // Unreadable (corrupt, encrypted, empty, too many pages): the file itself
                // goes to a case for a person to look at.
                tracing::warn!(file = %name, error = %why, "scanned batch not readable");
                let inbound = Inbound {
                    explicit_case: None,
                    channel: Channel::Scan,
                    source: name.clone(),
                    dedupe_key: format!("scan:{}:unreadable", staged.sha256),
                    message_id: None,
                    in_reply_to: Vec::new(),
                    received_at,
                    sender: CitizenInput::default(),
                    sender_label: "Scanner dell'ufficio".into(),
                    subject: format!("Scansione non leggibile: {name}"),
                    text: format!("Il file {name} non si può leggere: {why}"),
                    receipt: None,
                    flags: vec!["unsorted_scan".into(), "scan_unreadable".into()],
                    default_case_type: self.default_case_type.clone(),
                    raw_sha256: staged.sha256.clone(),
                    attachments: vec![InboundDocument {
                        sha256: staged.sha256.clone(),
                        size: staged.size,
                        filename: name.clone(),
                        media_type: staged.media_type.clone(),
                    }],
                };
                outcomes.push(self.store.ingest(inbound).await?);
            }
        }
        move_to_processed(&self.dir, path).await?;
        Ok(outcomes)
    }
}

/// One case's pages, as a PDF.
struct ReadPart {
    reference: Option<String>,
    pages: Vec<usize>,
    pdf: Vec<u8>,
    size: u64,
}

/// Reads every page, finds the cover sheets and builds one PDF per part (the scanner's
/// own PDF pages are cut out as they are, keeping any text layer; raster pages are
/// re-assembled). Parts without pages (an empty cover sheet) are dropped with a warning.
fn split_batch(path: &Path, max_bytes: u64) -> Result<Vec<ReadPart>, ScanError> {
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let mut batch = Batch::open(path, limits.clone())?;
    let mut covers = Vec::with_capacity(batch.page_count());
    for i in 0..batch.page_count() {
        let page = batch.page(i, DPI)?;
        covers.push(cover_reference(&page));
    }
    let mut out = Vec::new();
    for part in split_at_covers(&covers) {
        if part.pages.is_empty() {
            tracing::warn!(file = %path.display(), reference = ?part.reference, "a cover sheet with no pages after it");
            continue;
        }
        let pdf = if batch.format() == sportello_scan::Format::Pdf {
            sportello_scan::extract_pdf_pages(batch.path(), &part.pages, limits.tool_timeout)?
        } else {
            let mut assembler = PdfAssembler::new();
            for &i in &part.pages {
                assembler.add_page(&batch.page(i, DPI)?, DPI);
            }
            assembler.finish()
        };
        out.push(ReadPart {
            reference: part.reference,
            pages: part.pages,
            size: pdf.len() as u64,
            pdf,
        });
    }
    Ok(out)
}

/// "p. 3" or "pp. 2-4" (1-based), for names and subjects.
fn describe_pages(pages: &[usize]) -> String {
    match (pages.first(), pages.last()) {
        (Some(a), Some(b)) if a == b => format!("p. {}", a + 1),
        (Some(a), Some(b)) => format!("pp. {}-{}", a + 1, b + 1),
        _ => "nessuna pagina".into(),
    }
}

fn is_old(modified: SystemTime) -> bool {
    modified
        .elapsed()
        .is_ok_and(|d| d > Duration::from_secs(60))
}

/// The files in the folder that may be batches, with their size and modification time.
fn candidates(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name.ends_with(".tmp")
            || name.ends_with(".part")
            || name.ends_with(".partial")
            || name.ends_with('~')
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push((
            entry.path(),
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    out.sort();
    Ok(out)
}

/// Moves a processed file into `processed/`, never over another file.
async fn move_to_processed(dir: &Path, path: &Path) -> std::io::Result<()> {
    let done = dir.join("processed");
    tokio::fs::create_dir_all(&done).await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = done.join(&name);
    let mut n = 1;
    while tokio::fs::try_exists(&target).await.unwrap_or(false) {
        target = done.join(format!("{n}-{name}"));
        n += 1;
    }
    tokio::fs::rename(path, target).await
}
