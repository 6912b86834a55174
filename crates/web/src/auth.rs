//! Who is calling: API tokens (`Authorization: Bearer`), looked up by hash and cached
//! briefly so that hot read paths do not pay a database round trip per request. The
//! cache is only as good as the store's `auth_version` counter, which every change to
//! users and tokens bumps and which is read at most every [`VERSION_CHECK`]: a revoked
//! token or a disabled user is refused within that time on every instance.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sportello_domain::roles::Permission;
use sportello_store::Store;
use sportello_store::users::{AuthUser, token_hash};

use crate::AppState;
use crate::error::ApiError;

/// How long a token seen valid is trusted at most, even while nothing changes.
const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;
/// How often the cache asks the database whether users or tokens changed (one
/// primary-key read): the bound on how late a revocation takes effect.
pub const VERSION_CHECK: Duration = Duration::from_millis(250);

/// A token found valid: who owns it, until when, and under which `auth_version`.
#[derive(Debug, Clone)]
struct Cached {
    user: AuthUser,
    expires: Option<DateTime<Utc>>,
    version: i64,
    at: Instant,
}

/// Recently validated tokens, keyed by their hash (the token itself is never kept).
#[derive(Debug)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, Cached>>,
    /// The `auth_version` last read, and when.
    seen: Mutex<Option<(i64, Instant)>>,
    /// How often `auth_version` is read again ([`VERSION_CHECK`]).
    check_every: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(VERSION_CHECK)
    }
}

impl TokenCache {
    /// A cache reading `auth_version` again every `check_every`.
    pub fn new(check_every: Duration) -> Self {
        TokenCache {
            entries: RwLock::default(),
            seen: Mutex::default(),
            check_every,
        }
    }

    /// The `auth_version` this cache trusts, read again from the store when the last
    /// reading is older than [`VERSION_CHECK`]; entries of another version are dropped.
    async fn version(&self, store: &Store) -> Result<i64, ApiError> {
        let fresh = self
            .seen
            .lock()
            .ok()
            .and_then(|seen| *seen)
            .filter(|(_, at)| at.elapsed() < self.check_every);
        if let Some((version, _)) = fresh {
            return Ok(version);
        }
        let version = store.auth_version().await?;
        let moved = match self.seen.lock() {
            Ok(mut seen) => {
                let moved = seen.is_some_and(|(v, _)| v != version);
                *seen = Some((version, Instant::now()));
                moved
            }
            Err(_) => true,
        };
        if moved && let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
        Ok(version)
    }

    fn get(&self, hash: &str, version: i64, now: DateTime<Utc>) -> Option<AuthUser> {
        let entries = self.entries.read().ok()?;
        let hit = entries.get(hash)?;
        (hit.version == version
            && hit.at.elapsed() < CACHE_TTL
            && hit.expires.is_none_or(|e| e > now))
        .then(|| hit.user.clone())
    }

    fn put(&self, hash: String, user: AuthUser, expires: Option<DateTime<Utc>>, version: i64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, hit| hit.at.elapsed() < CACHE_TTL && hit.version == version);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(
                hash,
                Cached {
                    user,
                    expires,
                    version,
                    at: Instant::now(),
                },
            );
        }
    }
}

/// The authenticated caller of an API endpoint.
#[derive(Debug, Clone)]
pub struct Caller(pub AuthUser);

impl Caller {
    /// Refuses with 403 unless the caller's role holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<&AuthUser, ApiError> {
        if self.0.role.can(permission) {
            Ok(&self.0)
        } else {
            crate::guard::note(
                sportello_domain::security::SecurityEventKind::PermissionRefused,
                Some(&self.0.login),
                format!("may not {}", describe(permission)),
            );
            Err(ApiError::Forbidden(describe(permission)))
        }
    }
}

fn describe(p: Permission) -> &'static str {
    match p {
        Permission::CreateCase => "open cases",
        Permission::ReadCase => "read case files",
        Permission::ActOnCase => "act on cases",
        Permission::UploadDocument => "upload documents",
        Permission::ReadDocument => "read documents",
        Permission::SendMessage => "write to citizens",
        Permission::PostInbound => "deliver inbound messages",
        Permission::LookupCaller => "look up callers",
        Permission::ReadReports => "read reports",
        Permission::VerifyPermit => "verify permits",
        Permission::ReadWhitelist => "read the whitelist",
        Permission::CheckTransits => "check transits",
        Permission::ManagePermits => "manage permits",
        Permission::ContestTransit => "report contested transits",
        Permission::ManageUsers => "manage users",
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = crate::client::ClientAddress::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        authenticate(parts, state, client).await
    }
}

