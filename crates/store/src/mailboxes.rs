//! Mailbox pollers' progress and leases.
//!
//! Several instances may share one database; each mailbox must be polled by exactly one of
//! them at a time, and another must take over when that one dies. A lease row does both on
//! either engine: the holder renews it well before it lapses, anyone may take a lapsed one,
//! and only the holder may move the mailbox's cursor (a fenced write), so an instance that
//! stalled and lost its lease cannot rewind or skip what the new holder did.

use std::time::Duration;

use sqlx::Row;

use crate::{Result, Store, to_ms};

/// How far a mailbox has been read: UIDs up to `last_uid` under `uidvalidity` are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxCursor {
    /// The folder's UIDVALIDITY when `last_uid` was recorded (`None` before the first poll).
    pub uidvalidity: Option<i64>,
    /// Highest UID whose effects are committed.
    pub last_uid: i64,
}

impl MailboxCursor {
    /// The first UID still to read in a folder whose UIDVALIDITY is now `uidvalidity`: a
    /// changed value means the server renumbered the folder, so everything is read again
    /// (and recognised as already seen by the intake's dedupe).
    pub fn next_uid(&self, uidvalidity: i64) -> i64 {
        if self.uidvalidity == Some(uidvalidity) {
            self.last_uid + 1
        } else {
            1
        }
    }
}

/// A mailbox as the back office sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailboxStatus {
    /// The `[[mailbox]]` name.
    pub mailbox: String,
    /// Progress.
    pub uidvalidity: Option<i64>,
    /// Highest UID done.
    pub last_uid: i64,
    /// The instance polling it, while its lease runs.
    pub lease_owner: Option<String>,
    /// When the last poll finished (UTC ms).
    pub last_poll_at: Option<i64>,
    /// The last failure, cleared by the next good poll.
    pub last_error: Option<String>,
}

