//! Throttling the way OWASP recommends, and the security events of the HTTP layer.
//!
//! - Sign-ins are counted per (account, client) and per client, in the database (they
//!   survive restarts and are shared by instances). A browser that signed in to an account
//!   before carries a device cookie: its attempts on that account are counted on their own,
//!   so a stranger's failures never lock the owner out (OWASP "device cookies").
//! - Wrong bearer tokens are counted per client only: a valid token is never refused because
//!   others sent bad ones.
//! - Anonymous writes (`/domanda`, `/contesta`, uploads from a private link) are counted per
//!   client before the form is read (`/stato` with files: before the lookup), and answered
//!   429 with `Retry-After` over the budget.
//! - Security events: code that sees one either records it (async handlers) or [`note`]s it
//!   (sync code such as a role check); the [`layer`] records the notes of a request before
//!   its answer leaves, with the client's address. A valid request notes nothing and costs
//!   no write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use sportello_config::{Config, LimitsConfig, TrustedProxies};
use sportello_domain::security::SecurityEventKind;
use sportello_store::security::SecurityEvent;

use crate::AppState;
use crate::client::{ClientAddress, of_parts};

/// The device cookie's name.
pub const DEVICE_COOKIE: &str = "sportello_device";

/// How long a device cookie is honoured after the sign-in that issued it.
pub const DEVICE_AGE: Duration = Duration::from_secs(365 * 86_400);

/// Wrong pairs of `/stato` allowed per (reference, client) in [`STATUS_WINDOW`].
pub const STATUS_FAILURES: u32 = 10;

/// Wrong pairs of `/stato` allowed per client, whatever the reference, in [`STATUS_WINDOW`].
pub const STATUS_FAILURES_PER_CLIENT: u32 = 20;

/// The window of the status lookups' counters.
pub const STATUS_WINDOW: Duration = Duration::from_secs(600);

/// The window of the wrong tokens' counter (`limits.auth_failures_per_minute`).
const TOKEN_WINDOW: Duration = Duration::from_secs(60);

/// How often counters and device cookies past their age are purged (by one request, in a
/// task of its own).
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Counters untouched for this long are deleted (longer than every window).
const COUNTER_AGE: Duration = Duration::from_secs(86_400);

/// Renders the page that tells a client over its budget of anonymous writes to wait (the
/// portal's, given by the router so that the guard does not depend on the pages).
pub type SlowDownPage = fn(&AppState, &HeaderMap, u64) -> Response;

/// The web layer's throttling state: the parsed proxies and limits, and what keeps the
/// security log from being flooded.
#[derive(Debug)]
pub struct Guard {
    proxies: TrustedProxies,
    limits: LimitsConfig,
    slow_down: SlowDownPage,
    /// The minute of the last event of a flood kind written per (kind, client).
    flood: Mutex<HashMap<(SecurityEventKind, String), u64>>,
    last_purge: Mutex<Option<Instant>>,
}

