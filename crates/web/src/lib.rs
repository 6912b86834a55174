//! Sportello's HTTP layer.
//!
//! The JSON API of CONTRACT §5: every error is RFC 9457 `application/problem+json`, every
//! endpoint checks the caller's role against the matrix in `sportello_domain::roles`, and
//! `/api/openapi.json` is generated from the handlers themselves.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use sportello_app::App;
use sportello_config::Config;
use sportello_store::Store;
use sportello_store::documents::BlobStore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub mod api;
pub mod app_error;
pub mod auth;
pub mod charts;
pub mod client;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod guard;
pub mod hygiene;
pub mod i18n;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod request_id;
pub mod tables;
pub mod vocabulary;

/// Everything a request handler may need, shared by all requests: the use cases'
/// context and the web's own parts. It dereferences to the [`App`], so `state.store`,
/// `state.policy`… read as before.
#[derive(Clone)]
pub struct AppState {
    /// The use cases' context.
    pub app: App,
    /// Recently seen API tokens.
    pub tokens: Arc<auth::TokenCache>,
    /// Throttling, client addresses and the security events of requests.
    pub guard: Arc<guard::Guard>,
    /// Prometheus exposition.
    pub metrics: metrics::Metrics,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
    /// Builds the state from its parts, with the built-in example policy (tests and tools;
    /// `serve` builds its [`App`] and calls [`AppState::with_app`]).
    #[allow(
        clippy::expect_used,
        reason = "the built-in policy is valid (tested in sportello-domain), and no channel configured is a valid configuration"
    )]
    pub fn new(store: Store, blobs: BlobStore, config: Arc<Config>) -> AppState {
        let policy = sportello_domain::ztl::policy::Policy::parse(
            sportello_domain::ztl::policy::EXAMPLE_POLICY,
        )
        .expect("the built-in policy is valid (tested in sportello-domain)");
        let app = App::new(store, blobs, config, Arc::new(policy), names())
            .expect("no channel configured is a valid configuration");
        AppState::with_app(app)
    }

    /// The web's state around a built [`App`].
    pub fn with_app(app: App) -> AppState {
        let guard = Arc::new(guard::Guard::new(&app.config, pages::portal::slow_down));
        AppState {
            app,
            tokens: Arc::new(auth::TokenCache::default()),
            guard,
            metrics: metrics::Metrics::install(),
        }
    }
}

/// The vocabulary's words as the pages say them, for the use cases' messages.
pub fn names() -> Arc<dyn sportello_app::Names> {
    Arc::new(app_error::PageNames)
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let upload_limit = usize::try_from(state.config.documents.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    let json_limit = state.config.limits.max_json_bytes;
    let app = Router::new()
        .merge(api::routes(upload_limit))
        .merge(pages::routes(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::layer,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hygiene::headers,
        ));
    with_request_ids(app).with_state(state)
}

/// The outer layers: a code for every request ([`request_id`]), its log span, the code in
/// every answer's header and error, and a caught panic's 500 (inside them, so it has the
/// code too).
fn with_request_ids<S: Clone + Send + Sync + 'static>(app: Router<S>) -> Router<S> {
    app.layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(error::stamp_request_id))
        .layer(PropagateRequestIdLayer::new(request_id_header()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_id::span)
                .on_response(request_id::log_answer),
        )
        .layer(SetRequestIdLayer::new(request_id_header(), MakeRequestUuid))
        .layer(axum::middleware::from_fn(request_id::drop_invalid))
}

fn request_id_header() -> HeaderName {
    HeaderName::from_static(request_id::HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    /// A route that panics, behind the same outer layers as the application.
    fn panicking() -> Router {
        with_request_ids(Router::new().route("/boom", axum::routing::get(boom)))
    }

    async fn boom() -> &'static str {
        panic!("a handler that panics")
    }

    async fn get_boom(request_id: Option<&str>) -> (StatusCode, String, serde_json::Value) {
        let mut request = Request::get("/boom");
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        let response = panicking()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let header = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, header, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_panic_answers_a_problem_with_the_request_code() {
        let (status, header, problem) = get_boom(Some("client-code-1")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(header, "client-code-1");
        assert_eq!(problem["request_id"], "client-code-1");
        assert_eq!(problem["type"], "urn:sportello:problem:internal");
    }

    #[tokio::test]
    async fn a_panic_without_a_client_code_gets_a_fresh_one() {
        let (_, header, problem) = get_boom(None).await;
        assert_eq!(header.len(), 36, "a UUID: {header}");
        assert_eq!(problem["request_id"], header.as_str());
        let (_, replaced, problem) = get_boom(Some("not a code")).await;
        assert_ne!(replaced, "not a code");
        assert!(request_id::is_valid(&replaced));
        assert_eq!(problem["request_id"], replaced.as_str());
    }
}
