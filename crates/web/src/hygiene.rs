//! Headers every answer carries and small rules of hygiene shared by the API and the pages:
//! a Permissions-Policy on every answer, HSTS when the office is reached over https,
//! `Cache-Control: no-store` unless a handler chose otherwise (answers carry personal data),
//! `Retry-After` on every 503, and the paths a sign-in may go back to.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// The browser features no page of Sportello uses, switched off for every page.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
    display-capture=(), fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), \
    microphone=(), midi=(), payment=(), publickey-credentials-get=(), usb=(), \
    interest-cohort=()";

/// HSTS for an office reached over https: a year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the hygiene headers to every answer (see the module's description).
pub async fn headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let https = state
        .config
        .public_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(crate::error::RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// The router of `metrics.listen`: `/metrics` without a token, on an address only the
/// office's monitoring reaches.
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move {
                crate::api::health::metrics_text(&state).await
            }),
        )
        .with_state(state)
}

/// A path of this site to go back to after signing in: it starts with one `/` (never `//`,
/// another site), holds only visible ASCII (no CR/LF to split the `Location` header, no
/// spaces, no backslash that browsers read as `/`), and is at most 2,000 characters.
pub fn safe_local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2000
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    ok.then_some(next)
}

/// "A file is larger than the limit of N MB", in the reader's language.
pub fn too_large(tr: crate::i18n::Tr, limit: u64) -> String {
    let mb = limit as f64 / (1024.0 * 1024.0);
    let mb = if mb >= 10.0 {
        format!("{mb:.0}")
    } else {
        format!("{mb:.1}")
    };
    tr.f("upload.too_large", &[("mb", &mb)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_local_paths_are_followed() {
        for good in ["/ufficio", "/ufficio/pratiche/ZTL-2026-000001?lang=en", "/"] {
            assert_eq!(safe_local_path(good), Some(good));
        }
        for bad in [
            "/ufficio\r\nSet-Cookie: x=1",
            "/ufficio\n",
            "/ufficio\0",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/ufficio",
            "ufficio",
            "/uffi cio",
            "/ufficio\u{202e}",
            "",
        ] {
            assert_eq!(safe_local_path(bad), None, "{bad:?}");
        }
        assert_eq!(safe_local_path(&format!("/{}", "a".repeat(2000))), None);
    }
}
