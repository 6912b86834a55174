//! Sportello's storage.
//!
//! One codebase for both engines: the embedded SQLite default (one writer connection, a few
//! readers, WAL) and PostgreSQL, through sqlx's `Any` driver with portable SQL (`$N`
//! parameters, `RETURNING`, `ON CONFLICT`). Instants are stored as UTC milliseconds and
//! dates as `YYYY-MM-DD` text, so both engines hold the very same values. Documents live
//! in a content-addressed [`documents::BlobStore`] (local disk or S3).

use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sportello_domain::calendar::HolidayCalendar;
use sportello_domain::case::CaseType;
use sportello_domain::clock::SharedClock;
use sportello_domain::workflow::WorkflowError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

pub mod audit;
pub mod backup;
mod batch;
pub mod cases;
mod citizens;
pub mod contact;
mod dialect;
pub mod documents;
pub mod duties;
pub mod imports;
pub mod intake;
mod journal;
pub mod mailboxes;
pub mod messages;
pub mod outbound;
pub mod permits;
pub mod privacy;
pub mod register;
pub mod reports;
pub mod saved_views;
pub mod search;
pub mod security;
pub mod sessions;
pub mod texts;
pub mod throttle;
mod time;
pub mod transits;
mod unavailable;
pub mod users;
mod values;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, one file under `data_dir`.
    Sqlite,
    /// PostgreSQL server, for installations that outgrow one machine.
    Postgres,
}

/// Errors of the storage layer, typed so the web layer can map each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A workflow rule refuses the action.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A value given by the caller is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A rule of the office refuses it (the web layer words it in the reader's language).
    #[error("refused: {}", .0.key)]
    Refused(sportello_domain::refusal::Refusal),
    /// A rule of the office refuses one field's value.
    #[error("{field}: refused: {}", .refusal.key)]
    RefusedField {
        /// The field.
        field: String,
        /// Why.
        refusal: sportello_domain::refusal::Refusal,
    },
    /// The request clashes with existing data (e.g. a login already taken).
    #[error("{0}")]
    Conflict(String),
    /// The document is larger than allowed.
    #[error("the document exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Not now: the database is busy or locked, the disk is full, the server refuses
    /// connections (answered 503 with `Retry-After`).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The document store failed.
    #[error("document storage error: {0}")]
    Blob(String),
    /// Stored data that cannot be read back (should never happen; points at tampering or a bug).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if unavailable::sqlx_unavailable(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e)
        }
    }
}

impl StoreError {
    /// Whether it means "try again later" (busy, locked, disk full) rather than a fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(e) => unavailable::sqlx_unavailable(e),
            StoreError::Blob(message) => unavailable::message_unavailable(message),
            _ => false,
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Result alias of the storage layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Settings the store needs from the configuration.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Case types (built-in plus configured).
    pub case_types: Vec<CaseType>,
    /// Working-day calendar for deadlines.
    pub calendar: HolidayCalendar,
    /// Connections of the PostgreSQL pool.
    pub max_connections: u32,
    /// The police command's addresses (`office.police_pec`, `office.police_email`): intake
    /// links their answers by the protocol number they quote.
    pub police_addresses: Vec<String>,
    /// Minutes without use after which a back-office session lapses
    /// (`security.session_idle_minutes`; 30 by default, ASVS L2).
    pub session_idle_minutes: i64,
    /// Hours after which a session lapses however busy (`security.session_max_hours`).
    pub session_max_hours: i64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            case_types: CaseType::builtin(),
            calendar: HolidayCalendar::default(),
            max_connections: 10,
            police_addresses: Vec::new(),
            session_idle_minutes: 30,
            session_max_hours: 12,
        }
    }
}

/// The database, with the clock and settings every operation needs.
#[derive(Debug, Clone)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
    clock: SharedClock,
    settings: Arc<StoreSettings>,
    audit: Option<audit::AuditSender>,
    batcher: Option<Arc<batch::CreateBatcher>>,
}

static DRIVERS: Once = Once::new();

/// Registers sqlx's `Any` drivers (once per process).
pub(crate) fn install_drivers() {
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

impl Store {
    /// Opens (creating when needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str, clock: SharedClock, settings: StoreSettings) -> Result<Store> {
        install_drivers();
        let (backend, write, read) = if url.starts_with("sqlite:") {
            let (write_url, read_url) = sqlite_urls(url)?;
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -8000;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect(&write_url)
                .await?;
            SQLITE_MIGRATIONS.run(&write).await?;
            let readers =
                std::thread::available_parallelism().map_or(4, |n| n.get().clamp(2, 8)) as u32;
            let read = AnyPoolOptions::new()
                .max_connections(readers)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA query_only = ON; PRAGMA cache_size = -8000;")
                            .await?;
                        Ok(())
                    })
                })
                .connect(&read_url)
                .await?;
            (Backend::Sqlite, write, read)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(settings.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            (Backend::Postgres, pool.clone(), pool)
        } else {
            return Err(StoreError::invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        };
        Ok(Store {
            write,
            read,
            backend,
            clock,
            settings: Arc::new(settings),
            audit: None,
            batcher: None,
        })
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Settings the store was opened with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").fetch_one(&self.read).await.is_ok()
    }

    /// Whether the database takes writes now (for `/readyz`): one row of the probe table
    /// written within `wait`, so a locked database, a full disk or an exhausted pool says so
    /// instead of queueing requests behind it.
    pub async fn write_probe(&self, wait: Duration) -> Result<()> {
        let probe = async {
            let mut conn = self.write.acquire().await?;
            if self.backend == Backend::Sqlite {
                let ms = wait.as_millis().min(60_000);
                sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {ms}")))
                    .execute(&mut *conn)
                    .await?;
            }
            let written = sqlx::query(
                "INSERT INTO readiness_probe (id, probed_at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
            )
            .bind(to_ms(self.clock.now()))
            .execute(&mut *conn)
            .await;
            if self.backend == Backend::Sqlite {
                sqlx::query("PRAGMA busy_timeout = 10000")
                    .execute(&mut *conn)
                    .await?;
            }
            written.map(|_| ())
        };
        match tokio::time::timeout(wait + Duration::from_secs(1), probe).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(
                "no database connection for writing within the probe's time".into(),
            )),
        }
    }

    /// Closes every connection (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Looks up a case type by id.
    pub fn case_type(&self, id: &str) -> Option<&CaseType> {
        self.settings.case_types.iter().find(|t| t.id == id)
    }
}

