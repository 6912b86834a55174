//! Liveness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;

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

/// `GET /metrics`: Prometheus text with request metrics and open/overdue/orphan case counts.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
