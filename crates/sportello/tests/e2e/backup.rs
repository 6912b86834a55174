//! `sportello backup` and `sportello restore` (CONTRACT §4, §8.5): a backup taken while the
//! server serves a steady stream of requests restores everything committed before it began;
//! a tampered, interrupted or misdirected restore changes nothing; a killed backup is never
//! accepted. On the suite's engine, and with documents on S3 where the harness has it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Install, binary, case_body, file_form};

/// The `sportello` command of an installation (without running it).
fn command(install: &Install, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("--config")
        .arg(&install.config)
        .args(args)
        .current_dir(install.dir.path())
        .env_remove("SPORTELLO_CONFIG");
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Random bytes that look like the start of a PDF.
fn pdf_like(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    while bytes.len() < len {
        bytes.extend_from_slice(&rand::random::<[u8; 32]>());
    }
    bytes.truncate(len);
    bytes
}

/// The configuration lines of an S3 document store under a fresh prefix, when the harness
/// has an S3 server.
pub(crate) fn s3_documents() -> Option<String> {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("SPORTELLO_TEST_S3_ENDPOINT"),
        std::env::var("SPORTELLO_TEST_S3_BUCKET"),
    ) else {
        assert!(
            !sportello_store::testing::services_required(),
            "SPORTELLO_REQUIRE_SERVICES=1 but no S3 server"
        );
        eprintln!("skipped: no S3-compatible server configured (SPORTELLO_TEST_S3_ENDPOINT)");
        return None;
    };
    let prefix = format!("backup-{:016x}", rand::random::<u64>());
    Some(format!(
        "[documents]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"{endpoint}\"\n"
    ))
}

/// Uploads `bytes` to a case; returns the document's id.
async fn upload(install: &Install, token: &str, reference: &str, bytes: Vec<u8>) -> String {
    let resp = install
        .upload(reference, Some(token), file_form(bytes, "allegato.pdf"))
        .await;
    assert_eq!(resp.status(), 201);
    let doc: serde_json::Value = resp.json().await.unwrap();
    doc["id"].as_str().unwrap().to_owned()
}

/// Restores `backup` into `target` and checks the result with the two verify commands.
fn restore_and_verify(target: &Install, backup: &Path) {
    let out = target.cli(&["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restore complete"),
        "{}",
        text(&out)
    );
    let out = target.cli(&["register", "verify"]);
    assert!(out.status.success(), "register verify: {}", text(&out));
    let out = target.cli(&["documents", "verify"]);
    assert!(out.status.success(), "documents verify: {}", text(&out));
}

/// Whether a restore target is still untouched: nothing in its data folder, and no
/// database file (SQLite) or no table (PostgreSQL).
async fn untouched(target: &Install) -> bool {
    let data_empty = std::fs::read_dir(target.data_dir()).map_or(true, |mut d| d.next().is_none());
    let database_empty = match target.database_url.strip_prefix("sqlite://") {
        Some(path) => !Path::new(path).exists(),
        None => sportello_store::backup::postgres_tables(&target.database_url)
            .await
            .unwrap()
            .is_empty(),
    };
    data_empty && database_empty
}

