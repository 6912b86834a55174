//! The reports over a year of cases (issue #6).
//!
//! `cargo bench -p sportello-store --features testing --bench reports` builds a
//! deterministic office year through the public [`Store`] API — `CASES` cases received over
//! the 365 days before 26 November 2026, each moved along its workflow with
//! `apply_action` at the hour its plan says (assignment, review, integration requests
//! with their suspensions, art. 10-bis notices, decisions, permits, closing, a few
//! withdrawals and a few never assigned), the clock set hour by hour — and then times the
//! throughput report (grouped by case type, channel and month) and the SLA report over
//! the last 365 days, `RUNS` times each after one warm-up run, printing min, median, p95
//! and max in milliseconds.
//!
//! Environment (defaults in brackets): `CASES` [100000], `SEED` [6], `RUNS` [20]. The
//! database is a throw-away one from [`test_database_url`] (SQLite in a temporary folder,
//! or a new PostgreSQL database when `SPORTELLO_TEST_DATABASE_URL` is set; kept with
//! `KEEP_DB=1`); `REPORTS_DB_URL` names a database to use instead, and one that already
//! holds cases is only measured.

#![allow(clippy::unwrap_used, missing_docs, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::case::Channel;
use sportello_domain::clock::FixedClock;
use sportello_domain::roles::Role;
use sportello_domain::workflow::Action;
use sportello_store::cases::{CaseFilter, CitizenInput, NewCase};
use sportello_store::reports::{GroupBy, Period};
use sportello_store::testing::{DATABASE_ENV, fixture_now, test_database_url};
use sportello_store::{Backend, Store, StoreSettings};

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

const OPERATORS: usize = 8;

/// One case's year: when it arrives, what it is, and its actions in order.
struct Plan {
    received_at: DateTime<Utc>,
    case_type: &'static str,
    channel: Channel,
    steps: Vec<(DateTime<Utc>, Action, String)>,
}

fn hours(rng: &mut StdRng, from: f64, to: f64) -> Duration {
    Duration::minutes((rng.random_range(from..to) * 60.0) as i64)
}

fn days(rng: &mut StdRng, from: f64, to: f64) -> Duration {
    hours(rng, from * 24.0, to * 24.0)
}

fn plans(cases: usize, seed: u64, now: DateTime<Utc>) -> Vec<Plan> {
    let mut rng = StdRng::seed_from_u64(seed);
    let first_day = rome_date(now) - Duration::days(365);
    let mut out: Vec<Plan> = (0..cases)
        .map(|_| {
            // Office hours of a day that is not a Sunday.
            let mut day = first_day + Duration::days(rng.random_range(0..365));
            if day.weekday() == Weekday::Sun {
                day += Duration::days(1);
            }
            let received_at = rome_start_of_day(day) + hours(&mut rng, 8.0, 18.0);
            let case_type = match rng.random_range(0..100) {
                0..60 => "ztl_permit",
                60..85 => "cude",
                _ => "seg",
            };
            let channel = match rng.random_range(0..100) {
                0..40 => Channel::Web,
                40..55 => Channel::Email,
                55..70 => Channel::Pec,
                70..85 => Channel::Counter,
                85..90 => Channel::Phone,
                90..95 => Channel::Post,
                _ => Channel::Scan,
            };
            let operator = format!("op{}", rng.random_range(1..=OPERATORS));
            let mut steps = Vec::new();
            let mut t = received_at;
            let mut step = |t: &mut DateTime<Utc>, after: Duration, action: Action, who: &str| {
                *t += after;
                steps.push((*t, action, who.to_owned()));
            };
            if rng.random_range(0..1000) >= 5 {
                step(
                    &mut t,
                    hours(&mut rng, 1.0, 60.0),
                    Action::Assign {
                        user: operator.clone(),
                    },
                    "sup",
                );
                step(
                    &mut t,
                    days(&mut rng, 0.2, 5.0),
                    Action::StartReview,
                    &operator,
                );
                let fate = rng.random_range(0..100);
                if fate < 3 {
                    step(
                        &mut t,
                        days(&mut rng, 1.0, 20.0),
                        Action::Withdraw,
                        &operator,
                    );
                } else {
                    if fate < 23 {
                        let missing = Action::RequestIntegration {
                            missing: vec!["documento_identita".into()],
                        };
                        step(&mut t, days(&mut rng, 1.0, 5.0), missing, &operator);
                        step(
                            &mut t,
                            days(&mut rng, 2.0, 29.0),
                            Action::IntegrationReceived,
                            &operator,
                        );
                    }
                    if case_type == "seg" {
                        let reasons = vec!["verificato".to_owned()];
                        let outcome = if rng.random_bool(0.7) {
                            Action::Confirm { reasons }
                        } else {
                            Action::Annul { reasons }
                        };
                        step(&mut t, days(&mut rng, 2.0, 25.0), outcome, &operator);
                    } else if fate >= 95 {
                        let reasons = vec!["requisiti mancanti".to_owned()];
                        step(
                            &mut t,
                            days(&mut rng, 2.0, 10.0),
                            Action::NotifyRejection {
                                reasons: reasons.clone(),
                            },
                            &operator,
                        );
                        step(
                            &mut t,
                            days(&mut rng, 10.5, 14.0),
                            Action::Reject { reasons },
                            &operator,
                        );
                        step(&mut t, days(&mut rng, 0.1, 5.0), Action::Close, &operator);
                    } else {
                        step(
                            &mut t,
                            days(&mut rng, 1.0, 18.0),
                            Action::Approve,
                            &operator,
                        );
                        step(&mut t, days(&mut rng, 0.05, 3.0), Action::Issue, &operator);
                        step(&mut t, days(&mut rng, 0.05, 7.0), Action::Close, &operator);
                    }
                }
            }
            steps.retain(|(at, _, _)| *at < now);
            Plan {
                received_at,
                case_type,
                channel,
                steps,
            }
        })
        .collect();
    out.sort_by_key(|p| p.received_at);
    out
}

