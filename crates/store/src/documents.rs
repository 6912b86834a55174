//! Documents: bytes in a content-addressed object store (local folder or S3-compatible,
//! through `object_store`), metadata in the database. A document's key is its SHA-256, so
//! the same bytes are stored once and a stored object never changes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sportello_domain::register::Direction;
use sqlx::{Any, Transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::ToSchema;

use crate::journal::{insert_event, touch_case};
use crate::register::{Registration, register_many_in};
use crate::time::rome_rfc3339;
use crate::{Result, Store, StoreError, from_ms, get_i64, get_str, to_ms};

/// A document's metadata, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    /// Opaque id for `GET /api/v1/documents/{id}`.
    pub id: String,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// File name as given, cleaned for display (never used as a path).
    pub filename: String,
    /// Media type sniffed from the content.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was added (RFC 3339).
    pub uploaded_at: String,
    /// Who added it.
    pub uploaded_by: String,
    /// Whether its text has been read for search: `pending`, `running`, `done`, `none`
    /// (a kind of file without text) or `failed` (see `text_error`; it can be retried).
    #[serde(default)]
    pub text_status: String,
    /// Why reading its text failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_error: Option<String>,
}

/// Where document bytes live.
#[derive(Debug, Clone)]
pub struct BlobStore {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) prefix: ObjectPath,
    description: String,
}

/// A file staged on local disk while it was received: hashed, measured, sniffed.
#[derive(Debug)]
pub struct StagedBlob {
    file: tempfile_path::TempPath,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type sniffed from the first bytes.
    pub media_type: String,
}

/// A small self-deleting temporary path (the staging file of an upload).
mod tempfile_path {
    use std::path::{Path, PathBuf};

    /// Deletes the file when dropped.
    #[derive(Debug)]
    pub struct TempPath(pub PathBuf);

