//! Sportello's use cases, one function per thing a user does: open a case, act on it (with
//! what the action produces: the permit, the annulment request, the notice to the
//! citizen), plan, issue and renew permits, contest transits, write to the citizen, keep
//! an upload, and the background ticks.
//!
//! The adapters — the web (API and pages), the command line, the demo and the workers —
//! call these with typed inputs and get typed results or one [`AppError`], which each
//! adapter maps once (problem+json, error pages, exit codes). Below this layer are the
//! store and the pure domain; nothing here knows HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use sportello_config::Config;
use sportello_domain::ztl::policy::Policy;
use sportello_store::Store;
use sportello_store::documents::BlobStore;

pub mod caller;
pub mod cases;
pub mod contact;
pub mod documents;
mod error;
pub mod import_redmine;
pub mod new_case;
pub mod outbound;
pub mod permits;
pub mod remedy;
pub mod ticks;
pub mod validate;
pub mod ztl;

pub use error::{AppError, FieldError};

/// A language the office writes to citizens in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Italian, the default.
    #[default]
    It,
    /// English.
    En,
}

impl Lang {
    /// The code (`it`, `en`) of templates and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }

    /// Parses `it` or `en` (any case, spaces around).
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "it" => Some(Lang::It),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

/// The office's vocabulary in words (a document, a case type…), as the adapter that owns
/// the locale files says it: messages to citizens name things as the pages do.
pub trait Names: Send + Sync {
    /// `group.id` in words in `lang`; the id itself when it has no name.
    fn name(&self, lang: Lang, group: &str, id: &str) -> String;
}

/// Names every identifier by itself (for tools that write no message to a citizen).
#[derive(Debug, Clone, Copy, Default)]
pub struct Identifiers;

impl Names for Identifiers {
    fn name(&self, _lang: Lang, _group: &str, id: &str) -> String {
        id.to_owned()
    }
}

/// Everything a use case may need, shared by every caller: built once by `sportello`
/// (serve, the command line, the demo) and held by the web's state.
#[derive(Clone)]
pub struct App {
    /// The database (and, through it, the injected clock).
    pub store: Store,
    /// Document bytes.
    pub blobs: BlobStore,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Where uploads are staged while they are hashed.
    pub staging_dir: PathBuf,
    /// PEM bundle of the PEC providers' certificates, read at start.
    pub pec_trust_anchors: Option<Arc<Vec<u8>>>,
    /// OCR settings and the process's one pool of OCR workers (shared with the pollers).
    pub ocr: sportello_intake::pipeline::OcrSettings,
    /// The ZTL policy in force.
    pub policy: Arc<Policy>,
    /// Its version in `policy_versions`, recorded by `serve` at start.
    pub policy_version: Option<i64>,
    /// The outbound channels' transports (what is configured can be used).
    pub transports: Arc<sportello_outbound::Transports>,
    /// Wakes the sending worker when a message is queued.
    pub outbound_wakeup: Arc<tokio::sync::Notify>,
    /// The vocabulary's words, for messages to citizens.
    pub names: Arc<dyn Names>,
}

impl App {
    /// Builds the context from its parts, with `policy` in force (no version recorded yet)
    /// and the transports of the configured outbound channels; an error only when not
    /// even the unconfigured transports can be set up (no HTTP client).
    pub fn new(
        store: Store,
        blobs: BlobStore,
        config: Arc<Config>,
        policy: Arc<Policy>,
        names: Arc<dyn Names>,
    ) -> Result<App, sportello_config::ConfigError> {
        Ok(App {
            staging_dir: config.data_dir.join("tmp"),
            ocr: sportello_intake::pipeline::OcrSettings::from_config(&config),
            transports: Arc::new(outbound_transports(&config)?),
            store,
            blobs,
            config,
            pec_trust_anchors: None,
            policy,
            policy_version: None,
            outbound_wakeup: Arc::new(tokio::sync::Notify::new()),
            names,
        })
    }

    /// Tells the sending worker that a message waits.
    pub fn wake_outbound(&self) {
        self.outbound_wakeup.notify_one();
    }
}

/// The transports of the configured outbound channels; a configuration they cannot use
/// (already refused by `sportello check`) leaves the channels unconfigured, logged.
fn outbound_transports(
    config: &Config,
) -> Result<sportello_outbound::Transports, sportello_config::ConfigError> {
    sportello_outbound::Transports::from_config(&config.outbound).or_else(|e| {
        tracing::error!(error = %e, "outbound channels not usable: check [outbound]");
        sportello_outbound::Transports::from_config(&Default::default())
    })
}
