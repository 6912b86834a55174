//! The Italian fiscal code (codice fiscale) of an applicant.
//!
//! Every case is filed by a person or a company identified by its fiscal code, and a
//! mistyped code means a case attached to the wrong person. Validating the structure
//! and the check character at intake catches almost every typo (every single-character
//! substitution, see the tests) before it reaches the register.

use std::fmt;
use std::str::FromStr;

/// Length of the personal (natural person) code.
const PERSON_LEN: usize = 16;
/// Length of the numeric code of a legal person (same shape as a partita IVA).
const LEGAL_LEN: usize = 11;
/// The month letters, January to December.
const MONTH_LETTERS: &[u8; 12] = b"ABCDEHLMPRST";
/// Omocodia letters: the letter at index `n` stands for the digit `n`.
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";
/// Indexes of the personal code that hold digits (or their omocodia letters).
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
/// Values of the characters in odd (1st, 3rd, …) positions, indexed by letter A–Z;
/// the digits 0–9 take the values of A–J.
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// A validated Italian fiscal code: 16-char personal code (check character verified, omocodia
/// substitutions accepted) or 11-digit code of a legal person (partita IVA style, with its
/// Luhn-like check digit verified). Stored uppercase, trimmed.
///
/// Being a distinct type means code that holds one never has to re-validate it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FiscalCode(String);

/// Why a string is not a valid fiscal code. The messages are plain English, suitable to show
/// to the citizen who typed the code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FiscalCodeError {
    /// Nothing (or only spaces) was entered.
    #[error("the fiscal code is missing")]
    Empty,
    /// The code (after trimming) has neither 16 characters nor 11; carries the length found.
    #[error("a fiscal code has 16 characters (11 digits for a company or organisation), not {0}")]
    WrongLength(usize),
    /// A character is not allowed where it stands; `position` counts from 1, as a person would.
    #[error("the character in position {position} is not valid there")]
    BadCharacter {
        /// 1-based position of the offending character.
        position: usize,
    },
    /// The month letter (9th character) is not one of the twelve month letters.
    #[error(
        "the 9th character should be a month letter (A, B, C, D, E, H, L, M, P, R, S or T), not {0}"
    )]
    BadMonth(char),
    /// The birth day (10th–11th characters) is outside 1–31 and 41–71.
    #[error(
        "the birth day {0:02} in the code is not valid (it should be 01–31, or 41–71 for women)"
    )]
    BadDay(u32),
    /// The last character does not match the one computed from the others: almost always a typo.
    #[error("the check character should be {expected}, not {found}")]
    BadCheckCharacter {
        /// The check character computed from the rest of the code.
        expected: char,
        /// The check character that was entered.
        found: char,
    },
    /// "00000000000" passes the numeric check but is a placeholder, never a real code.
    #[error("a code made only of zeros is not a real fiscal code")]
    AllZeros,
}

impl FiscalCode {
    /// Validates and normalises a fiscal code as typed by a person.
    ///
    /// Surrounding whitespace is removed and ASCII letters are uppercased; spaces inside the
    /// code are not accepted. 16 characters are checked as a personal code, 11 as the numeric
    /// code of a legal person.
    pub fn parse(s: &str) -> Result<Self, FiscalCodeError> {
        let code = s.trim().to_ascii_uppercase();
        let len = code.chars().count();
        match len {
            0 => Err(FiscalCodeError::Empty),
            PERSON_LEN => validate_person(code.as_bytes()).map(|()| Self(code)),
            LEGAL_LEN => validate_legal(code.as_bytes()).map(|()| Self(code)),
            other => Err(FiscalCodeError::WrongLength(other)),
        }
    }

    /// Completes the first 15 characters of a personal code with its check character and
    /// validates the result (for generated demo data and tests).
    pub fn complete_person(first15: &str) -> Result<Self, FiscalCodeError> {
        let upper = first15.trim().to_ascii_uppercase();
        if upper.len() != PERSON_LEN - 1 || !upper.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FiscalCodeError::WrongLength(upper.chars().count() + 1));
        }
        let check = person_check_character(upper.as_bytes());
        Self::parse(&format!("{upper}{check}"))
    }

    /// The normalised code, for storage and display.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the 16-character code of a natural person (rather than the 11-digit
    /// code of a company or organisation), since the two need different paperwork.
    pub fn is_person(&self) -> bool {
        self.0.len() == PERSON_LEN
    }
}

