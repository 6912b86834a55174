//! Failures that say "not now" rather than "broken": a busy or locked database, a full
//! disk, a server refusing connections, a pool with no free connection. The web answers
//! them 503 with `Retry-After`, so clients and load balancers try again instead of
//! reporting a bug.

/// SQLite's primary result codes for a busy, locked or full database (the extended codes
/// carry them in their low byte): `SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_FULL`.
const SQLITE_CODES: [i64; 3] = [5, 6, 13];

/// PostgreSQL SQLSTATEs of a server that cannot take the work now: class 53 (insufficient
/// resources: 53000, 53100 disk full, 53200 out of memory, 53300 too many connections,
/// 53400 configuration limit exceeded), 57P03 cannot connect now, 57P01/57P02 shutting down,
/// 55P03 lock not available.
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03" | "55P03")
}

/// Words of the engines' messages when the code is not at hand.
const MESSAGES: [&str; 6] = [
    "database is locked",
    "database is busy",
    "database table is locked",
    "database or disk is full",
    "no space left on device",
    "disk quota exceeded",
];

/// Whether a database error means "try again later".
pub(crate) fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Io(io) => io_unavailable(io),
        sqlx::Error::Database(db) => {
            let code = db.code();
            let by_code = code.as_deref().is_some_and(|code| {
                code.parse::<i64>()
                    .is_ok_and(|n| SQLITE_CODES.contains(&(n & 0xff)))
                    || postgres_unavailable(code)
            });
            by_code || message_unavailable(db.message())
        }
        other => message_unavailable(&other.to_string()),
    }
}

/// Whether an I/O error means the disk is full or the server is out of reach for now.
pub(crate) fn io_unavailable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::StorageFull
            | ErrorKind::QuotaExceeded
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
    ) || message_unavailable(&e.to_string())
}

/// Whether an error's text names one of the "not now" conditions.
pub(crate) fn message_unavailable(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    MESSAGES.iter().any(|m| message.contains(m)) || message.contains("os error 28")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A database error with a given code, as the drivers report them.
    #[derive(Debug)]
    struct Coded(&'static str, &'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.1)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.1
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db(code: &'static str, message: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code, message)))
    }

    #[test]
    fn busy_locked_and_full_are_unavailable_on_both_engines() {
        for (code, message) in [
            ("5", "database is locked"),
            ("517", "database is locked"),
            ("6", "database table is locked"),
            ("13", "database or disk is full"),
            ("53300", "sorry, too many clients already"),
            ("57P03", "the database system is starting up"),
            ("53100", "could not extend file: No space left on device"),
        ] {
            assert!(sqlx_unavailable(&db(code, message)), "{code} {message}");
        }
        assert!(sqlx_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(sqlx_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::StorageFull
        ))));
    }

    #[test]
    fn real_faults_stay_faults() {
        for (code, message) in [
            ("2067", "UNIQUE constraint failed: users.login"),
            ("23505", "duplicate key value violates unique constraint"),
            ("1", "no such table: cases"),
            ("42P01", "relation \"cases\" does not exist"),
        ] {
            assert!(!sqlx_unavailable(&db(code, message)), "{code} {message}");
        }
        assert!(!sqlx_unavailable(&sqlx::Error::RowNotFound));
    }

    /// A real SQLite lock: another connection holds the write lock and this one may not wait.
    #[tokio::test]
    async fn a_real_sqlite_lock_is_unavailable() {
        use sqlx::{Connection, Executor};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        crate::install_drivers();
        let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
        holder
            .execute("CREATE TABLE t (x INTEGER); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .await
            .unwrap();
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        other.execute("PRAGMA busy_timeout = 0").await.unwrap();
        let err = other.execute("INSERT INTO t VALUES (2)").await.unwrap_err();
        assert!(sqlx_unavailable(&err), "{err}");
        let store_error = crate::StoreError::from(err);
        assert!(
            matches!(store_error, crate::StoreError::Unavailable(_)),
            "{store_error:?}"
        );
        assert!(store_error.is_unavailable());
    }

    /// The probe behind `/readyz`: fine on a free database, "unavailable" while another
    /// process holds SQLite's write lock.
    #[tokio::test]
    async fn the_write_probe_tells_a_locked_database() {
        use sqlx::{Connection, Executor};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = crate::Store::connect(
            &format!("sqlite://{}", path.display()),
            std::sync::Arc::new(sportello_domain::clock::SystemClock),
            crate::StoreSettings::default(),
        )
        .await
        .unwrap();
        let wait = std::time::Duration::from_millis(300);
        store.write_probe(wait).await.unwrap();
        let mut holder = sqlx::AnyConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        holder
            .execute("BEGIN EXCLUSIVE; UPDATE readiness_probe SET probed_at = 0;")
            .await
            .unwrap();
        let refused = store.write_probe(wait).await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused:?}");
        assert!(store.ping().await, "reads still answer");
        holder.execute("ROLLBACK").await.unwrap();
        store.write_probe(wait).await.unwrap();
        store.close().await;
    }
}