/// `extra` gives each installation's extra configuration (a fresh S3 prefix each time).
async fn backup_under_load(extra: impl Fn() -> String) {
    let mut source = Install::new(&extra()).await;
    let op = source.user("op1", "operator");
    source.start(&[]).await;
    let first = source.create_case(&op).await;
    let bytes = pdf_like(300_000);
    let doc = upload(&source, &op, &first, bytes.clone()).await;
    for _ in 0..5 {
        let reference = source.create_case(&op).await;
        upload(&source, &op, &reference, pdf_like(100_000)).await;
    }

    // A steady stream of creations and reads, before, during and after the backup.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, base, op) = (source.client.clone(), source.base(), op.clone());
        let (acknowledged, failures, stop, reads) = (
            acknowledged.clone(),
            failures.clone(),
            stop.clone(),
            reads.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let created = client
                    .post(format!("{base}/api/v1/cases"))
                    .bearer_auth(&op)
                    .json(&case_body())
                    .send()
                    .await;
                let reference = match created {
                    Ok(r) if r.status() == 201 => {
                        let case: serde_json::Value = r.json().await.unwrap();
                        case["reference"].as_str().unwrap().to_owned()
                    }
                    Ok(r) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("create: {}", r.status()));
                        continue;
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(format!("create: {e}"));
                        continue;
                    }
                };
                acknowledged.lock().unwrap().push(reference.clone());
                match client
                    .get(format!("{base}/api/v1/cases/{reference}"))
                    .bearer_auth(&op)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        reads.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("read: {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("read: {e}")),
                }
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target_dir = source.dir.path().join("backup");
    // Everything acknowledged before the backup starts must be in it.
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let mut backup = command(&source, &["backup", target_dir.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || backup.output().unwrap())
        .await
        .unwrap();
    let during = acknowledged.lock().unwrap().len() - before.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(out.status.success(), "backup: {}", text(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("backup complete:"), "{summary}");
    assert!(
        failures.lock().unwrap().is_empty(),
        "requests failed during the backup: {:?}",
        failures.lock().unwrap()
    );
    eprintln!(
        "{} cases before the backup, {during} created while it ran, {} reads",
        before.len(),
        reads.load(Ordering::SeqCst)
    );
    let manifest = std::fs::read_to_string(target_dir.join("MANIFEST.sha256")).unwrap();
    assert!(manifest.lines().count() >= 8, "{manifest}");
    source.stop();

    // Restore into a new installation (new data folder, new empty database).
    let mut restored = Install::new(&extra()).await;
    restore_and_verify(&restored, &target_dir);
    restored.start(&[]).await;
    for reference in before.iter().chain(std::iter::once(&first)) {
        let (status, _, case) = restored
            .call(
                "GET",
                &format!("/api/v1/cases/{reference}"),
                Some(&op),
                None,
            )
            .await;
        assert_eq!(status, 200, "{reference} lost in the restore: {case}");
    }
    let got = restored
        .client
        .get(format!("{}/api/v1/documents/{doc}", restored.base()))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn backup_under_load_restores_every_case_committed_before_it() {
    backup_under_load(String::new).await;
}

#[tokio::test]
async fn backup_and_restore_with_documents_on_s3() {
    if s3_documents().is_some() {
        backup_under_load(|| s3_documents().unwrap_or_default()).await;
    }
}

/// A small installation with a few documents, stopped, and a complete backup of it.
async fn backed_up(documents: usize, size: usize) -> (Install, PathBuf) {
    let mut source = Install::new("").await;
    let op = source.user("op1", "operator");
    source.start(&[]).await;
    let reference = source.create_case(&op).await;
    for _ in 0..documents {
        upload(&source, &op, &reference, pdf_like(size)).await;
    }
    source.stop();
    let dir = source.dir.path().join("backup");
    let out = source.cli(&["backup", dir.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}", text(&out));
    (source, dir)
}

#[tokio::test]
async fn restore_refuses_a_tampered_backup_and_a_target_that_is_not_empty() {
    let (source, dir) = backed_up(3, 10_000).await;

    // Into the same installation, or a folder that is not empty: usage errors.
    let out = source.cli(&["restore", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        text(&out)
    );
    let out = source.cli(&["backup", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let busy = Install::new("").await;
    busy.user("someone", "operator");
    let out = busy.cli(&["restore", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // One altered document: exit 1 naming it, nothing restored.
    let victim = std::fs::read_to_string(dir.join("MANIFEST.sha256"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p.to_owned()))
        .find(|p| p.starts_with("documents/"))
        .unwrap();
    let mut bytes = std::fs::read(dir.join(&victim)).unwrap();
    bytes[100] ^= 1;
    std::fs::write(dir.join(&victim), &bytes).unwrap();
    let target = Install::new("").await;
    let out = target.cli(&["restore", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&victim),
        "{}",
        text(&out)
    );
    assert!(untouched(&target).await, "something was restored");
    bytes[100] ^= 1;
    std::fs::write(dir.join(&victim), &bytes).unwrap();

    // A file slipped in that the manifest does not list.
    std::fs::write(dir.join("database/extra.sql"), b"DROP TABLE cases;").unwrap();
    let out = target.cli(&["restore", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("extra.sql"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(dir.join("database/extra.sql")).unwrap();
    assert!(untouched(&target).await);

    // Repaired, the same backup restores.
    restore_and_verify(&target, &dir);
}

/// Polls until `ready` holds or the child exits; true when it held while the child ran.
fn wait_for(child: &mut Child, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if ready() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "the command neither got there nor ended"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn a_killed_backup_is_never_accepted_and_a_new_one_succeeds() {
    let (source, _) = backed_up(40, 400_000).await;
    let mut interrupted = 0;
    // Kill points: just after the database copy appears, after the first documents,
    // and halfway through them.
    for (point, files) in [("database", 1usize), ("documents", 3), ("halfway", 21)] {
        let dir = source.dir.path().join(format!("killed-{point}"));
        let mut child = command(&source, &["backup", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let got_there = wait_for(&mut child, || count_files(&dir) >= files);
        let _ = child.kill();
        let _ = child.wait();
        if !got_there || dir.join("MANIFEST.sha256").exists() {
            eprintln!("{point}: the backup finished before the kill");
            continue;
        }
        interrupted += 1;
        let target = Install::new("").await;
        let out = target.cli(&["restore", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{point}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("MANIFEST.sha256"),
            "{point}: {}",
            text(&out)
        );
        assert!(untouched(&target).await, "{point}: something was restored");
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills landed mid-backup"
    );
    let fresh = source.dir.path().join("after-kills");
    let out = source.cli(&["backup", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let target = Install::new("").await;
    restore_and_verify(&target, &fresh);
}

#[tokio::test]
async fn a_killed_restore_can_be_run_again_into_a_fresh_data_dir() {
    let (_source, dir) = backed_up(30, 300_000).await;
    let first = Install::new("").await;
    let mut child = command(&first, &["restore", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let documents = first.data_dir().join("documents");
    let got_there = wait_for(&mut child, || count_files(&documents) >= 3);
    let _ = child.kill();
    let _ = child.wait();
    assert!(got_there, "the restore ended before the kill");
    // The half-restored folder is not empty any more: refused, not mixed.
    let out = first.cli(&["restore", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let second = Install::new("").await;
    restore_and_verify(&second, &dir);
}
