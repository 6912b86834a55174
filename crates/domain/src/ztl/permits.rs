//! Reading a permit register (CONTRACT §6.2) — the file an outsourced provider hands over,
//! one row per authorised plate — into checked rows, each refusal with its line number.

use std::io::Read;

use chrono::{DateTime, NaiveDate, TimeZone};

use super::policy::Policy;
use super::transits::{PermitRow, Rejected};
use crate::fiscal_code::FiscalCode;
use crate::plate::Plate;

/// One checked row of the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRow {
    /// 1-based line in the file.
    pub line: u64,
    /// The plate's permit row, as the transit check uses it.
    pub row: PermitRow,
    /// The holder's fiscal code (a person's 16 characters or a company's 11 digits).
    pub holder_fiscal_code: String,
    /// The holder's name.
    pub holder_name: String,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
}

/// Column names of §6.2, in order.
pub const REGISTER_HEADER: [&str; 9] = [
    "permit",
    "category",
    "holder_fiscal_code",
    "holder_name",
    "plate",
    "country",
    "valid_from",
    "valid_to",
    "status",
];

/// An instant of §6.2: RFC 3339, or a date meaning local midnight at its start (`end`
/// false) or at its end (`end` true) in the policy's time zone.
pub fn register_instant(policy: &Policy, text: &str, end: bool) -> Result<i64, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither an RFC 3339 instant nor a date YYYY-MM-DD"))?;
    let day = if end {
        day.succ_opt()
            .ok_or_else(|| format!("{text:?} is out of range"))?
    } else {
        day
    };
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| format!("{text:?} is out of range"))?;
    // Midnight exists in every zone this office will use; if a zone skipped it, take the
    // first instant after the gap.
    policy
        .timezone
        .from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            policy
                .timezone
                .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{text:?} has no local midnight"))
}

/// Reads the whole register: checked rows and refused lines. An error only when the file
/// cannot be read or its header is not §6.2's.
///
/// Every physical line is read on its own, so that one line's unterminated quote is that
/// line's refusal and never swallows the rows after it (a register row holds no line
/// break); [`RegisterRead::blank`] counts the empty lines, so that the lines of the file
/// are exactly the header, the rows and the refusals and the blank ones.
pub fn read_register<R: Read>(
    policy: &Policy,
    input: R,
) -> Result<(Vec<RegisterRow>, Vec<Rejected>), String> {
    read_register_counted(policy, input).map(|read| (read.rows, read.rejected))
}

/// A register read line by line: its rows, its refusals and its blank lines.
#[derive(Debug, Default)]
pub struct RegisterRead {
    /// The checked rows.
    pub rows: Vec<RegisterRow>,
    /// The refused lines, each with its reason.
    pub rejected: Vec<Rejected>,
    /// Empty (or only blank) lines, skipped.
    pub blank: u64,
    /// Physical lines in the file, the header included.
    pub lines: u64,
}

/// [`read_register`], with the count of every physical line.
pub fn read_register_counted<R: Read>(
    policy: &Policy,
    mut input: R,
) -> Result<RegisterRead, String> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let mut read = RegisterRead::default();
    let mut header_seen = false;
    let mut physical = bytes.split(|b| *b == b'\n').peekable();
    let mut number = 0u64;
    while let Some(raw) = physical.next() {
        // The empty piece after the final line end is not a line.
        if raw.is_empty() && physical.peek().is_none() {
            break;
        }
        number += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            if !header_seen {
                return Err(format!("line {number}: the header is not valid UTF-8"));
            }
            read.rejected.push(Rejected {
                line: number,
                reason: "not valid UTF-8".into(),
            });
            continue;
        };
        if text.trim().is_empty() {
            read.blank += 1;
            continue;
        }
        if !header_seen {
            header_seen = true;
            let header: Vec<&str> = text
                .split(',')
                .map(|f| f.trim().trim_start_matches('\u{feff}'))
                .collect();
            if header != REGISTER_HEADER {
                return Err(format!(
                    "the header must be exactly {} (found {})",
                    REGISTER_HEADER.join(","),
                    header.join(",")
                ));
            }
            continue;
        }
        match record_of_line(text) {
            Ok(record) => match check_row(policy, &record) {
                Ok((row, holder_fiscal_code, holder_name, status)) => {
                    read.rows.push(RegisterRow {
                        line: number,
                        row,
                        holder_fiscal_code,
                        holder_name,
                        status,
                    });
                }
                Err(reason) => read.rejected.push(Rejected {
                    line: number,
                    reason,
                }),
            },
            Err(reason) => read.rejected.push(Rejected {
                line: number,
                reason,
            }),
        }
    }
    if !header_seen {
        return Err("the file is empty".into());
    }
    read.lines = number;
    Ok(read)
}

