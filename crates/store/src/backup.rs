//! What `sportello backup` and `sportello restore` need from storage: a consistent snapshot of
//! the database together with the list of documents that snapshot names, and the checks
//! that a restore target is empty.
//!
//! SQLite: `VACUUM INTO` writes a transactionally consistent copy while writers go on (WAL);
//! the list of documents is then read from the copy itself. PostgreSQL: a `REPEATABLE READ`
//! transaction exports its snapshot (`pg_export_snapshot()`), the list is read in it, and
//! `pg_dump --snapshot` dumps exactly that state while the transaction stays open.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sqlx::AnyConnection;
use sqlx::{Connection, Executor};

use crate::documents::{BlobStore, DOCUMENT_HASHES_SQL};
use crate::{Result, StoreError, get_i64, get_str};

/// What a snapshot of the database holds, as far as a backup needs to know.
#[derive(Debug, Clone, Default)]
pub struct SnapshotContents {
    /// Cases in the snapshot (for the summary line).
    pub cases: i64,
    /// Every document hash the snapshot names, with its recorded size when known.
    pub hashes: Vec<(String, Option<i64>)>,
}

/// The file of a `sqlite://PATH[?…]` URL; `None` for any other URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

async fn contents(conn: &mut AnyConnection) -> Result<SnapshotContents> {
    let cases = sqlx::query("SELECT COUNT(*) AS n FROM cases")
        .fetch_one(&mut *conn)
        .await?;
    let rows = sqlx::query(DOCUMENT_HASHES_SQL)
        .fetch_all(&mut *conn)
        .await?;
    Ok(SnapshotContents {
        cases: get_i64(&cases, "n")?,
        hashes: rows
            .iter()
            .map(|r| Ok((get_str(r, "sha256")?, crate::get_opt_i64(r, "size")?)))
            .collect::<Result<_>>()?,
    })
}

/// Copies the SQLite database of `database_url` into the new file `dest` with `VACUUM INTO`
/// (consistent, online: writers are not stopped) and reads from the copy what it names.
/// The database must exist: a backup never creates one.
pub async fn sqlite_snapshot(database_url: &str, dest: &Path) -> Result<SnapshotContents> {
    crate::install_drivers();
    let path = sqlite_path(database_url)
        .ok_or_else(|| StoreError::invalid("database.url", "not a SQLite file"))?;
    if !path.is_file() {
        return Err(StoreError::NotFound(format!(
            "the database {} (nothing to back up)",
            path.display()
        )));
    }
    let mut live = AnyConnection::connect(&format!("sqlite://{}?mode=rw", path.display())).await?;
    live.execute("PRAGMA busy_timeout = 10000").await?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| StoreError::invalid("backup", "the folder's path is not UTF-8"))?
        .to_owned();
    sqlx::query("VACUUM INTO $1")
        .bind(dest_text)
        .execute(&mut live)
        .await?;
    live.close().await?;
    let mut copy = AnyConnection::connect(&format!("sqlite://{}?mode=ro", dest.display())).await?;
    let found = contents(&mut copy).await;
    copy.close().await?;
    found
}

/// An open PostgreSQL snapshot: keep it until `pg_dump --snapshot` has finished.
#[derive(Debug)]
pub struct PostgresSnapshot {
    conn: AnyConnection,
    /// The id to give `pg_dump --snapshot`.
    pub id: String,
    /// What the snapshot holds.
    pub contents: SnapshotContents,
}

/// Opens a read-only `REPEATABLE READ` transaction on the database of `url`, exports its
/// snapshot and reads in it what a backup must copy.
pub async fn postgres_snapshot(url: &str) -> Result<PostgresSnapshot> {
    crate::install_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let row = sqlx::query("SELECT pg_export_snapshot() AS id")
        .fetch_one(&mut conn)
        .await?;
    let id = get_str(&row, "id")?;
    let contents = contents(&mut conn).await?;
    Ok(PostgresSnapshot { conn, id, contents })
}

impl PostgresSnapshot {
    /// Ends the snapshot's transaction.
    pub async fn release(mut self) -> Result<()> {
        self.conn.execute("COMMIT").await?;
        self.conn.close().await?;
        Ok(())
    }
}

/// The tables already in the PostgreSQL database of `url` (a restore needs none).
pub async fn postgres_tables(url: &str) -> Result<Vec<String>> {
    crate::install_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    let rows = sqlx::query(
        "SELECT table_name::text AS t FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    rows.iter().map(|r| get_str(r, "t")).collect()
}

impl BlobStore {
    /// The key of one object already in the store, if there is any (a restore needs none).
    pub async fn any_object(&self) -> Result<Option<String>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut listing = self.inner.list(prefix);
        match listing.next().await {
            None => Ok(None),
            Some(Ok(meta)) => Ok(Some(meta.location.to_string())),
            Some(Err(e)) => Err(StoreError::Blob(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///a/b.db?mode=rwc"),
            Some(PathBuf::from("/a/b.db"))
        );
        assert_eq!(sqlite_path("sqlite:rel.db"), Some(PathBuf::from("rel.db")));
        assert_eq!(sqlite_path("sqlite://:memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[tokio::test]
    async fn a_snapshot_names_the_documents_committed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::testing::test_database_url(dir.path()).await;
        let clock = sportello_domain::clock::FixedClock::new(crate::testing::fixture_now());
        let store = crate::Store::connect(
            &url,
            std::sync::Arc::new(clock),
            crate::StoreSettings::default(),
        )
        .await
        .unwrap();
        {
            let case = store
                .create_case(crate::cases::tests::request("ztl_permit"))
                .await
                .unwrap();
            let sha = "ab".repeat(32);
            store
                .add_document(
                    &case.summary.reference,
                    &sha,
                    5,
                    "a.pdf",
                    "application/pdf",
                    "op1",
                )
                .await
                .unwrap();
            let contents = if is_postgres(&url) {
                let snapshot = postgres_snapshot(&url).await.unwrap();
                assert!(!snapshot.id.is_empty());
                // Committed after the snapshot: not in it.
                store
                    .create_case(crate::cases::tests::request("ztl_permit"))
                    .await
                    .unwrap();
                let again = contents(&mut AnyConnection::connect(&url).await.unwrap())
                    .await
                    .unwrap();
                assert_eq!(again.cases, 2);
                let held = snapshot.contents.clone();
                snapshot.release().await.unwrap();
                held
            } else {
                let dest = dir.path().join("copy.db");
                let held = sqlite_snapshot(&url, &dest).await.unwrap();
                assert!(dest.is_file());
                // A snapshot never overwrites a file.
                assert!(sqlite_snapshot(&url, &dest).await.is_err());
                held
            };
            assert_eq!(contents.cases, 1);
            assert_eq!(contents.hashes, vec![(sha, Some(5))]);
        }
        store.close().await;
        crate::testing::drop_test_database(&url).await;
    }

    #[tokio::test]
    async fn a_sqlite_backup_creates_no_database() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("sqlite://{}", dir.path().join("none.db").display());
        assert!(matches!(
            sqlite_snapshot(&missing, &dir.path().join("c2.db")).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(!dir.path().join("none.db").exists());
    }

    #[tokio::test]
    async fn an_empty_document_store_has_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("docs").display());
        let blobs = BlobStore::open(&url, None, None).unwrap();
        assert_eq!(blobs.any_object().await.unwrap(), None);
        let sha = blobs
            .put(bytes::Bytes::from_static(b"hello"))
            .await
            .unwrap();
        let found = blobs.any_object().await.unwrap().unwrap();
        assert!(found.ends_with(&sha), "{found}");
    }
}
