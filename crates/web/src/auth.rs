//! Who is calling: API tokens (`Authorization: Bearer`), looked up by hash and cached
//! briefly so that hot read paths do not pay a database round trip per request.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
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
    if let Some(user) = state.tokens.get(&hash) {
        return Ok(Caller(user));
    }
    if crate::guard::tokens_blocked(state, client).await {
        return Err(ApiError::TooManyRequests);
    }
    let Some(user) = state.store.user_by_token(token).await? else {
        crate::guard::token_failed(state, client, Some(&hash)).await;
        return Err(ApiError::Unauthorized);
    };
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
