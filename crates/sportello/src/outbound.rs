//! `sportello outbound send`: the sender of messages to citizens as a process of its own
//! (with `outbound.sender = false`, `serve` only queues them). It drains the queue and
//! says how it went; with `--watch` it keeps sending what gets queued until stopped.
//!
//! Killing it at any moment loses nothing: what it had taken goes back to the queue when
//! `outbound.lease_seconds` have passed. SIGINT/SIGTERM stop it cleanly: nothing more is
//! taken, the messages in flight are finished and recorded.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sportello_config::Config;
use sportello_outbound::worker::{Outcome, Pass, Worker, WorkerSettings};
use sportello_outbound::{Channel, Transports};

use crate::app::{UsageError, open_blobs, open_store};

/// How long `--watch` waits between two looks at an empty queue.
const WATCH_IDLE: Duration = Duration::from_secs(1);

/// Runs the command.
pub async fn send(config: &Config, watch: bool) -> anyhow::Result<ExitCode> {
    let transports = Transports::from_config(&config.outbound)
        .map_err(|e| UsageError(format!("{}: {}", e.key, e.message)))?;
    if !Channel::ALL.iter().any(|c| transports.is_configured(*c)) {
        // Every message would fail for good on a missing channel: refuse instead.
        return Err(UsageError(
            "no outbound channel is configured ([outbound.email], [outbound.pec], …): \
             nothing could be sent"
                .into(),
        )
        .into());
    }
    let store = open_store(config).await?;
    let blobs = open_blobs(config)?;
    let transports = Arc::new(transports.with_clock(store.clock().clone()));
    let worker = Worker::new(
        store.clone(),
        blobs,
        transports,
        WorkerSettings::from_config(config),
    );
    let result = if watch {
        watch_queue(&worker).await
    } else {
        drain_once(&worker, &store).await
    };
    store.close().await;
    result
}

/// Drains the queue once, with a progress bar, and prints the summary.
async fn drain_once(worker: &Worker, store: &sportello_store::Store) -> anyhow::Result<ExitCode> {
    let (waiting, _) = store.outbound_counts().await?;
    let progress = indicatif::ProgressBar::new(u64::try_from(waiting).unwrap_or(0));
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} invio messaggi {bar:30} {pos}/{len} ({per_sec}, {eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut tally = Pass::default();
    let result = worker
        .drain_with(
            |outcome| {
                match outcome {
                    Outcome::Sent => tally.sent += 1,
                    Outcome::Retried => tally.retried += 1,
                    Outcome::Failed => tally.failed += 1,
                }
                if progress.position() >= progress.length().unwrap_or(0) {
                    progress.inc_length(1);
                }
                progress.inc(1);
                if tally.retried + tally.failed > 0 {
                    progress.set_message(format!(
                        "{} da riprovare, {} falliti",
                        tally.retried, tally.failed
                    ));
                }
            },
            crate::serve::shutdown_signal(),
        )
        .await;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let pass = match result {
        Ok(pass) => pass,
        Err(e) => {
            println!("{}", summary(&tally, elapsed));
            return Err(anyhow::Error::from(e).context("the outbound queue"));
        }
    };
    println!("{}", summary(&pass, elapsed));
    let (waiting, _) = store.outbound_counts().await?;
    if waiting > 0 {
        println!(
            "{waiting} still waiting (to be retried later, or taken by a sender that has not \
             finished; a killed sender's messages come back after outbound.lease_seconds)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends what is queued until SIGINT/SIGTERM, one summary line per busy spell.
async fn watch_queue(worker: &Worker) -> anyhow::Result<ExitCode> {
    println!("Sending queued messages as they come, until stopped (SIGINT/SIGTERM)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    loop {
        let started = Instant::now();
        match worker.drain_with(|_| {}, stopped(stop_rx.clone())).await {
            Ok(pass) if pass.total() > 0 => println!("{}", summary(&pass, started.elapsed())),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbound pass failed"),
        }
        if *stop_rx.borrow() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = stopped(stop_rx.clone()) => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(WATCH_IDLE) => {}
        }
    }
}

/// `sent N, retried N, failed N in S s (R messages/s)`.
fn summary(pass: &Pass, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        pass.sent as f64 / seconds
    } else {
        0.0
    };
    format!(
        "sent {}, retried {}, failed {} in {seconds:.2} s ({rate:.0} messages/s)",
        pass.sent, pass.retried, pass.failed
    )
}