impl Store {
    /// Takes the mailbox's lease for `owner`, or renews it, for `ttl` from now. `false` when
    /// another instance holds a lease that has not lapsed.
    pub async fn acquire_mailbox_lease(
        &self,
        mailbox: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30));
        sqlx::query(
            "INSERT INTO mailbox_state (mailbox, last_uid, lease_until) VALUES ($1, 0, 0) \
             ON CONFLICT (mailbox) DO NOTHING",
        )
        .bind(mailbox)
        .execute(&self.write)
        .await?;
        let taken = sqlx::query(
            "UPDATE mailbox_state SET lease_owner = $2, lease_until = $3 \
             WHERE mailbox = $1 AND (lease_owner = $2 OR lease_owner IS NULL OR lease_until < $4)",
        )
        .bind(mailbox)
        .bind(owner)
        .bind(to_ms(until))
        .bind(to_ms(now))
        .execute(&self.write)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives up `owner`'s leases (at a clean shutdown), so another instance takes over at
    /// once instead of when the lease lapses.
    pub async fn release_mailbox_leases(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE mailbox_state SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Where the mailbox's poller has got to.
    pub async fn mailbox_cursor(&self, mailbox: &str) -> Result<MailboxCursor> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = $1")
            .bind(mailbox)
            .fetch_optional(&self.write)
            .await?;
        Ok(match row {
            Some(row) => MailboxCursor {
                uidvalidity: row.try_get("uidvalidity")?,
                last_uid: row.try_get("last_uid")?,
            },
            None => MailboxCursor::default(),
        })
    }

    /// Records that every message up to `cursor.last_uid` is done. Only the lease holder
    /// may; `false` when `owner` no longer holds the lease (nothing is written then).
    pub async fn advance_mailbox(
        &self,
        mailbox: &str,
        owner: &str,
        cursor: MailboxCursor,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mailbox_state SET uidvalidity = $3, last_uid = $4, last_poll_at = $5, last_error = NULL \
             WHERE mailbox = $1 AND lease_owner = $2",
        )
        .bind(mailbox)
        .bind(owner)
        .bind(cursor.uidvalidity)
        .bind(cursor.last_uid)
        .bind(to_ms(self.clock.now()))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps the last failure of a mailbox where staff can see it.
    pub async fn record_mailbox_error(&self, mailbox: &str, error: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO mailbox_state (mailbox, last_uid, lease_until, last_error) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (mailbox) DO UPDATE SET last_error = $2",
        )
        .bind(mailbox)
        .bind(error.chars().take(500).collect::<String>())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every mailbox polled so far, by name.
    pub async fn mailbox_statuses(&self) -> Result<Vec<MailboxStatus>> {
        let now = to_ms(self.clock.now());
        let rows = sqlx::query(
            "SELECT mailbox, uidvalidity, last_uid, lease_owner, lease_until, last_poll_at, last_error \
             FROM mailbox_state ORDER BY mailbox",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let lease_until: i64 = row.try_get("lease_until")?;
                let owner: Option<String> = row.try_get("lease_owner")?;
                Ok(MailboxStatus {
                    mailbox: row.try_get("mailbox")?,
                    uidvalidity: row.try_get("uidvalidity")?,
                    last_uid: row.try_get("last_uid")?,
                    lease_owner: owner.filter(|_| lease_until >= now),
                    last_poll_at: row.try_get("last_poll_at")?,
                    last_error: row.try_get("last_error")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::with_test_store;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn one_holder_at_a_time_and_takeover_after_lapse() {
        with_test_store(|store, clock| async move {
            assert!(store.acquire_mailbox_lease("pec", "a", TTL).await.unwrap());
            assert!(!store.acquire_mailbox_lease("pec", "b", TTL).await.unwrap());
            // The holder renews; the other still cannot take it.
            clock.advance(chrono::Duration::seconds(20));
            assert!(store.acquire_mailbox_lease("pec", "a", TTL).await.unwrap());
            clock.advance(chrono::Duration::seconds(20));
            assert!(!store.acquire_mailbox_lease("pec", "b", TTL).await.unwrap());
            // The holder dies: after the lease lapses the other takes over…
            clock.advance(chrono::Duration::seconds(11));
            assert!(store.acquire_mailbox_lease("pec", "b", TTL).await.unwrap());
            // …and the old holder can neither renew nor move the cursor.
            assert!(!store.acquire_mailbox_lease("pec", "a", TTL).await.unwrap());
            let cursor = MailboxCursor {
                uidvalidity: Some(7),
                last_uid: 99,
            };
            assert!(!store.advance_mailbox("pec", "a", cursor).await.unwrap());
            assert_eq!(
                store.mailbox_cursor("pec").await.unwrap(),
                MailboxCursor::default()
            );
            assert!(store.advance_mailbox("pec", "b", cursor).await.unwrap());
            assert_eq!(store.mailbox_cursor("pec").await.unwrap(), cursor);
            // Other mailboxes have their own leases.
            assert!(
                store
                    .acquire_mailbox_lease("email", "a", TTL)
                    .await
                    .unwrap()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_released_lease_is_free_at_once() {
        with_test_store(|store, _clock| async move {
            assert!(store.acquire_mailbox_lease("pec", "a", TTL).await.unwrap());
            store.release_mailbox_leases("a").await.unwrap();
            assert!(store.acquire_mailbox_lease("pec", "b", TTL).await.unwrap());
            let statuses = store.mailbox_statuses().await.unwrap();
            assert_eq!(statuses.len(), 1);
            assert_eq!(statuses[0].lease_owner.as_deref(), Some("b"));
        })
        .await;
    }

    #[tokio::test]
    async fn errors_are_kept_until_the_next_good_poll() {
        with_test_store(|store, _clock| async move {
            store
                .record_mailbox_error("email", "login refused")
                .await
                .unwrap();
            assert_eq!(
                store.mailbox_statuses().await.unwrap()[0]
                    .last_error
                    .as_deref(),
                Some("login refused")
            );
            assert!(
                store
                    .acquire_mailbox_lease("email", "a", TTL)
                    .await
                    .unwrap()
            );
            let cursor = MailboxCursor {
                uidvalidity: Some(1),
                last_uid: 3,
            };
            assert!(store.advance_mailbox("email", "a", cursor).await.unwrap());
            assert_eq!(store.mailbox_statuses().await.unwrap()[0].last_error, None);
        })
        .await;
    }

    #[test]
    fn a_new_uidvalidity_restarts_from_the_first_message() {
        let cursor = MailboxCursor {
            uidvalidity: Some(5),
            last_uid: 40,
        };
        assert_eq!(cursor.next_uid(5), 41);
        assert_eq!(cursor.next_uid(6), 1);
        assert_eq!(MailboxCursor::default().next_uid(5), 1);
    }
}
