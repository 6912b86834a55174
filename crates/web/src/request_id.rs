//! A code for every request, so that an operator can find the log of the error a citizen
//! or a client reports: the `x-request-id` header a client sent (when it is a sensible
//! token) or a fresh UUID, answered in the same header, written into every problem+json
//! and error page (see [`crate::error::stamp_request_id`]) and carried by the request's
//! log span.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Response;
use axum::middleware::Next;
use tower_http::request_id::RequestId;
use tracing::Span;

/// The header that carries the code, both ways.
pub const HEADER: &str = "x-request-id";

/// The longest code a client may choose.
const MAX_LEN: usize = 64;

/// Whether a client's code is kept: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, so that
/// it reads safely in a log line, a JSON string and a page.
pub fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The code of a request, once it has been given one.
pub fn of<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// Drops a client's code that is not [valid](is_valid) (or repeated), so that a fresh one
/// is made in its place.
pub async fn drop_invalid(mut request: Request, next: Next) -> Response<Body> {
    let headers = request.headers_mut();
    let mut sent = headers.get_all(HEADER).iter();
    let keep = match (sent.next(), sent.next()) {
        (Some(one), None) => one.to_str().is_ok_and(is_valid),
        _ => false,
    };
    if !keep {
        headers.remove(HEADER);
    }
    next.run(request).await
}

/// The span of a request: its method, path (never the query, which may hold personal data)
/// and code, so that every line logged while answering it names the code.
pub fn span<B>(request: &axum::http::Request<B>) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = of(request).unwrap_or("-"),
    )
}

/// The log line of an answer: at debug level when it went well, at info level for a client's
/// or a server's error, so that the code on an error page leads to a line in the log.
pub fn log_answer<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_millis();
    if status >= 400 {
        tracing::info!(status, latency_ms, "answered with an error");
    } else {
        tracing::debug!(status, latency_ms, "answered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensible_codes_are_kept_and_the_rest_refused() {
        assert!(is_valid("7f9c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert!(is_valid("client.trace_42"));
        assert!(is_valid(&"a".repeat(64)));
        assert!(!is_valid(""));
        assert!(!is_valid(&"a".repeat(65)));
        assert!(!is_valid("two words"));
        assert!(!is_valid("<script>"));
        assert!(!is_valid("line\nbreak"));
        assert!(!is_valid("città"));
    }
}
