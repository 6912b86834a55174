//! Where things are kept and read: the database, the document store, the ZTL policy file, OCR
//! and the scanner's drop folder.

use std::path::PathBuf;

use crate::channels::default_case_type;
use crate::secrets::SecretUrl;
use serde::{Deserialize, Serialize};

/// `[database]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`; default `sqlite://{data_dir}/sportello.db`.
    pub url: Option<SecretUrl>,
    /// Pool size for PostgreSQL (SQLite uses one writer and a few readers).
    pub max_connections: Option<u32>,
}

/// `[documents]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// `file://DIR` or `s3://bucket/prefix`; default `file://{data_dir}/documents`.
    pub url: Option<String>,
    /// S3 endpoint (MinIO, Garage, Ceph…); credentials from the standard `AWS_*` variables.
    pub endpoint: Option<String>,
    /// S3 region (default from `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            url: None,
            endpoint: None,
            region: None,
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// ZTL policy file (CONTRACT §6.1); the built-in example when absent.
    pub file: Option<PathBuf>,
}

/// `[ocr]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    /// OCR program.
    pub command: String,
    /// Tesseract languages.
    pub languages: String,
    /// OCR runs at most this many at once (0: one per processor core), so a burst of
    /// faxes never starves the other channels.
    pub workers: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            command: "tesseract".into(),
            languages: "ita+eng".into(),
            workers: 0,
        }
    }
}

/// `[scan]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Folder a network scanner writes PDF/TIFF batches into. Each batch, once complete,
    /// is split at its cover sheets and moved to `processed/` inside this folder.
    pub watch_dir: Option<PathBuf>,
    /// Case type of the new case opened for pages without a cover sheet (flagged
    /// `unsorted_scan` for triage).
    pub default_case_type: String,
    /// How often the folder is looked at, in seconds.
    pub poll_seconds: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            watch_dir: None,
            default_case_type: default_case_type(),
            poll_seconds: 2,
        }
    }
}
