//! The content-addressed document store ([`BlobStore`]) against both backends: one suite of
//! checks, each a function taking a [`Backend`], run on a local `file://` folder (always) and
//! on an S3-compatible server (`s3://bucket/test-<random>`) when one is configured through
//! `SPORTELLO_TEST_S3_ENDPOINT`, `SPORTELLO_TEST_S3_BUCKET` and the `AWS_*` credentials.
//! Without them the S3 half prints `skipped: …`, unless `SPORTELLO_REQUIRE_SERVICES=1`, when
//! it fails.
//!
//! `memory_does_not_grow_with_size` re-runs this test binary filtered to the ignored
//! `memory_child_process`, so the peak resident memory (`VmHWM`) it reports belongs to a
//! process that did nothing but stage, store and stream back large files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use sportello_store::StoreError;
use sportello_store::documents::BlobStore;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const MIB: u64 = 1024 * 1024;
/// The part size of `BlobStore::put_staged`: up to this size one request, above it parts.
const PART: u64 = 8 * MIB;
/// SHA-256 of nothing.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ENDPOINT_ENV: &str = "SPORTELLO_TEST_S3_ENDPOINT";
const BUCKET_ENV: &str = "SPORTELLO_TEST_S3_BUCKET";
const CHILD_ENV: &str = "SPORTELLO_BLOB_STORE_MEMORY_CHILD";

