//! Hostile mail through the whole e-mail path (parse, document store, pipeline) on the
//! test database: archives never unpacked, path tricks, a 100,000-part message, an
//! attachment over the limit, NUL characters. Each is registered and flagged, never lost,
//! and nothing is written outside the document store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use sportello_domain::case::Channel;
use sportello_intake::email::EmailSource;
use sportello_intake::pipeline::{Limits, OcrSettings, ingest_email};
use sportello_store::documents::BlobStore;
use sportello_store::intake::IntakeOutcome;
use sportello_store::testing::with_test_store;

fn source() -> EmailSource {
    EmailSource {
        channel: Channel::Email,
        default_case_type: "ztl_permit".into(),
        fax_gateway_senders: Vec::new(),
        fax_caller: Default::default(),
        pec_trust_anchors: None,
    }
}

const LIMITS: Limits = Limits {
    max_attachment_bytes: 10 * 1024 * 1024,
    max_attachments: 200,
};

fn ocr() -> OcrSettings {
    OcrSettings::new("tesseract", "ita", 1)
}

/// A message with the given attachments as (name, content type, bytes).
fn mail(id: &str, parts: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    use base64::Engine;
    let mut out = format!(
        "From: Anna Neri <anna@example.it>\r\nTo: protocollo@comune.example.it\r\nSubject: Allegati\r\n\
         Message-ID: <{id}@example.it>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XyZ\"\r\n\r\n\
         --XyZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato.\r\n"
    )
    .into_bytes();
    for (name, ctype, bytes) in parts {
        out.extend_from_slice(
            format!(
                "--XyZ\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            )
            .as_bytes(),
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        for line in encoded.as_bytes().chunks(76) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

async fn run(store: &sportello_store::Store, blobs: &BlobStore, raw: Vec<u8>) -> IntakeOutcome {
    ingest_email(
        store,
        blobs,
        Bytes::from(raw),
        "t.eml",
        &source(),
        &ocr(),
        LIMITS,
    )
    .await
    .unwrap()
}

/// Every file under `root`.
fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn archives_are_stored_as_they_came_and_names_are_never_paths() {
    let root = tempfile::tempdir().unwrap();
    let docs = root.path().join("documents");
    let blobs = BlobStore::open(&format!("file://{}", docs.display()), None, None).unwrap();
    with_test_store(|store, _clock| async move {
        let bomb =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bomb.zip")).unwrap();
        let raw = mail(
            "bomb",
            &[
                (
                    "../../../../etc/cron.d/sportello",
                    "application/zip",
                    bomb.clone(),
                ),
                // A quoted-string escapes backslashes: this is C:\Windows\System32\evil.exe.
                (
                    "C:\\\\Windows\\\\System32\\\\evil.exe",
                    "application/octet-stream",
                    b"MZ\x90\0".to_vec(),
                ),
                ("..", "text/plain", b"dots".to_vec()),
            ],
        );
        let out = run(&store, &blobs, raw).await;
        assert_eq!(out.outcome, "new_case");
        let case = store.get_case(out.case.as_deref().unwrap()).await.unwrap();
        let mut names: Vec<&str> = case.documents.iter().map(|d| d.filename.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["documento", "evil.exe", "sportello"], "{names:?}");
        let zip = case
            .documents
            .iter()
            .find(|d| d.filename == "sportello")
            .unwrap();
        assert_eq!(zip.size, bomb.len() as i64, "stored as is, never unpacked");
        assert_eq!(zip.media_type, "application/zip");
        assert_eq!(blobs.get(&zip.sha256).await.unwrap().len(), bomb.len());
    })
    .await;
    // Nothing landed anywhere but the document store.
    for file in files_under(root.path()) {
        assert!(
            file.starts_with(&docs),
            "{} outside the store",
            file.display()
        );
    }
}

#[tokio::test]
async fn a_hundred_thousand_parts_make_one_flagged_message_not_a_hundred_thousand_documents() {
    let root = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&format!("file://{}", root.path().display()), None, None).unwrap();
    with_test_store(|store, _clock| async move {
        let mut raw = b"From: spam@example.net\r\nSubject: parti\r\nMessage-ID: <parts@example.net>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            .to_vec();
        for i in 0..100_000 {
            raw.extend_from_slice(
                format!("--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"p{i}\"\r\n\r\nx{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"--b--\r\n");
        let out = run(&store, &blobs, raw).await;
        assert_eq!(out.outcome, "new_case");
        assert!(out.protocol.is_some(), "registered all the same");
        assert!(out.flags.iter().any(|f| f == "too_many_attachments"), "{:?}", out.flags);
        let case = store.get_case(out.case.as_deref().unwrap()).await.unwrap();
        assert_eq!(case.documents.len(), LIMITS.max_attachments);
    })
    .await;
}

#[tokio::test]
async fn an_attachment_over_the_limit_is_flagged_and_the_message_still_registered() {
    let root = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&format!("file://{}", root.path().display()), None, None).unwrap();
    with_test_store(|store, _clock| async move {
        let big: Vec<u8> = (0..50 * 1024 * 1024)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        let raw = mail(
            "big",
            &[
                ("video.mp4", "video/mp4", big),
                (
                    "libretto.pdf",
                    "application/pdf",
                    b"%PDF-1.4\n%%EOF\n".to_vec(),
                ),
            ],
        );
        let raw_len = raw.len();
        let out = run(&store, &blobs, raw).await;
        assert_eq!(out.outcome, "new_case");
        assert!(out.protocol.is_some());
        assert!(
            out.flags.iter().any(|f| f == "attachment_too_large"),
            "{:?}",
            out.flags
        );
        let case = store.get_case(out.case.as_deref().unwrap()).await.unwrap();
        let names: Vec<&str> = case.documents.iter().map(|d| d.filename.as_str()).collect();
        assert_eq!(names, ["libretto.pdf"], "the small one is stored apart");
        assert!(
            case.summary
                .flags
                .iter()
                .any(|f| f == "attachment_too_large")
        );
        // The oversized part is not lost: it is inside the raw message, stored first.
        let stored: Vec<_> = files_under(root.path())
            .into_iter()
            .filter(|p| std::fs::metadata(p).unwrap().len() == raw_len as u64)
            .collect();
        assert_eq!(stored.len(), 1, "the raw message is in the document store");
    })
    .await;
}

#[tokio::test]
async fn nul_characters_and_broken_charsets_are_recorded_not_refused() {
    let root = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(&format!("file://{}", root.path().display()), None, None).unwrap();
    with_test_store(|store, _clock| async move {
        let raw = b"From: =?x-unknown?Q?Anna=00?= <anna@example.it>\r\nSubject: Permesso\0 ZTL =?utf-8?B?//79?=\r\n\
Message-ID: <nul@example.it>\r\nContent-Type: text/plain; charset=x-martian\r\n\r\nTesto\0 con \xff\xfe byte\r\n"
            .to_vec();
        let out = run(&store, &blobs, raw).await;
        assert_eq!(out.outcome, "new_case");
        let case = store.get_case(out.case.as_deref().unwrap()).await.unwrap();
        assert!(!case.summary.subject.contains('\0'));
        assert!(case.summary.subject.starts_with("Permesso"), "{}", case.summary.subject);
    })
    .await;
}
