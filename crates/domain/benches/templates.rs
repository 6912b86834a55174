//! How long composing a message to a citizen takes (issue #7).
//!
//! `cargo bench -p sportello-domain --bench templates` renders every template kind in both
//! languages at both lengths, `RUNS` times each after one warm-up render, timing every
//! render on its own, and prints min, median, p99 and max in microseconds per render, per
//! combination and overall. The context is a realistic, complete one (a ZTL permit with
//! two missing documents and two reasons).
//!
//! Environment (default in brackets): `RUNS` [10000].

#![allow(clippy::unwrap_used, missing_docs, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use chrono::NaiveDate;
use sportello_domain::outbound::templates::{Length, TemplateContext, TemplateKind, render};

fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(10_000)
}

fn context() -> TemplateContext {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    TemplateContext {
        reference: "ZTL-2026-000123".into(),
        case_type: "ztl_permit".into(),
        case_type_name: "Permesso di accesso alla ZTL".into(),
        citizen_name: Some("Maria Giovanna Bianchi".into()),
        office_name: "Ufficio Permessi ZTL – Comune di Bergamo".into(),
        received_on: date(2026, 11, 2),
        due_on: Some(date(2026, 12, 2)),
        term_days: Some(30),
        missing: vec![
            "copia della carta di circolazione del veicolo".into(),
            "contratto di locazione registrato".into(),
        ],
        reasons: vec![
            "il veicolo non risulta intestato al richiedente né a un suo familiare convivente"
                .into(),
            "la residenza indicata è fuori dal perimetro della ZTL".into(),
        ],
        answer_by: Some(date(2026, 12, 10)),
        permit_number: Some("P-2026-004512".into()),
        permit_valid_to: Some(date(2028, 11, 30)),
        appointment: Some("martedì 1 dicembre 2026, ore 10:30, sportello 2".into()),
        status_link: Some(
            "https://sportello.comune.bergamo.it/pratiche/ZTL-2026-000123?t=3f9a2c7e1b5d4a6f8e0c9b7a"
                .into(),
        ),
        protocol: Some("2026/0045678".into()),
    }
}

/// min, median, p99, max of `micros` (sorted in place).
fn summary(micros: &mut [f64]) -> [f64; 4] {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    [at(0.0), at(0.5), at(0.99), at(1.0)]
}

fn main() {
    let runs = runs().max(1);
    let ctx = context();
    println!("templates: {runs} renders per combination, microseconds per render");
    println!(
        "{:<20} {:<4} {:<6} {:>8} {:>8} {:>8} {:>8}",
        "kind", "lang", "length", "min", "median", "p99", "max"
    );
    let mut all = Vec::with_capacity(runs * 32);
    for kind in TemplateKind::ALL {
        for lang in ["it", "en"] {
            for length in [Length::Full, Length::Short] {
                // Warm-up: parses the template files on the first call.
                render(kind, lang, length, &ctx).unwrap();
                let mut micros = Vec::with_capacity(runs);
                for _ in 0..runs {
                    let start = Instant::now();
                    let rendered =
                        render(black_box(kind), black_box(lang), length, black_box(&ctx));
                    let elapsed = start.elapsed();
                    black_box(rendered.unwrap());
                    micros.push(elapsed.as_secs_f64() * 1e6);
                }
                all.extend_from_slice(&micros);
                let [min, median, p99, max] = summary(&mut micros);
                println!(
                    "{:<20} {:<4} {:<6} {min:>8.2} {median:>8.2} {p99:>8.2} {max:>8.2}",
                    kind.as_str(),
                    lang,
                    format!("{length:?}").to_lowercase()
                );
            }
        }
    }
    let [min, median, p99, max] = summary(&mut all);
    println!(
        "{:<20} {:<4} {:<6} {min:>8.2} {median:>8.2} {p99:>8.2} {max:>8.2}",
        "all", "", ""
    );
}