/// Checks a 16-byte uppercase personal code.
///
/// `code` may contain non-ASCII bytes if the input did; those fail as bad characters
/// (the length was counted in characters, so a multi-byte character makes the byte
/// length differ and is caught first).
fn validate_person(code: &[u8]) -> Result<(), FiscalCodeError> {
    let code: &[u8; PERSON_LEN] = code.try_into().map_err(|_| first_non_ascii(code))?;
    for (i, &c) in code.iter().enumerate() {
        let ok = if DIGIT_POSITIONS.contains(&i) {
            digit_value(c).is_some()
        } else {
            c.is_ascii_uppercase()
        };
        if !ok {
            return Err(FiscalCodeError::BadCharacter { position: i + 1 });
        }
    }
    if !MONTH_LETTERS.contains(&code[8]) {
        return Err(FiscalCodeError::BadMonth(char::from(code[8])));
    }
    let day = decode_two_digits(code[9], code[10]);
    if !matches!(day, 1..=31 | 41..=71) {
        return Err(FiscalCodeError::BadDay(day));
    }
    let expected = person_check_character(&code[..15]);
    let found = char::from(code[15]);
    if expected != found {
        return Err(FiscalCodeError::BadCheckCharacter { expected, found });
    }
    Ok(())
}

/// Checks an 11-byte numeric code of a legal person.
fn validate_legal(code: &[u8]) -> Result<(), FiscalCodeError> {
    let code: &[u8; LEGAL_LEN] = code.try_into().map_err(|_| first_non_ascii(code))?;
    if let Some(i) = code.iter().position(|c| !c.is_ascii_digit()) {
        return Err(FiscalCodeError::BadCharacter { position: i + 1 });
    }
    if code.iter().all(|&c| c == b'0') {
        return Err(FiscalCodeError::AllZeros);
    }
    let expected = legal_check_digit(&code[..10]);
    let found = char::from(code[10]);
    if expected != found {
        return Err(FiscalCodeError::BadCheckCharacter { expected, found });
    }
    Ok(())
}

/// The error for a code whose character count was right but which contains a non-ASCII
/// character: point at the first one (1-based, counted in bytes up to it — equal to the
/// character position because everything before it is ASCII).
fn first_non_ascii(code: &[u8]) -> FiscalCodeError {
    let position = code.iter().position(|c| !c.is_ascii()).unwrap_or(0) + 1;
    FiscalCodeError::BadCharacter { position }
}

/// The value of a character in a digit position: a digit, or its omocodia letter.
fn digit_value(c: u8) -> Option<u32> {
    if c.is_ascii_digit() {
        Some(u32::from(c - b'0'))
    } else {
        OMOCODIA_LETTERS
            .iter()
            .position(|&l| l == c)
            .and_then(|p| u32::try_from(p).ok())
    }
}

/// Decodes two characters already known to be digits or omocodia letters.
fn decode_two_digits(tens: u8, units: u8) -> u32 {
    digit_value(tens).unwrap_or(0) * 10 + digit_value(units).unwrap_or(0)
}

/// Index 0–25 of an uppercase letter, or 0–9 of a digit (the "even position" value).
fn even_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A'),
        _ => 0,
    }
}

/// The "odd position" value of an uppercase letter or digit.
fn odd_value(c: u8) -> u32 {
    let index = match c {
        b'0'..=b'9' => usize::from(c - b'0'),
        b'A'..=b'Z' => usize::from(c - b'A'),
        _ => return 0,
    };
    ODD_VALUES.get(index).copied().unwrap_or(0)
}

/// The check character of the first 15 characters of a personal code (uppercase letters and
/// digits). Positions are counted from 1, so index 0 is an "odd" position.
fn person_check_character(first15: &[u8]) -> char {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i % 2 == 0 {
                odd_value(c)
            } else {
                even_value(c)
            }
        })
        .sum();
    // sum % 26 < 26, so the addition stays within 'A'..='Z'.
    char::from(b'A' + (sum % 26) as u8)
}

/// The check digit of the first 10 digits of a legal person's code (partita IVA algorithm):
/// digits in odd positions are added as they are, digits in even positions are doubled
/// (minus 9 if that exceeds 9), and the check digit brings the total to a multiple of 10.
fn legal_check_digit(first10: &[u8]) -> char {
    let sum: u32 = first10
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let d = u32::from(c.wrapping_sub(b'0'));
            if i % 2 == 0 {
                d
            } else if d * 2 > 9 {
                d * 2 - 9
            } else {
                d * 2
            }
        })
        .sum();
    // (10 - sum % 10) % 10 < 10, so the addition stays within '0'..='9'.
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

