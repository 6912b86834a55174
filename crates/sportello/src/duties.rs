//! This instance's hold on the background duties it shares with other instances of the
//! same database (the lease rows are `sportello_store::duties`).
//!
//! Each duty loop asks [`Duties::hold`] before each round: it takes a free or lapsed
//! duty, renews one it holds, and says no while another instance holds it. A round that
//! may last longer than the lease (a large scanned batch) runs inside
//! [`Duties::renewing`], which renews the lease meanwhile.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sportello_store::Store;

/// The duty of the legal clocks, permit expiry, session purge and the day's gauges.
pub const SLA: &str = "sla";
/// The contact centre's duty: acknowledgements, reminders, call-backs, PEC receipts.
pub const CONTACT: &str = "contact";
/// Indexing cases written before the search index existed.
pub const SEARCH_BACKLOG: &str = "search_backlog";

/// The marker file naming a scanner folder (hidden: the watcher skips dot files).
pub const FOLDER_ID_FILE: &str = ".sportello-folder-id";

/// One instance's duties.
#[derive(Debug)]
pub struct Duties {
    store: Store,
    holder: String,
    lease: Duration,
    tick: Duration,
    held: Mutex<BTreeSet<String>>,
}

impl Duties {
    /// The duties of the instance named `holder` (unique per process), with the lease and
    /// tick of `[duties]`.
    pub fn new(store: Store, holder: String, config: &sportello_config::DutiesConfig) -> Self {
        Duties {
            store,
            holder,
            lease: Duration::from_secs(config.lease_seconds),
            tick: Duration::from_secs(config.tick_seconds),
            held: Mutex::new(BTreeSet::new()),
        }
    }

    /// How often the ticks run.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// How long a lease lasts without renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes or renews `duty`; `false` while another instance holds it, or when the
    /// database cannot say (then nobody here acts on it). Logs when the duty comes to or
    /// leaves this instance.
    pub async fn hold(&self, duty: &str) -> bool {
        self.hold_for(duty, self.lease).await
    }

    /// [`Duties::hold`] with a lease of its own length (a duty that looks less often
    /// than the ticks).
    pub async fn hold_for(&self, duty: &str, lease: Duration) -> bool {
        let held = match self.store.acquire_duty(duty, &self.holder, lease).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(duty, error = %e, "duty lease not renewed (database); not acting on it this round");
                false
            }
        };
        let changed = match self.held.lock() {
            Ok(mut set) if held => set.insert(duty.to_owned()),
            Ok(mut set) => set.remove(duty),
            Err(_) => false,
        };
        if changed && held {
            tracing::info!(duty, holder = %self.holder, "duty taken by this instance");
        } else if changed {
            tracing::warn!(duty, holder = %self.holder, "duty now held by another instance");
        }
        held
    }

    /// Runs `work` (a round of `duty`, which this instance holds) and renews the lease
    /// every third of it until `work` ends, so that a long round is not taken over
    /// half-way. A lease lost all the same (the database unreachable for longer than the
    /// lease) is logged; the work goes on, each item being done once under its own row.
    pub async fn renewing<F: Future>(&self, duty: &str, lease: Duration, work: F) -> F::Output {
        tokio::pin!(work);
        let mut renew = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
        renew.tick().await;
        loop {
            tokio::select! {
                out = &mut work => break out,
                _ = renew.tick() => {
                    self.hold_for(duty, lease).await;
                }
            }
        }
    }

    /// Gives up every duty (at a clean shutdown): another instance takes them at once.
    pub async fn release_all(&self) {
        match self.store.release_duties(&self.holder).await {
            Ok(n) if n > 0 => tracing::info!(duties = n, "duties handed over"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release the duties"),
        }
    }
}

/// The name of a scanner folder's duty: `scan:` and the folder's own id, kept in a marker
/// file inside it, so that instances sharing one (network) folder share one lease, while
/// instances on other hosts, each with a local folder of the same path, each watch their
/// own. The first instance to look writes the id (written aside and hard-linked into
/// place, so that of two racing the first link wins and both read the same id).
pub fn scan_duty(dir: &Path) -> std::io::Result<String> {
    let marker = dir.join(FOLDER_ID_FILE);
    let read = |marker: &Path| -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(marker) {
            Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    if let Some(id) = read(&marker)? {
        return Ok(format!("scan:{id}"));
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let aside = dir.join(format!("{FOLDER_ID_FILE}.{id}.tmp"));
    std::fs::write(&aside, format!("{id}\n"))?;
    let linked = std::fs::hard_link(&aside, &marker);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(format!("scan:{id}")),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&marker)?
            .map(|id| format!("scan:{id}"))
            .ok_or_else(|| std::io::Error::other("the scanner folder's id file is empty")),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_folder_keeps_one_id_and_two_folders_have_two() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = scan_duty(a.path()).unwrap();
        assert!(first.starts_with("scan:"), "{first}");
        assert_eq!(
            scan_duty(a.path()).unwrap(),
            first,
            "read back, not made again"
        );
        assert_ne!(scan_duty(b.path()).unwrap(), first);
        // Nothing but the marker is left behind.
        let names: Vec<_> = std::fs::read_dir(a.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FOLDER_ID_FILE]);
    }

    #[test]
    fn instances_racing_on_a_new_folder_agree_on_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let ids: Vec<String> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || scan_duty(&path).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    }
}
