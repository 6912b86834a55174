//! `serve --demo`: a believable office — about 300 cases over the last six months across
//! every status, channel and case type, replayed through the real workflow with a clock
//! set to each moment, so journals, pauses and the protocol register are genuine.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Duration, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sportello_config::Config;
use sportello_domain::calendar::ROME;
use sportello_domain::case::Channel;
use sportello_domain::clock::{Clock, FixedClock, SystemClock};
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::roles::Role;
use sportello_domain::workflow::Action;
use sportello_store::Store;
use sportello_store::cases::{CaseFilter, CitizenInput, NewCase};
use sportello_store::documents::{BlobStore, sniff_media_type};

use crate::app::open_store_with_clock;
use crate::pdf;

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

const CASES: usize = 300;
const OPERATORS: &[(&str, &str)] = &[
    ("operatore", "Giulia Verdi"),
    ("l.neri", "Luca Neri"),
    ("s.gallo", "Sara Gallo"),
];

const FIRST_NAMES: &[(&str, bool)] = &[
    ("Mario", false),
    ("Giulia", true),
    ("Luca", false),
    ("Francesca", true),
    ("Marco", false),
    ("Chiara", true),
    ("Giuseppe", false),
    ("Anna", true),
    ("Alessandro", false),
    ("Sara", true),
    ("Andrea", false),
    ("Elena", true),
    ("Matteo", false),
    ("Paola", true),
    ("Roberto", false),
    ("Laura", true),
    ("Stefano", false),
    ("Valentina", true),
];
const SURNAMES: &[&str] = &[
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
    "Lombardi", "Moretti", "Barbieri", "Fontana",
];
const MUNICIPALITIES: &[&str] = &["G702", "H501", "D612", "F205", "L219", "A944"];

/// Creates the demo users and, on an empty database, the demo cases; returns fresh logins.
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
    for (login, name) in &OPERATORS[1..] {
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
        seed_cases(&store, &clock, blobs, now)
            .await
            .context("seeding the demo cases")?;
    }
    store.close().await;
    Ok(logins)
}

fn fiscal_code(rng: &mut StdRng, first: &str, surname: &str, female: bool) -> Option<FiscalCode> {
    let letters = |s: &str| -> (Vec<char>, Vec<char>) {
        let up: Vec<char> = s
            .to_ascii_uppercase()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect();
        let vowels: Vec<char> = up
            .iter()
            .copied()
            .filter(|c| "AEIOU".contains(*c))
            .collect();
        let consonants: Vec<char> = up
            .iter()
            .copied()
            .filter(|c| !"AEIOU".contains(*c))
            .collect();
        (consonants, vowels)
    };
    let pad = |mut v: Vec<char>| {
        v.resize(3.max(v.len()), 'X');
        v.into_iter().take(3).collect::<String>()
    };
    let (sc, sv) = letters(surname);
    let surname_part = pad(sc.into_iter().chain(sv).collect());
    let (nc, nv) = letters(first);
    let name_part = if nc.len() >= 4 {
        [nc[0], nc[2], nc[3]].iter().collect()
    } else {
        pad(nc.into_iter().chain(nv).collect())
    };
    let year = rng.random_range(30..99);
    let month = b"ABCDEHLMPRST"[rng.random_range(0..12)] as char;
    let day = rng.random_range(1..=28) + if female { 40 } else { 0 };
    let place = MUNICIPALITIES[rng.random_range(0..MUNICIPALITIES.len())];
    FiscalCode::complete_person(&format!(
        "{surname_part}{name_part}{year:02}{month}{day:02}{place}"
    ))
    .ok()
}

fn pick<'a, T>(rng: &mut StdRng, weighted: &'a [(T, u32)]) -> &'a T {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (item, weight) in weighted {
        if roll < *weight {
            return item;
        }
        roll -= weight;
    }
    &weighted[0].0
}