    impl TempPath {
        /// The path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl BlobStore {
    /// Opens `file://DIR` or `s3://bucket/prefix` (endpoint and region from the configuration,
    /// credentials from the standard `AWS_*` variables).
    pub fn open(url: &str, endpoint: Option<&str>, region: Option<&str>) -> Result<BlobStore> {
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::invalid("documents.url", format!("cannot create {dir}: {e}"))
            })?;
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| StoreError::invalid("documents.url", e.to_string()))?;
            return Ok(BlobStore {
                inner: Arc::new(fs),
                prefix: ObjectPath::default(),
                description: url.to_owned(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let region = region
                .map(str::to_owned)
                .or_else(|| std::env::var("AWS_REGION").ok());
            builder = builder.with_region(region.unwrap_or_else(|| "us-east-1".into()));
            let s3 = builder
                .build()
                .map_err(|e| StoreError::invalid("documents.url", e.to_string()))?;
            return Ok(BlobStore {
                inner: Arc::new(s3),
                prefix: ObjectPath::from(prefix.trim_matches('/')),
                description: url.to_owned(),
            });
        }
        Err(StoreError::invalid(
            "documents.url",
            "must start with file:// or s3://",
        ))
    }

    /// Where the bytes go, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub(crate) fn key(&self, sha256: &str) -> ObjectPath {
        let shard = sha256.get(..2).unwrap_or("xx");
        let mut key = self.prefix.clone();
        for part in ["sha256", shard, sha256] {
            key = key.clone().join(part);
        }
        key
    }

    /// Reads `reader` into a staging file under `staging_dir`, hashing and measuring as it
    /// goes; stops with [`StoreError::TooLarge`] as soon as `limit` is passed.
    pub async fn stage<R: tokio::io::AsyncRead + Unpin>(
        staging_dir: &Path,
        mut reader: R,
        limit: u64,
    ) -> Result<StagedBlob> {
        tokio::fs::create_dir_all(staging_dir)
            .await
            .map_err(|e| StoreError::Blob(format!("staging folder: {e}")))?;
        let name: u128 = rand::random();
        let path = tempfile_path::TempPath(staging_dir.join(format!("upload-{name:032x}")));
        let mut file = tokio::fs::File::create(path.path())
            .await
            .map_err(|e| StoreError::Blob(format!("staging file: {e}")))?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| StoreError::Blob(format!("reading the upload: {e}")))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(StoreError::TooLarge { limit });
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            if head.len() < 8192 {
                head.extend_from_slice(&chunk[..chunk.len().min(8192 - head.len())]);
            }
            file.write_all(chunk)
                .await
                .map_err(|e| StoreError::Blob(format!("staging file: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| StoreError::Blob(format!("staging file: {e}")))?;
        Ok(StagedBlob {
            file: path,
            sha256: hex::encode(hasher.finalize()),
            size,
            media_type: sniff_media_type(&head),
        })
    }

    /// Stores a staged file under its hash (once; the same bytes again are a no-op).
    /// Small files go in one request; larger ones are streamed in parts, so memory does
    /// not grow with the size of the upload.
    pub async fn put_staged(&self, staged: &StagedBlob) -> Result<()> {
        self.put_file(&staged.sha256, staged.file.path(), staged.size)
            .await
    }

    /// Stores the file at `path`, whose SHA-256 the caller has checked, under that hash
    /// (once; the same bytes again are a no-op), streamed in parts when large.
    pub async fn put_file(&self, sha256: &str, path: &Path, size: u64) -> Result<()> {
        const PART: usize = 8 * 1024 * 1024;
        let key = self.key(sha256);
        if self.inner.head(&key).await.is_ok() {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))?;
        if size as usize <= PART {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data)
                .await
                .map_err(|e| StoreError::Blob(e.to_string()))?;
            return self.put_bytes_at(&key, Bytes::from(data)).await;
        }
        let upload = self
            .inner
            .put_multipart(&key)
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 256 * 1024];
        let copied: Result<()> = async {
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| StoreError::Blob(e.to_string()))?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(2)
                    .await
                    .map_err(|e| StoreError::Blob(e.to_string()))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = copied {
            // An abandoned multipart upload keeps its parts in the bucket, unseen and
            // billed, until a lifecycle rule removes them: abort it.
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "could not abort a failed multipart upload");
            }
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))?;
        Ok(())
    }

    /// The bytes stored under a hash, as a stream (for downloads of any size).
    pub async fn get_stream(
        &self,
        sha256: &str,
    ) -> Result<futures::stream::BoxStream<'static, std::result::Result<Bytes, std::io::Error>>>
    {
        use futures::StreamExt;
        let result = self.fetch(sha256).await?;
        Ok(result
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed())
    }

    /// Opens the object stored under a hash; a missing object is [`StoreError::NotFound`].
    async fn fetch(&self, sha256: &str) -> Result<object_store::GetResult> {
        self.inner
            .get(&self.key(sha256))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    StoreError::NotFound(format!("document content {sha256}"))
                }
                other => StoreError::Blob(other.to_string()),
            })
    }

    /// Deletes the bytes stored under a hash (nothing stored there is not an error): only
    /// for retention (`crate::privacy`), once no record names the hash any more.
    pub async fn delete(&self, sha256: &str) -> Result<()> {
        match self.inner.delete(&self.key(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Blob(e.to_string())),
        }
    }

    /// Stores bytes under their hash and returns the hash.
    pub async fn put(&self, data: Bytes) -> Result<String> {
        let sha = hex::encode(Sha256::digest(&data));
        let key = self.key(&sha);
        if self.inner.head(&key).await.is_err() {
            self.put_bytes_at(&key, data).await?;
        }
        Ok(sha)
    }

    async fn put_bytes_at(&self, key: &ObjectPath, data: Bytes) -> Result<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(key, PutPayload::from_bytes(data), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(StoreError::Blob(e.to_string())),
        }
    }

    /// The bytes stored under a hash.
    pub async fn get(&self, sha256: &str) -> Result<Bytes> {
        let result = self.fetch(sha256).await?;
        result
            .bytes()
            .await
            .map_err(|e| StoreError::Blob(e.to_string()))
    }
}

