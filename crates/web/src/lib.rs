//! Sportello's HTTP layer.
//!
//! The JSON API of CONTRACT §5: every error is RFC 9457 `application/problem+json`, every
//! endpoint checks the caller's role against the matrix in `sportello_domain::roles`, and
//! `/api/openapi.json` is generated from the handlers themselves.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use sportello_config::Config;
use sportello_store::Store;
use sportello_store::documents::BlobStore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub mod api;
pub mod auth;
pub mod charts;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod tables;
pub mod vocabulary;

/// Everything a request handler may need, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Document bytes.
    pub blobs: BlobStore,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Where uploads are staged while they are hashed.
    pub staging_dir: PathBuf,
    /// Recently seen API tokens.
    pub tokens: Arc<auth::TokenCache>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<auth::FailureLimiter>,
    /// Prometheus exposition.
    pub metrics: metrics::Metrics,
    /// PEM bundle of the PEC providers' certificates, read at start.
    pub pec_trust_anchors: Option<Arc<Vec<u8>>>,
    /// OCR settings and the process's one pool of OCR workers (shared with the pollers).
    pub ocr: sportello_intake::pipeline::OcrSettings,
    /// The ZTL policy in force (the built-in example until `serve` loads `policy.file`).
    pub policy: Arc<sportello_domain::ztl::policy::Policy>,
    /// Its version in `policy_versions`, recorded by `serve` at start.
    pub policy_version: Option<i64>,
    /// Attempts of the pages' guessable forms (sign-in, case status), per address and key.
    pub page_limits: Arc<auth::Throttle>,
    /// The outbound channels' transports (what is configured can be used).
    pub transports: Arc<sportello_outbound::Transports>,
    /// Wakes the sending worker when a message is queued.
    pub outbound_wakeup: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(store: Store, blobs: BlobStore, config: Arc<Config>) -> AppState {
        let staging_dir = config.data_dir.join("tmp");
        let config_for_transports = config.clone();
        let auth_failures_per_minute = config.limits.auth_failures_per_minute;
        AppState {
            ocr: sportello_intake::pipeline::OcrSettings::from_config(&config),
            store,
            blobs,
            config,
            staging_dir,
            tokens: Arc::new(auth::TokenCache::default()),
            auth_failures: Arc::new(auth::FailureLimiter::new(auth_failures_per_minute)),
            metrics: metrics::Metrics::install(),
            pec_trust_anchors: None,
            policy: Arc::new(
                sportello_domain::ztl::policy::Policy::parse(
                    sportello_domain::ztl::policy::EXAMPLE_POLICY,
                )
                .expect("the built-in policy is valid (tested in sportello-domain)"),
            ),
            policy_version: None,
            page_limits: Arc::new(auth::Throttle::default()),
            transports: Arc::new(outbound_transports(&config_for_transports)),
            outbound_wakeup: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// The transports of the configured outbound channels; a configuration they cannot use
/// (already refused by `sportello check`) leaves the channels unconfigured, logged.
fn outbound_transports(config: &Config) -> sportello_outbound::Transports {
    sportello_outbound::Transports::from_config(&config.outbound).unwrap_or_else(|e| {
        tracing::error!(error = %e, "outbound channels not usable: check [outbound]");
        sportello_outbound::Transports::from_config(&Default::default())
            .expect("no channel configured is a valid configuration")
    })
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let upload_limit = usize::try_from(state.config.documents.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    let json_limit = state.config.limits.max_json_bytes;
    Router::new()
        .merge(api::routes(upload_limit))
        .merge(pages::routes(state.clone()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(json_limit))
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
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