impl Guard {
    /// The guard of a validated configuration (a `trusted_proxies` that does not parse,
    /// possible only without [`Config::load`], trusts nobody).
    pub fn new(config: &Config, slow_down: SlowDownPage) -> Guard {
        let proxies = config.trusted_proxies().unwrap_or_else(|e| {
            tracing::error!(error = %e, "trusted_proxies ignored");
            TrustedProxies::default()
        });
        Guard {
            proxies,
            limits: config.limits.clone(),
            slow_down,
            flood: Mutex::new(HashMap::new()),
            last_purge: Mutex::new(None),
        }
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// Whether an event of a flood kind from `client` should be written now: throttled
    /// attempts and rate-limited writes are written once per client and minute, not once
    /// per refused request, so that a flood cannot fill the log (the structured log line
    /// of the first says what is going on; the refusals themselves are the throttling).
    fn first_this_minute(&self, kind: SecurityEventKind, client: &str, now_minute: u64) -> bool {
        let Ok(mut seen) = self.flood.lock() else {
            return true;
        };
        if seen.len() > 10_000 {
            seen.retain(|_, minute| *minute == now_minute);
        }
        let previous = seen.insert((kind, client.to_owned()), now_minute);
        previous != Some(now_minute)
    }

    /// Whether it is time to purge old counters (true for one caller per period).
    fn purge_due(&self) -> bool {
        let Ok(mut last) = self.last_purge.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

// ----- security events -----

/// An event seen during a request, recorded by [`layer`] before the answer leaves.
#[derive(Debug, Clone)]
struct Note {
    kind: SecurityEventKind,
    login: Option<String>,
    detail: String,
}

tokio::task_local! {
    static NOTES: Arc<Mutex<Vec<Note>>>;
}

/// Notes a security event of the current request (from sync code, e.g. a role check);
/// outside a request (a unit test calling a function directly) nothing is noted.
pub fn note(kind: SecurityEventKind, login: Option<&str>, detail: impl Into<String>) {
    let note = Note {
        kind,
        login: login.map(str::to_owned),
        detail: detail.into(),
    };
    let _ = NOTES.try_with(|notes| {
        if let Ok(mut notes) = notes.lock() {
            notes.push(note);
        }
    });
}

/// Notes that a signed-in user was refused something their role does not allow (the pages'
/// own role checks; the API's go through `Caller::require`).
pub fn permission_refused(login: &str, what: &str) {
    note(
        SecurityEventKind::PermissionRefused,
        Some(login),
        format!("may not {what}"),
    );
}

/// Records a security event now (async code that knows the client); a failure to write
/// it is logged, never turned into an error for the request.
pub async fn record(
    state: &AppState,
    kind: SecurityEventKind,
    login: Option<&str>,
    client: ClientAddress,
    detail: &str,
) {
    let address = client.key();
    if matches!(
        kind,
        SecurityEventKind::SignInThrottled | SecurityEventKind::RateLimited
    ) {
        let minute = u64::try_from(state.store.clock().now().timestamp() / 60).unwrap_or(0);
        if !state.guard.first_this_minute(kind, &address, minute) {
            return;
        }
    }
    let event = SecurityEvent::new(state.store.clock().now(), kind, login, &address, detail);
    if let Err(e) = state.store.record_security_event(&event).await {
        tracing::error!(error = %e, kind = kind.as_str(), "security event not recorded");
    }
}

/// The outer layer of every route: works out the client's address once, refuses anonymous
/// writes over their budget, and records the request's noted security events before its
/// answer leaves.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = of_parts(&parts, &state.guard.proxies);
    parts.extensions.insert(client);
    if state.guard.purge_due() {
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.purge_attempts(COUNTER_AGE, DEVICE_AGE).await {
                tracing::warn!(error = %e, "old throttling counters not purged");
            }
        });
    }
    if is_anonymous_write(&parts.method, parts.uri.path())
        && let Some(refused) = anonymous_write(&state, client, &parts.headers).await
    {
        // Nothing of the form is read or stored, but the body is drained (as far as the
        // route would take it), so that the client gets the 429 instead of a broken pipe.
        let limit = state
            .config
            .documents
            .max_upload_bytes
            .saturating_add(1 << 20);
        let mut stream = body.into_data_stream();
        let mut seen: u64 = 0;
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut stream).await {
            seen = seen.saturating_add(chunk.len() as u64);
            if seen > limit {
                break;
            }
        }
        return refused;
    }
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let request = Request::from_parts(parts, body);
    let notes = Arc::new(Mutex::new(Vec::new()));
    let response = NOTES.scope(notes.clone(), next.run(request)).await;
    let noted = notes
        .lock()
        .map(|mut n| std::mem::take(&mut *n))
        .unwrap_or_default();
    for n in noted {
        let detail = format!("{} ({method} {})", n.detail, uri.path());
        record(&state, n.kind, n.login.as_deref(), client, &detail).await;
    }
    response
}

// ----- anonymous writes -----