/// One line as a CSV record; a quote left open at the line's end is refused (a register
/// row never continues on the next line).
fn record_of_line(text: &str) -> Result<csv::StringRecord, String> {
    if text.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
        return Err(
            "unterminated quote: a quoted field opened on this line is not closed on it".into(),
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record),
        Ok(false) => Err("empty row".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn check_row(
    policy: &Policy,
    record: &csv::StringRecord,
) -> Result<(PermitRow, String, String, String), String> {
    if record.len() != REGISTER_HEADER.len() {
        return Err(format!("{} columns instead of 9", record.len()));
    }
    let f = |i: usize| record.get(i).unwrap_or_default().trim();
    let permit = f(0);
    if permit.is_empty() || permit.len() > 40 {
        return Err("the permit number is empty or longer than 40 characters".into());
    }
    let category = policy
        .category(f(1))
        .ok_or_else(|| format!("unknown category {:?}", f(1)))?;
    let fiscal = f(2).to_ascii_uppercase();
    let company = fiscal.len() == 11 && fiscal.bytes().all(|b| b.is_ascii_digit());
    if !company {
        FiscalCode::parse(&fiscal).map_err(|e| format!("holder_fiscal_code: {e}"))?;
    }
    let name = f(3);
    if name.is_empty() {
        return Err("holder_name is empty".into());
    }
    crate::names::check_name(name).map_err(|e| format!("holder_name {e}"))?;
    let plate = Plate::parse(f(4), Some(f(5))).map_err(|e| format!("plate: {e}"))?;
    if !crate::plate::is_iso_country(&plate.country) {
        return Err(format!(
            "country {:?} is not an ISO 3166-1 alpha-2 code",
            plate.country
        ));
    }
    let valid_from =
        register_instant(policy, f(6), false).map_err(|e| format!("valid_from: {e}"))?;
    let valid_to = register_instant(policy, f(7), true).map_err(|e| format!("valid_to: {e}"))?;
    if valid_to <= valid_from {
        return Err("valid_to is not after valid_from".into());
    }
    let status = f(8);
    if !matches!(status, "active" | "suspended" | "revoked") {
        return Err(format!(
            "status {status:?} is not active, suspended or revoked"
        ));
    }
    Ok((
        PermitRow {
            permit: permit.to_owned(),
            category: category.id.clone(),
            plate: plate.number,
            country: plate.country,
            valid_from,
            valid_to,
            active: status == "active",
        },
        fiscal,
        name.to_owned(),
        status.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ztl::transits::{PermitIndex, check_transits};

    fn fixture(name: &str) -> Option<Vec<u8>> {
        std::fs::read(format!(
            "{}/../../../shared/fixtures/ztl/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .ok()
    }

    fn example_policy() -> Policy {
        Policy::parse(crate::ztl::policy::EXAMPLE_POLICY).unwrap()
    }

    #[test]
    fn every_register_line_is_accounted_for_and_a_quote_never_swallows_the_next_row() {
        let row = |permit: &str, name: &str, plate: &str, country: &str| {
            format!(
                "{permit},residenti,RSSMRA80A01H501U,{name},{plate},{country},2026-01-01,2026-12-31,active"
            )
        };
        let file = [
            REGISTER_HEADER.join(","),
            row("P1", "\"Mario Rossi", "AB123CD", "IT"),
            row("P2", "Luigi Verdi", "CD456EF", "IT"),
            String::new(),
            row("P3", "Nul\0lo", "EF789GH", "IT"),
            row("P4", "Anna \u{202E}issoR", "GH012IJ", "IT"),
            row("P5", "Anna Blu", "IJ345KL", "ZZ"),
            row("P6", "\"Rossi, Mario\"", "KL678MN", "fr"),
        ]
        .join("\r\n")
            + "\r\n";
        let read = read_register_counted(&example_policy(), file.as_bytes()).unwrap();
        let accepted: Vec<(u64, &str)> = read
            .rows
            .iter()
            .map(|r| (r.line, r.holder_name.as_str()))
            .collect();
        assert_eq!(accepted, vec![(3, "Luigi Verdi"), (8, "Rossi, Mario")]);
        let refused: Vec<u64> = read.rejected.iter().map(|r| r.line).collect();
        assert_eq!(refused, vec![2, 5, 6, 7], "{:?}", read.rejected);
        assert!(read.rejected[0].reason.contains("unterminated quote"));
        assert!(read.rejected[1].reason.contains("control character"));
        assert!(read.rejected[2].reason.contains("bidirectional"));
        assert!(read.rejected[3].reason.contains("ISO 3166"));
        assert_eq!(read.blank, 1);
        assert_eq!(read.lines, 8);
        assert_eq!(
            read.lines,
            1 + read.rows.len() as u64 + read.rejected.len() as u64 + read.blank
        );
    }

    #[test]
    fn every_transit_line_is_accounted_for_even_inside_an_unterminated_quote() {
        let policy = example_policy();
        let index = PermitIndex::new(&policy, Vec::new());
        let at = "2026-03-02T09:00:00+01:00";
        let lines = [
            "transit_id,gate,plate,country,timestamp".to_owned(),
            format!("T1,V01,AB123CD,IT,{at}"),
            String::new(),
            format!("T2,V01,\"CD456EF,IT,{at}"),
            format!("T3,V01,EF789GH,IT,{at}"),
            format!("T4,V01,GH012IJ,IT,{at}"),
        ];
        // A country that is not ISO 3166-1 alpha-2 is refused by its line.
        let unknown = format!("{}\nT9,V01,AB123CD,ZZ,{at}\n", lines[0]);
        let summary =
            check_transits(&policy, &index, unknown.as_bytes(), Vec::new(), |_| {}).unwrap();
        assert_eq!(summary.rejected.len(), 1);
        assert_eq!(summary.rejected[0].line, 2);
        assert!(summary.rejected[0].reason.contains("ISO 3166"));
        let file = lines.join("\n") + "\n";
        let summary = check_transits(&policy, &index, file.as_bytes(), Vec::new(), |_| {}).unwrap();
        let refused: Vec<u64> = summary.rejected.iter().map(|r| r.line).collect();
        assert_eq!(refused, vec![4, 5, 6], "{:?}", summary.rejected);
        assert!(summary.rejected[0].reason.contains("unterminated quote"));
        assert!(summary.rejected[1].reason.contains("opened on line 4"));
        assert_eq!(summary.blank, 1);
        assert_eq!(summary.transits, 4);
        assert_eq!(1 + summary.transits + summary.blank, lines.len() as u64);
        // The same quote closed further down: only the lines it spans are refused.
        let closed = format!("{}\n\"\nT5,V01,IJ345KL,IT,{at}\n", lines.join("\n"));
        let summary =
            check_transits(&policy, &index, closed.as_bytes(), Vec::new(), |_| {}).unwrap();
        let refused: Vec<u64> = summary.rejected.iter().map(|r| r.line).collect();
        assert_eq!(refused, vec![4, 5, 6, 7], "{:?}", summary.rejected);
        assert_eq!(summary.transits, 6);
        assert_eq!(1 + summary.transits + summary.blank, 8);
    }

    #[test]
    fn the_fixtures_reconcile_byte_for_byte() {
        let (Some(policy), Some(permits), Some(transits), Some(expected)) = (
            fixture("policy.toml"),
            fixture("permits.csv"),
            fixture("transits.csv"),
            fixture("violations.expected.csv"),
        ) else {
            eprintln!("skipped: ../shared/fixtures not present");
            return;
        };
        let policy = Policy::parse(std::str::from_utf8(&policy).unwrap()).unwrap();
        let (rows, rejected) = read_register(&policy, permits.as_slice()).unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        let index = PermitIndex::new(&policy, rows.into_iter().map(|r| r.row));
        let mut out = Vec::new();
        let summary =
            check_transits(&policy, &index, transits.as_slice(), &mut out, |_| {}).unwrap();
        assert_eq!(summary.rejected_count, 0, "{:?}", summary.rejected);
        if out != expected {
            let got = String::from_utf8_lossy(&out);
            let want = String::from_utf8_lossy(&expected);
            let diff: Vec<_> = got
                .lines()
                .zip(want.lines())
                .filter(|(a, b)| a != b)
                .take(3)
                .collect();
            panic!(
                "{} lines vs {}; first differences {diff:?}",
                got.lines().count(),
                want.lines().count()
            );
        }
        let (Some(bad), Some(bad_expected)) = (
            fixture("transits-bad.csv"),
            fixture("transits-bad.violations.expected.csv"),
        ) else {
            return;
        };
        let mut out = Vec::new();
        let summary = check_transits(&policy, &index, bad.as_slice(), &mut out, |_| {}).unwrap();
        assert_eq!(out, bad_expected);
        let lines: Vec<u64> = summary.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 8, 9], "{:?}", summary.rejected);
    }
}