/// Whether a missing service fails the tests instead of skipping them; the same rule as
/// `sportello_store::testing::services_required`, kept here so that this file does not need
/// the `testing` feature.
fn services_required() -> bool {
    std::env::var("SPORTELLO_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The S3 server to test against, if one is configured: (endpoint, bucket).
fn s3_settings() -> Option<(String, String)> {
    match (std::env::var(ENDPOINT_ENV), std::env::var(BUCKET_ENV)) {
        (Ok(endpoint), Ok(bucket)) if !endpoint.is_empty() && !bucket.is_empty() => {
            Some((endpoint, bucket))
        }
        _ => {
            assert!(
                !services_required(),
                "SPORTELLO_REQUIRE_SERVICES=1 but no S3 server ({ENDPOINT_ENV}, {BUCKET_ENV})"
            );
            eprintln!(
                "skipped: no S3-compatible server configured (set {ENDPOINT_ENV} and {BUCKET_ENV})"
            );
            None
        }
    }
}

/// One store under test, with a second, raw view of the same objects (to check keys and
/// to tamper with objects behind the store's back) and a staging folder.
struct Backend {
    name: &'static str,
    url: String,
    blobs: BlobStore,
    raw: Arc<dyn ObjectStore>,
    /// Where the store's keys start in the raw view ("" for the local folder).
    prefix: String,
    staging: TempDir,
    _dir: TempDir,
}

impl Backend {
    /// A store in a fresh local folder.
    fn local() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        let url = format!("file://{}", docs.display());
        let blobs = BlobStore::open(&url, None, None).unwrap();
        let raw = Arc::new(LocalFileSystem::new_with_prefix(&docs).unwrap());
        Backend {
            name: "local",
            url,
            blobs,
            raw,
            prefix: String::new(),
            staging: tempfile::tempdir().unwrap(),
            _dir: dir,
        }
    }

    /// A store under a fresh prefix of the configured S3 bucket, or `None` (skipped).
    fn s3() -> Option<Backend> {
        let (endpoint, bucket) = s3_settings()?;
        let prefix = format!("test-{:016x}", rand::random::<u64>());
        let url = format!("s3://{bucket}/{prefix}/");
        let blobs = BlobStore::open(&url, Some(&endpoint), None)
            .unwrap_or_else(|e| panic!("open {url} at {endpoint}: {e}"));
        let raw = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .build()
            .unwrap();
        Some(Backend {
            name: "s3",
            url,
            blobs,
            raw: Arc::new(raw),
            prefix,
            staging: tempfile::tempdir().unwrap(),
            _dir: tempfile::tempdir().unwrap(),
        })
    }

    fn by_name(name: &str) -> Option<Backend> {
        match name {
            "local" => Some(Backend::local()),
            "s3" => Backend::s3(),
            other => panic!("unknown backend {other}"),
        }
    }

    /// The key an object with this hash must have: `<prefix>/sha256/<first two>/<hash>`.
    fn raw_key(&self, sha256: &str) -> ObjectPath {
        let key = format!("sha256/{}/{sha256}", &sha256[..2]);
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Every object under the store's prefix.
    async fn objects(&self) -> Vec<ObjectMeta> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let prefix = (!self.prefix.is_empty()).then_some(&prefix);
        let mut all: Vec<ObjectMeta> = self.raw.list(prefix).try_collect().await.unwrap();
        all.sort_by(|a, b| a.location.cmp(&b.location));
        all
    }

    /// Files left in the staging folder.
    fn staging_files(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(self.staging.path())
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    /// Removes what the test stored (best effort; the local folder goes with its TempDir).
    async fn cleanup(self) {
        if self.prefix.is_empty() {
            return;
        }
        for meta in self.objects().await {
            let _ = self.raw.delete(&meta.location).await;
        }
    }
}

/// A reader of `len` pseudo-random bytes made up as they are read (never held in memory),
/// counting how many were taken.
struct Generated {
    remaining: u64,
    taken: u64,
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Generated {
    fn new(seed: u64, len: u64) -> Generated {
        Generated {
            remaining: len,
            taken: 0,
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 8 {
                // splitmix64
                self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                self.word = (z ^ (z >> 31)).to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
    }

    /// SHA-256 (hex) of the `len` bytes that `Generated::new(seed, len)` yields, computed
    /// independently of the store.
    fn sha256(seed: u64, len: u64) -> String {
        let mut generator = Generated::new(seed, len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        while generator.remaining > 0 {
            let n = generator.remaining.min(buf.len() as u64) as usize;
            generator.fill(&mut buf[..n]);
            generator.remaining -= n as u64;
            hasher.update(&buf[..n]);
        }
        hex::encode(hasher.finalize())
    }

    /// The bytes themselves, for the small cases that want them in memory.
    fn bytes(seed: u64, len: usize) -> Bytes {
        let mut out = vec![0u8; len];
        Generated::new(seed, len as u64).fill(&mut out);
        Bytes::from(out)
    }
}

impl AsyncRead for Generated {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = (buf.remaining() as u64).min(this.remaining) as usize;
        this.fill(buf.initialize_unfilled_to(n));
        buf.advance(n);
        this.remaining -= n as u64;
        this.taken += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// A reader whose connection broke.
struct Broken;

impl AsyncRead for Broken {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )))
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What came back through `get_stream`, hashed chunk by chunk as it arrived.
#[derive(Debug)]
struct StreamedBack {
    sha256: String,
    size: u64,
    chunks: usize,
    largest_chunk: usize,
}

async fn stream_back(blobs: &BlobStore, sha256: &str) -> StreamedBack {
    let mut stream = blobs.get_stream(sha256).await.unwrap();
    let mut hasher = Sha256::new();
    let (mut size, mut chunks, mut largest_chunk) = (0u64, 0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        hasher.update(&chunk);
        size += chunk.len() as u64;
        chunks += 1;
        largest_chunk = largest_chunk.max(chunk.len());
    }
    StreamedBack {
        sha256: hex::encode(hasher.finalize()),
        size,
        chunks,
        largest_chunk,
    }
}

/// Stages `len` generated bytes, stores them with `put_staged` and checks the object: the
/// hash the store computed, its key and size, and the bytes streamed back.
async fn stage_put_and_check(b: &Backend, seed: u64, len: u64) -> StreamedBack {
    let expected = Generated::sha256(seed, len);
    let staged = BlobStore::stage(b.staging.path(), Generated::new(seed, len), len)
        .await
        .unwrap();
    assert_eq!(staged.sha256, expected, "[{}] hash while staging", b.name);
    assert_eq!(staged.size, len);
    b.blobs.put_staged(&staged).await.unwrap();
    drop(staged);
    assert!(
        b.staging_files().is_empty(),
        "[{}] the staging file is removed",
        b.name
    );
    let meta = b.raw.head(&b.raw_key(&expected)).await.unwrap();
    assert_eq!(meta.size, len, "[{}] stored size", b.name);
    let back = stream_back(&b.blobs, &expected).await;
    assert_eq!(back.sha256, expected, "[{}] hash while streaming", b.name);
    assert_eq!(back.size, len);
    back
}

/// On S3 a multipart object's ETag ends in `-<number of parts>`; a single PUT's has no dash.
async fn s3_parts(b: &Backend, sha256: &str) -> Option<u32> {
    if b.name != "s3" {
        return None;
    }
    let meta = b.raw.head(&b.raw_key(sha256)).await.unwrap();
    let etag = meta.e_tag.unwrap_or_default();
    let etag = etag.trim_matches('"');
    Some(
        etag.rsplit_once('-')
            .map_or(1, |(_, parts)| parts.parse().unwrap()),
    )
}

// ---------------------------------------------------------------------------------------
// The suite: each check takes a backend.
// ---------------------------------------------------------------------------------------

/// `put` returns the SHA-256 of the bytes, stores them under `sha256/<2>/<hash>` below the
/// prefix, and `get` / `get_stream` give them back.
async fn round_trip_and_sha256_key(b: &Backend) {
    assert_eq!(b.blobs.description(), b.url);
    let sha = b.blobs.put(Bytes::from_static(b"abc")).await.unwrap();
    assert_eq!(
        sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "the key is the SHA-256 of the content"
    );
    assert_eq!(b.blobs.get(&sha).await.unwrap(), Bytes::from_static(b"abc"));
    let objects = b.objects().await;
    assert_eq!(objects.len(), 1, "[{}] {objects:?}", b.name);
    assert_eq!(objects[0].location, b.raw_key(&sha));
    assert_eq!(objects[0].size, 3);
    let raw = b.raw.get(&b.raw_key(&sha)).await.unwrap().bytes().await;
    assert_eq!(raw.unwrap(), Bytes::from_static(b"abc"));

    let data = Bytes::from_static("%PDF-1.7\nCittà di Pisa — istanza\n".as_bytes());
    let sha = b.blobs.put(data.clone()).await.unwrap();
    assert_eq!(sha, sha256_hex(&data));
    assert_eq!(b.blobs.get(&sha).await.unwrap(), data);
    let back = stream_back(&b.blobs, &sha).await;
    assert_eq!(
        (back.sha256.as_str(), back.size),
        (sha.as_str(), data.len() as u64)
    );
    assert_eq!(b.objects().await.len(), 2);
}

/// The same bytes twice are one object, and the second store writes nothing: an object
/// changed behind the store's back stays as it is (through `put`, `put_staged` small and
/// `put_staged` in parts).
async fn same_bytes_twice_are_one_object_and_a_no_op(b: &Backend) {
    let small = Generated::bytes(1, 1000);
    let sha = b.blobs.put(small.clone()).await.unwrap();
    assert_eq!(b.blobs.put(small.clone()).await.unwrap(), sha);
    let staged = BlobStore::stage(b.staging.path(), &small[..], 1 << 20)
        .await
        .unwrap();
    assert_eq!(staged.sha256, sha);
    b.blobs.put_staged(&staged).await.unwrap();
    b.blobs.put_staged(&staged).await.unwrap();
    let objects = b.objects().await;
    assert_eq!(objects.len(), 1, "[{}] one object: {objects:?}", b.name);
    assert_eq!(objects[0].size, 1000);

    // Proof that nothing was written again: replace the object behind the store's back,
    // then store the same bytes once more; the replacement must survive.
    let marker = Bytes::from_static(b"written behind the store's back");
    b.raw
        .put(&b.raw_key(&sha), PutPayload::from_bytes(marker.clone()))
        .await
        .unwrap();
    assert_eq!(b.blobs.put(small.clone()).await.unwrap(), sha);
    b.blobs.put_staged(&staged).await.unwrap();
    assert_eq!(
        b.blobs.get(&sha).await.unwrap(),
        marker,
        "[{}] no-op",
        b.name
    );
    drop(staged);

    // The same for a file that would go up in parts.
    let len = PART + 1;
    let large_sha = stage_put_and_check(b, 2, len).await.sha256;
    b.raw
        .put(
            &b.raw_key(&large_sha),
            PutPayload::from_bytes(marker.clone()),
        )
        .await
        .unwrap();
    let staged = BlobStore::stage(b.staging.path(), Generated::new(2, len), len)
        .await
        .unwrap();
    b.blobs.put_staged(&staged).await.unwrap();
    assert_eq!(b.blobs.get(&large_sha).await.unwrap(), marker);
    assert_eq!(b.objects().await.len(), 2);
}

/// A small upload: staged (hash, size, media type from the content), stored in one
/// request, streamed back with its hash checked on the way.
async fn small_file_staged_and_streamed_back(b: &Backend) {
    let data = b"%PDF-1.4\n% documento di prova\n".repeat(100);
    let staged = BlobStore::stage(b.staging.path(), &data[..], 1 << 20)
        .await
        .unwrap();
    assert_eq!(staged.sha256, sha256_hex(&data));
    assert_eq!(staged.size, data.len() as u64);
    assert_eq!(staged.media_type, "application/pdf");
    assert_eq!(b.staging_files().len(), 1, "one staging file while staged");
    b.blobs.put_staged(&staged).await.unwrap();
    let sha = staged.sha256.clone();
    drop(staged);
    assert!(b.staging_files().is_empty(), "the staging file is removed");
    let back = stream_back(&b.blobs, &sha).await;
    assert_eq!(back.sha256, sha);
    assert_eq!(back.size, data.len() as u64);
    assert_eq!(b.blobs.get(&sha).await.unwrap(), Bytes::from(data));
    assert_eq!(s3_parts(b, &sha).await.unwrap_or(1), 1);
}

/// A 20 MiB (and a bit) upload generated by a reader: staged, stored in parts, streamed
/// back in many chunks with its hash checked on the way.
async fn large_file_goes_up_in_parts_and_streams_back(b: &Backend) {
    let len = 20 * MIB + 1;
    let back = stage_put_and_check(b, 20, len).await;
    assert!(
        back.chunks > 1 && (back.largest_chunk as u64) < len,
        "[{}] streamed in chunks, not in one piece: {back:?}",
        b.name
    );
    if let Some(parts) = s3_parts(b, &back.sha256).await {
        assert_eq!(parts, 3, "8 + 8 + 4 MiB (and a byte)");
    }
    assert_eq!(b.objects().await.len(), 1);
}

/// Exactly one part goes in one request; one byte more goes in two parts (the second one
/// byte long); two whole parts go in two.
async fn part_size_boundaries(b: &Backend) {
    for (seed, len, parts) in [(80, PART, 1), (81, PART + 1, 2), (82, 2 * PART, 2)] {
        let back = stage_put_and_check(b, seed, len).await;
        if let Some(found) = s3_parts(b, &back.sha256).await {
            assert_eq!(found, parts, "{len} bytes");
        }
    }
    assert_eq!(b.objects().await.len(), 3);
}

/// A hash that was never stored is `NotFound`, for `get` and `get_stream` alike; so is a
/// "hash" that tries to climb out of the store.
async fn missing_hash_is_not_found(b: &Backend) {
    b.blobs.put(Bytes::from_static(b"something")).await.unwrap();
    let missing = sha256_hex(b"never stored");
    assert!(matches!(
        b.blobs.get(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        b.blobs.get_stream(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    for odd in ["../../etc/passwd", "..", "", "a\u{e9}", "ab/cd"] {
        let got = b.blobs.get(odd).await;
        assert!(
            matches!(got, Err(StoreError::NotFound(_))),
            "[{}] {odd:?}: {got:?}",
            b.name
        );
    }
}

/// Staging stops as soon as the limit is passed (without reading the rest of the upload),
/// leaves no staging file and stores nothing; exactly the limit is fine.
async fn size_limit_stops_staging_and_stores_nothing(b: &Backend) {
    let limit = 1000;
    let too_big = Generated::bytes(3, 1001);
    let got = BlobStore::stage(b.staging.path(), &too_big[..], limit).await;
    assert!(
        matches!(got, Err(StoreError::TooLarge { limit: 1000 })),
        "{got:?}"
    );

    let limit = 5 * MIB;
    let mut huge = Generated::new(4, 1024 * MIB);
    let got = BlobStore::stage(b.staging.path(), &mut huge, limit).await;
    assert!(matches!(got, Err(StoreError::TooLarge { limit: l }) if l == limit));
    assert!(
        huge.taken <= limit + 64 * 1024,
        "stops reading at the limit: read {} of 1 GiB",
        huge.taken
    );
    assert!(b.staging_files().is_empty(), "no staging file left");
    assert!(b.objects().await.is_empty(), "nothing stored");

    let exact = Generated::bytes(5, 1000);
    let staged = BlobStore::stage(b.staging.path(), &exact[..], 1000)
        .await
        .unwrap();
    assert_eq!(staged.size, 1000);
    b.blobs.put_staged(&staged).await.unwrap();
    assert_eq!(b.blobs.get(&staged.sha256).await.unwrap(), exact);
}

/// An upload that breaks off half-way is an error that leaves no staging file and stores
/// nothing.
async fn broken_upload_leaves_nothing(b: &Backend) {
    let broken = Generated::new(8, 300_000).chain(Broken);
    let got = BlobStore::stage(b.staging.path(), broken, 1 << 20).await;
    assert!(matches!(got, Err(StoreError::Blob(_))), "{got:?}");
    assert!(b.staging_files().is_empty(), "no staging file left");
    assert!(b.objects().await.is_empty(), "nothing stored");
}

/// An empty file is a document like any other.
async fn empty_file(b: &Backend) {
    let staged = BlobStore::stage(b.staging.path(), &b""[..], 1000)
        .await
        .unwrap();
    assert_eq!(staged.sha256, EMPTY_SHA256);
    assert_eq!(staged.size, 0);
    assert_eq!(staged.media_type, "application/octet-stream");
    b.blobs.put_staged(&staged).await.unwrap();
    assert_eq!(b.blobs.get(EMPTY_SHA256).await.unwrap(), Bytes::new());
    let back = stream_back(&b.blobs, EMPTY_SHA256).await;
    assert_eq!((back.sha256.as_str(), back.size), (EMPTY_SHA256, 0));
    assert_eq!(b.blobs.put(Bytes::new()).await.unwrap(), EMPTY_SHA256);
    let objects = b.objects().await;
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].size, 0);
}

/// Every byte value survives, through both ways in.
async fn every_byte_value(b: &Backend) {
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend((0..=255u8).rev());
    data.extend(b"\r\n\0\r\n\xff\xfe\x00");
    let data = Bytes::from(data.repeat(16));
    let sha = b.blobs.put(data.clone()).await.unwrap();
    assert_eq!(sha, sha256_hex(&data));
    assert_eq!(b.blobs.get(&sha).await.unwrap(), data);
    let collected: Vec<Bytes> = b
        .blobs
        .get_stream(&sha)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(collected.concat(), data.to_vec());

    let mut reversed = data.to_vec();
    reversed.reverse();
    let staged = BlobStore::stage(b.staging.path(), &reversed[..], 1 << 20)
        .await
        .unwrap();
    assert_eq!(staged.media_type, "application/octet-stream");
    b.blobs.put_staged(&staged).await.unwrap();
    assert_eq!(b.blobs.get(&staged.sha256).await.unwrap(), reversed);
    assert_eq!(b.objects().await.len(), 2);
}

/// Several tasks storing the same content at once (small through `put` and `put_staged`,
/// large through `put_staged` in parts) all succeed with the same hash and leave one
/// intact object each.
async fn concurrent_puts_of_the_same_content(b: &Backend) {
    let small = Generated::bytes(6, 100_000);
    let large_len = PART + MIB;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let blobs = b.blobs.clone();
        let staging = b.staging.path().to_owned();
        let small = small.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                blobs.put(small).await
            } else {
                let staged =
                    BlobStore::stage(&staging, std::io::Cursor::new(small), 1 << 20).await?;
                blobs.put_staged(&staged).await?;
                Ok(staged.sha256.clone())
            }
        }));
    }
    for _ in 0..3 {
        let blobs = b.blobs.clone();
        let staging = b.staging.path().to_owned();
        tasks.push(tokio::spawn(async move {
            let staged =
                BlobStore::stage(&staging, Generated::new(7, large_len), large_len).await?;
            blobs.put_staged(&staged).await?;
            Ok(staged.sha256.clone())
        }));
    }
    let mut hashes: Vec<String> = Vec::new();
    for task in tasks {
        let result: Result<String, StoreError> = task.await.unwrap();
        hashes.push(result.unwrap_or_else(|e| panic!("[{}] concurrent put: {e}", b.name)));
    }
    let small_sha = sha256_hex(&small);
    let large_sha = Generated::sha256(7, large_len);
    assert!(hashes[..8].iter().all(|h| *h == small_sha), "{hashes:?}");
    assert!(hashes[8..].iter().all(|h| *h == large_sha), "{hashes:?}");
    let objects = b.objects().await;
    assert_eq!(
        objects
            .iter()
            .map(|o| o.location.clone())
            .collect::<Vec<_>>(),
        {
            let mut keys = vec![b.raw_key(&small_sha), b.raw_key(&large_sha)];
            keys.sort();
            keys
        },
        "[{}] one object per content, nothing else left behind",
        b.name
    );
    assert_eq!(b.blobs.get(&small_sha).await.unwrap(), small);
    let back = stream_back(&b.blobs, &large_sha).await;
    assert_eq!((back.sha256, back.size), (large_sha, large_len));
    assert!(b.staging_files().is_empty());
}

/// Runs each named check against the local store and against S3 (or skips the latter).
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let backend = super::Backend::local();
                    super::$check(&backend).await;
                    backend.cleanup().await;
                }
            )*

            #[test]
            fn memory_does_not_grow_with_size() {
                super::memory_in_child_process("local");
            }
        }

        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(backend) = super::Backend::s3() else {
                        return;
                    };
                    super::$check(&backend).await;
                    backend.cleanup().await;
                }
            )*

            #[test]
            fn memory_does_not_grow_with_size() {
                if super::s3_settings().is_some() {
                    super::memory_in_child_process("s3");
                }
            }
        }
    };
}