/// Moves an instant into office hours (Rome, 8:00–17:59) on the same day.
fn office_hours(t: DateTime<Utc>, rng: &mut StdRng) -> DateTime<Utc> {
    let local = t.with_timezone(&ROME);
    let hour = 8 + rng.random_range(0..10);
    local
        .with_hour(hour)
        .and_then(|l| l.with_minute(rng.random_range(0..60)))
        .map(|l| l.with_timezone(&Utc))
        .unwrap_or(t)
}

async fn seed_cases(
    store: &Store,
    clock: &FixedClock,
    blobs: &BlobStore,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(2026);
    let span = Duration::days(182);
    let start = now - span;
    let subjects_ztl = [
        "Permesso ZTL residenti",
        "Rinnovo permesso residenti",
        "Permesso carico e scarico",
        "Permesso medico in visita domiciliare",
        "Permesso temporaneo lavori edili",
        "Permesso dimoranti",
        "Sostituzione targa su permesso",
    ];
    let subjects_cude = [
        "Rilascio contrassegno CUDE",
        "Rinnovo contrassegno CUDE",
        "Comunicazione targa temporanea CUDE",
    ];
    let subjects_seg = [
        "Contestazione verbale varco ZTL",
        "Transito autorizzato sanzionato",
        "Segnalazione errore lettura targa",
    ];
    let mut received: Vec<DateTime<Utc>> = (0..CASES)
        .map(|i| {
            let base = start + Duration::seconds(span.num_seconds() * i as i64 / CASES as i64);
            office_hours(base + Duration::hours(rng.random_range(0..20)), &mut rng)
        })
        .filter(|t| *t < now - Duration::minutes(5))
        .collect();
    received.sort();
    for (i, at) in received.into_iter().enumerate() {
        clock.set(at);
        let case_type = *pick(&mut rng, &[("ztl_permit", 60), ("cude", 25), ("seg", 15)]);
        let channel = *pick(
            &mut rng,
            &[
                (Channel::Web, 30),
                (Channel::Email, 18),
                (Channel::Pec, 14),
                (Channel::Counter, 12),
                (Channel::Phone, 5),
                (Channel::Fax, 4),
                (Channel::Post, 4),
                (Channel::Scan, 3),
                (Channel::Whatsapp, 6),
                (Channel::Telegram, 4),
            ],
        );
        let (first, female) = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let name = format!("{first} {surname}");
        let email = format!(
            "{}.{}{}@example.it",
            first.to_lowercase(),
            surname.to_lowercase().replace(' ', ""),
            i % 7
        );
        let subject = match case_type {
            "cude" => subjects_cude[rng.random_range(0..subjects_cude.len())],
            "seg" => subjects_seg[rng.random_range(0..subjects_seg.len())],
            _ => subjects_ztl[rng.random_range(0..subjects_ztl.len())],
        };
        let mut fields = serde_json::Map::new();
        if case_type != "seg" {
            let plate = format!(
                "{}{}{:03}{}{}",
                (b'A' + rng.random_range(0..26u8)) as char,
                (b'A' + rng.random_range(0..26u8)) as char,
                rng.random_range(0..1000),
                (b'A' + rng.random_range(0..26u8)) as char,
                (b'A' + rng.random_range(0..26u8)) as char
            );
            fields.insert("targa".into(), plate.into());
        } else {
            fields.insert(
                "verbale".into(),
                format!("V/{}/{:05}", 2026, rng.random_range(1..99999)).into(),
            );
        }
        let case = store
            .create_case(NewCase {
                case_type: case_type.into(),
                subject: subject.into(),
                description: format!("{subject} - richiesta di {name}."),
                channel,
                citizen: CitizenInput {
                    fiscal_code: fiscal_code(&mut rng, first, surname, female),
                    name: Some(name.clone()),
                    email: Some(email),
                    pec: (channel == Channel::Pec)
                        .then(|| format!("{}.{}@pec.example.it", first.to_lowercase(), i)),
                    phone: Some(format!(
                        "+39 3{:02} {:07}",
                        rng.random_range(20..99),
                        rng.random_range(0..9_999_999)
                    )),
                    fax: None,
                },
                fields,
                flags: vec![],
                actor: if matches!(channel, Channel::Counter | Channel::Phone) {
                    "operatore".into()
                } else {
                    "system".into()
                },
                document_sha256: None,
                registered_as: None,
                terms: None,
            })
            .await?;
        let reference = case.summary.reference;
        if rng.random_range(0..3) == 0 {
            let lines = vec![
                format!("Pratica {reference}"),
                format!("Richiedente: {name}"),
                format!("Oggetto: {subject}"),
                "Allegati: documento di identità, carta di circolazione".to_owned(),
            ];
            let rows: Vec<pdf::Row> = lines.into_iter().map(|l| vec![(40.0, l, 90)]).collect();
            let bytes = pdf::render(
                "Domanda",
                "Modulo compilato dal richiedente",
                &Vec::new(),
                &rows,
                pdf::A4_PORTRAIT,
            )?;
            let media_type = sniff_media_type(&bytes);
            let size = bytes.len() as u64;
            let sha = blobs.put(Bytes::from(bytes)).await?;
            store
                .add_document(&reference, &sha, size, "domanda.pdf", &media_type, "system")
                .await?;
        }
        let plan = plan_for(case_type, &mut rng);
        let assignee = OPERATORS[rng.random_range(0..OPERATORS.len())].0;
        // About one case in twelve is never assigned: the orphans the office must notice.
        let skip_assign = rng.random_range(0..12) == 0;
        let mut when = at;
        let mut steps: Vec<Action> = Vec::new();
        if !skip_assign {
            steps.push(Action::Assign {
                user: assignee.into(),
            });
        }
        if !(skip_assign && rng.random_bool(0.7)) {
            steps.extend(plan);
        }
        for action in steps {
            when += Duration::hours(rng.random_range(4..96));
            if when >= now {
                break;
            }
            clock.set(when);
            let note =
                matches!(action, Action::Withdraw).then_some("Domanda ritirata dal richiedente");
            store
                .apply_action(&reference, &action, note, assignee)
                .await?;
        }
    }
    clock.set(now);
    store.sla_tick().await?;
    Ok(())
}

