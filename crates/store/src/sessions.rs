//! Sessions of the web pages: the browser holds a random token in an `HttpOnly` cookie,
//! the database only its SHA-256, with the session's CSRF token and its expiry. A
//! session lapses after `security.session_idle_minutes` without use (30 by default) and
//! after `security.session_max_hours` in any case (12), and at once when its user is
//! disabled, their password reset or changed.

use chrono::Duration;

use crate::users::{AuthUser, end_sessions_in, new_token, token_hash, user_from_row};
use crate::{Result, Store, get_i64, get_str, to_ms};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who is signed in.
    pub user: AuthUser,
    /// The token every state-changing form of this session must carry.
    pub csrf_token: String,
}

impl Store {
    /// Milliseconds without use after which a session lapses.
    fn idle_ms(&self) -> i64 {
        self.settings.session_idle_minutes.max(1) * 60_000
    }

    /// Opens a session for a user who has just proved who they are; returns the cookie
    /// token (shown once, stored hashed) and the CSRF token. Records the sign-in's instant
    /// (shown by `sportello user list`).
    pub async fn create_session(&self, user_id: i64) -> Result<(String, String)> {
        self.create_session_with(user_id, false).await
    }

    /// Opens a session; a `pending` one (password given, TOTP code not yet) is not
    /// signed in: only [`Store::pending_session`] finds it, until
    /// [`Store::complete_second_factor`].
    pub async fn create_session_with(
        &self,
        user_id: i64,
        pending: bool,
    ) -> Result<(String, String)> {
        let now = self.clock.now();
        let token = new_token();
        let csrf = hex::encode(rand::random::<[u8; 32]>());
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(to_ms(now))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, second_factor_pending) \
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(token_hash(&token))
        .bind(user_id)
        .bind(&csrf)
        .bind(to_ms(now))
        .bind(to_ms(
            now + Duration::hours(self.settings.session_max_hours.max(1)),
        ))
        .bind(i64::from(pending))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((token, csrf))
    }

    /// The live session of a cookie token, its use recorded (at most once a minute, so
    /// page views do not each write); `None` when unknown, lapsed, or the user disabled.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        self.session_in(token, false).await
    }

    /// A session waiting for its TOTP code (password given), lapsing like any other.
    pub async fn pending_session(&self, token: &str) -> Result<Option<Session>> {
        self.session_in(token, true).await
    }

    /// The second factor was given: the pending session is signed in.
    pub async fn complete_second_factor(&self, token: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET second_factor_pending = 0 WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn session_in(&self, token: &str, pending: bool) -> Result<Option<Session>> {
        let now = to_ms(self.clock.now());
        let hash = token_hash(token);
        let row = sqlx::query(
            "SELECT u.id, u.login, u.name, u.role, s.csrf_token, s.last_seen_at FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND u.active = 1 \
             AND s.second_factor_pending = $4",
        )
        .bind(&hash)
        .bind(now)
        .bind(now - self.idle_ms())
        .bind(i64::from(pending))
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if now - get_i64(&row, "last_seen_at")? > 60_000 {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&hash)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(Session {
            user: user_from_row(&row)?,
            csrf_token: get_str(&row, "csrf_token")?,
        }))
    }

    /// Ends a session (logout); ending an unknown one is not an error.
    pub async fn end_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Ends every session of a user but `keep` (the cookie token of the session that
    /// asked, when a user changes their own password); returns how many ended.
    pub async fn end_user_sessions(&self, user_id: i64, keep: Option<&str>) -> Result<u64> {
        let mut conn = self.write.acquire().await?;
        end_sessions_in(&mut conn, user_id, keep).await
    }

    /// A private link to a case for its citizen (shown once after applying online): the
    /// token to put in `/stato/{token}`, stored hashed.
    pub async fn create_case_link(&self, reference: &str) -> Result<String> {
        let token = hex::encode(rand::random::<[u8; 24]>());
        sqlx::query(
            "INSERT INTO case_links (token_hash, case_id, created_at) \
             SELECT $1, id, $2 FROM cases WHERE reference = $3",
        )
        .bind(token_hash(&token))
        .bind(to_ms(self.clock.now()))
        .bind(reference)
        .execute(&self.write)
        .await?;
        Ok(token)
    }

    /// The reference of the case a private link opens.
    pub async fn case_of_link(&self, token: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT c.reference FROM case_links l JOIN cases c ON c.id = l.case_id WHERE l.token_hash = $1",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| get_str(&r, "reference")).transpose()
    }

    /// Forgets lapsed sessions; returns how many.
    pub async fn purge_sessions(&self) -> Result<u64> {
        let now = to_ms(self.clock.now());
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(now - self.idle_ms())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_test_store;
    use sportello_domain::roles::Role;

    #[tokio::test]
    async fn a_session_lives_while_used_and_lapses_when_idle_or_old() {
        with_test_store(|store, clock| async move {
            store
                .add_user("anna", "Anna Blu", Role::Operator)
                .await
                .unwrap();
            let user = store.user_by_login("anna").await.unwrap().unwrap();
            let (token, csrf) = store.create_session(user.id).await.unwrap();
            let session = store.session(&token).await.unwrap().unwrap();
            assert_eq!(
                (session.user.login.as_str(), session.csrf_token.as_str()),
                ("anna", csrf.as_str())
            );
            assert!(store.session("spt_wrong").await.unwrap().is_none());
            // Used every 25 minutes: alive until the 12 hours are up.
            for _ in 0..28 {
                clock.advance(Duration::minutes(25));
                assert!(store.session(&token).await.unwrap().is_some());
            }
            clock.advance(Duration::minutes(25));
            assert!(
                store.session(&token).await.unwrap().is_none(),
                "12 hours at most"
            );
            // Idle for more than 30 minutes (the default): gone; 29 minutes is fine.
            let (idle, _) = store.create_session(user.id).await.unwrap();
            clock.advance(Duration::minutes(29));
            assert!(store.session(&idle).await.unwrap().is_some());
            clock.advance(Duration::minutes(31));
            assert!(store.session(&idle).await.unwrap().is_none());
            assert_eq!(store.purge_sessions().await.unwrap(), 2);
            // Ending a user's sessions keeps only the one named.
            let (a, _) = store.create_session(user.id).await.unwrap();
            let (b, _) = store.create_session(user.id).await.unwrap();
            assert_eq!(store.end_user_sessions(user.id, Some(&a)).await.unwrap(), 1);
            assert!(store.session(&a).await.unwrap().is_some());
            assert!(store.session(&b).await.unwrap().is_none());
            store.end_session(&a).await.unwrap();
            // A session waiting for its second factor is not signed in until it is given.
            let (waiting, _) = store.create_session_with(user.id, true).await.unwrap();
            assert!(store.session(&waiting).await.unwrap().is_none());
            assert!(store.pending_session(&waiting).await.unwrap().is_some());
            store.complete_second_factor(&waiting).await.unwrap();
            assert!(store.session(&waiting).await.unwrap().is_some());
            assert!(store.pending_session(&waiting).await.unwrap().is_none());
            store.end_session(&waiting).await.unwrap();
            // The idle limit is the configuration's.
            let patient = Store {
                settings: std::sync::Arc::new(crate::StoreSettings {
                    session_idle_minutes: 120,
                    session_max_hours: 1,
                    ..crate::StoreSettings::default()
                }),
                ..store.clone()
            };
            let (slow, _) = patient.create_session(user.id).await.unwrap();
            clock.advance(Duration::minutes(59));
            assert!(
                store.session(&slow).await.unwrap().is_none(),
                "idle for 59 > 30"
            );
            assert!(patient.session(&slow).await.unwrap().is_some());
            clock.advance(Duration::minutes(2));
            assert!(
                patient.session(&slow).await.unwrap().is_none(),
                "1 hour at most"
            );
            // A private link opens its case, and nothing else.
            let case = store
                .create_case(crate::cases::tests::request("ztl_permit"))
                .await
                .unwrap();
            let link = store
                .create_case_link(&case.summary.reference)
                .await
                .unwrap();
            assert_eq!(link.len(), 48);
            assert_eq!(
                store.case_of_link(&link).await.unwrap(),
                Some(case.summary.reference.clone())
            );
            assert_eq!(store.case_of_link("0").await.unwrap(), None);
            // Logout.
            let (other, _) = store.create_session(user.id).await.unwrap();
            store.end_session(&other).await.unwrap();
            assert!(store.session(&other).await.unwrap().is_none());
        })
        .await;
    }
}
