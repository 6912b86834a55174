//! `sportello ingest`: `.eml` files and maildir folders, in the order given, as if they
//! came from a configured mailbox; one JSON line per message (CONTRACT §4, §7.1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use sportello_config::Config;
use sportello_intake::email::EmailSource;
use sportello_intake::pipeline::{Limits, OcrSettings, ingest_email};

use crate::app::{UsageError, open_blobs, open_store};

/// Exit status when some inputs were rejected (CONTRACT §4).
const EXIT_SOME_REJECTED: u8 = 3;

/// The PEM bundle named by `pec.trust_anchors`, read once.
pub fn trust_anchors(config: &Config) -> anyhow::Result<Option<std::sync::Arc<Vec<u8>>>> {
    match &config.pec.trust_anchors {
        None => Ok(None),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                UsageError(format!(
                    "pec.trust_anchors: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            Ok(Some(std::sync::Arc::new(pem)))
        }
    }
}

/// The files a path stands for: itself, or a folder's files in name order (a maildir's
/// `new/` then `cur/`).
fn files_of(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let list = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    };
    if path.join("cur").is_dir() || path.join("new").is_dir() {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if path.join(sub).is_dir() {
                files.extend(list(&path.join(sub))?);
            }
        }
        return Ok(files);
    }
    list(path)
}

/// Runs the command.
pub async fn run(
    config: &Config,
    mailbox: Option<&str>,
    paths: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    if paths.is_empty() {
        return Err(UsageError("give at least one .eml file or maildir folder".into()).into());
    }
    let src = EmailSource::from_config(config, mailbox, trust_anchors(config)?)
        .map_err(|e| UsageError(format!("--mailbox: {e}")))?;
    let ocr = OcrSettings::from_config(config);
    let limits = Limits::from_config(config);
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let mut rejected = 0usize;
    for path in paths {
        let files = match files_of(path) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                rejected += 1;
                continue;
            }
        };
        for file in files {
            let raw = match std::fs::read(&file) {
                Ok(raw) => raw,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", file.display());
                    rejected += 1;
                    continue;
                }
            };
            let source = file.display().to_string();
            let outcome = ingest_email(
                &store,
                &blobs,
                Bytes::from(raw),
                &source,
                &src,
                &ocr,
                limits,
            )
            .await?;
            let line = serde_json::json!({
                "source": outcome.source,
                "channel": outcome.channel,
                "outcome": outcome.outcome,
                "case": outcome.case,
                "protocol": outcome.protocol,
                "flags": outcome.flags,
                "rule": outcome.rule,
            });
            println!("{line}");
        }
    }
    store.close().await;
    Ok(if rejected > 0 {
        ExitCode::from(EXIT_SOME_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}
