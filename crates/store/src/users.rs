//! Users, roles, passwords (argon2) and API tokens (stored as SHA-256 of a 256-bit secret).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sportello_domain::roles::Role;

use crate::{Result, Store, StoreError, get_i64, get_str, to_ms};

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

    /// The active user owning `token`, if any.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<AuthUser>> {
        let row = sqlx::query(
            "SELECT u.id, u.login, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active = 1",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
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
        let parsed = PasswordHash::new(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
        {
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
    use crate::testing::with_test_store;
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
}