impl fmt::Display for FiscalCode {
    /// Shows the normalised code, so what is printed is what is stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FiscalCode {
    type Err = FiscalCodeError;

    /// Same as [`FiscalCode::parse`], for `str::parse` and form extractors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for FiscalCode {
    type Error = FiscalCodeError;

    /// Validates on deserialisation too, so a stored or submitted value is never trusted blindly.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FiscalCode> for String {
    /// The normalised code, for serialisation and storage.
    fn from(code: FiscalCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn complete_person_adds_the_check_character() {
        assert_eq!(
            super::FiscalCode::complete_person("rssmra80a01h501")
                .unwrap()
                .as_str(),
            "RSSMRA80A01H501U"
        );
        assert!(
            super::FiscalCode::complete_person("RSSMRA80Z01H501").is_err(),
            "bad month letter"
        );
        assert!(super::FiscalCode::complete_person("SHORT").is_err());
    }

    use super::*;
    use proptest::prelude::*;

    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGITS_AND_OMOCODIA: &[u8] = b"0123456789LMNPQRSTUV";

    /// Test helper: completes 15 characters with their check character.
    fn with_check(first15: &str) -> String {
        assert_eq!(first15.len(), 15);
        format!("{first15}{}", person_check_character(first15.as_bytes()))
    }

    /// The characters of the same class as position `i` of a personal code.
    fn class_of(i: usize) -> &'static [u8] {
        if DIGIT_POSITIONS.contains(&i) {
            DIGITS_AND_OMOCODIA
        } else {
            LETTERS
        }
    }

    #[test]
    fn known_valid_personal_code() {
        let fc = FiscalCode::parse("RSSMRA80A01H501U").unwrap();
        assert_eq!(fc.as_str(), "RSSMRA80A01H501U");
        assert!(fc.is_person());
        assert_eq!(fc.to_string(), "RSSMRA80A01H501U");
    }

    #[test]
    fn wrong_check_character() {
        let err = FiscalCode::parse("RSSMRA80A01H501X").unwrap_err();
        assert_eq!(
            err,
            FiscalCodeError::BadCheckCharacter {
                expected: 'U',
                found: 'X'
            }
        );
        assert_eq!(err.to_string(), "the check character should be U, not X");
    }

    #[test]
    fn lowercase_and_whitespace_normalised() {
        let fc = FiscalCode::parse("  rssmra80a01h501u\t\n").unwrap();
        assert_eq!(fc.as_str(), "RSSMRA80A01H501U");
        let fc: FiscalCode = " RssMra80a01H501u ".parse().unwrap();
        assert_eq!(fc.as_str(), "RSSMRA80A01H501U");
        // Inner spaces are not silently removed.
        assert_eq!(
            FiscalCode::parse("RSS MRA80A01H501U"),
            Err(FiscalCodeError::WrongLength(17))
        );
    }

    #[test]
    fn omocode_variant() {
        // Replace the last digit of the municipality (index 14, '1') by its omocodia letter M.
        // By hand: the original sum is 98 (98 % 26 = 20 → U); at an odd position '1' is worth 0
        // and 'M' 18, so the new sum is 116, 116 % 26 = 12 → M.
        assert_eq!(with_check("RSSMRA80A01H50M"), "RSSMRA80A01H50MM");
        let fc = FiscalCode::parse("RSSMRA80A01H50MM").unwrap();
        assert!(fc.is_person());
        // The unmodified check character no longer fits.
        assert_eq!(
            FiscalCode::parse("RSSMRA80A01H50MU"),
            Err(FiscalCodeError::BadCheckCharacter {
                expected: 'M',
                found: 'U'
            })
        );
        // Omocodia everywhere: 80 → UL, 01 → LM, 501 → RLM.
        let all = with_check("RSSMRAULALMHRLM");
        assert!(FiscalCode::parse(&all).is_ok(), "{all}");
    }

