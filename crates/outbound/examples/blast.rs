//! Throughput of the pooled SMTP transport, by hand (not a test: no threshold):
//! sends N e-mails (default 2000) with C in flight (default 8) to a local aiosmtpd sink
//! and prints messages per second.
//!
//! `cargo run --release -p sportello-outbound --features testing --example blast -- 2000 8`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sportello_config::{OutboundConfig, SecretUrl};
use sportello_outbound::testing::SmtpSink;
use sportello_outbound::{Attachment, Channel, Envelope, Transports};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let in_flight: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mut config = OutboundConfig::default();
    config.email.smtp_url = Some(SecretUrl(sink.url()));
    config.email.from = Some("Ufficio Permessi <permessi@comune.example.it>".into());
    let transports = match Transports::from_config(&config) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (transports, next, failed) = (transports.clone(), next.clone(), failed.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let envelope = Envelope {
                    channel: Channel::Email,
                    to: format!("cittadino{i}@example.it"),
                    subject: format!("Pratica ZTL-2026-{i:06}: esito"),
                    body: "Gentile cittadino,\nla pratica è stata esaminata.\n".repeat(20),
                    message_id: format!("out-{i}.blast@sportello.comune.example.it"),
                    in_reply_to: Some(format!("q{i}@example.it")),
                    references: vec![format!("q{i}@example.it")],
                    attachments: vec![Attachment {
                        filename: "esito.pdf".into(),
                        media_type: "application/pdf".into(),
                        bytes: vec![b'x'; 20_000],
                    }],
                    whatsapp_template: false,
                };
                if let Err(e) = transports.send(&envelope).await {
                    eprintln!("message {i}: {e}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    let received = sink.wait_for(total - failed, Duration::from_secs(30)).len();
    println!(
        "{total} e-mails (20 kB PDF each), {in_flight} in flight: {:.2} s, {:.0} messages/s; \
         {failed} failed, {received} in the sink's Maildir",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}