suite!(
    round_trip_and_sha256_key,
    same_bytes_twice_are_one_object_and_a_no_op,
    small_file_staged_and_streamed_back,
    large_file_goes_up_in_parts_and_streams_back,
    part_size_boundaries,
    missing_hash_is_not_found,
    size_limit_stops_staging_and_stores_nothing,
    broken_upload_leaves_nothing,
    empty_file,
    every_byte_value,
    concurrent_puts_of_the_same_content,
);

#[test]
fn only_file_and_s3_urls_open() {
    for url in ["ftp://host/docs", "/var/lib/sportello", ""] {
        assert!(
            matches!(
                BlobStore::open(url, None, None),
                Err(StoreError::Invalid { .. })
            ),
            "{url:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Memory: a process of its own that only stages, stores and streams back large files.
// ---------------------------------------------------------------------------------------

/// A figure from `/proc/self/status`, in KiB (`VmHWM` is the peak resident set size).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Runs `memory_child_process` in a new process of this test binary, for one backend, and
/// passes on what it printed.
fn memory_in_child_process(backend: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "memory_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, backend)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "the child process failed");
    assert!(
        stdout.contains("1 passed") && stdout.contains("memory ["),
        "the child process did not run the measurement"
    );
}

/// Stages, stores and streams back files of 16 and then 64 MiB made up by a reader, and
/// checks that the peak resident memory grows by far less than the file size. Only run
/// by `memory_does_not_grow_with_size`, in a process of its own.
#[test]
#[ignore = "run in its own process by memory_does_not_grow_with_size"]
fn memory_child_process() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        println!("skipped: only run in its own process by memory_does_not_grow_with_size");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let b = Backend::by_name(&name).unwrap();
        // Warm up everything but the large-file path: runtime, HTTP client, connection.
        let warm = Generated::bytes(9, 64 * 1024);
        let staged = BlobStore::stage(b.staging.path(), &warm[..], 1 << 20)
            .await
            .unwrap();
        b.blobs.put_staged(&staged).await.unwrap();
        drop(staged);
        assert_eq!(
            stream_back(&b.blobs, &sha256_hex(&warm)).await.size,
            64 * 1024
        );

        let baseline = proc_status_kib("VmHWM");
        let mut growth = Vec::new();
        for (seed, len) in [(16, 16 * MIB), (64, 64 * MIB)] {
            let staged = BlobStore::stage(b.staging.path(), Generated::new(seed, len), len)
                .await
                .unwrap();
            b.blobs.put_staged(&staged).await.unwrap();
            let sha = staged.sha256.clone();
            drop(staged);
            let back = stream_back(&b.blobs, &sha).await;
            assert_eq!(
                (back.sha256, back.size),
                (Generated::sha256(seed, len), len)
            );
            growth.push((len / MIB, proc_status_kib("VmHWM") - baseline));
        }
        let line: Vec<String> = growth
            .iter()
            .map(|(mib, kib)| format!("after {mib} MiB +{:.1} MiB", *kib as f64 / 1024.0))
            .collect();
        println!(
            "memory [{name}]: peak RSS (VmHWM) before {:.1} MiB; {}",
            baseline as f64 / 1024.0,
            line.join(", ")
        );
        let (_, after_64) = growth[1];
        assert!(
            after_64 < 32 * 1024,
            "[{name}] peak memory grew by {after_64} KiB for a 64 MiB file"
        );
        b.cleanup().await;
    });
}