/// Whether a request is an anonymous write of the portal: an application, a contested
/// fine, documents sent from a private link.
fn is_anonymous_write(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (matches!(path, "/domanda" | "/contesta")
            || path
                .strip_prefix("/stato/")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/')))
}

/// Counts one anonymous write of `client`; over the budget, the 429 page. The layer calls
/// it for the portal's write routes; `/stato` calls it when its form carries files.
pub async fn anonymous_write(
    state: &AppState,
    client: ClientAddress,
    headers: &HeaderMap,
) -> Option<Response> {
    let limits = &state.guard.limits;
    let window = Duration::from_secs(limits.anonymous_writes_window_seconds);
    let counted = match state
        .store
        .count_attempt(&format!("write:{client}"), window)
        .await
    {
        Ok(counted) => counted,
        Err(e) => {
            // A database that cannot count cannot take the write either; let the handler
            // answer as it would.
            tracing::warn!(error = %e, "anonymous write not counted");
            return None;
        }
    };
    if counted.count <= limits.anonymous_writes {
        return None;
    }
    record(
        state,
        SecurityEventKind::RateLimited,
        None,
        client,
        &format!(
            "more than {} anonymous writes in {} s",
            limits.anonymous_writes, limits.anonymous_writes_window_seconds
        ),
    )
    .await;
    Some((state.guard.slow_down)(
        state,
        headers,
        counted.retry_after_secs.max(1),
    ))
}

// ----- sign-in -----

/// What a sign-in attempt is counted under: the browser's device cookie for that account,
/// or the (account, client) and client counters of untrusted browsers.
#[derive(Debug, Clone)]
pub struct SignIn {
    login: String,
    client: ClientAddress,
    /// The device cookie's counter key, when the browser holds a valid one for this login.
    device: Option<String>,
}

impl SignIn {
    fn account_key(&self) -> String {
        format!("signin:{}|{}", self.login, self.client)
    }

    fn client_key(&self) -> String {
        format!("signin-client:{}", self.client)
    }
}

/// Before checking a password: the attempt's counters, or the seconds to wait when they
/// are used up (the refusal is recorded).
pub async fn sign_in_gate(
    state: &AppState,
    client: ClientAddress,
    login: &str,
    headers: &HeaderMap,
) -> Result<SignIn, u64> {
    let login = login.to_lowercase();
    let limits = &state.guard.limits;
    let window = Duration::from_secs(limits.sign_in_window_seconds);
    let mut device = None;
    if let Some(token) = crate::cookies::cookie(headers, DEVICE_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        && let Ok(Some(owner)) = state.store.device_cookie_login(&token, DEVICE_AGE).await
        && owner.to_lowercase() == login
    {
        device = Some(format!(
            "signin-device:{}",
            sportello_store::users::token_hash(&token)
        ));
    }
    let attempt = SignIn {
        login,
        client,
        device,
    };
    let checks: Vec<(String, u32)> = match &attempt.device {
        Some(key) => vec![(key.clone(), limits.sign_in_failures)],
        None => vec![
            (attempt.account_key(), limits.sign_in_failures),
            (attempt.client_key(), limits.sign_in_failures_per_client),
        ],
    };
    for (key, max) in checks {
        // A counter that cannot be read does not lock anybody out; the password check
        // still stands.
        let Ok(seen) = state.store.attempts(&key, window).await else {
            continue;
        };
        if seen.count >= max {
            record(
                state,
                SecurityEventKind::SignInThrottled,
                Some(&attempt.login),
                client,
                "sign-in refused: too many failed attempts",
            )
            .await;
            return Err(seen.retry_after_secs.max(1));
        }
    }
    Ok(attempt)
}

/// A wrong password (or unknown login): counted and recorded, never with the password.
pub async fn sign_in_failed(state: &AppState, attempt: &SignIn, detail: &str) {
    let window = Duration::from_secs(state.guard.limits.sign_in_window_seconds);
    let keys = match &attempt.device {
        Some(key) => vec![key.clone()],
        None => vec![attempt.account_key(), attempt.client_key()],
    };
    for key in keys {
        if let Err(e) = state.store.count_attempt(&key, window).await {
            tracing::warn!(error = %e, "failed sign-in not counted");
        }
    }
    record(
        state,
        SecurityEventKind::SignInFailed,
        Some(&attempt.login),
        attempt.client,
        detail,
    )
    .await;
}

/// A successful sign-in: its own counter is cleared, the event recorded, and the browser
/// gets a device cookie for the account (the `Set-Cookie` value to add to the answer).
pub async fn signed_in(state: &AppState, attempt: &SignIn, login: &str) -> Option<HeaderValue> {
    let key = attempt
        .device
        .clone()
        .unwrap_or_else(|| attempt.account_key());
    if let Err(e) = state.store.forget_attempts(&key).await {
        tracing::warn!(error = %e, "sign-in counter not cleared");
    }
    record(
        state,
        SecurityEventKind::SignedIn,
        Some(login),
        attempt.client,
        if attempt.device.is_some() {
            "signed in from a known browser"
        } else {
            "signed in"
        },
    )
    .await;
    if attempt.device.is_some() {
        return None;
    }
    match state.store.issue_device_cookie(&attempt.login).await {
        Ok(token) => {
            let age = i64::try_from(DEVICE_AGE.as_secs()).unwrap_or(i64::MAX);
            Some(crate::cookies::set_cookie(
                state,
                DEVICE_COOKIE,
                &token,
                Some(age),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "device cookie not issued");
            None
        }
    }
}

// ----- case status lookups -----

/// Whether `client` may look up `reference` at `/stato` now (the refusal is recorded).
pub async fn status_lookup_allowed(
    state: &AppState,
    client: ClientAddress,
    reference: &str,
) -> bool {
    let reference = short(reference);
    for (key, max) in [
        (format!("status:{reference}|{client}"), STATUS_FAILURES),
        (
            format!("status-client:{client}"),
            STATUS_FAILURES_PER_CLIENT,
        ),
    ] {
        if let Ok(seen) = state.store.attempts(&key, STATUS_WINDOW).await
            && seen.count >= max
        {
            record(
                state,
                SecurityEventKind::SignInThrottled,
                None,
                client,
                "case status lookup refused: too many wrong pairs",
            )
            .await;
            return false;
        }
    }
    true
}

/// A wrong reference and fiscal code pair at `/stato`: counted and recorded.
pub async fn status_lookup_failed(state: &AppState, client: ClientAddress, reference: &str) {
    let reference = short(reference);
    for key in [
        format!("status:{reference}|{client}"),
        format!("status-client:{client}"),
    ] {
        if let Err(e) = state.store.count_attempt(&key, STATUS_WINDOW).await {
            tracing::warn!(error = %e, "failed status lookup not counted");
        }
    }
    let shown = &reference;
    record(
        state,
        SecurityEventKind::SignInFailed,
        None,
        client,
        &format!("case status: wrong reference or fiscal code for {shown:?}"),
    )
    .await;
}

/// A reference as typed, cut to the length of a real one and a little more: counter keys
/// stay short whatever is sent.
fn short(reference: &str) -> String {
    reference.chars().take(40).collect()
}

/// Counts one attempt of an anonymous lookup form (`/cude`, private links) under `key`
/// for `client`; false once `max` are used up in [`STATUS_WINDOW`].
pub async fn lookup_allowed(state: &AppState, client: ClientAddress, key: &str, max: u32) -> bool {
    match state
        .store
        .count_attempt(&format!("{key}|{client}"), STATUS_WINDOW)
        .await
    {
        Ok(seen) if seen.count > max => {
            record(
                state,
                SecurityEventKind::SignInThrottled,
                None,
                client,
                &format!("{key} refused: too many attempts"),
            )
            .await;
            false
        }
        _ => true,
    }
}

// ----- bearer tokens -----

/// Whether `client` has sent too many wrong tokens this minute (then only tokens already
/// known valid are accepted from it).
pub async fn tokens_blocked(state: &AppState, client: ClientAddress) -> bool {
    let blocked = state
        .store
        .attempts(&format!("token:{client}"), TOKEN_WINDOW)
        .await
        .is_ok_and(|seen| seen.count >= state.guard.limits.auth_failures_per_minute);
    if blocked {
        note(
            SecurityEventKind::SignInThrottled,
            None,
            "bearer token refused: too many wrong tokens from this address",
        );
    }
    blocked
}

/// A wrong bearer token from `client`: counted; noted with at most the first 8 characters
/// of its hash, never the token.
pub async fn token_failed(state: &AppState, client: ClientAddress, hash: Option<&str>) {
    if let Err(e) = state
        .store
        .count_attempt(&format!("token:{client}"), TOKEN_WINDOW)
        .await
    {
        tracing::warn!(error = %e, "wrong token not counted");
    }
    let detail = match hash {
        Some(hash) => format!(
            "unknown, revoked or expired token (sha256 {}…)",
            hash.get(..8).unwrap_or_default()
        ),
        None => "malformed Authorization header".to_owned(),
    };
    note(SecurityEventKind::TokenInvalid, None, detail);
}

/// The counter of wrong second-factor codes of one account, across clients. Only someone
/// who already knows the password reaches that step, so strangers cannot use this count to
/// lock an owner out; without it, a password holder could guess codes one sign-in at a time
/// (a correct password clears the sign-in counters).
fn second_factor_key(user_id: i64) -> String {
    format!("second-factor:{user_id}")
}

/// Whether the account has used up its wrong second-factor codes for the window.
pub async fn second_factor_blocked(state: &AppState, user_id: i64) -> bool {
    let window = Duration::from_secs(state.guard.limits.sign_in_window_seconds);
    state
        .store
        .attempts(&second_factor_key(user_id), window)
        .await
        .is_ok_and(|a| a.count >= state.guard.limits.sign_in_failures)
}

/// Counts a wrong second-factor code.
pub async fn second_factor_failed(state: &AppState, user_id: i64) {
    let window = Duration::from_secs(state.guard.limits.sign_in_window_seconds);
    if let Err(e) = state
        .store
        .count_attempt(&second_factor_key(user_id), window)
        .await
    {
        tracing::warn!(error = %e, "wrong second factor code not counted");
    }
}

/// Clears the count after a right code.
pub async fn second_factor_passed(state: &AppState, user_id: i64) {
    if let Err(e) = state
        .store
        .forget_attempts(&second_factor_key(user_id))
        .await
    {
        tracing::warn!(error = %e, "second factor counter not cleared");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_writes_are_the_portals_posts() {
        for (method, path, expected) in [
            (Method::POST, "/domanda", true),
            (Method::POST, "/contesta", true),
            (Method::POST, "/stato/0123abcd", true),
            (Method::POST, "/stato", false),
            (Method::POST, "/stato/", false),
            (Method::POST, "/stato/a/b", false),
            (Method::GET, "/domanda", false),
            (Method::POST, "/ufficio/login", false),
            (Method::POST, "/domanda/x", false),
        ] {
            assert_eq!(
                is_anonymous_write(&method, path),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_flood_is_written_once_per_client_and_minute() {
        let guard = Guard::new(&Config::default(), |_, _, _| {
            axum::response::IntoResponse::into_response(axum::http::StatusCode::TOO_MANY_REQUESTS)
        });
        let kind = SecurityEventKind::SignInThrottled;
        assert!(guard.first_this_minute(kind, "1.2.3.4", 100));
        assert!(!guard.first_this_minute(kind, "1.2.3.4", 100));
        assert!(
            guard.first_this_minute(kind, "5.6.7.8", 100),
            "another client"
        );
        assert!(
            guard.first_this_minute(SecurityEventKind::RateLimited, "1.2.3.4", 100),
            "another kind"
        );
        assert!(
            guard.first_this_minute(kind, "1.2.3.4", 101),
            "the next minute"
        );
    }

    #[tokio::test]
    async fn notes_are_kept_only_inside_a_request() {
        note(SecurityEventKind::CsrfRefused, None, "outside: dropped");
        let notes = Arc::new(Mutex::new(Vec::new()));
        NOTES
            .scope(notes.clone(), async {
                note(
                    SecurityEventKind::PermissionRefused,
                    Some("op"),
                    "read reports",
                );
            })
            .await;
        let notes = notes.lock().unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].kind, SecurityEventKind::PermissionRefused);
        assert_eq!(notes[0].login.as_deref(), Some("op"));
    }
}
