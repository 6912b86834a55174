//! `serve --demo`: a believable office — about 300 cases over the last six months across
//! every status, channel and case type — replayed through the office's real paths on a
//! clock set to each moment, so journals, pauses, the protocol register, permits and
//! their whitelist rows, messages in and out with their receipts, call-backs and
//! appointments are what the product itself made of them.
//!
//! - [`story`] decides what happens (seeded: the same story at every start);
//! - [`replay`] makes it happen through the portal's validation, the API's handlers and
//!   action function, the intake adapters and the sending worker ([`citizens`] for what
//!   citizens send, [`counter`] for calls, appointments, temporary plates and fines);
//! - [`messages`] writes what arrives from outside (e-mail, PEC signed by a demo
//!   provider, fax with its TIFF page from [`fax_page`], WhatsApp, Telegram);
//! - [`smtp_sink`] receives what the office sends while seeding.

mod citizens;
mod counter;
mod fax_page;
mod messages;
mod people;
mod replay;
mod smtp_sink;
mod story;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use chrono::Duration;
use sportello_config::{Config, Secret, SecretUrl};
use sportello_domain::clock::{Clock, FixedClock, SystemClock};
use sportello_domain::roles::Role;
use sportello_outbound::worker::{Worker, WorkerSettings};
use sportello_store::Store;
use sportello_store::cases::CaseFilter;
use sportello_store::documents::BlobStore;

use crate::app::open_store_with_clock;

/// A login printed at start.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    /// Login name.
    pub login: String,
    /// Role name.
    pub role: &'static str,
    /// Fresh password.
    pub password: String,
    /// Fresh API token.
    pub token: String,
}

/// Creates the demo users and, on an empty database, the demo office; returns fresh logins.
pub async fn prepare(config: &Config, blobs: &BlobStore) -> anyhow::Result<Vec<DemoLogin>> {
    let now = SystemClock.now();
    let clock = FixedClock::new(now);
    let store = open_store_with_clock(config, Arc::new(clock.clone())).await?;
    let mut logins = Vec::new();
    for (login, name, role) in [
        ("supervisore", "Maria Bassi", Role::Supervisor),
        ("operatore", "Giulia Verdi", Role::Operator),
    ] {
        let secrets = match store.user_by_login(login).await? {
            Some(_) => store.reset_credentials(login).await?,
            None => store.add_user(login, name, role).await?,
        };
        logins.push(DemoLogin {
            login: login.into(),
            role: role.as_str(),
            password: secrets.password,
            token: secrets.token,
        });
    }
    for (login, name) in &story::OPERATORS[1..] {
        if store.user_by_login(login).await?.is_none() {
            store.add_user(login, name, Role::Operator).await?;
        }
    }
    let (_, existing) = store
        .list_cases(&CaseFilter {
            page: 1,
            per_page: 1,
            ..CaseFilter::default()
        })
        .await?;
    if existing == 0 {
        seed(config, &store, &clock, blobs)
            .await
            .context("seeding the demo office")?;
    }
    store.close().await;
    Ok(logins)
}

/// Replays six months of the office up to the clock's "now".
async fn seed(
    config: &Config,
    store: &Store,
    clock: &FixedClock,
    blobs: &BlobStore,
) -> anyhow::Result<()> {
    let now = clock.now();
    let start = now - Duration::days(story::SPAN_DAYS);
    let sink = smtp_sink::SmtpSink::start()
        .await
        .context("starting the demo's SMTP server")?;
    // While seeding, the office writes by e-mail and PEC to the in-process server and
    // takes webhooks signed with secrets of its own; `serve` runs on the configuration
    // as given.
    let mut seeding = config.clone();
    let smtp = SecretUrl(sink.url());
    seeding.outbound.email.smtp_url = Some(smtp.clone());
    seeding.outbound.email.from = Some(messages::OFFICE_EMAIL.into());
    seeding.outbound.pec.smtp_url = Some(smtp);
    seeding.outbound.pec.from = Some(messages::OFFICE_PEC.into());
    seeding.webhooks.whatsapp.app_secret = Some(Secret(format!("{:032x}", rand::random::<u128>())));
    seeding.webhooks.telegram.secret_token =
        Some(Secret(format!("{:032x}", rand::random::<u128>())));
    let seeding = Arc::new(seeding);

    let (policy, policy_text) = crate::ztl::load_policy_text(config)?;
    let policy_version = store.record_policy_version(&policy_text, "demo").await?;
    let shared_clock: sportello_domain::clock::SharedClock = Arc::new(clock.clone());
    let transports = sportello_outbound::Transports::from_config(&seeding.outbound)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_clock(shared_clock);
    let mut app = sportello_app::App::new(
        store.clone(),
        blobs.clone(),
        seeding.clone(),
        Arc::new(policy),
        sportello_web::names(),
    )?;
    app.policy_version = Some(policy_version);
    app.transports = Arc::new(transports);
    let state = sportello_web::AppState::with_app(app);
    let worker = Worker::new(
        store.clone(),
        blobs.clone(),
        state.transports.clone(),
        WorkerSettings::from_config(&seeding),
    );
    let mut users = HashMap::new();
    for login in ["supervisore", "operatore", "l.neri", "s.gallo"] {
        if let Some(user) = store.user_by_login(login).await? {
            users.insert(login.to_owned(), user);
        }
    }
    let provider = messages::PecProvider::new(start).context("the demo PEC provider")?;
    let stories = story::write(now);
    let mut office = replay::Office::new(state, clock.clone(), worker, sink, provider, users)?;
    office.replay(&stories, start, now).await?;
    clock.set(now);
    store.sla_tick().await?;
    Ok(())
}