    #[test]
    fn structure_errors() {
        // Digit where a letter is required (position 1).
        assert_eq!(
            FiscalCode::parse(&with_check("1SSMRA80A01H501")),
            Err(FiscalCodeError::BadCharacter { position: 1 })
        );
        // Non-omocodia letter where a digit is required (position 7).
        assert_eq!(
            FiscalCode::parse(&with_check("RSSMRAA0A01H501")),
            Err(FiscalCodeError::BadCharacter { position: 7 })
        );
        // Digit in the municipality letter (position 12).
        assert_eq!(
            FiscalCode::parse(&with_check("RSSMRA80A015501")),
            Err(FiscalCodeError::BadCharacter { position: 12 })
        );
        // Month letter F does not exist.
        assert_eq!(
            FiscalCode::parse(&with_check("RSSMRA80F01H501")),
            Err(FiscalCodeError::BadMonth('F'))
        );
        // Days: 00, 32, 40, 72 are invalid; 31, 41, 71 valid; omocodia decoded (QN = 43).
        for (day, ok) in [
            ("00", false),
            ("32", false),
            ("40", false),
            ("72", false),
            ("31", true),
            ("41", true),
            ("71", true),
            ("QN", true),
            ("ML", true),
        ] {
            let code = with_check(&format!("RSSMRA80A{day}H501"));
            assert_eq!(FiscalCode::parse(&code).is_ok(), ok, "{code}");
        }
        assert_eq!(
            FiscalCode::parse(&with_check("RSSMRA80AT2H501")),
            Err(FiscalCodeError::BadDay(72)) // omocodia T = 7, so T2 → 72
        );
        // Check character must be a letter.
        assert_eq!(
            FiscalCode::parse("RSSMRA80A01H5015"),
            Err(FiscalCodeError::BadCharacter { position: 16 })
        );
        // Non-ASCII character.
        assert_eq!(
            FiscalCode::parse("RSSMRÀ80A01H501U"),
            Err(FiscalCodeError::BadCharacter { position: 6 })
        );
        assert_eq!(
            FiscalCode::parse("1234567890À"),
            Err(FiscalCodeError::BadCharacter { position: 11 })
        );
    }

    #[test]
    fn empty_and_length() {
        assert_eq!(FiscalCode::parse(""), Err(FiscalCodeError::Empty));
        assert_eq!(FiscalCode::parse("   "), Err(FiscalCodeError::Empty));
        assert_eq!(
            FiscalCode::parse("RSSMRA80A01H501"),
            Err(FiscalCodeError::WrongLength(15))
        );
        assert_eq!(
            FiscalCode::parse("1234567890"),
            Err(FiscalCodeError::WrongLength(10))
        );
        assert_eq!(
            FiscalCode::parse("RSSMRA80A01H501UU"),
            Err(FiscalCodeError::WrongLength(17))
        );
    }

    #[test]
    fn legal_person_codes() {
        let fc = FiscalCode::parse("12345678903").unwrap();
        assert!(!fc.is_person());
        assert_eq!(fc.as_str(), "12345678903");
        assert_eq!(
            FiscalCode::parse("12345678901"),
            Err(FiscalCodeError::BadCheckCharacter {
                expected: '3',
                found: '1'
            })
        );
        // All zeros satisfies the algorithm (check digit 0) but is rejected explicitly.
        assert_eq!(legal_check_digit(b"0000000000"), '0');
        assert_eq!(
            FiscalCode::parse("00000000000"),
            Err(FiscalCodeError::AllZeros)
        );
        assert_eq!(
            FiscalCode::parse("1234567890A"),
            Err(FiscalCodeError::BadCharacter { position: 11 })
        );
        // A doubled digit above 4 exercises the "minus 9" step: 0000000005 → 5*2-9 = 1 → check 9.
        assert_eq!(legal_check_digit(b"0000000005"), '9');
        assert!(FiscalCode::parse("00000000059").is_ok());
        // …whereas in an odd position the digit counts as it is: 0000000050 → 5 → check 5.
        assert_eq!(legal_check_digit(b"0000000050"), '5');
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let fc = FiscalCode::parse("RSSMRA80A01H501U").unwrap();
        let json = serde_json::to_string(&fc).unwrap();
        assert_eq!(json, "\"RSSMRA80A01H501U\"");
        let back: FiscalCode = serde_json::from_str("\" rssmra80a01h501u \"").unwrap();
        assert_eq!(back, fc);
        assert!(serde_json::from_str::<FiscalCode>("\"RSSMRA80A01H501X\"").is_err());
        assert_eq!(String::from(fc), "RSSMRA80A01H501U");
        assert_eq!(
            FiscalCode::try_from("12345678903".to_owned())
                .unwrap()
                .as_str(),
            "12345678903"
        );
    }

    #[test]
    fn error_messages_are_plain_english() {
        assert_eq!(
            FiscalCodeError::BadCharacter { position: 7 }.to_string(),
            "the character in position 7 is not valid there"
        );
        assert!(
            FiscalCodeError::WrongLength(15)
                .to_string()
                .contains("not 15")
        );
        assert!(
            FiscalCodeError::BadMonth('F')
                .to_string()
                .ends_with("not F")
        );
        assert!(FiscalCodeError::BadDay(0).to_string().contains("00"));
    }