/// The media type from the content's magic bytes; text when it is valid UTF-8.
pub fn sniff_media_type(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if head.is_empty() {
        return "application/octet-stream".into();
    }
    // A cut in the middle of a multi-byte character at the end of the sample is fine.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    if valid && !head.contains(&0) {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

/// A file name fit for display: the last path component, without control characters,
/// at most 200 characters; never used to build a path.
pub fn display_filename(given: &str) -> String {
    let last = given.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let short: String = trimmed.chars().take(200).collect();
    if short.is_empty() {
        "documento".into()
    } else {
        short
    }
}

fn document_view(row: &sqlx::any::AnyRow) -> Result<DocumentView> {
    Ok(DocumentView {
        id: get_str(row, "id")?,
        sha256: get_str(row, "sha256")?,
        filename: get_str(row, "filename")?,
        media_type: get_str(row, "media_type")?,
        size: get_i64(row, "size")?,
        uploaded_at: rome_rfc3339(from_ms(get_i64(row, "uploaded_at")?)?),
        uploaded_by: get_str(row, "uploaded_by")?,
        text_status: get_str(row, "text_status")?,
        text_error: crate::get_opt_str(row, "text_error")?,
    })
}

impl Store {
    /// Records a stored document on a case and in its journal.
    pub async fn add_document(
        &self,
        reference: &str,
        sha256: &str,
        size: u64,
        filename: &str,
        media_type: &str,
        actor: &str,
    ) -> Result<DocumentView> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let case_id = touch_case(&mut tx, reference, now).await?;
        let doc = OutgoingDocument {
            sha256: sha256.to_owned(),
            size,
            filename: filename.to_owned(),
            media_type: media_type.to_owned(),
            register: None,
        };
        let ids = attach_outgoing(&mut tx, case_id, reference, now, actor, &[doc]).await?;
        tx.commit().await?;
        let id = ids
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("no document recorded".into()))?;
        self.document(&id).await.map(|(view, _)| view)
    }

    /// A document's metadata and the reference of its case.
    pub async fn document(&self, id: &str) -> Result<(DocumentView, Option<String>)> {
        let row = sqlx::query(
            "SELECT d.id, d.sha256, d.filename, d.media_type, d.size, d.uploaded_at, d.uploaded_by, d.text_status, d.text_error, c.reference \
             FROM documents d LEFT JOIN cases c ON c.id = d.case_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("document {id}")))?;
        Ok((document_view(&row)?, crate::get_opt_str(&row, "reference")?))
    }

    /// Every distinct hash the records point to (documents, the raw bytes of every
    /// inbound message, the gate files checked), with the size when it is recorded, for
    /// `sportello documents verify`.
    pub async fn all_document_hashes(&self) -> Result<Vec<(String, Option<i64>)>> {
        let rows = sqlx::query(DOCUMENT_HASHES_SQL)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "sha256")?, crate::get_opt_i64(r, "size")?)))
            .collect()
    }
}

/// Every distinct hash the records point to, with the size when it is recorded (also read
/// by `sportello backup` from its snapshot of the database).
pub(crate) const DOCUMENT_HASHES_SQL: &str = "SELECT sha256, MAX(size) AS size FROM ( \
       SELECT sha256, size FROM documents \
       UNION ALL SELECT raw_sha256 AS sha256, NULL AS size FROM inbound_messages \
       UNION ALL SELECT sha256, size FROM transit_checks \
     ) stored GROUP BY sha256 ORDER BY sha256";

/// A document an action produces, already stored in the blob store.
#[derive(Debug, Clone)]
pub struct OutgoingDocument {
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// File name shown on the case.
    pub filename: String,
    /// Media type.
    pub media_type: String,
    /// `Some((recipient, subject))` to register it outgoing in the protocol register.
    pub register: Option<(String, String)>,
}

