//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sportello_domain::roles::Permission;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// `GET /healthz`: 200 `ok` when the database answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The database answers", body = String),
              (status = 503, description = "The database does not answer")))]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.store.ping().await {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// `GET /readyz`: 200 `ready` when the database takes a write now; 503 (with
/// `Retry-After`) while it is locked by another process, the disk is full or no writer
/// connection is free, so that a load balancer sends work elsewhere.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "The database takes writes", body = String),
              (status = 503, description = "The database does not take writes now (locked, disk full, no free connection); retry after `Retry-After` seconds")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.write_probe(Duration::from_secs(2)).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe: the database does not take writes");
            ApiError::Unavailable(
                "not ready: the database does not take writes now (locked, or storage full)".into(),
            )
            .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text with request metrics and open/overdue/orphan case
/// counts, for the scraper with `metrics.token`, or an admin's or supervisor's API token.
/// With `metrics.listen` set it is served there only (404 here).
#[utoipa::path(get, path = "/metrics", tag = "system",
    security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text exposition", body = String),
              (status = 401, description = "No metrics token, or an API token of a role other than admin or supervisor"),
              (status = 404, description = "Metrics are served on a separate address (`metrics.listen`)")))]
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    if state.config.metrics.listen.is_some() {
        return ApiError::NotFound("no such endpoint: /metrics".into()).into_response();
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let by_token = match (&state.config.metrics.token, bearer) {
        (Some(token), Some(bearer)) => {
            !token.expose().is_empty() && crate::cookies::same_token(bearer, token.expose())
        }
        _ => false,
    };
    if !by_token {
        let (mut parts, _) = request.into_parts();
        match Caller::from_request_parts(&mut parts, &state).await {
            Ok(caller) => {
                if let Err(e) = caller.require(Permission::ReadReports) {
                    // A staff token that may not read the office's figures: as if none.
                    tracing::info!(login = %caller.0.login, "metrics refused: {}", e.detail());
                    return ApiError::Unauthorized.into_response();
                }
            }
            Err(e) => return e.into_response(),
        }
    }
    metrics_text(&state).await
}

/// The Prometheus text itself (also served without a token on `metrics.listen`).
pub async fn metrics_text(state: &AppState) -> Response {
    let mut text = state.metrics.render();
    match state.store.case_gauges().await {
        Ok(gauges) => {
            text.push_str("# HELP sportello_cases Cases by condition (open, overdue, orphan).\n# TYPE sportello_cases gauge\n");
            for (name, value) in gauges {
                text.push_str(&format!(
                    "sportello_cases{{condition=\"{name}\"}} {value}\n"
                ));
            }
        }
        Err(e) => tracing::warn!(error = %e, "case gauges unavailable"),
    }
    match state.store.text_queue().await {
        Ok(q) => {
            text.push_str("# HELP sportello_document_text Documents by the state of reading their text (OCR backlog and failures).\n# TYPE sportello_document_text gauge\n");
            for (name, value) in [
                ("pending", q.pending),
                ("running", q.running),
                ("done", q.done),
                ("none", q.none),
                ("failed", q.failed),
            ] {
                text.push_str(&format!(
                    "sportello_document_text{{state=\"{name}\"}} {value}\n"
                ));
            }
        }
        Err(e) => tracing::warn!(error = %e, "document text gauges unavailable"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
