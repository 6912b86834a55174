//! Plate normalisation is idempotent and a parsed plate is 1–12 ASCII letters and digits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sportello_domain::plate::{Plate, normalise_plate};

fuzz_target!(|input: (&str, Option<&str>)| {
    let (number, country) = input;
    let once = normalise_plate(number);
    assert_eq!(normalise_plate(&once), once);
    if let Ok(plate) = Plate::parse(number, country) {
        assert!((1..=12).contains(&plate.number.len()));
        assert!(plate.number.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(plate.country.len(), 2);
    }
});
