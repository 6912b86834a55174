//! Vehicle plates, as used for access-permit whitelists and transit matching.
//!
//! The same plate arrives from citizens' forms ("ab 123-cd"), from operators and from
//! camera systems ("AB123CD"); matching only works if all of them are reduced to one
//! canonical key. The contract: uppercase, drop spaces, tabs, '-' and '.'; the country
//! is an ISO 3166-1 alpha-2 code, Italy when not given.

/// Longest accepted plate, after normalisation. Generous enough for foreign formats.
const MAX_PLATE_LEN: usize = 12;

/// The country assumed when none is given: most plates at an Italian office are Italian.
const DEFAULT_COUNTRY: &str = "IT";

/// A normalised plate with its country, the key for whitelist and transit matching.
///
/// Build it with [`Plate::parse`] so both fields are normalised; the fields are public for
/// pattern matching and storage.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Plate {
    /// Uppercase ASCII letters and digits only, 1–12 of them.
    pub number: String,
    /// ISO 3166-1 alpha-2 country code, uppercase (e.g. "IT", "DE").
    pub country: String,
}

/// Why a plate or country was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlateError {
    /// Nothing left after removing separators.
    #[error("the plate number is empty")]
    Empty,
    /// More characters than any plate has; carries the normalised length.
    #[error("the plate number is too long ({0} characters, at most 12)")]
    TooLong(usize),
    /// A character that is neither an ASCII letter, a digit nor a separator; carries the first one found.
    #[error("the plate number contains a character that is not allowed: {0:?}")]
    BadCharacter(char),
    /// The country is not two ASCII letters; carries the input, trimmed.
    #[error("the country {0:?} is not a two-letter country code such as IT or DE")]
    BadCountry(String),
}

impl Plate {
    /// Normalises and validates a plate number and its country (`None` or blank means Italy).
    ///
    /// After [`normalise_plate`] the number must be 1–12 ASCII letters and digits. Checks run in
    /// this order: empty, then the first disallowed character, then the length; the country is
    /// checked after the number.
    pub fn parse(number: &str, country: Option<&str>) -> Result<Self, PlateError> {
        let number = normalise_plate(number);
        if number.is_empty() {
            return Err(PlateError::Empty);
        }
        if let Some(bad) = number.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(PlateError::BadCharacter(bad));
        }
        // Only ASCII remains, so bytes are characters.
        if number.len() > MAX_PLATE_LEN {
            return Err(PlateError::TooLong(number.len()));
        }
        let country = normalise_country(country)?;
        Ok(Self { number, country })
    }
}

/// ISO 3166-1 alpha-2: the officially assigned codes, and `XK` (Kosovo, user-assigned but
/// on every European plate register), sorted for a binary search.
pub const ISO_3166_ALPHA2: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Whether `code` (upper case) is an ISO 3166-1 alpha-2 country code.
pub fn is_iso_country(code: &str) -> bool {
    ISO_3166_ALPHA2.binary_search(&code).is_ok()
}

