//! Who is calling: API tokens (`Authorization: Bearer`), looked up by hash and cached
//! briefly so that hot read paths do not pay a database round trip per request. The
//! cache is only as good as the store's `auth_version` counter, which every change to
//! users and tokens bumps and which is read at most every [`VERSION_CHECK`]: a revoked
//! token or a disabled user is refused within that time on every instance.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
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

/// Counts failed authentications per client address, so tokens cannot be guessed at speed.
#[derive(Debug)]
pub struct FailureLimiter {
    failures: Throttle,
    /// Failed authentications allowed per client address and minute before 429
    /// (`limits.auth_failures_per_minute`).
    per_minute: u32,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(30)
    }
}

impl FailureLimiter {
    /// A limiter allowing `per_minute` failures per client address.
    pub fn new(per_minute: u32) -> Self {
        FailureLimiter {
            failures: Throttle::default(),
            per_minute,
        }
    }

    /// Whether `ip` has used up its failures for the current minute.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.failures
            .used_up(&ip.to_string(), self.per_minute, Duration::from_secs(60))
    }

    /// Counts one failure of `ip`.
    pub fn record(&self, ip: IpAddr) {
        self.failures
            .allow(&ip.to_string(), u32::MAX, Duration::from_secs(60));
    }
}

/// Counts attempts per key (a client address, a login, a case reference) in a window
/// that starts with the first attempt: the API's token guesses and the pages' sign-ins
/// and status lookups share it.
#[derive(Debug, Default)]
pub struct Throttle {
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    /// Whether `key` has used up `max` attempts in the current window (counts nothing).
    pub fn used_up(&self, key: &str, max: u32, window: Duration) -> bool {
        self.seen.lock().map_or(true, |seen| {
            seen.get(key)
                .is_some_and(|(start, n)| start.elapsed() < window && *n >= max)
        })
    }

    /// Counts one attempt of `key`; false once the key has used up `max` in `window`.
    pub fn allow(&self, key: &str, max: u32, window: Duration) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 100_000 {
            seen.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = seen.entry(key.to_owned()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 <= max
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
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let blocked = ip.is_some_and(|ip| state.auth_failures.blocked(ip));
        let result = authenticate(parts, state, blocked).await;
        // Only a presented but wrong token counts as a guess.
        let presented = parts.headers.contains_key(header::AUTHORIZATION);
        if let (Err(ApiError::Unauthorized), Some(ip), true) = (&result, ip, presented) {
            state.auth_failures.record(ip);
        }
        result
    }
}

/// Resolves the bearer token; an address that is `blocked` for guessing gets only tokens
/// already known valid (from the cache), everything else is 429.
async fn authenticate(parts: &Parts, state: &AppState, blocked: bool) -> Result<Caller, ApiError> {
    let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return from_session(parts, state).await;
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or(ApiError::Unauthorized)?;
    let hash = token_hash(token);
    // The version is read before the token: an entry is tagged with a version no newer
    // than the data it was checked against, so a revocation racing with it is not missed.
    let version = state.tokens.version(&state.store).await?;
    let now = state.store.clock().now();
    if let Some(user) = state.tokens.get(&hash, version, now) {
        return Ok(Caller(user));
    }
    if blocked {
        return Err(ApiError::TooManyRequests);
    }
    let (user, expires) = state
        .store
        .token_owner(token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
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

    #[test]
    fn attempts_are_counted_per_key_within_the_window() {
        let throttle = Throttle::default();
        let window = Duration::from_secs(60);
        assert!(throttle.allow("a", 2, window));
        assert!(!throttle.used_up("a", 2, window), "one of two used");
        assert!(throttle.allow("a", 2, window));
        assert!(throttle.used_up("a", 2, window));
        assert!(!throttle.allow("a", 2, window), "the third is refused");
        assert!(throttle.allow("b", 2, window), "other keys are apart");
        // A window that has passed starts again.
        assert!(throttle.allow("a", 2, Duration::ZERO));
        let limiter = FailureLimiter::new(30);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..30 {
            assert!(!limiter.blocked(ip));
            limiter.record(ip);
        }
        assert!(limiter.blocked(ip));
    }

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
