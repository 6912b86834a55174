//! What `serve` makes sure of before it opens anything: that it is the only server on an
//! embedded (SQLite) data folder, that the disk takes writes, that files are private to
//! the service's user, and that uploads a crash interrupted are gone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sportello_config::Config;

use crate::app::UsageError;

/// The lock file's name, in the data folder (and beside an SQLite file kept elsewhere).
pub const LOCK_FILE: &str = "serve.lock";

/// Files new to the data folder are private to the service's user (0600, folders 0700):
/// the database and the documents hold citizens' personal data.
pub fn private_files() {
    #[cfg(unix)]
    {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    }
}

/// Held while `serve` runs: an advisory lock the operating system releases when the
/// process ends, however it ends (a SIGKILLed server does not block the next start).
#[derive(Debug)]
pub struct ServeLock {
    _files: Vec<File>,
}

/// The SQLite database file of a `sqlite://PATH[?…]` URL (`None` for another engine).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Takes the serve lock of an embedded (SQLite) installation: in the data folder and, when
/// the database file lives elsewhere, beside it. A second `serve` on the same data folder or
/// file is refused (exit 2) rather than fighting the first over SQLite's one writer.
/// PostgreSQL installations run as many instances as they like: no lock.
pub fn lock(config: &Config) -> anyhow::Result<Option<ServeLock>> {
    let Some(database) = sqlite_file(&config.database_url()) else {
        return Ok(None);
    };
    let mut dirs = vec![config.data_dir.clone()];
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        dirs.push(parent.to_path_buf());
    }
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {holder})")
                };
                return Err(UsageError(format!(
                    "another `sportello serve` is already running on {}{by}: it holds {}. \
                     One server per SQLite database; stop the other one first, or move to \
                     PostgreSQL to run several instances",
                    dir.display(),
                    path.display()
                ))
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // Who holds it, for the message of the next one to try (best effort: a full disk
        // is named by the write probe that follows).
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        files.push(file);
    }
    Ok(Some(ServeLock { _files: files }))
}

/// The local folders the installation writes to: the data folder, the SQLite file's folder
/// and the documents' folder (when on the local disk).
pub fn local_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![config.data_dir.clone()];
    if let Some(parent) = sqlite_file(&config.database_url())
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        dirs.push(parent.to_path_buf());
    }
    if let Some(documents) = config.documents_url().strip_prefix("file://") {
        dirs.push(PathBuf::from(documents));
    }
    let mut unique: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !unique.contains(&dir) {
            unique.push(dir);
        }
    }
    unique
}

/// How much a write probe writes: enough that a disk on its last blocks says so.
const PROBE_BYTES: usize = 256 * 1024;

/// Fails at once, naming the folder, when one of the installation's folders does not take
/// writes (a full disk, a read-only mount): otherwise the database pool would wait 30 s and
/// say only "pool timed out".
pub fn check_writable(dirs: &[PathBuf]) -> anyhow::Result<()> {
    for dir in dirs {
        probe(dir).with_context(|| {
            format!(
                "the folder {} does not take writes (is the disk full or read-only?)",
                dir.display()
            )
        })?;
    }
    Ok(())
}

fn probe(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".write-probe-{}", std::process::id()));
    let written = File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

/// Removes the staged uploads (`tmp/upload-*`) a crash left behind. With the serve lock
/// held no other process can be writing them; without it (PostgreSQL, where instances may
/// share a folder) only those older than an hour go. Returns how many were removed.
pub fn clean_staged_uploads(data_dir: &Path, exclusive: bool, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("tmp")) else {
        return 0;
    };
    let old = now
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("upload-") {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let stale = exclusive || meta.modified().is_ok_and(|m| m < old);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Left in the data folder once its trees were made private: everything written since is
/// created under umask 077, so the walk over every document is done once, not at each start.
const TIGHTENED_MARK: &str = ".private";

/// Takes group and other permissions away from what an older version left readable (files
/// 0600, folders 0700): the data and documents folders with everything in them (once, see
/// [`TIGHTENED_MARK`]), and the SQLite database's own files (not the rest of a folder it may
/// share). Returns how many were changed.
pub fn tighten_permissions(config: &Config) -> usize {
    let mut changed = 0;
    if let Some(database) = sqlite_file(&config.database_url()) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            changed += tighten(Path::new(&name), false);
        }
    }
    let mark = config.data_dir.join(TIGHTENED_MARK);
    if mark.exists() {
        return changed;
    }
    changed += tighten(&config.data_dir, true);
    if let Some(documents) = config.documents_url().strip_prefix("file://")
        && !Path::new(documents).starts_with(&config.data_dir)
    {
        changed += tighten(Path::new(documents), true);
    }
    if let Err(e) = std::fs::write(&mark, b"") {
        tracing::warn!(error = %e, path = %mark.display(), "could not mark the data folder as private");
    }
    changed
}

