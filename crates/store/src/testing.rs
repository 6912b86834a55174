//! Throw-away databases for tests: SQLite in a temporary folder by default, or a fresh
//! PostgreSQL database when `SPORTELLO_TEST_DATABASE_URL` names a server (CI runs the
//! whole suite once each way).

// Test support (feature `testing`): a failed set-up stops the test that asked for it.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use sportello_domain::clock::FixedClock;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::{Store, StoreSettings};

/// The variable naming the PostgreSQL server for the second run of the suite.
pub const DATABASE_ENV: &str = "SPORTELLO_TEST_DATABASE_URL";

/// Whether tests must fail (rather than skip) when an outside service is missing.
pub fn services_required() -> bool {
    std::env::var("SPORTELLO_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A database URL for one test: a new PostgreSQL database when the suite runs against
/// PostgreSQL, else a SQLite file inside `dir`.
pub async fn test_database_url(dir: &Path) -> String {
    match std::env::var(DATABASE_ENV) {
        Ok(admin) if admin.starts_with("postgres") => create_postgres_database(&admin).await,
        _ => format!("sqlite://{}", dir.join("test.db").display()),
    }
}

async fn create_postgres_database(admin_url: &str) -> String {
    crate::install_drivers();
    let suffix: u64 = rand::random();
    let name = format!("sportello_test_{suffix:016x}");
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {DATABASE_ENV}: {e}"));
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
    pool.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}{query}")
}

/// Drops a database made by [`test_database_url`] (nothing to do for SQLite, whose file
/// goes with its temporary folder), so that runs of the suite do not fill the server.
pub async fn drop_test_database(url: &str) {
    let Ok(admin) = std::env::var(DATABASE_ENV) else {
        return;
    };
    let Some(name) = url
        .rsplit('/')
        .next()
        .map(|tail| tail.split('?').next().unwrap_or(tail))
        .filter(|name| name.starts_with("sportello_test_"))
    else {
        return;
    };
    if !url.starts_with("postgres") {
        return;
    }
    crate::install_drivers();
    if let Ok(pool) = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
    {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if let Err(e) = pool.execute(sqlx::AssertSqlSafe(sql)).await {
            eprintln!("could not drop test database {name}: {e}");
        }
        pool.close().await;
    }
}

/// [`drop_test_database`] from synchronous code (a `Drop`), on a thread of its own so that
/// it works inside and outside an async runtime.
pub fn drop_test_database_blocking(url: &str) {
    if !url.starts_with("postgres") {
        return;
    }
    let url = url.to_owned();
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(drop_test_database(&url));
        }
    })
    .join();
}

/// The instant the shared fixtures assume: 2026-11-26T10:30:00+01:00.
pub fn fixture_now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

/// Runs `test` against a fresh store whose clock stands at [`fixture_now`].
pub async fn with_test_store<F, Fut>(test: F)
where
    F: FnOnce(Store, FixedClock) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = test_database_url(dir.path()).await;
    let clock = FixedClock::new(fixture_now());
    let store = Store::connect(&url, Arc::new(clock.clone()), StoreSettings::default())
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    test(store.clone(), clock).await;
    store.close().await;
    drop_test_database(&url).await;
}

/// Whether the outside programs a test needs are installed; without them the test is
/// skipped (with a line saying so), unless CI requires every service
/// (`SPORTELLO_REQUIRE_SERVICES=1`), where a missing one fails the test.
pub fn tools_present(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !services_required(),
        "SPORTELLO_REQUIRE_SERVICES=1 but {missing:?} missing"
    );
    eprintln!("skipped: {missing:?} not installed");
    false
}
