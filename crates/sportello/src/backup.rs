//! `sportello backup DIR` and `sportello restore DIR` (CONTRACT §4, §8.5).
//!
//! A backup folder holds
//! - `database/sportello.db` (SQLite, a `VACUUM INTO` copy) or `database/sportello.pgdump`
//!   (PostgreSQL, `pg_dump -Fc` of one exported snapshot, for `pg_restore`);
//! - `documents/sha256/XX/SHA` every document the snapshot names, in the layout of the file
//!   store, copied after the snapshot (the store is write-once by hash, so nothing it names
//!   can be missing or different);
//! - `backup.json`, what was backed up;
//! - `MANIFEST.sha256`, written last and atomically: `sha256sum -c` lines for every other
//!   file. A folder without it is an interrupted backup, and `restore` refuses it.
//!
//! Neither command takes the lock of `serve`: a backup runs while the server serves.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use sportello_config::Config;
use sportello_domain::clock::{Clock, SystemClock};
use sportello_store::StoreError;
use sportello_store::backup::{self as snapshot, SnapshotContents};
use tokio::io::AsyncWriteExt;

use crate::app::{UsageError, open_blobs, open_store};

/// The manifest's name; its presence marks a complete backup.
const MANIFEST: &str = "MANIFEST.sha256";
/// What was backed up (engine, counts, instant).
const INFO: &str = "backup.json";
const SQLITE_FILE: &str = "database/sportello.db";
const PG_FILE: &str = "database/sportello.pgdump";
/// Documents copied or checked at once.
const PARALLEL: usize = 4;

/// A progress bar on stderr when stdout is a terminal; hidden otherwise (CONTRACT §4).
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{bar:30}} {{bytes}}/{{total_bytes}} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// What a folder holds, a few names for a message; `None` when it is absent or empty.
fn contents_of(dir: &Path) -> anyhow::Result<Option<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(UsageError(format!("{}: {e}", dir.display())).into());
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    let more = names.len().saturating_sub(5);
    names.truncate(5);
    let mut listed = names.join(", ");
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    Ok(Some(listed))
}

#[cfg(unix)]
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Flushes a folder's entries (new names) to disk.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// SHA-256 and size of a file, read in chunks (never whole in memory).
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// The PostgreSQL client tool `name` (`pg_dump`, `pg_restore`): on PATH, else the newest
/// under `/usr/lib/postgresql/*/bin` (Debian's layout).
fn pg_tool(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let tool = e.path().join("bin").join(name);
            tool.is_file().then_some((version, tool))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, tool)| tool).ok_or_else(|| {
        anyhow!(
            "{name} not found (on PATH or under /usr/lib/postgresql/*/bin): install the \
             PostgreSQL client tools (Debian: apt-get install postgresql-client), of the \
             server's major version or newer"
        )
    })
}

/// Decodes `%XX` escapes of a URL part.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A PostgreSQL URL without its password, and the password (for `PGPASSWORD`): a password
/// on a command line is visible to every user of the machine.
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    match userinfo.split_once(':') {
        Some((user, password)) => (
            format!("{scheme}://{user}@{host}{tail}"),
            Some(percent_decode(password)),
        ),
        None => (url.to_owned(), None),
    }
}