/// Splits a `sqlite://PATH[?…]` URL into writer and reader URLs, creating the parent folder.
fn sqlite_urls(url: &str) -> Result<(String, String)> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::invalid(
            "database.url",
            "needs a file path: sqlite://PATH (in-memory databases are not persistent)",
        ));
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::invalid(
                "database.url",
                format!("cannot create {}: {e}", parent.display()),
            )
        })?;
    }
    Ok((
        format!("sqlite://{path}?mode=rwc"),
        format!("sqlite://{path}?mode=rw"),
    ))
}

/// Milliseconds since the epoch, the stored form of instants.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Reads back a stored instant.
pub(crate) fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {ms}")))
}

/// Reads back a stored date.
pub(crate) fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| StoreError::Corrupt(format!("date {s:?}")))
}

/// The stored form of dates.
pub(crate) fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn get_str(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod schema_tests {
    use std::collections::BTreeSet;

    use sqlx::Row;
    use sqlx::any::AnyPoolOptions;

    /// The two migration folders must describe the same tables and columns.
    #[tokio::test]
    async fn sqlite_and_postgres_schemas_match() {
        let Ok(admin) = std::env::var(crate::testing::DATABASE_ENV) else {
            eprintln!(
                "skipped: the schema comparison runs in the PostgreSQL pass (SPORTELLO_TEST_DATABASE_URL)"
            );
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(sportello_domain::clock::SystemClock);
        let sqlite_url = format!("sqlite://{}", dir.path().join("s.db").display());
        let sqlite =
            crate::Store::connect(&sqlite_url, clock.clone(), crate::StoreSettings::default())
                .await
                .unwrap();
        let pg_url = crate::testing::test_database_url(dir.path()).await;
        assert!(admin.starts_with("postgres") && pg_url.starts_with("postgres"));
        let pg = crate::Store::connect(&pg_url, clock, crate::StoreSettings::default())
            .await
            .unwrap();

        let mut sqlite_cols = BTreeSet::new();
        let tables = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'")
            .fetch_all(&sqlite.read)
            .await
            .unwrap();
        for t in tables {
            let table: String = t.get("name");
            let sql =
                format!("SELECT name, type, \"notnull\" AS nn FROM pragma_table_info('{table}')");
            for c in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&sqlite.read)
                .await
                .unwrap()
            {
                let nn: i64 = c.get("nn");
                // The portable types: INTEGER is read as i64 on both engines, so PostgreSQL must say bigint.
                let kind = match c.get::<String, _>("type").as_str() {
                    "INTEGER" => "bigint".to_owned(),
                    "TEXT" => "text".to_owned(),
                    other => format!("unportable {other}"),
                };
                sqlite_cols.insert((table.clone(), c.get::<String, _>("name"), kind, nn == 1));
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&pg_url)
            .await
            .unwrap();
        let mut pg_cols = BTreeSet::new();
        let rows = sqlx::query(
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS k, is_nullable::text AS n FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for r in rows {
            let nullable: String = r.get("n");
            pg_cols.insert((
                r.get::<String, _>("t"),
                r.get::<String, _>("c"),
                r.get::<String, _>("k"),
                nullable == "NO",
            ));
        }
        // SQLite reports INTEGER PRIMARY KEY columns as nullable; compare those by name only.
        type Column = (String, String, String, bool);
        // The full-text index is engine-specific by design (FTS5 tables on SQLite, a
        // tsvector column on PostgreSQL); everything else must match.
        let engine_specific =
            |t: &str, c: &str| t.starts_with("search_fts") || (t == "search_entries" && c == "tsv");
        let normalise = |set: &BTreeSet<Column>| -> BTreeSet<Column> {
            set.iter()
                .filter(|(t, c, _, _)| !engine_specific(t, c))
                .map(|(t, c, k, nn)| (t.clone(), c.clone(), k.clone(), *nn || c == "id"))
                .collect()
        };
        assert_eq!(normalise(&sqlite_cols), normalise(&pg_cols));
        pool.close().await;
        sqlite.close().await;
        pg.close().await;
    }
}
