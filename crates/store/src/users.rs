//! Users, roles, passwords (argon2) and API tokens (stored as SHA-256 of a 256-bit secret).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sportello_domain::roles::Role;

use crate::{
    Result, Store, StoreError, from_ms, get_i64, get_opt_i64, get_opt_str, get_str, to_ms,
};

/// The shortest password a user may choose (ASVS V2.1.1).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest, so that hashing cannot be made to cost without bound.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// One user as `sportello user list` and `/ufficio/utenti` show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// False once disabled: no session or token of theirs works.
    pub active: bool,
    /// Their last sign-in to the back office, if any.
    pub last_sign_in: Option<DateTime<Utc>>,
    /// API tokens neither revoked nor expired.
    pub live_tokens: i64,
    /// Whether they have a second factor (TOTP) set up.
    pub second_factor: bool,
}

/// Bumps the counter every instance's token cache watches: called in the transaction of
/// every change to users or tokens, so that a revocation is seen everywhere at once.
async fn bump_auth_version(conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("UPDATE auth_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user but `keep` (a cookie token) on `conn`, so that user
/// changes end sessions in their own transaction; returns how many ended.
pub(crate) async fn end_sessions_in(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64> {
    // No stored hash is empty, so without `keep` every session ends.
    let keep = keep.map(token_hash).unwrap_or_default();
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(keep)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Checks a password a user chose: long enough, not too long, not their login.
pub fn check_new_password(login: &str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(StoreError::invalid(
            "new_password",
            format!("use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(StoreError::invalid(
            "new_password",
            format!("use at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.trim().to_lowercase() == login.to_lowercase() {
        return Err(StoreError::invalid("new_password", "must not be the login"));
    }
    Ok(())
}

fn password_matches(stored: &str, password: &str) -> Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A signed-in user, as the web layer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthUser {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Display name.
    pub name: String,
    /// Role, deciding every permission.
    pub role: Role,
}

/// What `sportello user add` prints once: the only time the secrets are visible.
#[derive(Debug, Clone)]
pub struct NewUserSecrets {
    /// The generated password.
    pub password: String,
    /// The generated API token.
    pub token: String,
}

/// The SHA-256 of a token: tokens are random 256-bit secrets, so a fast hash is enough
/// and lets every request be checked with one indexed lookup.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("spt_{}", hex::encode(bytes))
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn check_login(login: &str) -> Result<()> {
    let ok = (1..=64).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "login",
            "use 1 to 64 lower-case letters, digits, '.', '_' or '-'",
        ))
    }
}

pub(crate) fn user_from_row(row: &sqlx::any::AnyRow) -> Result<AuthUser> {
    let role = get_str(row, "role")?;
    Ok(AuthUser {
        id: get_i64(row, "id")?,
        login: get_str(row, "login")?,
        name: get_str(row, "name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
    })
}

impl Store {
    /// Creates a user with a generated password and a first API token.
    pub async fn add_user(&self, login: &str, name: &str, role: Role) -> Result<NewUserSecrets> {
        check_login(login)?;
        sportello_domain::names::check_name(name)
            .map_err(|e| StoreError::invalid("name", e.to_string()))?;
        let password = random_string(20);
        let token = new_token();
        let hash = hash_password(&password)?;
        let now = to_ms(self.clock.now());
        let mut tx = self.write.begin().await?;
        let exists = sqlx::query("SELECT id FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "user '{login}' already exists"
            )));
        }
        let display = if name.trim().is_empty() {
            login
        } else {
            name.trim()
        };
        let row = sqlx::query(
            "INSERT INTO users (login, name, role, password_hash, active, created_at) VALUES ($1, $2, $3, $4, 1, $5) RETURNING id",
        )
        .bind(login)
        .bind(display)
        .bind(role.as_str())
        .bind(&hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let user_id = get_i64(&row, "id")?;
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(user_id)
            .bind(token_hash(&token))
            .bind("created with the user")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(NewUserSecrets { password, token })
    }

    /// Gives an existing user a new generated password and a new API token (the old
    /// tokens stay valid); used by the demo, which prints its logins at every start.
    pub async fn reset_credentials(&self, login: &str) -> Result<NewUserSecrets> {
        let password = random_string(20);
        let token = new_token();
        let hash = hash_password(&password)?;
        let now = to_ms(self.clock.now());
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("UPDATE users SET password_hash = $1 WHERE login = $2 RETURNING id")
            .bind(&hash)
            .bind(login)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {login}")))?;
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(get_i64(&row, "id")?)
            .bind(token_hash(&token))
            .bind("reset")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(NewUserSecrets { password, token })
    }

    /// The active user owning `token`, if any (neither revoked nor expired).
    pub async fn user_by_token(&self, token: &str) -> Result<Option<AuthUser>> {
        Ok(self.token_owner(token).await?.map(|(user, _)| user))
    }

    /// The active user owning a live `token`, with the instant the token expires (the
    /// token cache keeps it no longer).
    pub async fn token_owner(
        &self,
        token: &str,
    ) -> Result<Option<(AuthUser, Option<DateTime<Utc>>)>> {
        let row = sqlx::query(
            "SELECT u.id, u.login, u.name, u.role, t.expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active = 1 \
             AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash(token))
        .bind(to_ms(self.clock.now()))
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires = get_opt_i64(&row, "expires_at")?.map(from_ms).transpose()?;
        Ok(Some((user_from_row(&row)?, expires)))
    }

    /// The counter bumped by every change to users and tokens: a cache of tokens is
    /// valid while it has not moved. One primary-key read.
    pub async fn auth_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT version FROM auth_version WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        get_i64(&row, "version")
    }

    /// Every user, by login, with their last sign-in and live tokens.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>> {
        let rows = sqlx::query(
            "SELECT u.id, u.login, u.name, u.role, u.active, u.last_sign_in_at, u.totp_secret, \
             (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL \
              AND (t.expires_at IS NULL OR t.expires_at > $1)) AS live_tokens \
             FROM users u ORDER BY u.login",
        )
        .bind(to_ms(self.clock.now()))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let user = user_from_row(row)?;
                Ok(UserSummary {
                    id: user.id,
                    login: user.login,
                    name: user.name,
                    role: user.role,
                    active: get_i64(row, "active")? != 0,
                    last_sign_in: get_opt_i64(row, "last_sign_in_at")?
                        .map(from_ms)
                        .transpose()?,
                    live_tokens: get_i64(row, "live_tokens")?,
                    second_factor: get_opt_str(row, "totp_secret")?.is_some(),
                })
            })
            .collect()
    }

    /// The id of a user, active or not; `NotFound` naming the login otherwise.
    async fn user_id(conn: &mut sqlx::AnyConnection, login: &str) -> Result<i64> {
        let row = sqlx::query("SELECT id FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user '{login}'")))?;
        get_i64(&row, "id")
    }

    /// Disables (`active = false`: their sessions end, their tokens stop working) or
    /// enables a user; returns whether anything changed.
    pub async fn set_user_active(&self, login: &str, active: bool) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let id = Self::user_id(&mut tx, login).await?;
        let done = sqlx::query("UPDATE users SET active = $1 WHERE id = $2 AND active <> $1")
            .bind(i64::from(active))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if !active {
            end_sessions_in(&mut tx, id, None).await?;
        }
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives a user a new generated password (returned, to be shown once) and ends their
    /// sessions; their API tokens stay (`revoke_tokens` ends those).
    pub async fn reset_password(&self, login: &str) -> Result<String> {
        let password = random_string(20);
        let hash = hash_password(&password)?;
        let mut tx = self.write.begin().await?;
        let id = Self::user_id(&mut tx, login).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        end_sessions_in(&mut tx, id, None).await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(password)
    }

    /// A user changes their own password: the current one must match, the new one pass
    /// [`check_new_password`]; every other session of theirs ends (`keep` is the cookie
    /// token of the session that asked).
    pub async fn change_password(
        &self,
        user_id: i64,
        current: &str,
        new: &str,
        keep: Option<&str>,
    ) -> Result<()> {
        let row =
            sqlx::query("SELECT login, password_hash FROM users WHERE id = $1 AND active = 1")
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
        let login = get_str(&row, "login")?;
        if !password_matches(&get_str(&row, "password_hash")?, current)? {
            return Err(StoreError::invalid(
                "current_password",
                "is not the current password",
            ));
        }
        check_new_password(&login, new)?;
        if new == current {
            return Err(StoreError::invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        let hash = hash_password(new)?;
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        end_sessions_in(&mut tx, user_id, keep).await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Issues a new API token for a user (returned, to be shown once), valid until
    /// `expires_at` when given.
    pub async fn create_token(
        &self,
        login: &str,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String> {
        let token = new_token();
        let mut tx = self.write.begin().await?;
        let id = Self::user_id(&mut tx, login).await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(token_hash(&token))
        .bind(label)
        .bind(to_ms(self.clock.now()))
        .bind(expires_at.map(to_ms))
        .execute(&mut *tx)
        .await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revokes every live API token of a user; returns how many.
    pub async fn revoke_tokens(&self, login: &str) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let id = Self::user_id(&mut tx, login).await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(to_ms(self.clock.now()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Whether a user has a second factor (TOTP) set up.
    pub async fn has_second_factor(&self, user_id: i64) -> Result<bool> {
        let row = sqlx::query("SELECT totp_secret FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row
            .map(|r| get_opt_str(&r, "totp_secret"))
            .transpose()?
            .flatten()
            .is_some())
    }

    /// A new random TOTP secret (160 bits, RFC 4226's recommendation), to show to the user
    /// and confirm with [`Store::enrol_second_factor`] once they type its first code.
    pub fn new_second_factor_secret() -> Vec<u8> {
        rand::rng().random::<[u8; 20]>().to_vec()
    }

    /// Sets up a user's second factor when `code` is valid now for `secret`; false (and
    /// nothing stored) otherwise.
    pub async fn enrol_second_factor(
        &self,
        user_id: i64,
        secret: &[u8],
        code: &str,
    ) -> Result<bool> {
        let now = self.clock.now().timestamp();
        let Some(step) = sportello_domain::totp::accept(secret, code, now, None) else {
            return Ok(false);
        };
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = $2 WHERE id = $3")
            .bind(sportello_domain::totp::secret_base32(secret))
            .bind(step)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a user's second factor (an admin's help when a phone is lost).
    pub async fn remove_second_factor(&self, login: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let id = Self::user_id(&mut tx, login).await?;
        sqlx::query("UPDATE users SET totp_secret = NULL, totp_last_step = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bump_auth_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks a user's TOTP code: valid now (one step either side) and of a step later
    /// than the last accepted, which it becomes (atomically: two requests racing with one
    /// code cannot both pass). False for a user without a second factor.
    pub async fn check_second_factor(&self, user_id: i64, code: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT totp_secret, totp_last_step FROM users WHERE id = $1 AND active = 1",
        )
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let Some(secret) = get_opt_str(&row, "totp_secret")?
            .as_deref()
            .and_then(sportello_domain::totp::secret_from_base32)
        else {
            return Ok(false);
        };
        let last = get_opt_i64(&row, "totp_last_step")?;
        let now = self.clock.now().timestamp();
        let Some(step) = sportello_domain::totp::accept(&secret, code, now, last) else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The active user with this login and password, if they match.
    pub async fn user_by_password(&self, login: &str, password: &str) -> Result<Option<AuthUser>> {
        let row = sqlx::query("SELECT id, login, name, role, password_hash FROM users WHERE login = $1 AND active = 1")
            .bind(login)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            // Spend the same time as a real check, so logins cannot be probed by timing.
            let _ = hash_password(password);
            return Ok(None);
        };
        let stored = get_str(&row, "password_hash")?;
        if password_matches(&stored, password)? {
            Ok(Some(user_from_row(&row)?))
        } else {
            Ok(None)
        }
    }

    /// The active user with this login.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<AuthUser>> {
        let row =
            sqlx::query("SELECT id, login, name, role FROM users WHERE login = $1 AND active = 1")
                .bind(login)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// How many users exist (to tell a fresh installation how to add the first one).
    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.read)
            .await?;
        get_i64(&row, "n")
    }
}

#[cfg(test)]
mod tests {
    use super::check_new_password;
    use crate::StoreError;
    use crate::testing::with_test_store;
    use sportello_domain::clock::Clock;
    use sportello_domain::roles::Role;

    #[tokio::test]
    async fn users_tokens_and_passwords() {
        with_test_store(|store, _clock| async move {
            let secrets = store
                .add_user("op1", "Operatrice Uno", Role::Operator)
                .await
                .unwrap();
            assert!(secrets.token.starts_with("spt_") && secrets.token.len() == 68);
            let user = store.user_by_token(&secrets.token).await.unwrap().unwrap();
            assert_eq!((user.login.as_str(), user.role), ("op1", Role::Operator));
            assert!(store.user_by_token("spt_wrong").await.unwrap().is_none());
            let by_pw = store
                .user_by_password("op1", &secrets.password)
                .await
                .unwrap();
            assert_eq!(by_pw.map(|u| u.login), Some("op1".to_string()));
            assert!(
                store
                    .user_by_password("op1", "nope")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .user_by_password("ghost", "nope")
                    .await
                    .unwrap()
                    .is_none()
            );
            let again = store.add_user("op1", "", Role::Admin).await;
            assert!(matches!(again, Err(crate::StoreError::Conflict(_))));
            assert!(matches!(
                store.add_user("Bad Login", "", Role::Admin).await,
                Err(crate::StoreError::Invalid { .. })
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn disabling_revoking_expiring_and_passwords() {
        with_test_store(|store, clock| async move {
            let anna = store
                .add_user("anna", "Anna", Role::Operator)
                .await
                .unwrap();
            store.add_user("bruno", "", Role::Admin).await.unwrap();
            let v0 = store.auth_version().await.unwrap();
            // A disabled user's token stops working, and comes back when enabled.
            assert!(store.set_user_active("anna", false).await.unwrap());
            assert!(
                !store.set_user_active("anna", false).await.unwrap(),
                "no change"
            );
            assert!(store.auth_version().await.unwrap() > v0);
            assert!(store.user_by_token(&anna.token).await.unwrap().is_none());
            assert!(
                store
                    .user_by_password("anna", &anna.password)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(store.set_user_active("anna", true).await.unwrap());
            assert!(store.user_by_token(&anna.token).await.unwrap().is_some());
            assert!(matches!(
                store.set_user_active("ghost", false).await,
                Err(StoreError::NotFound(_))
            ));
            // A token with an expiry works until then.
            let v1 = store.auth_version().await.unwrap();
            let until = clock.now() + chrono::Duration::days(2);
            let short = store
                .create_token("anna", "test", Some(until))
                .await
                .unwrap();
            assert!(store.auth_version().await.unwrap() > v1);
            let (_, expires) = store.token_owner(&short).await.unwrap().unwrap();
            assert_eq!(
                expires.map(|e| e.timestamp_millis()),
                Some(until.timestamp_millis())
            );
            let list = store.list_users().await.unwrap();
            let row = list.iter().find(|u| u.login == "anna").unwrap();
            assert_eq!(
                (row.live_tokens, row.active, row.last_sign_in),
                (2, true, None)
            );
            clock.advance(chrono::Duration::days(2));
            assert!(
                store.token_owner(&short).await.unwrap().is_none(),
                "expired"
            );
            let list = store.list_users().await.unwrap();
            assert_eq!(
                list.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(),
                ["anna", "bruno"]
            );
            assert_eq!(list[0].live_tokens, 1);
            // Revoking ends all of the user's tokens, and only theirs.
            let bruno = store.create_token("bruno", "x", None).await.unwrap();
            assert_eq!(store.revoke_tokens("anna").await.unwrap(), 2);
            assert!(store.user_by_token(&anna.token).await.unwrap().is_none());
            assert!(store.user_by_token(&bruno).await.unwrap().is_some());
            assert!(matches!(
                store.revoke_tokens("ghost").await,
                Err(StoreError::NotFound(_))
            ));
            // A reset password works, the old one does not, and sessions end.
            let user = store.user_by_login("anna").await.unwrap().unwrap();
            let (session, _) = store.create_session(user.id).await.unwrap();
            let list = store.list_users().await.unwrap();
            assert_eq!(
                list[0].last_sign_in.map(|t| t.timestamp()),
                Some(clock.now().timestamp())
            );
            let fresh = store.reset_password("anna").await.unwrap();
            assert!(store.session(&session).await.unwrap().is_none());
            assert!(
                store
                    .user_by_password("anna", &anna.password)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .user_by_password("anna", &fresh)
                    .await
                    .unwrap()
                    .is_some()
            );
            // Changing one's own password: the current one is needed, the new one checked,
            // the other sessions end and the asking one stays.
            let (mine, _) = store.create_session(user.id).await.unwrap();
            let (other, _) = store.create_session(user.id).await.unwrap();
            let field = |r: Result<(), StoreError>| match r {
                Err(StoreError::Invalid { field, .. }) => field,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                field(
                    store
                        .change_password(user.id, "wrong", "a long enough one", Some(&mine))
                        .await
                ),
                "current_password"
            );
            assert_eq!(
                field(store.change_password(user.id, &fresh, "short", None).await),
                "new_password"
            );
            assert_eq!(
                field(store.change_password(user.id, &fresh, "ANNA", None).await),
                "new_password"
            );
            assert!(check_new_password("annabellissima", "AnnaBellissima").is_err());
            store
                .change_password(user.id, &fresh, "una frase lunga e mia", Some(&mine))
                .await
                .unwrap();
            assert!(store.session(&mine).await.unwrap().is_some());
            assert!(store.session(&other).await.unwrap().is_none());
            assert!(
                store
                    .user_by_password("anna", &fresh)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .user_by_password("anna", "una frase lunga e mia")
                    .await
                    .unwrap()
                    .is_some()
            );
            // Disabling ends sessions too.
            store.set_user_active("anna", false).await.unwrap();
            assert!(store.session(&mine).await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn a_second_factor_is_enrolled_with_a_code_and_each_code_works_once() {
        with_test_store(|store, clock| async move {
            use sportello_domain::totp::code_at;
            store.add_user("anna", "", Role::Admin).await.unwrap();
            let user = store.user_by_login("anna").await.unwrap().unwrap();
            assert!(!store.has_second_factor(user.id).await.unwrap());
            assert!(!store.check_second_factor(user.id, "000000").await.unwrap());
            let secret = crate::Store::new_second_factor_secret();
            assert_eq!(secret.len(), 20);
            let now = || clock.now().timestamp();
            assert!(
                !store
                    .enrol_second_factor(user.id, &secret, "000000x")
                    .await
                    .unwrap()
            );
            assert!(!store.has_second_factor(user.id).await.unwrap());
            let first = code_at(&secret, now()).unwrap();
            assert!(
                store
                    .enrol_second_factor(user.id, &secret, &first)
                    .await
                    .unwrap()
            );
            assert!(store.has_second_factor(user.id).await.unwrap());
            assert!(store.list_users().await.unwrap()[0].second_factor);
            // The enrolment's code is spent; the next step's works once, also a step late.
            assert!(!store.check_second_factor(user.id, &first).await.unwrap());
            clock.advance(chrono::Duration::seconds(30));
            let next = code_at(&secret, now()).unwrap();
            clock.advance(chrono::Duration::seconds(30));
            assert!(store.check_second_factor(user.id, &next).await.unwrap());
            assert!(
                !store.check_second_factor(user.id, &next).await.unwrap(),
                "reused"
            );
            clock.advance(chrono::Duration::seconds(60));
            let late = code_at(&secret, now()).unwrap();
            clock.advance(chrono::Duration::seconds(60));
            assert!(
                !store.check_second_factor(user.id, &late).await.unwrap(),
                "two steps late"
            );
            store.remove_second_factor("anna").await.unwrap();
            assert!(!store.has_second_factor(user.id).await.unwrap());
        })
        .await;
    }
}