/// Runs a PostgreSQL client tool against `url`; its stderr is in the error when it fails.
async fn run_pg_tool(tool: &str, args: &[String], url: &str) -> anyhow::Result<()> {
    let program = pg_tool(tool)?;
    let (bare, password) = split_password(url);
    let mut command = tokio::process::Command::new(&program);
    command
        .args(args)
        .arg("--no-password")
        .arg(format!("--dbname={bare}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let out = command
        .output()
        .await
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One file of a backup.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    sha256: String,
    size: u64,
}

/// Copies the document `sha` from the store into `dest`, hashing as it streams; refuses
/// bytes that do not hash to their name.
async fn copy_document(
    blobs: &sportello_store::documents::BlobStore,
    sha: &str,
    dest: &Path,
) -> anyhow::Result<u64> {
    let mut stream = match blobs.get_stream(sha).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => bail!(
            "document {sha} is named by the database but missing from {} \
             (`sportello documents verify` lists what is missing)",
            blobs.description()
        ),
        Err(e) => return Err(e.into()),
    };
    let mut file = tokio::fs::File::create(dest)
        .await
        .with_context(|| format!("cannot write {}", dest.display()))?;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading document {sha}"))?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    drop(file);
    private_file(dest)?;
    let actual = hex::encode(hasher.finalize());
    if actual != sha {
        bail!(
            "document {sha} in {} is altered (its bytes hash to {actual}); \
             `sportello documents verify` lists every problem",
            blobs.description()
        );
    }
    Ok(len)
}

/// `sportello backup DIR`.
pub async fn backup(config: &Config, dir: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if dir.exists() && !dir.is_dir() {
        return Err(UsageError(format!("{} exists and is not a folder", dir.display())).into());
    }
    if let Some(there) = contents_of(dir)? {
        return Err(UsageError(format!(
            "{} is not empty (it holds {there}): a backup goes into a new or empty folder",
            dir.display()
        ))
        .into());
    }
    let url = config.database_url();
    let postgres = snapshot::is_postgres(&url);
    if postgres {
        pg_tool("pg_dump")?;
    }
    private_dir(&dir.join("database"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let began_at = SystemClock.now();

    // 1. The database, one consistent snapshot, and what it names.
    let (db_file, contents): (&str, SnapshotContents) = if postgres {
        let snap = snapshot::postgres_snapshot(&url)
            .await
            .with_context(|| format!("cannot open {}", sportello_config::redact_url(&url)))?;
        let dest = dir.join(PG_FILE);
        let dumped = run_pg_tool(
            "pg_dump",
            &[
                "--format=custom".to_owned(),
                format!("--snapshot={}", snap.id),
                format!("--file={}", dest.display()),
            ],
            &url,
        )
        .await;
        let contents = snap.contents.clone();
        snap.release().await?;
        dumped?;
        (PG_FILE, contents)
    } else {
        let dest = dir.join(SQLITE_FILE);
        let contents = snapshot::sqlite_snapshot(&url, &dest)
            .await
            .with_context(|| {
                format!(
                    "cannot copy the database {}",
                    sportello_config::redact_url(&url)
                )
            })?;
        (SQLITE_FILE, contents)
    };
    let db_path = dir.join(db_file);
    std::fs::File::open(&db_path)?.sync_all()?;
    private_file(&db_path)?;
    let (db_sha, db_size) = tokio::task::spawn_blocking({
        let p = db_path.clone();
        move || hash_file(&p)
    })
    .await??;
    let mut entries = vec![Entry {
        path: db_file.to_owned(),
        sha256: db_sha,
        size: db_size,
    }];

    // 2. Every document the snapshot names, after it (write-once store: all are there).
    let blobs = open_blobs(config)?;
    let total: u64 = contents
        .hashes
        .iter()
        .map(|(_, s)| s.unwrap_or(0).max(0) as u64)
        .sum();
    let bar = progress(total, "backup documenti");
    let mut shards = std::collections::BTreeSet::new();
    for (sha, _) in &contents.hashes {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the database names a document by an invalid hash {sha:?}");
        }
        shards.insert(sha[..2].to_owned());
    }
    for shard in &shards {
        private_dir(&dir.join("documents/sha256").join(shard))?;
    }
    let copies = futures::stream::iter(contents.hashes.iter().cloned())
        .map(|(sha, _)| {
            let blobs = blobs.clone();
            let rel = format!("documents/sha256/{}/{sha}", &sha[..2]);
            let dest = dir.join(&rel);
            async move {
                let copied = copy_document(&blobs, &sha, &dest).await;
                copied.map(|size| Entry {
                    path: rel,
                    sha256: sha,
                    size,
                })
            }
        })
        .buffer_unordered(PARALLEL);
    futures::pin_mut!(copies);
    let mut documents = 0u64;
    while let Some(copied) = copies.next().await {
        match copied {
            Ok(entry) => {
                bar.inc(entry.size);
                documents += 1;
                entries.push(entry);
            }
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
    }
    bar.finish_and_clear();
    for shard in &shards {
        sync_dir(&dir.join("documents/sha256").join(shard))?;
    }
    for sub in ["documents/sha256", "documents", "database"] {
        if dir.join(sub).is_dir() {
            sync_dir(&dir.join(sub))?;
        }
    }

    // 3. What it is, then the manifest, last and atomically.
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let info = json!({
        "format": 1,
        "sportello": env!("CARGO_PKG_VERSION"),
        "engine": if postgres { "postgres" } else { "sqlite" },
        "database": db_file,
        "began_at": began_at.to_rfc3339(),
        "cases": contents.cases,
        "documents": documents,
        "bytes": bytes,
    });
    let info_text = serde_json::to_vec_pretty(&info)?;
    let info_path = dir.join(INFO);
    write_durably(&info_path, &info_text)?;
    entries.push(Entry {
        path: INFO.to_owned(),
        sha256: hex::encode(Sha256::digest(&info_text)),
        size: info_text.len() as u64,
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut manifest = String::new();
    for e in &entries {
        manifest.push_str(&format!("{}  {}\n", e.sha256, e.path));
    }
    let partial = dir.join(format!("{MANIFEST}.partial"));
    write_durably(&partial, manifest.as_bytes())?;
    std::fs::rename(&partial, dir.join(MANIFEST))?;
    sync_dir(dir)?;
    println!(
        "backup complete: {} cases, {documents} documents, {bytes} bytes in {:.1} s -> {}",
        contents.cases,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a small file and flushes it to disk, readable by its owner only.
fn write_durably(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    private_file(path)?;
    Ok(())
}

/// Whether `path` is a name a backup may hold (nothing outside the folder, no surprises).
fn allowed_path(path: &str, sha: &str) -> bool {
    match path {
        SQLITE_FILE | PG_FILE | INFO => true,
        _ => path
            .strip_prefix("documents/sha256/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(shard, name)| {
                name == sha && sha.len() == 64 && sha.starts_with(shard) && shard.len() == 2
            }),
    }
}

/// Reads and checks the manifest's lines.
fn read_manifest(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has no {MANIFEST}: the backup is incomplete (interrupted?) or not a Sportello \
             backup; nothing restored",
            dir.display()
        ),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let parsed = line.split_once("  ").filter(|(sha, path)| {
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && allowed_path(path, sha)
        });
        let Some((sha, rel)) = parsed else {
            bail!(
                "{} line {}: not a line of a Sportello backup manifest; nothing restored",
                path.display(),
                n + 1
            );
        };
        entries.push(Entry {
            path: rel.to_owned(),
            sha256: sha.to_owned(),
            size: 0,
        });
    }
    Ok(entries)
}

/// Every file under `dir` (relative paths), but the manifest.
fn files_under(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push(child);
            } else {
                found.push(child.to_string_lossy().into_owned());
            }
        }
    }
    found.retain(|p| p != MANIFEST);
    Ok(found)
}

/// `sportello restore DIR`.
pub async fn restore(config: &Config, dir: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !dir.is_dir() {
        return Err(UsageError(format!("{}: no such backup folder", dir.display())).into());
    }
    let mut entries = read_manifest(dir)?;
    let info_entry = entries.iter().find(|e| e.path == INFO).cloned();
    let url = config.database_url();
    let postgres = snapshot::is_postgres(&url);
    let db_file = if postgres { PG_FILE } else { SQLITE_FILE };
    if info_entry.is_none()
        || !entries
            .iter()
            .any(|e| e.path == SQLITE_FILE || e.path == PG_FILE)
    {
        bail!(
            "{}: the manifest lists no {INFO} or no database; nothing restored",
            dir.display()
        );
    }
    if !entries.iter().any(|e| e.path == db_file) {
        let (theirs, ours) = if postgres {
            ("SQLite", "PostgreSQL")
        } else {
            ("PostgreSQL", "SQLite")
        };
        return Err(UsageError(format!(
            "{} is a backup of a {theirs} database, but database.url is {ours}: restore it \
             with the engine it came from",
            dir.display()
        ))
        .into());
    }

    // 1. The target must be empty: nothing is ever overwritten.
    if let Some(there) = contents_of(&config.data_dir)? {
        return Err(UsageError(format!(
            "the data folder {} is not empty (it holds {there}): restore into an empty one",
            config.data_dir.display()
        ))
        .into());
    }
    if postgres {
        pg_tool("pg_restore")?;
        let tables = snapshot::postgres_tables(&url)
            .await
            .with_context(|| format!("cannot open {}", sportello_config::redact_url(&url)))?;
        if !tables.is_empty() {
            let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            return Err(UsageError(format!(
                "the database {} is not empty (it has {} tables: {}…): restore into an empty database",
                sportello_config::redact_url(&url),
                tables.len(),
                shown.join(", ")
            ))
            .into());
        }
    } else if let Some(path) = snapshot::sqlite_path(&url) {
        for p in [
            path.clone(),
            PathBuf::from(format!("{}-wal", path.display())),
        ] {
            if p.exists() {
                return Err(UsageError(format!(
                    "the database file {} already exists: restore into an empty data folder",
                    p.display()
                ))
                .into());
            }
        }
    }

    // 2. Every file against the manifest, before anything is written.
    let listed: BTreeMap<&str, &str> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.sha256.as_str()))
        .collect();
    let extra: Vec<String> = files_under(dir)?
        .into_iter()
        .filter(|p| !listed.contains_key(p.as_str()))
        .collect();
    if let Some(first) = extra.first() {
        bail!(
            "{}: {first} is not in the manifest ({} such files); nothing restored",
            dir.display(),
            extra.len()
        );
    }
    let bar = progress(0, "verifica backup");
    let checks = futures::stream::iter(entries.clone())
        .map(|e| {
            let path = dir.join(&e.path);
            tokio::task::spawn_blocking(move || (e, hash_file(&path)))
        })
        .buffer_unordered(2);
    futures::pin_mut!(checks);
    let mut problems = Vec::new();
    let mut sizes = BTreeMap::new();
    while let Some(checked) = checks.next().await {
        let (e, result) = checked?;
        match result {
            Ok((sha, size)) if sha == e.sha256 => {
                bar.inc_length(size);
                bar.inc(size);
                sizes.insert(e.path.clone(), size);
            }
            Ok((sha, _)) => problems.push(format!("ALTERED {} (now hashes to {sha})", e.path)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("MISSING {}", e.path));
            }
            Err(err) => problems.push(format!("UNREADABLE {} ({err})", e.path)),
        }
    }
    bar.finish_and_clear();
    if !problems.is_empty() {
        problems.sort();
        for line in &problems {
            eprintln!("{line}");
        }
        bail!(
            "{} of {} files of {} do not match the manifest; nothing restored",
            problems.len(),
            entries.len(),
            dir.display()
        );
    }
    for e in &mut entries {
        e.size = sizes.get(&e.path).copied().unwrap_or(0);
    }

    // 3. The documents, into the configured store (which must hold nothing).
    let blobs = open_blobs(config)?;
    if let Some(object) = blobs.any_object().await? {
        return Err(UsageError(format!(
            "the document store {} is not empty (it holds {object}): restore into an empty one",
            blobs.description()
        ))
        .into());
    }
    let docs: Vec<Entry> = entries
        .iter()
        .filter(|e| e.path.starts_with("documents/"))
        .cloned()
        .collect();
    let doc_bytes: u64 = docs.iter().map(|e| e.size).sum();
    let bar = progress(doc_bytes, "ripristino documenti");
    let puts = futures::stream::iter(docs.iter().cloned())
        .map(|e| {
            let blobs = blobs.clone();
            let path = dir.join(&e.path);
            async move {
                blobs
                    .put_file(&e.sha256, &path, e.size)
                    .await
                    .map(|()| e.size)
                    .with_context(|| format!("restoring {}", e.path))
            }
        })
        .buffer_unordered(PARALLEL);
    futures::pin_mut!(puts);
    while let Some(put) = puts.next().await {
        match put {
            Ok(size) => bar.inc(size),
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
    }
    bar.finish_and_clear();

    // 4. The database last: once it is there, the restore is complete.
    let source = dir.join(db_file);
    if postgres {
        run_pg_tool(
            "pg_restore",
            &[
                "--exit-on-error".to_owned(),
                "--single-transaction".to_owned(),
                "--no-owner".to_owned(),
                "--no-privileges".to_owned(),
                source.display().to_string(),
            ],
            &url,
        )
        .await?;
    } else {
        let path = snapshot::sqlite_path(&url)
            .ok_or_else(|| anyhow!("database.url names no SQLite file"))?;
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        private_dir(&parent)?;
        let staging = parent.join(format!(
            ".{}.restoring",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        tokio::task::spawn_blocking({
            let (source, staging) = (source.clone(), staging.clone());
            move || -> std::io::Result<()> {
                std::fs::copy(&source, &staging)?;
                private_file(&staging)?;
                std::fs::File::open(&staging)?.sync_all()
            }
        })
        .await??;
        std::fs::rename(&staging, &path)?;
        sync_dir(&parent)?;
    }

    // 5. Open it as `serve` would (bringing the schema up to date) and check the register.
    let store = open_store(config).await?;
    let register = store.verify_register().await?;
    store.close().await;
    let entries_checked = match register {
        Ok(n) => n,
        Err(brk) => bail!("restored, but the protocol register does not verify: {brk}"),
    };
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let cases = std::fs::read(dir.join(INFO))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|info| info["cases"].as_i64())
        .unwrap_or_default();
    println!(
        "restore complete: {cases} cases, {} documents, {bytes} bytes in {:.1} s; register intact ({entries_checked} entries)",
        docs.len(),
        started.elapsed().as_secs_f64(),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        assert_eq!(
            split_password("postgres://app:s%40cret@db:5432/sportello?sslmode=require"),
            (
                "postgres://app@db:5432/sportello?sslmode=require".to_owned(),
                Some("s@cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1:55432/x"),
            ("postgres://postgres@127.0.0.1:55432/x".to_owned(), None)
        );
        assert_eq!(
            split_password("postgres://h/db"),
            ("postgres://h/db".to_owned(), None)
        );
    }

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        let sha = "ab".repeat(32);
        assert!(allowed_path(&format!("documents/sha256/ab/{sha}"), &sha));
        assert!(allowed_path("database/sportello.db", &sha));
        assert!(!allowed_path(&format!("documents/sha256/cd/{sha}"), &sha));
        assert!(!allowed_path("../etc/passwd", &sha));
        assert!(!allowed_path(
            &format!("documents/sha256/ab/../{sha}"),
            &sha
        ));
    }
}