/// Attaches documents to the locked case and registers those that ask for it, each with
/// its journal entry (naming the protocol number when there is one); returns their ids.
pub(crate) async fn attach_outgoing(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    reference: &str,
    now: DateTime<Utc>,
    actor: &str,
    outgoing: &[OutgoingDocument],
) -> Result<Vec<String>> {
    let registrations: Vec<Registration<'_>> = outgoing
        .iter()
        .filter_map(|doc| {
            doc.register
                .as_ref()
                .map(|(recipient, subject)| Registration {
                    direction: Direction::Out,
                    correspondent: recipient,
                    subject,
                    document_sha256: &doc.sha256,
                    case_reference: Some(reference),
                })
        })
        .collect();
    let mut numbers = register_many_in(tx, now, &registrations).await?.into_iter();
    let mut ids = Vec::with_capacity(outgoing.len());
    for doc in outgoing {
        let (id, filename) = insert_document(
            tx,
            case_id,
            (&doc.sha256, doc.size, &doc.filename, &doc.media_type),
            now,
            actor,
            None,
        )
        .await?;
        let mut detail = serde_json::json!({
            "document_id": id, "filename": filename, "sha256": doc.sha256, "size": doc.size,
        });
        if doc.register.is_some()
            && let Some(number) = numbers.next()
        {
            detail["protocol"] = number.to_string().into();
        }
        insert_event(tx, case_id, now, actor, "document_added", &detail).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Inserts one document row (`sha256, size, filename, media_type`), the file name cleaned
/// for display, linked to the inbound message it came with, if any; returns its new id
/// and the cleaned name.
pub(crate) async fn insert_document(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    (sha256, size, filename, media_type): (&str, u64, &str, &str),
    now: DateTime<Utc>,
    actor: &str,
    inbound_message: Option<i64>,
) -> Result<(String, String)> {
    let id = format!("{:032x}", rand::random::<u128>());
    let filename = display_filename(filename);
    sqlx::query(
        "INSERT INTO documents (id, case_id, sha256, filename, media_type, size, uploaded_at, uploaded_by, inbound_message_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(case_id)
    .bind(sha256)
    .bind(&filename)
    .bind(media_type)
    .bind(size as i64)
    .bind(to_ms(now))
    .bind(actor)
    .bind(inbound_message)
    .execute(&mut **tx)
    .await?;
    Ok((id, filename))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_cleaned_for_display() {
        assert_eq!(display_filename("../../etc/passwd"), "passwd");
        assert_eq!(display_filename("C:\\Users\\x\\carta.pdf"), "carta.pdf");
        assert_eq!(display_filename("a\u{0}b\nc.pdf"), "abc.pdf");
        assert_eq!(display_filename(".."), "documento");
        assert_eq!(display_filename(".bashrc"), "bashrc");
        assert_eq!(display_filename(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn media_types_come_from_content() {
        assert_eq!(sniff_media_type(b"%PDF-1.7\n..."), "application/pdf");
        assert_eq!(
            sniff_media_type(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]),
            "image/png"
        );
        assert_eq!(sniff_media_type("Città di Pisa".as_bytes()), "text/plain");
        assert_eq!(
            sniff_media_type(&[0, 1, 2, 3, 0xff]),
            "application/octet-stream"
        );
    }

    #[tokio::test]
    async fn content_addressed_and_size_limited() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(
            &format!("file://{}", dir.path().join("docs").display()),
            None,
            None,
        )
        .unwrap();
        let data = b"%PDF-1.4 documento di prova".to_vec();
        let staged = BlobStore::stage(&dir.path().join("tmp"), &data[..], 1000)
            .await
            .unwrap();
        assert_eq!(staged.size, data.len() as u64);
        assert_eq!(staged.media_type, "application/pdf");
        blobs.put_staged(&staged).await.unwrap();
        blobs.put_staged(&staged).await.unwrap();
        assert_eq!(
            blobs.get(&staged.sha256).await.unwrap(),
            Bytes::from(data.clone())
        );
        assert_eq!(blobs.put(Bytes::from(data)).await.unwrap(), staged.sha256);
        // Over one part: streamed in parts, read back intact.
        let large: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let staged_large = BlobStore::stage(&dir.path().join("tmp"), &large[..], 64 * 1024 * 1024)
            .await
            .unwrap();
        blobs.put_staged(&staged_large).await.unwrap();
        assert_eq!(
            blobs.get(&staged_large.sha256).await.unwrap().len(),
            large.len()
        );
        let streamed: Vec<u8> = {
            use futures::TryStreamExt;
            let chunks: Vec<Bytes> = blobs
                .get_stream(&staged_large.sha256)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            chunks.concat()
        };
        assert_eq!(streamed, large);
        drop(staged_large);
        let big = vec![7u8; 2048];
        assert!(matches!(
            BlobStore::stage(&dir.path().join("tmp"), &big[..], 1000).await,
            Err(StoreError::TooLarge { limit: 1000 })
        ));
        assert!(matches!(
            blobs.get(&"0".repeat(64)).await,
            Err(StoreError::NotFound(_))
        ));
        drop(staged);
        let staging_left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
        assert!(staging_left.is_empty(), "staging files must be removed");
    }
}
