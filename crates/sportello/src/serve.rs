//! `sportello serve`: the HTTP server and the background workers.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sportello_app::App;
use sportello_config::Config;
use sportello_intake::imap::{MailboxPoller, PollerContext};
use sportello_intake::pipeline::{Limits, OcrSettings};
use sportello_web::{AppState, router};

use crate::app::{open_blobs, open_store};
use crate::demo;

/// Runs until SIGINT/SIGTERM, then drains requests and closes the database cleanly.
pub async fn run(
    mut config: Config,
    with_demo: bool,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let config = Arc::new(config);
    // Before anything opens the database: one server per SQLite file, a disk that takes
    // writes, private files, no half-written uploads of a crashed run.
    let serve_lock = crate::startup::lock(&config)?;
    crate::startup::check_writable(&crate::startup::local_dirs(&config))?;
    let cleaned = crate::startup::clean_staged_uploads(
        &config.data_dir,
        serve_lock.is_some(),
        std::time::SystemTime::from(sportello_domain::clock::Clock::now(
            &sportello_domain::clock::SystemClock,
        )),
    );
    if cleaned > 0 {
        tracing::info!(
            files = cleaned,
            "staged uploads left by an interrupted run removed"
        );
    }
    {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let changed = crate::startup::tighten_permissions(&config);
            if changed > 0 {
                tracing::info!(
                    files = changed,
                    "permissions tightened: files 0600 and folders 0700 (they were readable by others)"
                );
            }
        });
    }
    let blobs = open_blobs(&config)?;
    let logins = if with_demo {
        Some(demo::prepare(&config, &blobs).await?)
    } else {
        None
    };
    let store = open_store(&config)
        .await?
        .with_audit_writer()
        .with_write_batching();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another program using it?)",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;

    println!(
        "Sportello is running on http://{addr} (API under /api/v1, description at /api/openapi.json)"
    );
    // Where people reach it: the public address when one is configured, else the socket.
    let local = format!("http://{addr}");
    let public = match config.public_url.trim_end_matches('/') {
        "http://127.0.0.1:8080" => local.as_str(),
        configured => configured,
    };
    println!("  Portale dei cittadini / citizens' portal: {public}/");
    println!("  Ufficio / back office (staff sign-in):    {public}/ufficio");
    println!("  API documentation:                        {public}/api/openapi.json");
    println!(
        "Database: {}",
        sportello_config::redact_url(&config.database_url())
    );
    println!("Documents: {}", blobs.description());
    match &logins {
        Some(logins) => {
            println!(
                "Demo office ready. Logins (passwords and API tokens are new at every start):"
            );
            for l in logins {
                println!(
                    "  {:<12} role {:<10} password {}  token {}",
                    l.login, l.role, l.password, l.token
                );
            }
        }
        None if store.count_users().await? == 0 => {
            println!("No users yet. Add the first one with:");
            println!("  sportello user add admin --role admin --name \"Amministratore\"");
        }
        None => {}
    }

    let instance = instance_name();
    // With several instances on one database each duty is done by the one holding its
    // lease (the mailboxes and outbound messages have leases of their own).
    let duties = Arc::new(crate::duties::Duties::new(
        store.clone(),
        instance.clone(),
        &config.duties,
    ));
    match store.release_stale_duties().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(duties = n, "duties of a stopped process taken back"),
        Err(e) => tracing::warn!(error = %e, "stale duty leases not released"),
    }
    let ticker = tokio::spawn(sla_ticker(store.clone(), duties.clone()));
    // One pool of OCR workers for the whole process: mailboxes and the MTA pipe share it.
    let ocr = OcrSettings::from_config(&config);
    let pec_trust_anchors = crate::ingest::trust_anchors(&config)?;
    let pollers = MailboxPoller::from_config(
        &config,
        &PollerContext {
            store: store.clone(),
            blobs: blobs.clone(),
            ocr: ocr.clone(),
            limits: Limits::from_config(&config),
            owner: instance.clone(),
            pec_trust_anchors: pec_trust_anchors.clone(),
        },
    )
    .context("mailbox configuration")?;
    let pollers: Vec<_> = pollers
        .into_iter()
        .map(|p| {
            println!(
                "Mailbox '{}' is polled by this instance while it holds the mailbox's lease",
                p.name()
            );
            tokio::spawn(p.run())
        })
        .collect();
    // Cases from before the search index existed become searchable, in the background:
    // a scan of every case must not delay start-up.
    // One instance does it (the others wait for its lease to lapse, find nothing left and
    // stop; one that dies half-way leaves the rest to the next).
    let backlog = {
        let (store, duties) = (store.clone(), duties.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(duties.tick());
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if !duties.hold(crate::duties::SEARCH_BACKLOG).await {
                    continue;
                }
                let lease = duties.lease();
                match duties
                    .renewing(crate::duties::SEARCH_BACKLOG, lease, store.index_backlog())
                    .await
                {
                    Ok(0) => break,
                    Ok(n) => {
                        tracing::info!(cases = n, "search index: existing cases indexed");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "search backlog not indexed"),
                }
            }
        })
    };
    // Documents wait in the database for their text; this instance reads its share.
    let text_worker = tokio::spawn(sportello_intake::reading::run_text_worker(
        store.clone(),
        blobs.clone(),
        ocr.clone(),
    ));
    let scanner = crate::scan_watch::ScanWatcher::from_config(
        &config,
        store.clone(),
        blobs.clone(),
        duties.clone(),
    )
    .map(|watcher| {
        println!(
            "Scanner folder: {} (batches are split at their cover sheets)",
            watcher.dir().display()
        );
        tokio::spawn(watcher.run())
    });
    let (policy, policy_text) = crate::ztl::load_policy_text(&config)?;
    let policy_version = store.record_policy_version(&policy_text, "serve").await?;
    let mut app = App::new(
        store.clone(),
        blobs,
        config.clone(),
        std::sync::Arc::new(policy),
        sportello_web::names(),
    )?;
    app.policy_version = Some(policy_version);
    app.pec_trust_anchors = pec_trust_anchors;
    app.ocr = ocr;
    let state = AppState::with_app(app);
    // Messages to citizens: sent by this instance's worker (several instances share the
    // queue safely: each message is leased) unless `outbound.sender = false` leaves them
    // to `sportello outbound send --watch`; and the contact centre's minute.
    let stop_sending = tokio::sync::watch::Sender::new(false);
    let sender = {
        let worker = config.outbound.sender.then(|| {
            sportello_outbound::worker::Worker::new(
                store.clone(),
                state.blobs.clone(),
                state.transports.clone(),
                sportello_outbound::worker::WorkerSettings::from_config(&config),
            )
        });
        if worker.is_none() {
            println!(
                "Outbound messages are queued, not sent, by this instance (outbound.sender = false): \
                 run `sportello outbound send --watch`"
            );
        }
        let wakeup = state.outbound_wakeup.clone();
        let stop = stop_sending.subscribe();
        tokio::spawn(async move {
            if let Some(worker) = worker {
                worker.run(wakeup, Duration::from_secs(2), stop).await;
            }
        })
    };
    let contact = {
        let (app, duties) = (state.app.clone(), duties.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(duties.tick());
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if duties.hold(crate::duties::CONTACT).await {
                    sportello_app::ticks::contact(&app).await;
                }
            }
        })
    };
    let metrics_listener = match config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on metrics.listen = {addr}"))?;
            println!(
                "Metrics (Prometheus): http://{}/metrics",
                listener.local_addr()?
            );
            let metrics = sportello_web::hygiene::metrics_router(state.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, metrics).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the HTTP server stopped with an error")?;
    ticker.abort();
    // The messages in flight are finished and recorded (a killed sender would send them
    // again after their lease).
    stop_sending.send_replace(true);
    if tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .is_err()
    {
        tracing::warn!("the sender did not finish within 30 s");
    }
    contact.abort();
    backlog.abort();
    if let Some(metrics) = metrics_listener {
        metrics.abort();
    }
    text_worker.abort();
    if let Some(scanner) = scanner {
        scanner.abort();
    }
    for poller in pollers {
        poller.abort();
    }
    // Another instance may take the mailboxes over at once rather than when the leases lapse.
    if let Err(e) = store.release_mailbox_leases(&instance).await {
        tracing::warn!(error = %e, "could not release the mailbox leases");
    }
    duties.release_all().await;
    store.close().await;
    drop(serve_lock);
    Ok(ExitCode::SUCCESS)
}