    /// The premise of the "every single substitution is caught" property: within each class,
    /// the value tables are injective, so changing one character always changes the sum by a
    /// non-zero amount modulo 26.
    #[test]
    fn value_tables_are_injective_within_each_class() {
        for i in 0..PERSON_LEN {
            let value = |c: u8| {
                if i % 2 == 0 {
                    odd_value(c)
                } else {
                    even_value(c)
                }
            };
            let mut values: Vec<u32> = class_of(i).iter().map(|&c| value(c) % 26).collect();
            let n = values.len();
            values.sort_unstable();
            values.dedup();
            assert_eq!(values.len(), n, "position {i}");
        }
        // The odd table is a permutation of 0..26.
        let mut odd = ODD_VALUES.to_vec();
        odd.sort_unstable();
        assert_eq!(odd, (0..26).collect::<Vec<u32>>());
    }

    fn letter() -> impl Strategy<Value = char> {
        (0_usize..26).prop_map(|i| char::from(LETTERS[i]))
    }

    fn digit_char(omocodia: bool, d: u32) -> char {
        let d = d as usize;
        if omocodia {
            char::from(OMOCODIA_LETTERS[d])
        } else {
            char::from(b'0' + d as u8)
        }
    }

    /// A random personal code with valid structure and check character, omocodia included.
    fn valid_person_code() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(letter(), 6),
            0_u32..100,
            0_usize..12,
            prop_oneof![1_u32..=31, 41_u32..=71],
            letter(),
            0_u32..1000,
            prop::collection::vec(any::<bool>(), 7),
        )
            .prop_map(|(name, year, month, day, town_letter, town_number, omo)| {
                let digits = [
                    year / 10,
                    year % 10,
                    day / 10,
                    day % 10,
                    town_number / 100,
                    town_number / 10 % 10,
                    town_number % 10,
                ];
                let d: Vec<char> = digits
                    .iter()
                    .zip(&omo)
                    .map(|(&d, &o)| digit_char(o, d))
                    .collect();
                let mut s: String = name.into_iter().collect();
                s.push(d[0]);
                s.push(d[1]);
                s.push(char::from(MONTH_LETTERS[month]));
                s.push(d[2]);
                s.push(d[3]);
                s.push(town_letter);
                s.extend(&d[4..7]);
                with_check(&s)
            })
    }

    fn valid_legal_code() -> impl Strategy<Value = String> {
        prop::collection::vec(0_u8..10, 10)
            .prop_filter("all zeros is rejected", |v| v.iter().any(|&d| d != 0))
            .prop_map(|v| {
                let first: Vec<u8> = v.iter().map(|d| b'0' + d).collect();
                let mut s: String = first.iter().map(|&b| char::from(b)).collect();
                s.push(legal_check_digit(&first));
                s
            })
    }

    proptest! {
        #[test]
        fn prop_valid_person_codes_parse(code in valid_person_code()) {
            let fc = FiscalCode::parse(&code);
            prop_assert!(fc.is_ok(), "{code}: {fc:?}");
            let lower = code.to_ascii_lowercase();
            prop_assert_eq!(FiscalCode::parse(&format!(" {lower} ")).map(String::from), Ok(code));
        }

        #[test]
        fn prop_single_substitution_in_person_code_is_caught(
            code in valid_person_code(),
            pos in 0_usize..PERSON_LEN,
            pick in 0_usize..26,
        ) {
            let class = class_of(pos);
            let mut bytes = code.clone().into_bytes();
            let original = bytes[pos];
            // Choose a character of the same class that differs from the original.
            let candidates: Vec<u8> = class.iter().copied().filter(|&c| c != original).collect();
            bytes[pos] = candidates[pick % candidates.len()];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(FiscalCode::parse(&changed).is_err(), "{code} → {changed} accepted");
        }

        #[test]
        fn prop_valid_legal_codes_parse(code in valid_legal_code()) {
            prop_assert!(FiscalCode::parse(&code).is_ok(), "{code}");
        }

        #[test]
        fn prop_single_digit_change_in_legal_code_is_caught(
            code in valid_legal_code(),
            pos in 0_usize..LEGAL_LEN,
            delta in 1_u8..10,
        ) {
            let mut bytes = code.clone().into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(FiscalCode::parse(&changed).is_err(), "{code} → {changed} accepted");
        }
    }
}
