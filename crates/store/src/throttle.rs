//! Counters of attempts (failed sign-ins, status lookups, wrong tokens, anonymous writes)
//! and device cookies, kept in the database: a restart does not wipe an attacker's count,
//! and every instance sharing the database sees the same one. A counter is a row per key
//! with the start of its window (the first attempt) and the attempts since; one upsert
//! counts and answers, so two instances never lose each other's attempts.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::users::token_hash;
use crate::{Result, Store, get_i64, get_str, to_ms};

/// A counter as one attempt left it (or as it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts in the current window (0 when the window is over or never began).
    pub count: u32,
    /// Whole seconds until the current window ends (at least 1 while it runs).
    pub retry_after_secs: u64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Attempts and time left of a row read at `now`.
fn attempts_of(count: i64, start: i64, window: Duration, now: DateTime<Utc>) -> Attempts {
    let ends = start.saturating_add(millis(window));
    let left = ends.saturating_sub(to_ms(now));
    if left <= 0 {
        return Attempts {
            count: 0,
            retry_after_secs: 0,
        };
    }
    Attempts {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        retry_after_secs: u64::try_from(left).unwrap_or(0).div_ceil(1000).max(1),
    }
}

impl Store {
    /// Counts one attempt of `key`; a window of `window` starts with the first attempt and
    /// the count starts again once it is over. Returns the count with this attempt.
    pub async fn count_attempt(&self, key: &str, window: Duration) -> Result<Attempts> {
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let row = sqlx::query(
            "INSERT INTO throttle_counters (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN throttle_counters.window_start <= $3 THEN 1 \
                            ELSE throttle_counters.count + 1 END, \
               window_start = CASE WHEN throttle_counters.window_start <= $3 THEN $2 \
                                   ELSE throttle_counters.window_start END \
             RETURNING count, window_start",
        )
        .bind(key)
        .bind(now_ms)
        .bind(now_ms.saturating_sub(millis(window)))
        .fetch_one(&self.write)
        .await?;
        Ok(attempts_of(
            get_i64(&row, "count")?,
            get_i64(&row, "window_start")?,
            window,
            now,
        ))
    }

