//! Keeping what someone hands the office: an upload is staged on disk while it is hashed
//! and sniffed, put in the document store, then attached to its case. The API, the back
//! office, the portal, `permits import` and the scan folder all take this one path.

use std::path::Path;

use sportello_store::StoreError;
use sportello_store::documents::{BlobStore, DocumentView, StagedBlob};
use tokio::io::AsyncRead;

use crate::{App, AppError};

/// Stages `reader` in `staging_dir` (at most `limit` bytes), hashing it and sniffing its
/// media type; an upload that breaks off while it is read is a bad request.
pub async fn stage(
    staging_dir: &Path,
    reader: impl AsyncRead + Unpin,
    limit: u64,
) -> Result<StagedBlob, AppError> {
    BlobStore::stage(staging_dir, reader, limit)
        .await
        .map_err(|e| match e {
            StoreError::Blob(msg) if msg.contains("reading the upload") => {
                AppError::BadRequest(msg)
            }
            other => other.into(),
        })
}

/// Stages `reader` and puts it in the document store (a file kept before anything else
/// is done with it, e.g. a scanned batch).
pub async fn keep(
    blobs: &BlobStore,
    staging_dir: &Path,
    reader: impl AsyncRead + Unpin,
    limit: u64,
) -> Result<StagedBlob, AppError> {
    let staged = stage(staging_dir, reader, limit).await?;
    blobs.put_staged(&staged).await?;
    Ok(staged)
}

/// Puts a staged upload in the document store and attaches it to the case as `filename`
/// (only displayed, never used as a path).
pub async fn attach(
    app: &App,
    reference: &str,
    staged: &StagedBlob,
    filename: &str,
    actor: &str,
) -> Result<DocumentView, AppError> {
    app.blobs.put_staged(staged).await?;
    Ok(app
        .store
        .add_document(
            reference,
            &staged.sha256,
            staged.size,
            filename,
            &staged.media_type,
            actor,
        )
        .await?)
}

/// The whole upload: staged within the configured limit, stored, attached to the case.
/// `None` for an empty file, which attaches nothing.
pub async fn store_upload(
    app: &App,
    reference: &str,
    reader: impl AsyncRead + Unpin,
    filename: &str,
    actor: &str,
) -> Result<Option<DocumentView>, AppError> {
    let staged = stage(
        &app.staging_dir,
        reader,
        app.config.documents.max_upload_bytes,
    )
    .await?;
    if staged.size == 0 {
        return Ok(None);
    }
    attach(app, reference, &staged, filename, actor)
        .await
        .map(Some)
}