fn plan_for(case_type: &str, rng: &mut StdRng) -> Vec<Action> {
    let list = |s: &str| vec![s.to_owned()];
    if case_type == "seg" {
        let end = if rng.random_bool(0.55) {
            Action::Annul {
                reasons: list("Veicolo autorizzato: permesso valido al momento del transito"),
            }
        } else {
            Action::Confirm {
                reasons: list("Nessun permesso valido per il varco al momento del transito"),
            }
        };
        return vec![Action::StartReview, end];
    }
    let mut steps = vec![Action::StartReview];
    if rng.random_bool(0.35) {
        steps.push(Action::RequestIntegration {
            missing: list("carta_circolazione"),
        });
        if rng.random_bool(0.8) {
            steps.push(Action::IntegrationReceived);
        } else {
            return steps;
        }
    }
    match rng.random_range(0..12) {
        0 => {
            steps.push(Action::NotifyRejection {
                reasons: list("Residenza fuori dal perimetro della ZTL"),
            });
            steps.push(Action::ObservationsReceived);
            steps.push(Action::Reject {
                reasons: list(
                    "Le osservazioni non superano il motivo ostativo: residenza fuori ZTL",
                ),
            });
            if rng.random_bool(0.5) {
                steps.push(Action::Close);
            }
        }
        3 => steps.push(Action::NotifyRejection {
            reasons: list("Veicolo non intestato al richiedente"),
        }),
        1 => {
            steps.push(Action::NotifyRejection {
                reasons: list("Manca il titolo di disponibilità del veicolo"),
            });
            steps.push(Action::ObservationsReceived);
            steps.extend([Action::Approve, Action::Issue, Action::Close]);
        }
        2 => steps.push(Action::Withdraw),
        _ => {
            steps.extend([Action::Approve, Action::Issue]);
            if rng.random_bool(0.6) {
                steps.push(Action::Close);
            }
        }
    }
    steps
}
