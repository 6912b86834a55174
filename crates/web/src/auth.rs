//! Who is calling: API tokens (`Authorization: Bearer`), looked up by hash and cached
//! briefly so that hot read paths do not pay a database round trip per request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use sportello_domain::roles::Permission;
use sportello_store::users::{AuthUser, token_hash};

use crate::AppState;
use crate::error::ApiError;

/// How long a token seen valid is trusted without asking the database again.
const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

/// Recently validated tokens, keyed by their hash (the token itself is never kept).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, (AuthUser, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<AuthUser> {
        let entries = self.entries.read().ok()?;
        let (user, seen) = entries.get(hash)?;
        (seen.elapsed() < CACHE_TTL).then(|| user.clone())
    }

    fn put(&self, hash: String, user: AuthUser) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, (_, seen)| seen.elapsed() < CACHE_TTL);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(hash, (user, Instant::now()));
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
    if let Some(user) = state.tokens.get(&hash) {
        return Ok(Caller(user));
    }
    if blocked {
        return Err(ApiError::TooManyRequests);
    }
    let user = state
        .store
        .user_by_token(token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state.tokens.put(hash, user.clone());
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
}
