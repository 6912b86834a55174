//! The citizen's data rights (GDPR art. 15 and 17, CONTRACT §8.5), the pure part: how
//! long a closed case's personal data are kept ([`RetentionPeriod`]) and how free text that
//! names a person is rewritten with their pseudonym ([`Redactor`]).
//!
//! Text is matched the way people write names: case does not matter, accents do not
//! matter (`Niccolò` and `NICCOLO` are the same word), only whole words match (`Rossi` is
//! replaced, `Rossini` is not), and a telephone number matches however it is written
//! (`+39 333 123 4567`, `3331234567`).

use chrono::{DateTime, Months, TimeDelta, Utc};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The unit of a [`RetentionPeriod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    /// Days (`d`).
    Days,
    /// Calendar months (`m`).
    Months,
    /// Calendar years (`y`).
    Years,
}

/// How long after closing a case its documents and personal data are kept: `30d`, `18m`,
/// `5y` (a positive whole number and a unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPeriod {
    /// How many units.
    pub amount: u32,
    /// Days, months or years.
    pub unit: PeriodUnit,
}

/// Why a retention period cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a period: write a whole number and d, m or y, e.g. \"90d\", \"18m\", \"5y\"")]
pub struct PeriodError(pub String);

impl RetentionPeriod {
    /// Reads `5y`, `18m`, `30d` (spaces around are allowed, the unit in either case).
    pub fn parse(s: &str) -> Result<RetentionPeriod, PeriodError> {
        let t = s.trim();
        let err = || PeriodError(s.to_owned());
        let unit_char = t.chars().last().ok_or_else(err)?;
        let unit = match unit_char.to_ascii_lowercase() {
            'd' => PeriodUnit::Days,
            'm' => PeriodUnit::Months,
            'y' => PeriodUnit::Years,
            _ => return Err(err()),
        };
        let digits = &t[..t.len() - unit_char.len_utf8()];
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        let amount: u32 = digits.parse().map_err(|_| err())?;
        // Nobody keeps data for more than a few centuries; a larger number is a typo.
        let limit = match unit {
            PeriodUnit::Days => 36_500,
            PeriodUnit::Months => 1_200,
            PeriodUnit::Years => 100,
        };
        if amount == 0 || amount > limit {
            return Err(err());
        }
        Ok(RetentionPeriod { amount, unit })
    }

    /// The latest closing instant whose period has run out at `now`: a case closed at or
    /// before it is past retention. Months and years are calendar months, clamped to the
    /// month's last day (`1m` before 31 March is 28 or 29 February).
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let months = match self.unit {
            PeriodUnit::Days => {
                return now - TimeDelta::days(i64::from(self.amount));
            }
            PeriodUnit::Months => self.amount,
            PeriodUnit::Years => self.amount.saturating_mul(12),
        };
        now.checked_sub_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl std::fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.unit {
            PeriodUnit::Days => 'd',
            PeriodUnit::Months => 'm',
            PeriodUnit::Years => 'y',
        };
        write!(f, "{}{unit}", self.amount)
    }
}

/// Name particles that are not identifying on their own (`De Luca`: `Luca` is replaced,
/// `De` is not), besides every part shorter than three letters.
const PARTICLES: &[&str] = &[
    "del", "della", "dello", "dei", "degli", "delle", "van", "von", "der", "den", "los", "las",
];

/// Rewrites text that names one person with their pseudonym: their full name and each
/// part of it, fiscal code, e-mail and PEC addresses, postal address, telephone and fax
/// numbers, whatever the case and accents.
#[derive(Debug, Clone)]
pub struct Redactor {
    pseudonym: String,
    /// Folded needles, longest first.
    needles: Vec<Vec<char>>,
    /// Telephone keys (the last nine digits).
    phones: Vec<String>,
}

impl Redactor {
    /// A redactor writing `pseudonym` in place of what it finds.
    pub fn new(pseudonym: &str) -> Redactor {
        Redactor {
            pseudonym: pseudonym.to_owned(),
            needles: Vec::new(),
            phones: Vec::new(),
        }
    }

    /// The pseudonym written in place of personal data.
    pub fn pseudonym(&self) -> &str {
        &self.pseudonym
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty() && self.phones.is_empty()
    }

    /// Looks for `value` as a whole (a fiscal code, an e-mail address, a postal address).
    pub fn add_value(&mut self, value: &str) {
        let folded: Vec<char> = fold(value.trim()).into_iter().map(|(c, _)| c).collect();
        // Text already pseudonymised must stay as it is (anonymising twice changes nothing).
        let pseudonym: Vec<char> = fold(&self.pseudonym).into_iter().map(|(c, _)| c).collect();
        let inside_pseudonym = pseudonym.windows(folded.len().max(1)).any(|w| w == folded);
        if folded.iter().filter(|c| c.is_alphanumeric()).count() >= 3
            && !inside_pseudonym
            && !self.needles.contains(&folded)
        {
            self.needles.push(folded);
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    /// Looks for a person's name: the whole name and each part of it of three letters or
    /// more (so `Rossi Mario` and `sig. Rossi` are found too).
    pub fn add_name(&mut self, name: &str) {
        self.add_value(name);
        for part in name.split(|c: char| !c.is_alphanumeric() && c != '\'') {
            let part = part.trim_matches('\'');
            let lower = part.to_lowercase();
            if part.chars().count() >= 3 && !PARTICLES.contains(&lower.as_str()) {
                self.add_value(part);
            }
        }
    }

    /// Looks for a telephone or fax number, however it is written.
    pub fn add_phone(&mut self, number: &str) {
        if let Some(key) = crate::text::phone_key(number)
            && !self.phones.contains(&key)
        {
            self.phones.push(key);
        }
    }

    /// The text with every occurrence replaced, or `None` when nothing was found.
    pub fn redact(&self, text: &str) -> Option<String> {
        let after_phones = self.redact_phones(text);
        let source = after_phones.as_deref().unwrap_or(text);
        match self.redact_words(source) {
            Some(out) => Some(out),
            None => after_phones,
        }
    }

    /// Redacts every string inside a JSON value (keys are left alone: they are the
    /// office's own names); returns how many strings changed.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(s) => match self.redact(s) {
                Some(new) => {
                    *s = new;
                    1
                }
                None => 0,
            },
            serde_json::Value::Array(items) => items.iter_mut().map(|v| self.redact_json(v)).sum(),
            serde_json::Value::Object(map) => map.values_mut().map(|v| self.redact_json(v)).sum(),
            _ => 0,
        }
    }

    fn redact_words(&self, text: &str) -> Option<String> {
        if self.needles.is_empty() {
            return None;
        }
        let folded = fold(text);
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let byte_end = |orig: usize| chars.get(orig + 1).map_or(text.len(), |(b, _)| *b);
        let mut out = String::with_capacity(text.len());
        let mut copied = 0usize; // bytes of `text` already handled
        let mut changed = false;
        let mut i = 0;
        while i < folded.len() {
            let at_start = i == 0 || !folded[i - 1].0.is_alphanumeric();
            let found = at_start
                .then(|| {
                    self.needles.iter().find(|n| {
                        let end = i + n.len();
                        end <= folded.len()
                            && folded[i..end].iter().map(|(c, _)| *c).eq(n.iter().copied())
                            && folded.get(end).is_none_or(|(c, _)| !c.is_alphanumeric())
                            // Never split an original character between match and rest.
                            && folded.get(end).is_none_or(|(_, o)| *o != folded[end - 1].1)
                    })
                })
                .flatten();
            match found {
                Some(n) => {
                    let start_b = chars[folded[i].1].0;
                    let end_b = byte_end(folded[i + n.len() - 1].1);
                    out.push_str(&text[copied..start_b]);
                    out.push_str(&self.pseudonym);
                    copied = end_b;
                    changed = true;
                    i += n.len();
                }
                None => i += 1,
            }
        }
        changed.then(|| {
            out.push_str(&text[copied..]);
            out
        })
    }

    fn redact_phones(&self, text: &str) -> Option<String> {
        if self.phones.is_empty() {
            return None;
        }
        let is_part = |c: char| c.is_ascii_digit() || " +-./()".contains(c);
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut rest = text;
        while let Some(start) = rest.find(|c: char| c.is_ascii_digit() || c == '+') {
            // A number starts at a word boundary.
            let before_ok = rest[..start]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric());
            let run_len = rest[start..]
                .char_indices()
                .find(|(_, c)| !is_part(*c))
                .map_or(rest.len() - start, |(i, _)| i);
            let run = &rest[start..start + run_len];
            // Trailing separators are not part of the number.
            let run = run.trim_end_matches(|c: char| !c.is_ascii_digit());
            let after = &rest[start + run.len()..];
            let after_ok = after.chars().next().is_none_or(|c| !c.is_alphanumeric());
            let digits: String = run.chars().filter(char::is_ascii_digit).collect();
            let hit = before_ok
                && after_ok
                && digits.len() >= 6
                && crate::text::phone_key(&digits).is_some_and(|k| self.phones.contains(&k));
            out.push_str(&rest[..start]);
            if hit {
                out.push_str(&self.pseudonym);
                changed = true;
            } else {
                out.push_str(run);
            }
            if run.is_empty() {
                // A lone '+': copy it and go on.
                let next = rest[start..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&rest[start..start + next]);
                rest = &rest[start + next..];
            } else {
                rest = after;
            }
        }
        out.push_str(rest);
        changed.then_some(out)
    }
}

/// The text folded for matching: lower case, accents removed; each folded character with
/// the index of the original character it comes from.
fn fold(text: &str) -> Vec<(char, usize)> {
    let mut out = Vec::with_capacity(text.len());
    for (index, c) in text.chars().enumerate() {
        for d in c.to_string().nfd() {
            if is_combining_mark(d) {
                continue;
            }
            for l in d.to_lowercase() {
                out.push((l, index));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn periods_are_read_in_days_months_and_years() {
        assert_eq!(
            RetentionPeriod::parse("5y").unwrap(),
            RetentionPeriod {
                amount: 5,
                unit: PeriodUnit::Years
            }
        );
        assert_eq!(RetentionPeriod::parse(" 18M ").unwrap().to_string(), "18m");
        assert_eq!(RetentionPeriod::parse("90d").unwrap().to_string(), "90d");
        for bad in [
            "", "y", "5", "5 y", "-5y", "0d", "5w", "1.5y", "5yy", "101y", "五y", "+5y",
        ] {
            assert!(RetentionPeriod::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cutoff_is_calendar_arithmetic() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        let p = |s| RetentionPeriod::parse(s).unwrap().cutoff(now);
        assert_eq!(
            p("5y"),
            Utc.with_ymd_and_hms(2021, 12, 7, 10, 0, 0).unwrap()
        );
        assert_eq!(
            p("18m"),
            Utc.with_ymd_and_hms(2025, 6, 7, 10, 0, 0).unwrap()
        );
        assert_eq!(
            p("30d"),
            Utc.with_ymd_and_hms(2026, 11, 7, 10, 0, 0).unwrap()
        );
    }

    fn rossi() -> Redactor {
        let mut r = Redactor::new("ANON-0123456789");
        r.add_name("Niccolò De Rossi");
        r.add_value("DRSNCC80A01H501X");
        r.add_value("niccolo.derossi@example.it");
        r.add_phone("+39 333 123 4567");
        r
    }

    #[test]
    fn names_are_found_whatever_the_case_and_accents() {
        let r = rossi();
        assert_eq!(
            r.redact("Il sig. NICCOLO de rossi chiede il permesso")
                .unwrap(),
            "Il sig. ANON-0123456789 chiede il permesso"
        );
        assert_eq!(
            r.redact("Rossi Niccolò, residente").unwrap(),
            "ANON-0123456789 ANON-0123456789, residente"
        );
        // Whole words only; the particle alone is not a name.
        assert_eq!(r.redact("Gioachino Rossini, de facto"), None);
        assert_eq!(
            r.redact("Scrive niccolò.").unwrap(),
            "Scrive ANON-0123456789."
        );
    }

    #[test]
    fn codes_addresses_and_numbers_are_replaced() {
        let r = rossi();
        assert_eq!(
            r.redact("CF drsncc80a01h501x, mail Niccolo.DeRossi@example.it")
                .unwrap(),
            "CF ANON-0123456789, mail ANON-0123456789"
        );
        assert_eq!(
            r.redact("chiamare il 333 1234567 o lo 0039-333-123-4567.")
                .unwrap(),
            "chiamare il ANON-0123456789 o lo ANON-0123456789."
        );
        // Another number, and numbers glued to words, are left alone.
        assert_eq!(r.redact("pratica 2026 numero 06 5551234"), None);
        assert_eq!(r.redact("id X3331234567"), None);
    }

    #[test]
    fn json_strings_are_redacted_and_counted() {
        let r = rossi();
        let mut v = serde_json::json!({
            "holder": "Niccolò De Rossi",
            "plates": ["AB123CD"],
            "contacts_given": {"email": "niccolo.derossi@example.it", "phone": "3331234567"},
            "n": 3
        });
        assert_eq!(r.redact_json(&mut v), 3);
        assert_eq!(v["holder"], "ANON-0123456789");
        assert_eq!(v["contacts_given"]["phone"], "ANON-0123456789");
        assert_eq!(v["plates"][0], "AB123CD");
        assert_eq!(r.redact_json(&mut v), 0, "idempotent");
        // What was written is never looked for again.
        let mut again = Redactor::new("ANON-0123456789");
        again.add_name("ANON-0123456789");
        again.add_value("anon-0123456789");
        assert!(again.is_empty());
        assert_eq!(again.redact_json(&mut v), 0);
    }

    #[test]
    fn characters_that_fold_to_several_are_kept_whole() {
        let mut r = Redactor::new("X");
        r.add_name("Straße");
        assert_eq!(r.redact("via STRASSE 1"), None);
        assert_eq!(r.redact("sig. straße, ok").unwrap(), "sig. X, ok");
    }
}