/// Uppercases (ASCII only) and removes ' ', '\t', '-' and '.'; nothing else.
///
/// This is the matching key contract shared with the camera feed. Non-ASCII letters are left
/// as they are (and then rejected by [`Plate::parse`]) rather than uppercased, so that e.g.
/// "ß" cannot turn into a valid-looking "SS".
pub fn normalise_plate(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-' | '.'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Normalises a country code: `None` or empty/whitespace → "IT"; otherwise trimmed and
/// uppercased, and it must be exactly 2 ASCII letters.
///
/// Only the shape is checked, not membership in the ISO list, so a newly assigned code never
/// blocks a permit.
pub fn normalise_country(s: Option<&str>) -> Result<String, PlateError> {
    let trimmed = s.map(str::trim).unwrap_or_default();
    if trimmed.is_empty() {
        return Ok(DEFAULT_COUNTRY.to_owned());
    }
    if trimmed.len() == 2 && trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(trimmed.to_ascii_uppercase())
    } else {
        Err(PlateError::BadCountry(trimmed.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plate(n: &str, c: &str) -> Plate {
        Plate {
            number: n.to_owned(),
            country: c.to_owned(),
        }
    }

    #[test]
    fn normalises_separators_and_case() {
        assert_eq!(normalise_plate("ab 123-cd"), "AB123CD");
        assert_eq!(normalise_plate("  ab.123.cd "), "AB123CD");
        assert_eq!(normalise_plate("ab\t123\tcd"), "AB123CD");
        // Nothing else is removed.
        assert_eq!(normalise_plate("ab_1/2\n"), "AB_1/2\n");
        assert_eq!(Plate::parse("ab 123-cd", None), Ok(plate("AB123CD", "IT")));
        assert_eq!(
            Plate::parse("  ab.123.cd ", None),
            Ok(plate("AB123CD", "IT"))
        );
    }

    #[test]
    fn rejects_bad_characters() {
        assert_eq!(
            Plate::parse("AB_123", None),
            Err(PlateError::BadCharacter('_'))
        );
        assert_eq!(
            Plate::parse("À123", None),
            Err(PlateError::BadCharacter('À'))
        );
        assert_eq!(
            Plate::parse("à123", None),
            Err(PlateError::BadCharacter('à'))
        );
        assert_eq!(
            Plate::parse("straße", None),
            Err(PlateError::BadCharacter('ß'))
        );
        assert_eq!(
            Plate::parse("AB\n123", None),
            Err(PlateError::BadCharacter('\n'))
        );
        // Full-width digits are not ASCII.
        assert_eq!(
            Plate::parse("AB１", None),
            Err(PlateError::BadCharacter('１'))
        );
        // The first offending character is reported.
        assert_eq!(
            Plate::parse("A/B_", None),
            Err(PlateError::BadCharacter('/'))
        );
    }

    #[test]
    fn empty_and_length_limits() {
        assert_eq!(Plate::parse("", None), Err(PlateError::Empty));
        assert_eq!(Plate::parse(" - . \t", None), Err(PlateError::Empty));
        assert_eq!(Plate::parse("A", None), Ok(plate("A", "IT")));
        assert_eq!(
            Plate::parse("ABCDEF123456", None),
            Ok(plate("ABCDEF123456", "IT"))
        );
        assert_eq!(
            Plate::parse("ABCDEF1234567", None),
            Err(PlateError::TooLong(13))
        );
        // Separators do not count towards the length.
        assert_eq!(
            Plate::parse("AB-CD-EF-12-34-56", None),
            Ok(plate("ABCDEF123456", "IT"))
        );
        // A bad character is reported before the length.
        assert_eq!(
            Plate::parse("ABCDEFGHIJKLM_", None),
            Err(PlateError::BadCharacter('_'))
        );
    }

    #[test]
    fn countries() {
        assert_eq!(normalise_country(Some("de")), Ok("DE".to_owned()));
        assert_eq!(normalise_country(Some(" fR ")), Ok("FR".to_owned()));
        assert_eq!(normalise_country(Some("")), Ok("IT".to_owned()));
        assert_eq!(normalise_country(Some("   ")), Ok("IT".to_owned()));
        assert_eq!(normalise_country(None), Ok("IT".to_owned()));
        assert_eq!(
            normalise_country(Some("ITA")),
            Err(PlateError::BadCountry("ITA".to_owned()))
        );
        assert_eq!(
            normalise_country(Some("I")),
            Err(PlateError::BadCountry("I".to_owned()))
        );
        assert_eq!(
            normalise_country(Some("D1")),
            Err(PlateError::BadCountry("D1".to_owned()))
        );
        assert_eq!(
            normalise_country(Some("ÀB")),
            Err(PlateError::BadCountry("ÀB".to_owned()))
        );
        assert_eq!(
            Plate::parse("m 12345", Some("de")),
            Ok(plate("M12345", "DE"))
        );
        assert_eq!(
            Plate::parse("AB123CD", Some("ITA")),
            Err(PlateError::BadCountry("ITA".to_owned()))
        );
    }

    #[test]
    fn same_plate_same_key() {
        let a = Plate::parse("ab 123 cd", Some("it")).unwrap();
        let b = Plate::parse("AB-123-CD", None).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, Plate::parse("AB123CD", Some("SM")).unwrap());
    }

    #[test]
    fn serde_shape() {
        let p = Plate::parse("ab123cd", None).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"number":"AB123CD","country":"IT"}"#);
        assert_eq!(serde_json::from_str::<Plate>(&json).unwrap(), p);
    }

    fn separator() -> impl Strategy<Value = char> {
        prop::sample::select(vec![' ', '\t', '-', '.'])
    }

    proptest! {
        #[test]
        fn prop_normalise_is_idempotent(s in any::<String>()) {
            let once = normalise_plate(&s);
            prop_assert_eq!(normalise_plate(&once), once);
        }

        #[test]
        fn prop_parse_with_separators(
            chars in prop::collection::vec(prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".chars().collect::<Vec<_>>()
            ), 1..=12),
            seps in prop::collection::vec(prop::collection::vec(separator(), 0..3), 13),
        ) {
            let mut input = String::new();
            for (i, c) in chars.iter().enumerate() {
                input.extend(&seps[i]);
                input.push(*c);
            }
            input.extend(&seps[12]);
            let expected: String = chars.iter().map(|c| c.to_ascii_uppercase()).collect();
            let p = Plate::parse(&input, None);
            prop_assert_eq!(p, Ok(plate(&expected, "IT")));
        }

        #[test]
        fn prop_parsed_plate_is_a_fixed_point(s in "[a-zA-Z0-9 .\t-]{0,20}") {
            if let Ok(p) = Plate::parse(&s, None) {
                prop_assert_eq!(Plate::parse(&p.number, Some(&p.country)), Ok(p.clone()));
                prop_assert!(p.number.len() <= 12 && !p.number.is_empty());
                prop_assert!(p.number.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            }
        }
    }
}
