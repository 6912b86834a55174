//! The demo's citizens: names, fiscal codes with a valid check character, plates and
//! telephone numbers, drawn from the seeded generator so every start makes the same people.

use chrono::{DateTime, Timelike, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use sportello_domain::calendar::ROME;
use sportello_domain::fiscal_code::FiscalCode;

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

/// A citizen of the demo, with every contact they could give; each channel uses what a
/// citizen writing through it would reveal.
#[derive(Debug, Clone)]
pub(super) struct Person {
    /// Given name.
    pub first: &'static str,
    /// Full name.
    pub name: String,
    /// Codice fiscale.
    pub fiscal_code: Option<FiscalCode>,
    /// Ordinary e-mail.
    pub email: String,
    /// PEC address.
    pub pec: String,
    /// Mobile number, international form without spaces (as WhatsApp gives it).
    pub mobile: String,
    /// Fax number, national form (as a fax gateway writes it).
    pub fax: String,
}

impl Person {
    /// A new person; `n` keeps addresses apart between namesakes.
    pub fn draw(rng: &mut StdRng, n: usize) -> Person {
        let (first, female) = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let surname = SURNAMES[rng.random_range(0..SURNAMES.len())];
        let name = format!("{first} {surname}");
        let local = format!(
            "{}.{}",
            first.to_lowercase(),
            surname.to_lowercase().replace(' ', "")
        );
        let fiscal_code = fiscal_code(rng, first, surname, female);
        let mobile = format!(
            "+393{:02}{:07}",
            rng.random_range(20..99),
            rng.random_range(0..9_999_999)
        );
        let fax = format!("06{:08}", rng.random_range(10_000_000..99_999_999));
        Person {
            first,
            email: format!("{local}{}@example.it", n % 7),
            pec: format!("{local}.{n}@pec.example.it"),
            name,
            fiscal_code,
            mobile,
            fax,
        }
    }

    /// The mobile number as people write it on a form (`+39 333 1234567`).
    pub fn phone_as_written(&self) -> String {
        let digits = self.mobile.trim_start_matches("+39");
        format!("+39 {} {}", &digits[..3], &digits[3..])
    }
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

/// An Italian plate (`AB123CD`).
pub(super) fn plate(rng: &mut StdRng) -> String {
    let letter = |rng: &mut StdRng| (b'A' + rng.random_range(0..26u8)) as char;
    let (a, b) = (letter(rng), letter(rng));
    let digits = rng.random_range(0..1000);
    let (c, d) = (letter(rng), letter(rng));
    format!("{a}{b}{digits:03}{c}{d}")
}

/// One item of a weighted list.
pub(super) fn pick<'a, T>(rng: &mut StdRng, weighted: &'a [(T, u32)]) -> &'a T {
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
pub(super) fn office_hours(t: DateTime<Utc>, rng: &mut StdRng) -> DateTime<Utc> {
    let local = t.with_timezone(&ROME);
    let hour = 8 + rng.random_range(0..10);
    local
        .with_hour(hour)
        .and_then(|l| l.with_minute(rng.random_range(0..60)))
        .map(|l| l.with_timezone(&Utc))
        .unwrap_or(t)
}
