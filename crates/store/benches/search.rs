//! Full-text search and document-text indexing at scale (issue #4).
//!
//! `cargo bench -p sportello-store --features testing --bench search` builds a deterministic
//! data set through the public [`Store`] API — cases (`create_case`, with write batching),
//! some moved on to `in_review` (`apply_action`), documents (`add_document`) and their
//! OCR-like text (`claim_text_jobs` + `finish_text_job`, one document per call, a few
//! concurrently, as the text worker does) — and then runs a mix of searches for a fixed
//! time, printing count, p50, p95 and p99 per kind of query and overall.
//!
//! The text is generated from a seeded RNG: an Italian administrative vocabulary at the
//! top of a Zipf distribution (exponent `ZIPF_S`, default 1.0) over `VOCAB` words, the
//! rest made of Italian syllables, with stopwords, dates, amounts and OCR misreadings
//! mixed in. Documents have between `WORDS_MIN` and `WORDS_MAX` words (log-uniform).
//!
//! Environment (defaults in brackets): `CASES` [100000], `DOCS` [300000], `SEED` [4],
//! `SEARCH_SECS` [120], `INDEX_CONCURRENCY` [4], `CLAIM_BATCH` [200], `WORDS_MIN` [200],
//! `WORDS_MAX` [3000], `VOCAB` [200000], `ZIPF_S` [1.0]. The database is a throw-away one
//! from [`test_database_url`] (SQLite in a temporary folder, or a new PostgreSQL database
//! when `SPORTELLO_TEST_DATABASE_URL` is set, dropped at the end unless `KEEP_DB=1`);
//! `SEARCH_DB_URL` names a database to use instead, and one that already holds the data
//! set is only searched (the data set is regenerated in memory from the same seed, so
//! the queries are the same). `EXTRA_DOCS=N` then adds and indexes N more documents on
//! top of the full index, after the searches (the indexing rate at the steady state).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use sportello_domain::case::Channel;
use sportello_domain::clock::FixedClock;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::text;
use sportello_domain::workflow::Action;
use sportello_store::cases::{CaseFilter, CitizenInput, NewCase};
use sportello_store::search::SearchQuery;
use sportello_store::testing::{DATABASE_ENV, test_database_url};
use sportello_store::texts::{PageText, TextJob, TextOutcome};
use sportello_store::{Backend, Store, StoreSettings};

// ---------------------------------------------------------------------------------------
// Settings

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Config {
    cases: usize,
    docs: usize,
    seed: u64,
    search_secs: u64,
    index_concurrency: usize,
    claim_batch: usize,
    words_min: usize,
    words_max: usize,
    vocab: usize,
    zipf_s: f64,
}

