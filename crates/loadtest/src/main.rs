//! `sportello-load`: drives a running Sportello with concurrent clients and reports
//! throughput and latency percentiles for creating, reading and listing cases.
//! See `bench/run.sh` for the whole measured scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rand::Rng;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Load generator for the Sportello API")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API token of an operator.
    #[arg(long, env = "SPORTELLO_TOKEN")]
    token: String,
    /// Cases to create before measuring reads (0 to skip).
    #[arg(long, default_value_t = 10_000)]
    create: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of `GET /api/v1/cases/{ref}`.
    #[arg(long, default_value_t = 20)]
    get_seconds: u64,
    /// Seconds of filtered lists.
    #[arg(long, default_value_t = 10)]
    list_seconds: u64,
}

/// Latencies of one phase.
struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Phase {
    fn report(mut self) {
        self.latencies.sort();
        let n = self.latencies.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let idx = ((p / 100.0) * (n as f64 - 1.0)).round() as usize;
            self.latencies[idx.min(n - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "{:<28} {:>8} requests in {:>6.1}s = {:>8.0}/s   p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            self.name,
            n,
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64().max(1e-9),
            pct(50.0),
            pct(95.0),
            pct(99.0),
            self.errors
        );
    }
}

async fn run_phase<F, Fut>(name: &'static str, concurrency: usize, stop: Stop, work: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let work = Arc::new(work);
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (work, counter, stop) = (work.clone(), counter.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if stop.done(i, started) {
                    break;
                }
                let t = Instant::now();
                if work(i).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut phase = Phase {
        name,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
    };
    for t in tasks {
        if let Ok((l, e)) = t.await {
            phase.latencies.extend(l);
            phase.errors += e;
        }
    }
    phase.elapsed = started.elapsed();
    phase
}

/// A 200 whose body was read completely.
async fn read_ok(sent: reqwest::Result<reqwest::Response>) -> bool {
    match sent {
        Ok(r) if r.status().as_u16() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

#[derive(Clone)]
enum Stop {
    Count(usize),
    Time(Duration),
}

impl Stop {
    fn done(&self, i: usize, started: Instant) -> bool {
        match self {
            Stop::Count(n) => i >= *n,
            Stop::Time(d) => started.elapsed() >= *d,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let auth = format!("Bearer {}", args.token);
    let base = args.url.trim_end_matches('/').to_owned();

    if args.create > 0 {
        let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
        let phase = run_phase("create case (POST)", args.concurrency, Stop::Count(args.create), move |i| {
            let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
            async move {
                let case_type = if i % 4 == 0 { "cude" } else { "ztl_permit" };
                let body = json!({
                    "case_type": case_type, "subject": format!("Domanda di carico {i}"), "channel": "web",
                    "citizen": {"fiscal_code": "RSSMRA80A01H501U", "name": "Mario Rossi", "email": "mario.rossi@example.it"}
                });
                matches!(client.post(format!("{base}/api/v1/cases")).header("authorization", auth).json(&body).send().await,
                         Ok(r) if r.status().as_u16() == 201)
            }
        })
        .await;
        phase.report();
    }

    let first = client
        .get(format!(
            "{base}/api/v1/cases?per_page=1&case_type=ztl_permit"
        ))
        .header("authorization", &auth)
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let newest = first["items"][0]["reference"]
        .as_str()
        .context("no cases to read: run with --create")?
        .to_owned();
    let year = newest.split('-').nth(1).context("reference")?.to_owned();
    let max: u64 = newest.rsplit('-').next().context("reference")?.parse()?;
    if max == 0 {
        bail!("no cases");
    }

    {
        let (client, auth, base, year) = (client.clone(), auth.clone(), base.clone(), year.clone());
        let phase =
            run_phase(
                "get case by reference",
                args.concurrency,
                Stop::Time(Duration::from_secs(args.get_seconds)),
                move |_| {
                    let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
                    let n = rand::rng().random_range(1..=max);
                    let url = format!("{base}/api/v1/cases/ZTL-{year}-{n:06}");
                    async move {
                        read_ok(client.get(url).header("authorization", auth).send().await).await
                    }
                },
            )
            .await;
        phase.report();
    }

    for (label, concurrency) in [
        ("list status+type, 50/page", 1usize),
        ("list status+type (x8)", args.concurrency),
    ] {
        let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
        let phase = run_phase(label, concurrency, Stop::Time(Duration::from_secs(args.list_seconds)), move |i| {
            let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
            let page = 1 + (i % 20);
            let url = format!("{base}/api/v1/cases?status=received&case_type=ztl_permit&per_page=50&page={page}");
            async move { read_ok(client.get(url).header("authorization", auth).send().await).await }
        })
        .await;
        phase.report();
    }
    Ok(())
}