#[cfg(unix)]
fn tighten(path: &Path, recursive: bool) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.file_type().is_symlink() {
        return 0;
    }
    let mut changed = 0;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        let wanted = mode & 0o700 | if meta.is_dir() { 0o700 } else { 0o600 };
        if std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)).is_ok() {
            changed += 1;
        }
    }
    if recursive
        && meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            changed += tighten(&entry.path(), true);
        }
    }
    changed
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _recursive: bool) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_file_is_read_from_its_url() {
        assert_eq!(
            sqlite_file("sqlite:///srv/s/sportello.db?mode=rwc"),
            Some(PathBuf::from("/srv/s/sportello.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:data/x.db"),
            Some(PathBuf::from("data/x.db"))
        );
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn only_staged_uploads_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("upload-0001"), b"half").unwrap();
        std::fs::write(tmp.join("keep.txt"), b"x").unwrap();
        let written = std::fs::metadata(tmp.join("upload-0001"))
            .unwrap()
            .modified()
            .unwrap();
        // Without the lock a fresh upload may be another instance's: kept.
        assert_eq!(clean_staged_uploads(dir.path(), false, written), 0);
        assert!(tmp.join("upload-0001").exists());
        // An hour and more later it is a crash's leftover.
        let later = written + Duration::from_secs(3601);
        assert_eq!(clean_staged_uploads(dir.path(), false, later), 1);
        std::fs::write(tmp.join("upload-0002"), b"half").unwrap();
        assert_eq!(clean_staged_uploads(dir.path(), true, written), 1);
        assert!(!tmp.join("upload-0001").exists());
        assert!(tmp.join("keep.txt").exists());
    }

    #[cfg(unix)]
    #[test]
    fn readable_files_become_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sub = data.join("documents");
        std::fs::create_dir_all(&sub).unwrap();
        let set = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(&data, 0o700);
        set(&sub, 0o755);
        let file = sub.join("doc");
        std::fs::write(&file, b"x").unwrap();
        set(&file, 0o644);
        // The database elsewhere: its files are tightened, its neighbours left alone.
        let database = dir.path().join("db").join("s.db");
        std::fs::create_dir_all(database.parent().unwrap()).unwrap();
        std::fs::write(&database, b"x").unwrap();
        set(&database, 0o644);
        let neighbour = dir.path().join("db").join("other");
        std::fs::write(&neighbour, b"x").unwrap();
        set(&neighbour, 0o644);
        let config = Config {
            data_dir: data.clone(),
            database: sportello_config::DatabaseConfig {
                url: Some(sportello_config::SecretUrl(format!(
                    "sqlite://{}",
                    database.display()
                ))),
                ..Default::default()
            },
            ..Config::default()
        };
        assert_eq!(tighten_permissions(&config), 3);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&database), 0o600);
        assert_eq!(mode(&neighbour), 0o644);
        assert_eq!(tighten_permissions(&config), 0);
        // The trees are walked once: the mark says so, and the next start skips them.
        assert!(data.join(TIGHTENED_MARK).exists());
        set(&file, 0o644);
        set(&database, 0o644);
        assert_eq!(
            tighten_permissions(&config),
            1,
            "only the database's own files"
        );
        assert_eq!(mode(&database), 0o600);
    }

    #[test]
    fn a_second_lock_is_refused_and_freed_when_its_holder_goes() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let first = lock(&config).unwrap();
        assert!(first.is_some());
        let refused = lock(&config).unwrap_err();
        assert!(refused.downcast_ref::<UsageError>().is_some(), "{refused}");
        assert!(refused.to_string().contains("already running"), "{refused}");
        drop(first);
        assert!(lock(&config).unwrap().is_some());
    }

    #[test]
    fn a_writable_folder_passes_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        check_writable(&[dir.path().join("new")]).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            0
        );
    }
}