impl Config {
    fn from_env() -> Config {
        let words_min: usize = env_or("WORDS_MIN", 200).max(1);
        Config {
            cases: env_or("CASES", 100_000).max(1),
            docs: env_or("DOCS", 300_000),
            seed: env_or("SEED", 4),
            search_secs: env_or("SEARCH_SECS", 120),
            index_concurrency: env_or("INDEX_CONCURRENCY", 4).max(1),
            claim_batch: env_or("CLAIM_BATCH", 200).max(1),
            words_min,
            words_max: env_or("WORDS_MAX", 3000).max(words_min),
            vocab: env_or("VOCAB", 200_000).max(REAL_WORDS.len()),
            zipf_s: env_or("ZIPF_S", 1.0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Vocabulary

/// The head of the distribution: words an office of this kind writes all the time,
/// roughly from the most to the least frequent.
#[rustfmt::skip]
const REAL_WORDS: &[&str] = &[
    "permesso", "comune", "veicolo", "richiesta", "ztl", "residenza", "targa", "circolazione",
    "accesso", "ufficio", "zona", "traffico", "documento", "polizia", "locale", "carta",
    "domanda", "rilascio", "rinnovo", "pratica", "identità", "contrassegno", "sosta", "via",
    "autorizzazione", "transito", "data", "firma", "sanzione", "verbale", "pagamento",
    "importo", "euro", "codice", "fiscale", "residente", "nato", "numero", "dichiarazione",
    "sottoscritto", "allegato", "copia", "libretto", "disabili", "parcheggio", "varco",
    "ricorso", "protocollo", "termine", "giorni", "scadenza", "validità", "indirizzo",
    "telefono", "posta", "elettronica", "certificata", "contratto", "locazione", "proprietario",
    "intestatario", "assicurazione", "anno", "mese", "orario", "dirigente", "responsabile",
    "procedimento", "istanza", "fascicolo", "integrazione", "documentazione", "mancante",
    "lavorativi", "provvedimento", "rigetto", "accoglimento", "motivazione", "osservazioni",
    "preavviso", "diniego", "centro", "storico", "strada", "piazza", "corso", "civico",
    "abitazione", "domicilio", "dimora", "famiglia", "familiare", "medico", "certificato",
    "visita", "domiciliare", "sanitario", "invalidità", "accompagnatore", "mezzo",
    "autoveicolo", "motociclo", "auto", "furgone", "merci", "carico", "scarico", "attività",
    "commerciale", "negozio", "impresa", "ditta", "partita", "iva", "lavori", "edili",
    "cantiere", "servizio", "pubblico", "amministrazione", "regolamento", "articolo", "legge",
    "decreto", "comma", "norma", "ente", "cittadino", "signor", "signora", "richiedente",
    "delegato", "delega", "rappresentante", "legale", "tutore", "genitore", "figlio", "coniuge",
    "patente", "guida", "categoria", "rilasciata", "motorizzazione", "prefettura", "questura",
    "sindaco", "assessore", "mobilità", "viabilità", "ordinanza", "segnaletica", "stallo",
    "riservato", "area", "pedonale", "corsia", "preferenziale", "telecamera", "rilevazione",
    "infrazione", "contestazione", "notifica", "raccomandata", "ricevuta", "avviso", "ritorno",
    "spedizione", "consegna", "sportello", "modulo", "compilato", "marca", "bollo", "diritti",
    "segreteria", "tariffa", "versamento", "bonifico", "bancario", "iban", "causale",
    "rimborso", "esenzione", "agevolazione", "tessera", "abbonamento", "stagionale", "annuale",
    "temporaneo", "provvisorio", "definitivo", "originale", "conforme", "fotocopia", "fronte",
    "retro", "pagina", "elenco", "seguente", "presente", "suddetto", "medesimo", "vigente",
    "successivo", "precedente", "visto", "considerato", "ritenuto", "accertato", "verificato",
    "risulta", "dichiara", "chiede", "comunica", "autorizza", "rilascia", "rinnova", "revoca",
    "sospende", "conferma", "annulla", "città", "perché", "più", "già", "sempre", "ogni",
    "altro", "stesso", "quale", "quando", "dopo", "prima", "entro", "oltre", "secondo",
    "ottobre", "novembre", "dicembre", "gennaio", "febbraio", "marzo", "aprile", "maggio",
    "giugno", "luglio", "agosto", "settembre", "lunedì", "venerdì", "mattina", "pomeriggio",
];

/// Words that the analysis drops (and some that it keeps: "è", "sono", "come"…), mixed
/// in at about the rate of running Italian.
#[rustfmt::skip]
const FUNCTION_WORDS: &[&str] = &[
    "di", "il", "la", "e", "del", "della", "per", "che", "in", "a", "al", "alla", "un", "una",
    "con", "da", "le", "i", "non", "si", "è", "sono", "dei", "delle", "nel", "nella", "gli",
    "lo", "ai", "sul", "come", "anche", "o", "dal", "dalla", "degli", "tra", "su",
];

#[rustfmt::skip]
const SYLLABLES: &[&str] = &[
    "ba", "be", "bi", "bo", "ca", "ce", "ci", "co", "cu", "da", "de", "di", "do", "fa", "fe",
    "fi", "fo", "ga", "ge", "gi", "go", "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo",
    "mu", "na", "ne", "ni", "no", "pa", "pe", "pi", "po", "pu", "ra", "re", "ri", "ro", "sa",
    "se", "si", "so", "su", "ta", "te", "ti", "to", "tu", "va", "ve", "vi", "vo", "za", "ze",
    "zo", "chi", "che", "gli", "gna", "gno", "sta", "ste", "sti", "tra", "tre", "tri", "pro",
    "pre", "pri", "con", "com", "per", "ser", "ter", "cor", "spa", "sco", "fla", "bru", "ven",
    "man", "lan", "ran", "bel", "mor", "sal", "val",
];

#[rustfmt::skip]
const ENDINGS: &[&str] = &[
    "", "", "", "re", "to", "ta", "zione", "mento", "ità", "ale", "ore", "ista", "ivo", "ente",
    "ante", "ezza", "ico", "ario", "oso", "ura", "ella", "ino", "one",
];

/// Content words by rank with the cumulative Zipf distribution over them.
struct Vocab {
    words: Vec<String>,
    cdf: Vec<f64>,
}

impl Vocab {
    fn new(size: usize, s: f64, seed: u64) -> Vocab {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0076_6f63_6162);
        let mut seen: HashSet<String> = REAL_WORDS.iter().map(|w| (*w).to_owned()).collect();
        let mut words: Vec<String> = REAL_WORDS.iter().map(|w| (*w).to_owned()).collect();
        while words.len() < size {
            let syllables = rng.random_range(2..=4);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(SYLLABLES[rng.random_range(0..SYLLABLES.len())]);
            }
            w.push_str(ENDINGS[rng.random_range(0..ENDINGS.len())]);
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cdf = Vec::with_capacity(size);
        let mut total = 0.0;
        for rank in 1..=size {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Vocab { words, cdf }
    }

    fn pick(&self, rng: &mut StdRng) -> &str {
        let u: f64 = rng.random();
        let i = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    fn rank(&self, r: usize) -> &str {
        &self.words[r.min(self.words.len() - 1)]
    }
}

// ---------------------------------------------------------------------------------------
// Document text

fn letter(rng: &mut StdRng) -> char {
    char::from(b'A' + rng.random_range(0..26u8))
}

/// Some words misread: a letter replaced by a look-alike, as OCR does.
fn misread(word: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = rng.random_range(0..chars.len());
    const LOOKALIKES: &[char] = &['c', 'e', 'l', 'i', '1', 'n', 'm', 'r', 'o', '0', 'u', 'v'];
    chars[i] = LOOKALIKES[rng.random_range(0..LOOKALIKES.len())];
    chars.into_iter().collect()
}

/// The text of one document, page by page: between `words_min` and `words_max` words
/// (log-uniform), 250–450 per page, in sentences and short lines like an OCR result.
fn document_pages(seed: u64, vocab: &Vocab, cfg: &Config) -> Vec<PageText> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (lo, hi) = ((cfg.words_min as f64).ln(), (cfg.words_max as f64).ln());
    let total = if hi > lo {
        rng.random_range(lo..=hi).exp() as usize
    } else {
        cfg.words_min
    };
    let mut pages = Vec::new();
    let mut page = String::with_capacity(4096);
    let mut page_left = rng.random_range(250..450);
    let mut line_left = rng.random_range(6..14);
    let mut sentence_start = true;
    page.push_str(&format!(
        "COMUNE DI {}\nPolizia Locale - Ufficio Permessi\n",
        vocab.pick(&mut rng).to_uppercase()
    ));
    for _ in 0..total {
        let roll: f64 = rng.random();
        let word: String = if roll < 0.36 && !sentence_start {
            FUNCTION_WORDS[rng.random_range(0..FUNCTION_WORDS.len())].to_owned()
        } else if roll < 0.39 {
            match rng.random_range(0..4) {
                0 => format!(
                    "{:02}/{:02}/{}",
                    rng.random_range(1..=28),
                    rng.random_range(1..=12),
                    rng.random_range(2015..=2026)
                ),
                1 => format!(
                    "€ {}.{:03},{:02}",
                    rng.random_range(1..20),
                    rng.random_range(0..1000),
                    rng.random_range(0..100)
                ),
                2 => format!("n. {}", rng.random_range(1..100_000)),
                _ => format!("{}", rng.random_range(1..200)),
            }
        } else if roll < 0.40 {
            misread(vocab.pick(&mut rng), &mut rng)
        } else {
            vocab.pick(&mut rng).to_owned()
        };
        if sentence_start {
            let mut c = word.chars();
            if let Some(first) = c.next() {
                page.extend(first.to_uppercase());
                page.push_str(c.as_str());
            }
            sentence_start = false;
        } else {
            page.push_str(&word);
        }
        if rng.random_range(0..14) == 0 {
            page.push('.');
            sentence_start = true;
        } else if rng.random_range(0..20) == 0 {
            page.push(',');
        }
        line_left -= 1;
        if line_left == 0 {
            page.push('\n');
            line_left = rng.random_range(6..14);
        } else {
            page.push(' ');
        }
        page_left -= 1;
        if page_left == 0 {
            pages.push(std::mem::take(&mut page));
            page_left = rng.random_range(250..450);
        }
    }
    if !page.trim().is_empty() || pages.is_empty() {
        pages.push(page);
    }
    pages
        .into_iter()
        .enumerate()
        .map(|(i, text)| PageText {
            page: i as i64 + 1,
            method: "ocr".into(),
            text,
        })
        .collect()
}

fn document_sha(seed: u64, i: usize) -> String {
    hex::encode(Sha256::digest(format!("search-bench-{seed}-{i}")))
}

/// The text of a document follows from its content hash (ids are random).
fn text_seed(sha256: &str) -> u64 {
    u64::from_str_radix(&sha256[..16], 16).unwrap_or(0)
}

const FILENAMES: &[&str] = &[
    "carta_circolazione.pdf",
    "documento_identita.pdf",
    "delega.pdf",
    "contratto_locazione.pdf",
    "certificato_medico.pdf",
    "verbale.pdf",
    "ricevuta_pagamento.pdf",
    "scansione.tif",
    "libretto.pdf",
    "autocertificazione.pdf",
];

// ---------------------------------------------------------------------------------------
// Cases

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Marco", "Giulia", "Luca", "Francesca", "Giuseppe", "Chiara", "Andrea", "Sara", "Paolo",
    "Elena", "Matteo", "Anna", "Alessandro", "Valentina", "Davide", "Laura", "Stefano",
    "Martina", "Roberto", "Silvia", "Francesco", "Federica", "Simone", "Alessia", "Giovanni",
    "Elisa", "Antonio", "Roberta", "Lorenzo", "Ilaria", "Riccardo", "Paola", "Fabio",
    "Cristina", "Nicola", "Monica", "Daniele", "Barbara", "Emanuele", "Giorgia",
];

#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
    "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso",
    "Ferrara", "Galli", "Martini", "Leone", "Longo", "Gentile", "Martinelli", "Vitale",
    "Lombardo", "Serra", "Coppola", "De Santis", "D'Angelo", "Marchetti", "Parisi", "Villa",
    "Conte", "Ferraro", "Ferri", "Fabbri", "Bianco", "Marini", "Grasso", "Valentini", "Messina",
    "Sala", "De Angelis", "Gatti", "Pellegrini", "Palumbo", "Sanna", "Farina", "Rizzi", "Monti",
    "Cattaneo", "Morelli", "Amato", "Silvestri", "Mazza", "Testa",
];

const CASE_TYPES: &[(&str, &str, u32)] = &[
    ("ztl_permit", "ZTL", 60),
    ("cude", "CUD", 25),
    ("seg", "SEG", 15),
];

const SUBJECTS: &[(&str, &[&str])] = &[
    (
        "ztl_permit",
        &[
            "Permesso ZTL residenti",
            "Rinnovo permesso residenti",
            "Permesso carico e scarico",
            "Permesso medico in visita domiciliare",
            "Permesso temporaneo lavori edili",
            "Permesso dimoranti",
            "Sostituzione targa su permesso",
        ],
    ),
    (
        "cude",
        &[
            "Rilascio contrassegno CUDE",
            "Rinnovo contrassegno CUDE",
            "Comunicazione targa temporanea CUDE",
        ],
    ),
    (
        "seg",
        &[
            "Contestazione verbale varco ZTL",
            "Transito autorizzato sanzionato",
            "Segnalazione errore lettura targa",
        ],
    ),
];

#[derive(Clone)]
struct CaseSpec {
    new: NewCase,
    fiscal_code: String,
    plate: Option<String>,
}

fn fiscal_code(rng: &mut StdRng) -> FiscalCode {
    loop {
        let mut first15 = String::new();
        for _ in 0..6 {
            first15.push(letter(rng));
        }
        first15.push_str(&format!("{:02}", rng.random_range(30..=99)));
        first15.push(char::from(b"ABCDEHLMPRST"[rng.random_range(0..12)]));
        let day = rng.random_range(1..=28) + if rng.random() { 40 } else { 0 };
        first15.push_str(&format!("{day:02}"));
        first15.push(letter(rng));
        first15.push_str(&format!("{:03}", rng.random_range(1..1000)));
        if let Ok(code) = FiscalCode::complete_person(&first15) {
            return code;
        }
    }
}

fn case_specs(cfg: &Config, vocab: &Vocab) -> Vec<CaseSpec> {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xca5e);
    // Some citizens have several cases.
    let citizens: Vec<(String, FiscalCode)> = (0..cfg.cases * 4 / 5 + 1)
        .map(|_| {
            let name = format!(
                "{} {}",
                FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
                SURNAMES[rng.random_range(0..SURNAMES.len())]
            );
            (name, fiscal_code(&mut rng))
        })
        .collect();
    let weight_total: u32 = CASE_TYPES.iter().map(|t| t.2).sum();
    (0..cfg.cases)
        .map(|i| {
            let mut w = rng.random_range(0..weight_total);
            let (case_type, _, _) = CASE_TYPES
                .iter()
                .find(|t| {
                    if w < t.2 {
                        true
                    } else {
                        w -= t.2;
                        false
                    }
                })
                .copied()
                .unwrap_or(CASE_TYPES[0]);
            let subjects = SUBJECTS.iter().find(|s| s.0 == case_type).unwrap().1;
            let subject = subjects[rng.random_range(0..subjects.len())];
            let mut description = format!("{subject} -");
            for _ in 0..rng.random_range(8..40) {
                description.push(' ');
                if rng.random_range(0..3) == 0 {
                    description.push_str(FUNCTION_WORDS[rng.random_range(0..FUNCTION_WORDS.len())]);
                } else {
                    description.push_str(vocab.pick(&mut rng));
                }
            }
            description.push('.');
            let (name, code) = &citizens[rng.random_range(0..citizens.len())];
            let mut fields = serde_json::Map::new();
            let plate = if case_type == "seg" {
                fields.insert(
                    "verbale".into(),
                    format!("V/2026/{:05}", rng.random_range(1..99_999)).into(),
                );
                None
            } else {
                let plate = format!(
                    "{}{} {:03} {}{}",
                    letter(&mut rng),
                    letter(&mut rng),
                    rng.random_range(0..1000),
                    letter(&mut rng),
                    letter(&mut rng)
                );
                fields.insert("targa".into(), plate.clone().into());
                Some(plate)
            };
            let channel = [Channel::Web, Channel::Email, Channel::Pec, Channel::Counter]
                [rng.random_range(0..4)];
            let new = NewCase {
                case_type: case_type.into(),
                subject: subject.into(),
                description,
                channel,
                citizen: CitizenInput {
                    fiscal_code: Some(code.clone()),
                    name: Some(name.clone()),
                    email: Some(format!(
                        "{}{}@example.it",
                        name.to_lowercase().replace([' ', '\''], "."),
                        i % 97
                    )),
                    phone: Some(format!(
                        "+39 3{:02} {:07}",
                        rng.random_range(20..99),
                        rng.random_range(0..9_999_999)
                    )),
                    ..CitizenInput::default()
                },
                fields,
                flags: Vec::new(),
                actor: "bench".into(),
                document_sha256: None,
                registered_as: None,
                terms: None,
            };
            CaseSpec {
                new,
                fiscal_code: code.as_str().to_owned(),
                plate,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Measurement helpers

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn rome_2026(month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, 8, 30, 0)
        .single()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Building the data set

async fn build(
    store: &Store,
    clock: &FixedClock,
    cfg: &Config,
    specs: &[CaseSpec],
    vocab: &Arc<Vocab>,
) {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xb1d);

    // Cases, spread over 2026 (one reference year), created concurrently with group commit.
    let started = Instant::now();
    let batching = store.clone().with_write_batching();
    let (first_day, last_day) = (rome_2026(1, 7), rome_2026(11, 20));
    let span = last_day - first_day;
    let chunk = 2_000;
    let chunks = specs.len().div_ceil(chunk).max(1);
    let mut references: Vec<String> = Vec::with_capacity(specs.len());
    for (k, part) in specs.chunks(chunk).enumerate() {
        clock.set(first_day + span * (k as i32) / (chunks as i32));
        let created: Vec<String> = futures::stream::iter(part.iter().cloned())
            .map(|spec| {
                let s = batching.clone();
                async move { s.create_case(spec.new).await.unwrap().summary.reference }
            })
            .buffered(64)
            .collect()
            .await;
        references.extend(created);
    }
    let took = started.elapsed();
    eprintln!(
        "cases: {} created in {:.1} s = {:.0}/s (create_case, 64 concurrent, write batching)",
        references.len(),
        took.as_secs_f64(),
        rate(references.len(), took)
    );

    // 40 % taken up for review, so a status filter has something to choose.
    clock.set(last_day);
    let started = Instant::now();
    let reviewed: Vec<&String> = references
        .iter()
        .filter(|_| rng.random_range(0..10) < 4)
        .collect();
    let n_reviewed = reviewed.len();
    futures::stream::iter(reviewed)
        .for_each_concurrent(8, |reference| async move {
            store
                .apply_action(reference, &Action::StartReview, None, "bench")
                .await
                .unwrap();
        })
        .await;
    let took = started.elapsed();
    eprintln!(
        "status: {n_reviewed} cases to in_review in {:.1} s = {:.0}/s (apply_action, 8 concurrent)",
        took.as_secs_f64(),
        rate(n_reviewed, took)
    );

    // Documents on random cases (about three per case).
    add_documents(store, cfg, &references, 0..cfg.docs, &mut rng).await;
    index_texts(store, cfg, vocab, cfg.docs).await;
}

/// Documents `range` (their number fixes their content) on random cases of `references`.
async fn add_documents(
    store: &Store,
    cfg: &Config,
    references: &[String],
    range: std::ops::Range<usize>,
    rng: &mut StdRng,
) {
    let started = Instant::now();
    let n = range.len();
    let docs: Vec<(String, String, &str, u64)> = range
        .map(|i| {
            (
                references[rng.random_range(0..references.len())].clone(),
                document_sha(cfg.seed, i),
                FILENAMES[rng.random_range(0..FILENAMES.len())],
                rng.random_range(20_000..3_000_000),
            )
        })
        .collect();
    futures::stream::iter(docs)
        .for_each_concurrent(16, |(reference, sha, filename, size)| async move {
            let media = if filename.ends_with(".tif") {
                "image/tiff"
            } else {
                "application/pdf"
            };
            store
                .add_document(&reference, &sha, size, filename, media, "bench")
                .await
                .unwrap();
        })
        .await;
    let took = started.elapsed();
    eprintln!(
        "documents: {n} added in {:.1} s = {:.0}/s (add_document, 16 concurrent)",
        took.as_secs_f64(),
        rate(n, took)
    );
}

/// The text worker's part: claim, (read: here, generate), record. Only `finish_text_job`
/// is in the indexing rate; claiming and generating are timed apart.
async fn index_texts(store: &Store, cfg: &Config, vocab: &Arc<Vocab>, expected: usize) {
    let mut claim_time = Duration::ZERO;
    let mut generate_time = Duration::ZERO;
    let mut finish_time = Duration::ZERO;
    let mut latencies: Vec<Duration> = Vec::with_capacity(expected);
    let (mut done, mut words, mut bytes, mut pages_total) = (0usize, 0usize, 0usize, 0usize);
    let mut analyse_sample: Vec<String> = Vec::new();
    let step = (expected / 10).max(1);
    let (mut tenth_docs, mut tenth_time, mut tenth_no) = (0usize, Duration::ZERO, 1);
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let jobs = store
            .claim_text_jobs(cfg.claim_batch, Duration::from_secs(3600))
            .await
            .unwrap();
        claim_time += t.elapsed();
        if jobs.is_empty() {
            break;
        }
        let t = Instant::now();
        let work: Vec<(TextJob, Vec<PageText>)> = jobs
            .into_iter()
            .map(|job| {
                let pages = document_pages(text_seed(&job.sha256), vocab, cfg);
                (job, pages)
            })
            .collect();
        for (_, pages) in &work {
            pages_total += pages.len();
            for p in pages {
                words += p.text.split_whitespace().count();
                bytes += p.text.len();
            }
            if analyse_sample.len() < 2_000 {
                analyse_sample.push(
                    pages
                        .iter()
                        .map(|p| p.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
        }
        generate_time += t.elapsed();
        let n = work.len();
        let t = Instant::now();
        let batch: Vec<Duration> = futures::stream::iter(work)
            .map(|(job, pages)| {
                let s = store.clone();
                async move {
                    let t = Instant::now();
                    s.finish_text_job(&job, TextOutcome::Pages(pages))
                        .await
                        .unwrap();
                    t.elapsed()
                }
            })
            .buffer_unordered(cfg.index_concurrency)
            .collect()
            .await;
        let took = t.elapsed();
        finish_time += took;
        latencies.extend(batch);
        done += n;
        tenth_docs += n;
        tenth_time += took;
        if done >= step * tenth_no {
            eprintln!(
                "  text: {done:>7} documents, last {tenth_docs} at {:.0}/s (finish_text_job only), {:.0} s elapsed",
                rate(tenth_docs, tenth_time),
                started.elapsed().as_secs_f64()
            );
            tenth_no += 1;
            tenth_docs = 0;
            tenth_time = Duration::ZERO;
        }
    }
    latencies.sort();
    println!(
        "indexing: {done} documents ({pages_total} pages, {words} words, {:.0} MB of text, {:.0} words/document) in {:.1} s wall",
        bytes as f64 / 1e6,
        words as f64 / done.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    println!(
        "indexing: finish_text_job {:.0} documents/s ({} concurrent; {:.1} s), per call p50 {:.2} ms p95 {:.2} ms p99 {:.2} ms max {:.2} ms",
        rate(done, finish_time),
        cfg.index_concurrency,
        finish_time.as_secs_f64(),
        pct(&latencies, 50.0),
        pct(&latencies, 95.0),
        pct(&latencies, 99.0),
        pct(&latencies, 100.0),
    );
    println!(
        "indexing: claim_text_jobs({}) {:.0} documents/s ({:.1} s); claim + finish together {:.0} documents/s; text generation (not counted) {:.1} s",
        cfg.claim_batch,
        rate(done, claim_time),
        claim_time.as_secs_f64(),
        rate(done, claim_time + finish_time),
        generate_time.as_secs_f64()
    );
    // The analysis alone (stems, folding), on one core, for scale.
    let t = Instant::now();
    let mut terms = 0usize;
    for doc in &analyse_sample {
        terms += text::analyse(doc).len();
    }
    let took = t.elapsed();
    println!(
        "indexing: text::analyse alone {:.0} documents/s on one core ({} documents, {:.0} MB of terms out)",
        rate(analyse_sample.len(), took),
        analyse_sample.len(),
        terms as f64 / 1e6
    );
}

// ---------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rare,
    Common,
    TwoWords,
    FiscalCode,
    Plate,
    PlateSpaced,
    Reference,
    Prefix,
}

const KINDS: &[Kind] = &[
    Kind::Rare,
    Kind::Common,
    Kind::TwoWords,
    Kind::FiscalCode,
    Kind::Plate,
    Kind::PlateSpaced,
    Kind::Reference,
    Kind::Prefix,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rare => "rare word",
            Kind::Common => "common word",
            Kind::TwoWords => "two words",
            Kind::FiscalCode => "fiscal code",
            Kind::Plate => "plate AB123CD",
            Kind::PlateSpaced => "plate AB 123 CD",
            Kind::Reference => "case reference",
            Kind::Prefix => "prefix 3-4 letters",
        }
    }
}

struct QueryData {
    vocab: Arc<Vocab>,
    fiscal_codes: Vec<String>,
    plates: Vec<String>,
    /// (prefix, number of cases) per case type.
    per_prefix: Vec<(&'static str, usize)>,
}

impl QueryData {
    fn new(vocab: Arc<Vocab>, specs: &[CaseSpec]) -> QueryData {
        QueryData {
            vocab,
            fiscal_codes: specs.iter().map(|s| s.fiscal_code.clone()).collect(),
            plates: specs.iter().filter_map(|s| s.plate.clone()).collect(),
            per_prefix: CASE_TYPES
                .iter()
                .map(|(id, prefix, _)| {
                    (
                        *prefix,
                        specs.iter().filter(|s| s.new.case_type == *id).count(),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }

    fn text_of(&self, kind: Kind, rng: &mut StdRng) -> String {
        let v = &self.vocab;
        let n = v.words.len();
        match kind {
            // The tail of the distribution: a few hundred occurrences at most.
            Kind::Rare => v.rank(rng.random_range((n / 10).min(n - 1)..n)).to_owned(),
            // The 30 most frequent content words: in most documents.
            Kind::Common => v.rank(rng.random_range(0..30)).to_owned(),
            Kind::TwoWords => format!(
                "{} {}",
                v.rank(rng.random_range(30..3_000.min(n))),
                v.rank(rng.random_range(30..3_000.min(n)))
            ),
            Kind::FiscalCode => {
                self.fiscal_codes[rng.random_range(0..self.fiscal_codes.len())].clone()
            }
            Kind::Plate => self.plates[rng.random_range(0..self.plates.len())].replace(' ', ""),
            Kind::PlateSpaced => self.plates[rng.random_range(0..self.plates.len())].clone(),
            Kind::Reference => {
                let (prefix, count) = self.per_prefix[rng.random_range(0..self.per_prefix.len())];
                format!("{prefix}-2026-{:06}", rng.random_range(1..=count))
            }
            // What someone types before finishing a word, weighted as words are used.
            Kind::Prefix => {
                let word = v.pick(rng);
                let len = rng.random_range(3..=4);
                word.chars().take(len).collect()
            }
        }
    }

    fn query(&self, kind: Kind, filtered: bool, rng: &mut StdRng) -> SearchQuery {
        let mut q = SearchQuery {
            q: self.text_of(kind, rng),
            include_documents: true,
            limit: 20,
            ..SearchQuery::default()
        };
        if filtered {
            let which = rng.random_range(0..3);
            if which != 1 {
                q.status = Some(["received", "in_review"][rng.random_range(0..2)].into());
            }
            if which != 0 {
                q.case_type = Some(CASE_TYPES[rng.random_range(0..CASE_TYPES.len())].0.into());
            }
        }
        q
    }
}

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    empty: usize,
    /// The slowest query: time, text and filters.
    slowest: Option<(Duration, String)>,
}

fn report_row(label: &str, filter: &str, s: &mut Samples) {
    s.latencies.sort();
    let l = &s.latencies;
    let p95 = pct(l, 95.0);
    println!(
        "| {label:<18} | {filter:<8} | {:>6} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} | {:<8} |",
        l.len(),
        s.empty,
        pct(l, 50.0),
        p95,
        pct(l, 99.0),
        pct(l, 100.0),
        if p95 < 50.0 { "met" } else { "NOT met" }
    );
}

async fn run_queries(store: &Store, cfg: &Config, data: &QueryData) {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5ea5c4);
    let variants: Vec<(Kind, bool)> = KINDS
        .iter()
        .flat_map(|k| [(*k, false), (*k, true)])
        .collect();
    // One round to warm the caches, not counted.
    for (kind, filtered) in &variants {
        store
            .search(&data.query(*kind, *filtered, &mut rng))
            .await
            .unwrap();
    }
    let mut samples: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
    let deadline = Instant::now() + Duration::from_secs(cfg.search_secs);
    let started = Instant::now();
    let mut rounds = 0;
    while Instant::now() < deadline || rounds < 3 {
        for (i, (kind, filtered)) in variants.iter().enumerate() {
            let q = data.query(*kind, *filtered, &mut rng);
            let t = Instant::now();
            let hits = store.search(&q).await.unwrap();
            let took = t.elapsed();
            samples[i].latencies.push(took);
            if samples[i].slowest.as_ref().is_none_or(|(d, _)| took > *d) {
                samples[i].slowest = Some((
                    took,
                    format!(
                        "{:?} status={:?} case_type={:?} ({} hits)",
                        q.q,
                        q.status,
                        q.case_type,
                        hits.len()
                    ),
                ));
            }
            if hits.is_empty() {
                samples[i].empty += 1;
            }
        }
        rounds += 1;
    }
    let total: usize = samples.iter().map(|s| s.latencies.len()).sum();
    println!(
        "\nsearch: {total} queries in {:.1} s, one client, page of 20, documents included, {rounds} rounds of the mix \
         (filtered = status and/or case type); times in ms",
        started.elapsed().as_secs_f64()
    );
    println!(
        "| kind               | filter   |      n | empty |      p50 |      p95 |      p99 |      max | p95<50ms |"
    );
    println!(
        "|--------------------|----------|--------|-------|----------|----------|----------|----------|----------|"
    );
    let mut all = Samples::default();
    for (i, (kind, filtered)) in variants.iter().enumerate() {
        report_row(
            kind.name(),
            if *filtered { "filtered" } else { "none" },
            &mut samples[i],
        );
    }
    for kind in KINDS {
        let mut both = Samples::default();
        for (i, (k, _)) in variants.iter().enumerate() {
            if k == kind {
                both.latencies.extend(&samples[i].latencies);
                both.empty += samples[i].empty;
            }
        }
        all.latencies.extend(&both.latencies);
        all.empty += both.empty;
        report_row(kind.name(), "both", &mut both);
    }
    report_row("ALL", "both", &mut all);
    println!("\nslowest query of each kind:");
    for (i, (kind, filtered)) in variants.iter().enumerate() {
        if let Some((took, what)) = &samples[i].slowest {
            println!(
                "  {:<18} {:<8} {:>9.2} ms  {what}",
                kind.name(),
                if *filtered { "filtered" } else { "none" },
                took.as_secs_f64() * 1000.0
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Diagnostics: how many index entries each kind of query matches, straight from the index.

fn match_expression(backend: Backend, q: &str) -> Option<String> {
    let terms = text::query_terms(q);
    if terms.is_empty() {
        return None;
    }
    let prefix_last = q
        .trim_end()
        .chars()
        .last()
        .is_some_and(char::is_alphanumeric)
        && terms.last().is_some_and(|t| t.chars().count() >= 3);
    Some(match backend {
        Backend::Sqlite => {
            let mut e: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            if prefix_last && let Some(last) = e.last_mut() {
                last.push('*');
            }
            e.join(" ")
        }
        Backend::Postgres => {
            let mut e = terms;
            if prefix_last && let Some(last) = e.last_mut() {
                last.push_str(":*");
            }
            e.join(" & ")
        }
    })
}

async fn match_counts(url: &str, backend: Backend, cfg: &Config, data: &QueryData) {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM search_fts WHERE search_fts MATCH $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM search_entries WHERE tsv @@ to_tsquery('simple', $1)"
        }
    };
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xd1a9);
    println!("\nindex entries matched (15 queries of each kind, no filter): min / median / max");
    for kind in KINDS {
        let mut counts = Vec::new();
        let mut examples = Vec::new();
        for _ in 0..15 {
            let q = data.text_of(*kind, &mut rng);
            if let Some(expr) = match_expression(backend, &q) {
                let n: i64 = sqlx::query_scalar(sql)
                    .bind(expr)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                counts.push(n);
                if examples.len() < 3 {
                    examples.push(format!("{q:?}={n}"));
                }
            }
        }
        counts.sort_unstable();
        if let (Some(min), Some(max)) = (counts.first(), counts.last()) {
            println!(
                "  {:<18} {min:>7} / {:>7} / {max:>7}   e.g. {}",
                kind.name(),
                counts[counts.len() / 2],
                examples.join(", ")
            );
        }
    }
    pool.close().await;
}

async fn database_size(url: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned();
            let size = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let main = size(path.clone());
            let wal = size(format!("{path}-wal"));
            format!(
                "{:.2} GB file + {:.2} GB WAL",
                main as f64 / 1e9,
                wal as f64 / 1e9
            )
        }
        Backend::Postgres => {
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            let mut parts = Vec::new();
            for (label, sql) in [
                ("database", "SELECT pg_database_size(current_database())"),
                (
                    "document_texts",
                    "SELECT pg_total_relation_size('document_texts')",
                ),
                (
                    "search_entries",
                    "SELECT pg_total_relation_size('search_entries')",
                ),
                ("GIN index", "SELECT pg_relation_size('search_entries_tsv')"),
            ] {
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                parts.push(format!("{label} {:.2} GB", n as f64 / 1e9));
            }
            pool.close().await;
            parts.join(", ")
        }
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let cfg = Config::from_env();
    let dir = tempfile::tempdir().unwrap();
    let given = std::env::var("SEARCH_DB_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let url = match &given {
        Some(url) => url.clone(),
        None => test_database_url(dir.path()).await,
    };
    println!(
        "search bench: {cfg:?}; machine: {} cores; database {url}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let clock = FixedClock::new(rome_2026(1, 7));
    let store = Store::connect(&url, Arc::new(clock.clone()), StoreSettings::default())
        .await
        .unwrap();
    let backend = store.backend();

    let t = Instant::now();
    let vocab = Arc::new(Vocab::new(cfg.vocab, cfg.zipf_s, cfg.seed));
    let specs = case_specs(&cfg, &vocab);
    eprintln!(
        "generated vocabulary and {} case specs in {:.1} s",
        specs.len(),
        t.elapsed().as_secs_f64()
    );

    let (_, existing) = store
        .list_cases(&CaseFilter {
            page: 1,
            per_page: 1,
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let texts = store.text_queue().await.unwrap();
    if existing == 0 {
        let started = Instant::now();
        build(&store, &clock, &cfg, &specs, &vocab).await;
        println!(
            "build: whole data set in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "reusing the data set in the database: {existing} cases, {} documents with text",
            texts.done
        );
        if usize::try_from(existing).unwrap_or(0) != cfg.cases
            || usize::try_from(texts.done).unwrap_or(0) != cfg.docs
        {
            println!(
                "WARNING: CASES/DOCS differ from what the database holds; queries may find less"
            );
        }
    }
    println!("database size: {}", database_size(&url, backend).await);

    let data = QueryData::new(vocab.clone(), &specs);
    match_counts(&url, backend, &cfg, &data).await;
    run_queries(&store, &cfg, &data).await;

    // Indexing at the steady state: more documents on top of the full index.
    let extra: usize = env_or("EXTRA_DOCS", 0);
    if extra > 0 {
        let queue = store.text_queue().await.unwrap();
        let known =
            usize::try_from(queue.done + queue.pending + queue.running + queue.none + queue.failed)
                .unwrap_or(0);
        let references: Vec<String> = data
            .per_prefix
            .iter()
            .flat_map(|(prefix, n)| (1..=*n).map(move |seq| format!("{prefix}-2026-{seq:06}")))
            .collect();
        let mut rng = StdRng::seed_from_u64(cfg.seed ^ known as u64);
        println!("\nsteady state: {extra} more documents on top of the {known} indexed");
        add_documents(&store, &cfg, &references, known..known + extra, &mut rng).await;
        index_texts(&store, &cfg, &vocab, extra).await;
        println!("database size: {}", database_size(&url, backend).await);
    }
    store.close().await;

    if backend == Backend::Postgres
        && given.is_none()
        && std::env::var("KEEP_DB").as_deref() != Ok("1")
    {
        if let (Ok(admin), Some(name)) = (std::env::var(DATABASE_ENV), url.rsplit('/').next()) {
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
    } else if given.is_none() && std::env::var("KEEP_DB").as_deref() == Ok("1") {
        println!("kept: {}", dir.keep().display());
    }
}
