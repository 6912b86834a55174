//! Shared start-up: configuration, logging, opening the store, and the small commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sportello_config::{Config, ConfigError, Sources, process_env};
use sportello_domain::clock::{SharedClock, SystemClock};
use sportello_domain::roles::Role;
use sportello_store::documents::BlobStore;
use sportello_store::{Store, StoreSettings};

/// A mistake in how the command was called (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Logs to stderr, filtered by `RUST_LOG` (default: info for sportello, warnings otherwise).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,sportello=info,sportello_web=info,sportello_store=info,sportello_intake=info",
        )
    });
    // Colour codes only on a terminal: a log file or journald must read as plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Reads and validates the configuration.
pub fn load_config(file: &Option<PathBuf>, data: &Option<PathBuf>) -> Result<Config, ConfigError> {
    Config::load(&Sources {
        file: file.clone(),
        data_dir: data.clone(),
        env: process_env(),
    })
}

/// Store settings from the configuration.
pub fn store_settings(config: &Config) -> anyhow::Result<StoreSettings> {
    Ok(StoreSettings {
        case_types: config.case_types()?,
        calendar: config.holiday_calendar(),
        max_connections: config.database.max_connections.unwrap_or(10),
        police_addresses: config.office.police_addresses(),
    })
}

/// Opens the database with the system clock.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with_clock(config, Arc::new(SystemClock)).await
}

/// Opens the database with a given clock (the demo replays months of history).
pub async fn open_store_with_clock(config: &Config, clock: SharedClock) -> anyhow::Result<Store> {
    let url = config.database_url();
    Store::connect(&url, clock, store_settings(config)?)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                sportello_config::redact_url(&url)
            )
        })
}

/// Opens the document store.
pub fn open_blobs(config: &Config) -> anyhow::Result<BlobStore> {
    BlobStore::open(
        &config.documents_url(),
        config.documents.endpoint.as_deref(),
        config.documents.region.as_deref(),
    )
    .with_context(|| format!("cannot open the document store {}", config.documents_url()))
}

/// `sportello user add`.
pub async fn user_add(
    config: &Config,
    login: &str,
    role: &str,
    name: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let role = Role::parse(role).ok_or_else(|| {
        UsageError(format!(
            "unknown role '{role}' (allowed: admin, supervisor, operator, police, integration)"
        ))
    })?;
    let store = open_store(config).await?;
    let secrets = match store.add_user(login, name.unwrap_or(login), role).await {
        Ok(s) => s,
        Err(sportello_store::StoreError::Invalid { field, message }) => {
            return Err(UsageError(format!("{field}: {message}")).into());
        }
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    println!("login: {login}");
    println!("role: {}", role.as_str());
    println!("password: {}", secrets.password);
    println!("token: {}", secrets.token);
    eprintln!(
        "Keep these now: the password and the token are stored hashed and cannot be shown again."
    );
    Ok(ExitCode::SUCCESS)
}

/// `sportello register verify`.
pub async fn register_verify(config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let outcome = store.verify_register().await?;
    store.close().await;
    match outcome {
        Ok(n) => {
            println!("register intact: {n} entries, hash chain verified");
            Ok(ExitCode::SUCCESS)
        }
        Err(brk) => {
            println!("register BROKEN at {brk}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `sportello documents verify`.
pub async fn documents_verify(config: &Config) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let hashes = store.all_document_hashes().await?;
    store.close().await;
    let progress = indicatif::ProgressBar::new(hashes.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifica documenti {bar:30} {pos}/{len} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Each object is hashed as it streams in, a few at a time (object stores answer
    // faster in parallel); memory does not grow with the size of a document.
    let checks = futures::stream::iter(hashes.iter().cloned())
        .map(|(sha, size)| {
            let blobs = blobs.clone();
            async move {
                let verdict = rehash(&blobs, &sha).await.map(|found| match found {
                    None => Some(format!("MISSING {sha}")),
                    Some((actual, len)) if actual != sha || size.is_some_and(|s| s != len) => Some(
                        format!("ALTERED {sha} (now hashes to {actual}, {len} bytes)"),
                    ),
                    Some(_) => None,
                });
                (sha, verdict)
            }
        })
        .buffer_unordered(4);
    futures::pin_mut!(checks);
    let mut problems = Vec::new();
    while let Some((sha, verdict)) = checks.next().await {
        progress.inc(1);
        match verdict {
            Ok(None) => {}
            Ok(Some(line)) => problems.push(line),
            Err(e) => {
                progress.abandon();
                return Err(anyhow::Error::from(e).context(format!("reading document {sha}")));
            }
        }
    }
    progress.finish_and_clear();
    problems.sort();
    for line in &problems {
        println!("{line}");
    }
    if problems.is_empty() {
        println!(
            "documents intact: {} verified in {}",
            hashes.len(),
            blobs.description()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} of {} documents missing or altered",
            problems.len(),
            hashes.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The SHA-256 and size of what is stored under `sha`, read as a stream; `None` when
/// nothing is stored there.
async fn rehash(
    blobs: &sportello_store::documents::BlobStore,
    sha: &str,
) -> Result<Option<(String, i64)>, sportello_store::StoreError> {
    use futures::StreamExt;
    let mut stream = match blobs.get_stream(sha).await {
        Ok(stream) => stream,
        Err(sportello_store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut len: i64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| sportello_store::StoreError::Blob(e.to_string()))?;
        len += chunk.len() as i64;
        hasher.update(&chunk);
    }
    Ok(Some((hex::encode(hasher.finalize()), len)))
}
