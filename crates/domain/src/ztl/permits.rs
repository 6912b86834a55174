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
/// cannot be read as CSV at all or its header is not §6.2's.
pub fn read_register<R: Read>(
    policy: &Policy,
    input: R,
) -> Result<(Vec<RegisterRow>, Vec<Rejected>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err("the file is empty".into()),
        Err(e) => return Err(e.to_string()),
    }
    let header: Vec<&str> = record
        .iter()
        .map(|f| f.trim().trim_start_matches('\u{feff}'))
        .collect();
    if header != REGISTER_HEADER {
        return Err(format!(
            "the header must be exactly {} (found {})",
            REGISTER_HEADER.join(","),
            header.join(",")
        ));
    }
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                match check_row(policy, &record) {
                    Ok((row, holder_fiscal_code, holder_name, status)) => rows.push(RegisterRow {
                        line,
                        row,
                        holder_fiscal_code,
                        holder_name,
                        status,
                    }),
                    Err(reason) => rejected.push(Rejected { line, reason }),
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rejected.push(Rejected {
                    line,
                    reason: e.to_string(),
                });
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok((rows, rejected))
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
    let plate = Plate::parse(f(4), Some(f(5))).map_err(|e| format!("plate: {e}"))?;
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