/// Resolves the bearer token; a client that sent too many wrong tokens gets only tokens
/// already known valid (from the cache), everything else is 429. Wrong tokens are counted
/// per client only (`crate::guard`), so a valid token is never refused for others' guesses.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    client: crate::client::ClientAddress,
) -> Result<Caller, ApiError> {
    let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return from_session(parts, state).await;
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
    else {
        if crate::guard::tokens_blocked(state, client).await {
            return Err(ApiError::TooManyRequests);
        }
        crate::guard::token_failed(state, client, None).await;
        return Err(ApiError::Unauthorized);
    };
    let hash = token_hash(token);
    // The version is read before the token: an entry is tagged with a version no newer
    // than the data it was checked against, so a revocation racing with it is not missed.
    let version = state.tokens.version(&state.store).await?;
    let now = state.store.clock().now();
    if let Some(user) = state.tokens.get(&hash, version, now) {
        return Ok(Caller(user));
    }
    if crate::guard::tokens_blocked(state, client).await {
        return Err(ApiError::TooManyRequests);
    }
    let Some((user, expires)) = state.store.token_owner(token).await? else {
        crate::guard::token_failed(state, client, Some(&hash)).await;
        return Err(ApiError::Unauthorized);
    };
    state.tokens.put(hash, user.clone(), expires, version);
    Ok(Caller(user))
}

/// The back office's session cookie, for the API called from its pages (a document
/// opened from a case page). A request that changes state must also carry the session's
/// CSRF token in `X-CSRF-Token`, which another site cannot read.
async fn from_session(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let token = crate::cookies::cookie(&parts.headers, crate::cookies::SESSION_COOKIE)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or(ApiError::Unauthorized)?;
    let session = state
        .store
        .session(&token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !crate::cookies::same_token(sent, &session.csrf_token) {
            crate::guard::note(
                sportello_domain::security::SecurityEventKind::CsrfRefused,
                Some(&session.user.login),
                format!(
                    "{} {} without the session's CSRF token",
                    parts.method,
                    parts.uri.path()
                ),
            );
            return Err(ApiError::Forbidden(
                "change data without the session's CSRF token",
            ));
        }
    }
    Ok(Caller(session.user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_domain::clock::Clock;

    #[tokio::test]
    async fn the_cache_forgets_tokens_when_users_or_tokens_change_and_when_they_expire() {
        sportello_store::testing::with_test_store(|store, clock| async move {
            use sportello_domain::roles::Role;
            let anna = store.add_user("anna", "", Role::Operator).await.unwrap();
            let cache = TokenCache::new(Duration::ZERO);
            let hash = token_hash(&anna.token);
            let (user, expires) = store.token_owner(&anna.token).await.unwrap().unwrap();
            let v = cache.version(&store).await.unwrap();
            cache.put(hash.clone(), user, expires, v);
            let now = clock.now();
            assert!(cache.get(&hash, v, now).is_some());
            assert_eq!(cache.version(&store).await.unwrap(), v, "nothing changed");
            assert!(cache.get(&hash, v, now).is_some());
            store.revoke_tokens("anna").await.unwrap();
            let moved = cache.version(&store).await.unwrap();
            assert_ne!(moved, v);
            assert!(cache.get(&hash, moved, now).is_none(), "revoked: forgotten");
            assert!(
                cache.get(&hash, v, now).is_none(),
                "dropped, not just hidden"
            );
            // An entry checked under an old version is not trusted under the new one.
            let token = store
                .create_token("anna", "t", Some(now + chrono::Duration::hours(1)))
                .await
                .unwrap();
            let (user, expires) = store.token_owner(&token).await.unwrap().unwrap();
            cache.put(token_hash(&token), user.clone(), expires, moved);
            let newer = cache.version(&store).await.unwrap();
            assert!(cache.get(&token_hash(&token), newer, now).is_none());
            cache.put(token_hash(&token), user, expires, newer);
            assert!(cache.get(&token_hash(&token), newer, now).is_some());
            assert!(
                cache
                    .get(&token_hash(&token), newer, now + chrono::Duration::hours(1))
                    .is_none(),
                "expired"
            );
            // A cache that read the version recently trusts it until the next check.
            let slow = TokenCache::new(Duration::from_secs(3600));
            let first = slow.version(&store).await.unwrap();
            store.set_user_active("anna", false).await.unwrap();
            assert_eq!(slow.version(&store).await.unwrap(), first);
            assert_ne!(cache.version(&store).await.unwrap(), first);
        })
        .await;
    }
}