    /// The attempts of `key` in its current window, counting nothing.
    pub async fn attempts(&self, key: &str, window: Duration) -> Result<Attempts> {
        let now = self.clock.now();
        let row = sqlx::query("SELECT count, window_start FROM throttle_counters WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(row) => attempts_of(
                get_i64(&row, "count")?,
                get_i64(&row, "window_start")?,
                window,
                now,
            ),
            None => Attempts {
                count: 0,
                retry_after_secs: 0,
            },
        })
    }

    /// Forgets the attempts of `key` (a successful sign-in clears its own counter).
    pub async fn forget_attempts(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM throttle_counters WHERE key = $1")
            .bind(key)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Deletes counters whose window began more than `age` ago (longer than any window in
    /// use, so that nothing still counting goes) and device cookies older than
    /// `device_age`; returns the rows deleted.
    pub async fn purge_attempts(&self, age: Duration, device_age: Duration) -> Result<u64> {
        let now = to_ms(self.clock.now());
        let counters = sqlx::query("DELETE FROM throttle_counters WHERE window_start < $1")
            .bind(now.saturating_sub(millis(age)))
            .execute(&self.write)
            .await?
            .rows_affected();
        let devices = sqlx::query("DELETE FROM device_cookies WHERE issued_at < $1")
            .bind(now.saturating_sub(millis(device_age)))
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(counters + devices)
    }

    /// A new device cookie for a browser that has just signed in as `login`: a random
    /// token, kept only by its hash.
    pub async fn issue_device_cookie(&self, login: &str) -> Result<String> {
        let token = format!("{:032x}", rand::random::<u128>());
        sqlx::query(
            "INSERT INTO device_cookies (token_hash, login, issued_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash(&token))
        .bind(login)
        .bind(to_ms(self.clock.now()))
        .execute(&self.write)
        .await?;
        Ok(token)
    }

    /// The login a device cookie was issued to, if it is known and younger than `max_age`.
    pub async fn device_cookie_login(
        &self,
        token: &str,
        max_age: Duration,
    ) -> Result<Option<String>> {
        let since = to_ms(self.clock.now()).saturating_sub(millis(max_age));
        let row = sqlx::query(
            "SELECT login FROM device_cookies WHERE token_hash = $1 AND issued_at >= $2",
        )
        .bind(token_hash(token))
        .bind(since)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| get_str(&r, "login")).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn attempts_count_in_a_window_that_starts_with_the_first() {
        with_test_store(|store, clock| async move {
            let none = store
                .attempts("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!(none.count, 0);
            for expected in 1..=3 {
                let a = store
                    .count_attempt("login:anna|203.0.113.7", MINUTE)
                    .await
                    .unwrap();
                assert_eq!(a.count, expected);
                assert_eq!(a.retry_after_secs, 60);
            }
            // Other keys are apart.
            let other = store
                .count_attempt("login:anna|198.51.100.1", MINUTE)
                .await
                .unwrap();
            assert_eq!(other.count, 1);
            clock.advance(chrono::Duration::seconds(45));
            let a = store
                .attempts("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!((a.count, a.retry_after_secs), (3, 15));
            let a = store
                .count_attempt("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!(
                (a.count, a.retry_after_secs),
                (4, 15),
                "the window did not move"
            );
            // Once the window is over, the count starts again.
            clock.advance(chrono::Duration::seconds(15));
            let a = store
                .attempts("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!(a.count, 0);
            let a = store
                .count_attempt("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!((a.count, a.retry_after_secs), (1, 60));
            store
                .forget_attempts("login:anna|203.0.113.7")
                .await
                .unwrap();
            let a = store
                .attempts("login:anna|203.0.113.7", MINUTE)
                .await
                .unwrap();
            assert_eq!(a.count, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn counters_are_shared_by_stores_on_one_database_and_old_rows_go() {
        with_test_store(|store, clock| async move {
            // A second handle on the same database (another instance, or the same one
            // after a restart) sees and adds to the same counter.
            let again = store.clone();
            store
                .count_attempt("status:ZTL-2026-000001|1.2.3.4", MINUTE)
                .await
                .unwrap();
            let a = again
                .count_attempt("status:ZTL-2026-000001|1.2.3.4", MINUTE)
                .await
                .unwrap();
            assert_eq!(a.count, 2);
            let counted = futures::future::join_all(
                (0..8).map(|_| store.count_attempt("client:1.2.3.4", MINUTE)),
            )
            .await;
            let mut counts: Vec<u32> = counted.into_iter().map(|a| a.unwrap().count).collect();
            counts.sort_unstable();
            assert_eq!(counts, (1..=8).collect::<Vec<_>>(), "no attempt lost");
            clock.advance(chrono::Duration::hours(2));
            store.count_attempt("client:5.6.7.8", MINUTE).await.unwrap();
            let token = store.issue_device_cookie("anna").await.unwrap();
            let purged = store
                .purge_attempts(Duration::from_secs(3600), Duration::from_secs(86_400))
                .await
                .unwrap();
            assert_eq!(
                purged, 2,
                "the two old counters, not the new one nor the cookie"
            );
            assert_eq!(
                store
                    .attempts("client:5.6.7.8", MINUTE)
                    .await
                    .unwrap()
                    .count,
                1
            );
            assert_eq!(
                store
                    .device_cookie_login(&token, Duration::from_secs(86_400))
                    .await
                    .unwrap(),
                Some("anna".to_owned())
            );
        })
        .await;
    }

    #[tokio::test]
    async fn device_cookies_name_their_login_until_they_expire() {
        with_test_store(|store, clock| async move {
            let day = Duration::from_secs(86_400);
            let token = store.issue_device_cookie("m.rossi").await.unwrap();
            assert_eq!(token.len(), 32);
            assert_ne!(token, store.issue_device_cookie("m.rossi").await.unwrap());
            assert_eq!(
                store
                    .device_cookie_login(&token, day)
                    .await
                    .unwrap()
                    .as_deref(),
                Some("m.rossi")
            );
            assert_eq!(store.device_cookie_login("0000", day).await.unwrap(), None);
            let stored: i64 = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM device_cookies WHERE token_hash = $1",
            )
            .bind(&token)
            .fetch_one(&store.read)
            .await
            .unwrap();
            assert_eq!(stored, 0, "the token itself is never stored");
            clock.advance(chrono::Duration::days(2));
            assert_eq!(store.device_cookie_login(&token, day).await.unwrap(), None);
            store.purge_attempts(day, day).await.unwrap();
            assert_eq!(
                store
                    .device_cookie_login(&token, Duration::from_secs(86_400 * 10))
                    .await
                    .unwrap(),
                None,
                "purged"
            );
        })
        .await;
    }
}