/// This process's name in the lease tables (mailboxes, duties): host, process id and a random part, so
/// that a restarted process never mistakes an old lease for its own.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sportello".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Every minute (`duties.tick_seconds`, and once at start), on the one instance holding
/// the `sla` duty: closes lapsed suspensions, journals the expiry of permits whose
/// validity has ended, forgets lapsed sessions, and records the day's gauges (open,
/// overdue, orphan cases) once a day.
async fn sla_ticker(store: sportello_store::Store, duties: Arc<crate::duties::Duties>) {
    let mut interval = tokio::time::interval(duties.tick());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if !duties.hold(crate::duties::SLA).await {
            continue;
        }
        match store.sla_tick().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cases = n, "suspensions lapsed"),
            Err(e) => tracing::warn!(error = %e, "SLA tick failed"),
        }
        match store.mark_expired_permits().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(permits = n, "permits expired"),
            Err(e) => tracing::warn!(error = %e, "permit expiry tick failed"),
        }
        if let Err(e) = store.purge_sessions().await {
            tracing::warn!(error = %e, "session purge failed");
        }
        if let Err(e) = store.record_daily_gauges().await {
            tracing::warn!(error = %e, "daily gauges not recorded");
        }
    }
}

/// Completes at SIGINT or SIGTERM (the server and the command-line sender stop cleanly).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