fn new_case(plan: &Plan, i: usize) -> NewCase {
    NewCase {
        case_type: plan.case_type.into(),
        subject: format!("Domanda numero {i}"),
        description: "Richiesta di permesso di accesso alla ZTL per residenti".into(),
        channel: plan.channel,
        citizen: CitizenInput {
            name: Some(format!("Cittadino {}", i % 20_000)),
            email: Some(format!("cittadino{}@example.it", i % 20_000)),
            ..CitizenInput::default()
        },
        fields: serde_json::Map::new(),
        flags: Vec::new(),
        actor: "system".into(),
        document_sha256: None,
        registered_as: None,
        terms: None,
    }
}

/// Replays the year hour by hour: the clock is set to each hour, that hour's cases are
/// created (concurrently, so group commit batches them), then each case's actions of the
/// hour run in order, cases concurrently.
async fn build(store: &Store, clock: &FixedClock, plans: &[Plan], now: DateTime<Utc>) {
    clock.set(plans.first().map_or(now, |p| p.received_at) - Duration::days(1));
    store
        .add_user("sup", "Supervisore", Role::Supervisor)
        .await
        .unwrap();
    for i in 1..=OPERATORS {
        store
            .add_user(&format!("op{i}"), &format!("Operatore {i}"), Role::Operator)
            .await
            .unwrap();
    }
    let hour = |t: DateTime<Utc>| t.timestamp() / 3600;
    let mut events: Vec<(i64, usize, Option<usize>)> = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        events.push((hour(p.received_at), i, None));
        for (k, (at, _, _)) in p.steps.iter().enumerate() {
            events.push((hour(*at).max(hour(p.received_at)), i, Some(k)));
        }
    }
    events.sort();
    let mut references: Vec<Option<String>> = vec![None; plans.len()];
    let started = Instant::now();
    let (mut created, mut acted, mut next_report) = (0_usize, 0_usize, 10_000_usize);
    let mut e = 0;
    while e < events.len() {
        let h = events[e].0;
        let end = events[e..].partition_point(|ev| ev.0 == h) + e;
        clock.set(DateTime::from_timestamp(h * 3600, 0).unwrap());
        let creations: Vec<usize> = events[e..end]
            .iter()
            .filter(|ev| ev.2.is_none())
            .map(|ev| ev.1)
            .collect();
        let made = futures::future::join_all(creations.iter().map(|&i| {
            let store = store.clone();
            let new = new_case(&plans[i], i);
            async move { store.create_case(new).await.unwrap().summary.reference }
        }))
        .await;
        for (i, reference) in creations.iter().zip(made) {
            references[*i] = Some(reference);
        }
        created += creations.len();
        let mut per_case: Vec<(usize, Vec<usize>)> = Vec::new();
        for ev in &events[e..end] {
            if let Some(k) = ev.2 {
                match per_case.last_mut() {
                    Some((i, steps)) if *i == ev.1 => steps.push(k),
                    _ => per_case.push((ev.1, vec![k])),
                }
            }
        }
        futures::future::join_all(per_case.iter().map(|(i, steps)| {
            let store = store.clone();
            let reference = references[*i].clone().unwrap();
            let plan = &plans[*i];
            async move {
                for &k in steps {
                    let (_, action, who) = &plan.steps[k];
                    store
                        .apply_action(&reference, action, Some("nota"), who)
                        .await
                        .unwrap();
                }
            }
        }))
        .await;
        acted += per_case.iter().map(|(_, s)| s.len()).sum::<usize>();
        if created >= next_report {
            next_report += 10_000;
            eprintln!(
                "  {created} cases, {acted} actions, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        e = end;
    }
    clock.set(now);
    // Suspensions that lapsed are ended by the tick `serve` runs every minute.
    store.sla_tick().await.unwrap();
    println!(
        "build: {created} cases and {acted} actions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let pick = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label:<28} min {:7.1}  median {:7.1}  p95 {:7.1}  max {:7.1} ms  ({} runs)",
        pick(0.0),
        pick(0.5),
        pick(0.95),
        pick(1.0),
        ms.len()
    );
}

async fn pg_analyze(url: &str) {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::main]
async fn main() {
    let cases: usize = env_or("CASES", 100_000).max(1);
    let seed: u64 = env_or("SEED", 6);
    let runs: usize = env_or("RUNS", 20).max(1);
    let dir = tempfile::tempdir().unwrap();
    let given = std::env::var("REPORTS_DB_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let url = match &given {
        Some(url) => url.clone(),
        None => test_database_url(dir.path()).await,
    };
    println!(
        "reports bench: CASES={cases} SEED={seed} RUNS={runs}; machine: {} cores; database {url}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let now = fixture_now();
    let clock = FixedClock::new(now);
    let store = Store::connect(&url, Arc::new(clock.clone()), StoreSettings::default())
        .await
        .unwrap()
        .with_write_batching();
    let (_, existing) = store
        .list_cases(&CaseFilter {
            page: 1,
            per_page: 1,
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    if existing == 0 {
        let t = Instant::now();
        let plans = plans(cases, seed, now);
        eprintln!(
            "planned {} cases in {:.1} s",
            plans.len(),
            t.elapsed().as_secs_f64()
        );
        build(&store, &clock, &plans, now).await;
    } else {
        println!("reusing the {existing} cases in the database");
        clock.set(now);
    }
    if store.backend() == Backend::Postgres {
        pg_analyze(&url).await;
    }

    let period = Period::ending(rome_date(now), 365);
    let r = store
        .throughput_report(period, GroupBy::CaseType)
        .await
        .unwrap();
    println!(
        "period {} to {}: received {}, closed {}, open at the end {}; lead time median {:?} p90 {:?} days \
         (net {:?} / {:?}); first answer median {:?} p90 {:?} ({} answered); within the term {:?}, the standard {:?}",
        r.from,
        r.to,
        r.totals.opened,
        r.totals.closed,
        r.totals.open,
        r.totals.lead_time_days.median,
        r.totals.lead_time_days.p90,
        r.totals.lead_time_days.median_net,
        r.totals.lead_time_days.p90_net,
        r.totals.first_answer_days.median,
        r.totals.first_answer_days.p90,
        r.totals.first_answer_days.answered,
        r.totals.within_legal_term_share,
        r.totals.within_service_share,
    );
    println!(
        "now: {} open, {} overdue, {} orphan; {} weeks",
        r.current.open,
        r.current.overdue,
        r.current.orphans.total,
        r.weekly.len()
    );
    let sla = store.sla_report(period).await.unwrap();
    println!(
        "sla: on time {:?}, within the standard {:?}, {} overdue listed, {} orphans listed",
        sla.on_time_share,
        sla.within_service_share,
        sla.overdue.len(),
        sla.orphans.len()
    );

    for (label, group_by) in [
        ("throughput by case_type", Some(GroupBy::CaseType)),
        ("throughput by channel", Some(GroupBy::Channel)),
        ("throughput by month", Some(GroupBy::Month)),
        ("sla", None),
    ] {
        let mut times = Vec::with_capacity(runs);
        for run in 0..=runs {
            let t = Instant::now();
            match group_by {
                Some(g) => {
                    store.throughput_report(period, g).await.unwrap();
                }
                None => {
                    store.sla_report(period).await.unwrap();
                }
            }
            if run > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        summary(label, times);
    }
    store.close().await;

    if given.is_none() && std::env::var("KEEP_DB").as_deref() != Ok("1") {
        if let (Ok(admin), Some(name)) = (std::env::var(DATABASE_ENV), url.rsplit('/').next())
            && url.starts_with("postgres")
        {
            let name = name.split('?').next().unwrap_or(name).to_owned();
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    } else if given.is_none() {
        println!("kept: {url}");
        let _ = dir.keep();
    }
}
