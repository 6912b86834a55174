//! Reconciliation of gate transits against the permit register (CONTRACT §6.4–§6.5): which
//! passages through an active zone no permit covered, and why. Streams the transits (a
//! million rows are never held as strings), keeps only the violations, and rejects
//! malformed rows with their line numbers instead of guessing.

use std::collections::HashMap;
use std::io::{Read, Write};

use chrono::DateTime;

use super::policy::{Policy, any_window};
use crate::plate::Plate;

/// One row of the permit register: one plate of one permit over one validity period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitRow {
    /// Permit number.
    pub permit: String,
    /// Category id (from the policy).
    pub category: String,
    /// Normalised plate.
    pub plate: String,
    /// Country code.
    pub country: String,
    /// Valid from this instant (Unix milliseconds, inclusive).
    pub valid_from: i64,
    /// Valid until this instant (Unix milliseconds, exclusive).
    pub valid_to: i64,
    /// Status `active` (suspended and revoked permits authorise nothing).
    pub active: bool,
}

/// What the check knows of one permit row, compactly.
#[derive(Debug, Clone)]
struct Entry {
    permit: String,
    category: Option<usize>,
    /// The zones its category covers, one bit per zone of the policy (all for `*`).
    zones: u64,
    valid_from: i64,
    valid_to: i64,
    active: bool,
}

/// A normalised plate and its country packed in 16 bytes (country, length, plate), so a
/// lookup builds its key on the stack: the check looks up a million of them.
type PlateKey = [u8; 16];

fn plate_key(plate: &str, country: &str) -> Option<PlateKey> {
    let (plate, country) = (plate.as_bytes(), country.as_bytes());
    if plate.len() > 13 || country.len() != 2 {
        return None;
    }
    let mut key = [0u8; 16];
    key[..2].copy_from_slice(country);
    key[2] = plate.len() as u8;
    key[3..3 + plate.len()].copy_from_slice(plate);
    Some(key)
}

/// The permit register indexed by plate and country.
#[derive(Debug, Default)]
pub struct PermitIndex {
    rows: rustc_hash::FxHashMap<PlateKey, Vec<Entry>>,
    /// Rows whose plate or country does not fit a [`PlateKey`] (none after validation;
    /// kept so that no row is ever silently ignored).
    other: HashMap<(String, String), Vec<Entry>>,
}

/// The bit of a zone in a category's zone mask, when the policy has at most 64 zones.
fn zone_bit(policy: &Policy, zone: &str) -> Option<u64> {
    policy
        .zones
        .iter()
        .position(|z| z.id == zone)
        .filter(|&i| i < 64)
        .map(|i| 1u64 << i)
}

impl PermitIndex {
    /// Indexes the rows; rows of a category the policy does not know authorise nothing.
    pub fn new(policy: &Policy, rows: impl IntoIterator<Item = PermitRow>) -> PermitIndex {
        let masks: Vec<u64> = policy
            .categories
            .iter()
            .map(|c| {
                c.zones
                    .iter()
                    .map(|z| {
                        if z == "*" {
                            u64::MAX
                        } else {
                            zone_bit(policy, z).unwrap_or(0)
                        }
                    })
                    .fold(0, |mask, bit| mask | bit)
            })
            .collect();
        let mut index = PermitIndex::default();
        for row in rows {
            let category = policy.categories.iter().position(|c| c.id == row.category);
            let entry = Entry {
                permit: row.permit,
                category,
                zones: category.map_or(0, |i| masks[i]),
                valid_from: row.valid_from,
                valid_to: row.valid_to,
                active: row.active,
            };
            match plate_key(&row.plate, &row.country) {
                Some(key) => index.rows.entry(key).or_default().push(entry),
                None => index
                    .other
                    .entry((row.plate, row.country))
                    .or_default()
                    .push(entry),
            }
        }
        index
    }

    fn rows_of(&self, plate: &str, country: &str) -> Option<&Vec<Entry>> {
        match plate_key(plate, country) {
            Some(key) => self.rows.get(&key),
            None => self.other.get(&(plate.to_owned(), country.to_owned())),
        }
    }
}

/// Why a transit is a violation (CONTRACT §6.5), in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A permit covers everything but the time window.
    OutsideWindow,
    /// A permit covers everything but the validity period.
    NotValidAtTime,
    /// A permit covers everything but the zone.
    WrongZone,
    /// A permit covers everything but is suspended or revoked.
    SuspendedOrRevoked,
    /// Nothing comes close.
    NoPermit,
}

impl Reason {
    /// Every reason, so that each has its words on the pages.
    pub const ALL: &'static [Reason] = &[
        Reason::OutsideWindow,
        Reason::NotValidAtTime,
        Reason::WrongZone,
        Reason::SuspendedOrRevoked,
        Reason::NoPermit,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OutsideWindow => "outside_window",
            Reason::NotValidAtTime => "not_valid_at_time",
            Reason::WrongZone => "wrong_zone",
            Reason::SuspendedOrRevoked => "suspended_or_revoked",
            Reason::NoPermit => "no_permit",
        }
    }
}

/// One passage through a gate, as the verdict needs it.
#[derive(Debug, Clone, Copy)]
pub struct Passage<'a> {
    /// Normalised plate.
    pub plate: &'a str,
    /// Country code.
    pub country: &'a str,
    /// The gate's zone.
    pub zone: &'a str,
    /// The instant (Unix milliseconds).
    pub at_ms: i64,
    /// Local weekday, Monday = 0.
    pub weekday: usize,
    /// Local minute after midnight.
    pub minute: u16,
}

/// The permit that authorises a passage, or why none does.
pub fn authorise<'i>(
    policy: &Policy,
    index: &'i PermitIndex,
    passage: &Passage<'_>,
) -> Result<&'i str, Reason> {
    let Passage {
        plate,
        country,
        zone,
        at_ms,
        weekday,
        minute,
    } = *passage;
    let Some(rows) = index.rows_of(plate, country) else {
        return Err(Reason::NoPermit);
    };
    let bit = zone_bit(policy, zone);
    let mut near = [false; 4];
    for row in rows {
        let (zone_ok, window_ok) = match row.category.map(|i| &policy.categories[i]) {
            Some(c) => (
                bit.map_or_else(|| c.covers(zone), |bit| row.zones & bit != 0),
                any_window(&c.windows, weekday, minute),
            ),
            None => (false, false),
        };
        let valid_ok = row.valid_from <= at_ms && at_ms < row.valid_to;
        let conditions = [row.active, valid_ok, zone_ok, window_ok];
        if conditions.iter().all(|c| *c) {
            return Ok(&row.permit);
        }
        // Every condition but one: which one.
        near[0] |= row.active && valid_ok && zone_ok && !window_ok;
        near[1] |= row.active && !valid_ok && zone_ok && window_ok;
        near[2] |= row.active && valid_ok && !zone_ok && window_ok;
        near[3] |= !row.active && valid_ok && zone_ok && window_ok;
    }
    Err([
        Reason::OutsideWindow,
        Reason::NotValidAtTime,
        Reason::WrongZone,
        Reason::SuspendedOrRevoked,
    ]
    .into_iter()
    .zip(near)
    .find_map(|(reason, hit)| hit.then_some(reason))
    .unwrap_or(Reason::NoPermit))
}

/// The verdicts on a transit that are not a [`Reason`]: covered by a permit, the zone not
/// enforced then, or a transit that cannot be checked (no such gate, no instant).
pub const OTHER_VERDICTS: &[&str] = &["permit", "zone_not_active", "unreadable"];

/// What the rules say of one plate passing one zone at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement<'i> {
    /// The zone is not enforced at that time: anyone may pass.
    ZoneNotActive,
    /// Covered by this permit.
    Authorised(&'i str),
    /// A violation, and why.
    Violation(Reason),
}

/// Judges one passage: the zone's active hours first, then the permit register. The one
/// place where a transit check, a patrol's question and a contested fine are decided.
pub fn judge<'i, Tz: chrono::TimeZone>(
    policy: &Policy,
    index: &'i PermitIndex,
    plate: &Plate,
    zone: &super::policy::Zone,
    at: &DateTime<Tz>,
) -> Judgement<'i> {
    let (weekday, minute) = policy.local(at);
    if !any_window(&zone.active, weekday, minute) {
        return Judgement::ZoneNotActive;
    }
    let passage = Passage {
        plate: &plate.number,
        country: &plate.country,
        zone: &zone.id,
        at_ms: at.timestamp_millis(),
        weekday,
        minute,
    };
    match authorise(policy, index, &passage) {
        Ok(permit) => Judgement::Authorised(permit),
        Err(reason) => Judgement::Violation(reason),
    }
}

/// A transit row refused as malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line in the input file.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What a check did.
#[derive(Debug, Default)]
pub struct CheckSummary {
    /// Rows read (header excluded).
    pub transits: u64,
    /// Rows in an active zone (the others are not checked).
    pub in_active_zone: u64,
    /// Violations written.
    pub violations: u64,
    /// Malformed rows and unknown gates (the first [`MAX_REJECTS_KEPT`]).
    pub rejected: Vec<Rejected>,
    /// How many rows were rejected in all.
    pub rejected_count: u64,
    /// Empty lines, skipped (the file's lines are the header, the rows and these).
    pub blank: u64,
}

/// Rejected rows kept for the report; the count goes on beyond.
pub const MAX_REJECTS_KEPT: usize = 1_000;

/// Why a whole file cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The header is not the one of CONTRACT §6.4.
    #[error("the header must be exactly transit_id,gate,plate,country,timestamp (found {0:?})")]
    BadHeader(String),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The CSV itself is broken (e.g. an unclosed quote), at a line.
    #[error("line {line}: {message}")]
    Csv {
        /// Line.
        line: u64,
        /// What.
        message: String,
    },
}

/// Where one violation's output line lies in the arena, and how it sorts. The lines
/// themselves live in one growing buffer: half a million violations cost one allocation
/// per doubling, not six strings each.
struct ViolationKey {
    at_nanos: i128,
    start: usize,
    len: u32,
    id_len: u32,
}

/// Appends a CSV field, quoted only when it must be.
fn push_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// Reads transits (§6.4) from `input` and writes the violations (§6.5) to `output`,
/// sorted by instant then transit id. Malformed rows and unknown gates are reported in
/// the summary, never turned into violations; `progress` is called with the bytes read
/// so far every few thousand rows.
pub fn check_transits<R: Read, W: Write>(
    policy: &Policy,
    index: &PermitIndex,
    input: R,
    output: W,
    mut progress: impl FnMut(u64),
) -> Result<CheckSummary, CheckError> {
    let part = check_part(policy, index, Part::whole(input), &mut progress)?;
    write_violations(vec![part], output)
}

/// A stretch of a transits file, checked on its own: the whole file (header first), or
/// the records from a record boundary on, whose first record is on line `first_line`.
#[derive(Debug)]
pub struct Part<R> {
    /// The bytes of the stretch.
    pub input: R,
    /// Whether it starts with the header line.
    pub header: bool,
    /// The line number of its first line in the whole file (1 for the whole file).
    pub first_line: u64,
}

impl<R> Part<R> {
    /// The whole file.
    pub fn whole(input: R) -> Part<R> {
        Part {
            input,
            header: true,
            first_line: 1,
        }
    }
}

/// [`check_transits`] on stretches of one file read in parallel, one thread each (the
/// caller splits the file at record boundaries; the first stretch holds the header). The
/// output is the same as checking the whole file at once. `progress` receives the bytes
/// read since its last call, from any thread.
pub fn check_transits_in_parts<R: Read + Send, W: Write>(
    policy: &Policy,
    index: &PermitIndex,
    parts: Vec<Part<R>>,
    output: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CheckSummary, CheckError> {
    let checked: Vec<Result<Checked, CheckError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut read = 0;
                    check_part(policy, index, part, &mut |bytes| {
                        progress(bytes - read);
                        read = bytes;
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(CheckError::Csv {
                        line: 0,
                        message: "a checking thread failed".into(),
                    })
                })
            })
            .collect()
    });
    write_violations(checked.into_iter().collect::<Result<_, _>>()?, output)
}

/// What checking one stretch found: its counts, and its violations as output lines in
/// one arena with a sort key each.
struct Checked {
    summary: CheckSummary,
    keys: Vec<ViolationKey>,
    arena: Vec<u8>,
}

/// A reader that notes where its lines end, so that a row's line number comes from its
/// byte offset (the CSV reader's count skips blank lines and cannot tell the lines a
/// quote swallowed). Offsets before the row being read are forgotten as it goes.
struct LineCounter<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Offsets of the line ends not yet forgotten.
    ends: std::collections::VecDeque<u64>,
    /// Line ends forgotten (all before the current row).
    forgotten: u64,
    /// Whether the last byte read was a line end (or nothing was read).
    ended: bool,
    /// The last three bytes read, oldest first.
    tail: [u8; 3],
    /// The byte before the stream's final line end (`\n` or `\r\n`), when it ends in one.
    before_last_line_end: Option<u8>,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            read: 0,
            ends: std::collections::VecDeque::new(),
            forgotten: 0,
            ended: true,
            tail: [0; 3],
            before_last_line_end: None,
        }
    }

    /// The 0-based line of the byte at `offset` (offsets never go back between calls).
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.ends.front().is_some_and(|end| *end < offset) {
            self.ends.pop_front();
            self.forgotten += 1;
        }
        self.forgotten
    }

    /// Physical lines read in all (a last line without a line end counts).
    fn lines(&self) -> u64 {
        self.forgotten + self.ends.len() as u64 + u64::from(!self.ended)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                self.ends.push_back(self.read + i as u64);
            }
        }
        if n > 0 {
            self.ended = buf[n - 1] == b'\n';
            for b in &buf[n.saturating_sub(3)..n] {
                self.tail = [self.tail[1], self.tail[2], *b];
            }
            self.before_last_line_end = match self.tail {
                [before, b'\r', b'\n'] => Some(before),
                [_, before, b'\n'] => Some(before),
                _ => None,
            };
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn check_part<R: Read>(
    policy: &Policy,
    index: &PermitIndex,
    part: Part<R>,
    progress: &mut dyn FnMut(u64),
) -> Result<Checked, CheckError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineCounter::new(part.input));
    let line_of =
        |position: Option<&csv::Position>| position.map_or(0, |p| p.line()) + part.first_line - 1;
    let mut record = csv::ByteRecord::new();
    let mut summary = CheckSummary::default();
    let mut keys: Vec<ViolationKey> = Vec::new();
    let mut arena: Vec<u8> = Vec::new();
    let csv_error = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => CheckError::Io(io),
            _ => CheckError::Csv {
                line: 0,
                message: "unreadable".into(),
            },
        },
        _ => CheckError::Csv {
            line: line_of(e.position()),
            message: e.to_string(),
        },
    };
    if part.header {
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            return Err(CheckError::BadHeader(String::new()));
        }
        let header: Vec<String> = record
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .trim()
                    .trim_start_matches('\u{feff}')
                    .to_owned()
            })
            .collect();
        if header != ["transit_id", "gate", "plate", "country", "timestamp"] {
            return Err(CheckError::BadHeader(header.join(",")));
        }
    }
    let reject = |summary: &mut CheckSummary, line: u64, reason: String| {
        summary.rejected_count += 1;
        if summary.rejected.len() < MAX_REJECTS_KEPT {
            summary.rejected.push(Rejected { line, reason });
        }
    };
    // The line where the next row should start: the lines before it that no row took
    // are blank (the CSV reader skips them).
    // Line numbers from byte offsets: the CSV reader's own count skips blank lines.
    let first = part.first_line;
    let header_end = reader.position().byte();
    let mut expected = first + reader.get_mut().line_at(header_end);
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        summary.transits += 1;
        // The row's last line from the offset of its last byte; its first from the line
        // ends inside its fields (only a quote holds them). The reader's own position of
        // a row is where it began looking, before the blank lines it skipped.
        let after = reader.position().byte();
        let last = first + reader.get_mut().line_at(after.saturating_sub(1));
        let mut swallowed = record
            .iter()
            .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
            .sum::<u64>();
        let open_at_end = record
            .get(record.len().saturating_sub(1))
            .is_some_and(|f| f.ends_with(b"\n"))
            && after == reader.get_ref().read
            && reader.get_ref().before_last_line_end != Some(b'"');
        if open_at_end {
            // A quote open at the end of the file took the last line end into its field.
            swallowed = swallowed.saturating_sub(1);
        }
        let line = last.saturating_sub(swallowed);
        summary.blank += line.saturating_sub(expected);
        expected = line + 1 + swallowed;
        if swallowed > 0 {
            reject(
                &mut summary,
                line,
                format!(
                    "unterminated quote: the quoted field opened on this line runs over {swallowed} more line(s), refused with it"
                ),
            );
            for inside in line + 1..=line + swallowed {
                summary.transits += 1;
                reject(
                    &mut summary,
                    inside,
                    format!("inside the unterminated quote opened on line {line}"),
                );
            }
            continue;
        }
        if summary.transits % 8192 == 0 {
            progress(record.position().map_or(0, |p| p.byte()));
        }
        if record.len() != 5 {
            reject(
                &mut summary,
                line,
                format!("{} columns instead of 5", record.len()),
            );
            continue;
        }
        let field = |i: usize| std::str::from_utf8(&record[i]).map(str::trim);
        let (Ok(id), Ok(gate), Ok(plate), Ok(country), Ok(timestamp)) =
            (field(0), field(1), field(2), field(3), field(4))
        else {
            reject(&mut summary, line, "not valid UTF-8".into());
            continue;
        };
        if id.is_empty() {
            reject(&mut summary, line, "empty transit_id".into());
            continue;
        }
        let Some(zone) = policy.zone_of_gate(gate) else {
            reject(&mut summary, line, format!("unknown gate {gate:?}"));
            continue;
        };
        let plate = match Plate::parse(plate, Some(country)) {
            Ok(p) => p,
            Err(e) => {
                reject(&mut summary, line, e.to_string());
                continue;
            }
        };
        if !crate::plate::is_iso_country(&plate.country) {
            reject(
                &mut summary,
                line,
                format!(
                    "country {:?} is not an ISO 3166-1 alpha-2 code",
                    plate.country
                ),
            );
            continue;
        }
        let Ok(at) = DateTime::parse_from_rfc3339(timestamp) else {
            reject(
                &mut summary,
                line,
                format!("timestamp {timestamp:?} is not RFC 3339 with an offset"),
            );
            continue;
        };
        let reason = match judge(policy, index, &plate, zone, &at) {
            Judgement::ZoneNotActive => continue,
            Judgement::Authorised(_) => None,
            Judgement::Violation(reason) => Some(reason),
        };
        summary.in_active_zone += 1;
        if let Some(reason) = reason {
            let start = arena.len();
            push_field(&mut arena, id);
            let id_len = (arena.len() - start) as u32;
            for field in [
                gate,
                zone.id.as_str(),
                &plate.number,
                &plate.country,
                timestamp,
            ] {
                arena.push(b',');
                push_field(&mut arena, field);
            }
            arena.push(b',');
            arena.extend_from_slice(reason.as_str().as_bytes());
            arena.push(b'\n');
            keys.push(ViolationKey {
                at_nanos: i128::from(at.timestamp()) * 1_000_000_000
                    + i128::from(at.timestamp_subsec_nanos()),
                start,
                len: (arena.len() - start) as u32,
                id_len,
            });
        }
    }
    // Blank lines after the last row.
    summary.blank += (first + reader.get_ref().lines()).saturating_sub(expected);
    progress(reader.position().byte());
    Ok(Checked {
        summary,
        keys,
        arena,
    })
}

/// Sorts the violations of every stretch by instant, then transit id, writes them under
/// the header, and adds up the counts (rejected rows in line order).
fn write_violations<W: Write>(
    parts: Vec<Checked>,
    mut output: W,
) -> Result<CheckSummary, CheckError> {
    let mut summary = CheckSummary::default();
    let mut keys: Vec<(usize, &ViolationKey)> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        summary.transits += part.summary.transits;
        summary.in_active_zone += part.summary.in_active_zone;
        summary.rejected_count += part.summary.rejected_count;
        summary.blank += part.summary.blank;
        for r in &part.summary.rejected {
            if summary.rejected.len() < MAX_REJECTS_KEPT {
                summary.rejected.push(r.clone());
            }
        }
        keys.extend(part.keys.iter().map(|k| (i, k)));
    }
    let line =
        |(i, k): &(usize, &ViolationKey)| &parts[*i].arena[k.start..k.start + k.len as usize];
    let id =
        |(i, k): &(usize, &ViolationKey)| &parts[*i].arena[k.start..k.start + k.id_len as usize];
    keys.sort_unstable_by(|a, b| {
        a.1.at_nanos
            .cmp(&b.1.at_nanos)
            .then_with(|| id(a).cmp(id(b)))
    });
    output.write_all(b"transit_id,gate,zone,plate,country,timestamp,reason\n")?;
    for k in &keys {
        output.write_all(line(k))?;
    }
    output.flush()?;
    summary.violations = keys.len() as u64;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
timezone = "Europe/Rome"
[[zone]]
id = "A"
name = "Centro"
gates = ["V01"]
active = ["mon-fri 07:30-20:00"]
[[zone]]
id = "N"
name = "Notte"
gates = ["N01"]
active = ["fri,sat 23:00-03:00"]
[[category]]
id = "residenti"
name = "Residenti"
prefix = "RES"
zones = ["A"]
max_vehicles = 2
validity_days = 365
term_days = 30
service_days = 15
[[category]]
id = "cude"
name = "CUDE"
prefix = "CUD"
zones = ["*"]
max_vehicles = 2
validity_days = 365
person_bound = true
temporary_plate_hours = 48
term_days = 30
service_days = 5
[[category]]
id = "carico"
name = "Carico"
prefix = "CS"
zones = ["A"]
windows = ["mon-sat 10:00-12:00"]
max_vehicles = 1
validity_days = 365
term_days = 30
service_days = 10
"#;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn check(rows: Vec<PermitRow>, transits: &str) -> String {
        let policy = Policy::parse(POLICY).unwrap();
        let index = PermitIndex::new(&policy, rows);
        let mut out = Vec::new();
        let input = format!("transit_id,gate,plate,country,timestamp\n{transits}");
        check_transits(&policy, &index, input.as_bytes(), &mut out, |_| {}).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn row(
        permit: &str,
        category: &str,
        plate: &str,
        from: &str,
        to: &str,
        active: bool,
    ) -> PermitRow {
        PermitRow {
            permit: permit.into(),
            category: category.into(),
            plate: plate.into(),
            country: "IT".into(),
            valid_from: ms(from),
            valid_to: ms(to),
            active,
        }
    }

    #[test]
    fn daylight_saving_days_use_the_local_wall_clock() {
        // Monday 30 March 2026, the day after the clocks went forward: 07:45 local is
        // 05:45Z (zone active), 07:15 local is 05:15Z (not yet).
        let out = check(
            Vec::new(),
            "T1,V01,AA000AA,,2026-03-30T05:45:00Z\nT2,V01,AA000AA,,2026-03-30T05:15:00Z\n\
             T3,V01,AA000AA,,2026-10-26T06:45:00Z\nT4,V01,AA000AA,,2026-10-26T06:15:00Z\n",
        );
        // Monday 26 October, after the clocks went back: 07:45 local is 06:45Z.
        assert_eq!(
            out,
            "transit_id,gate,zone,plate,country,timestamp,reason\n\
             T1,V01,A,AA000AA,IT,2026-03-30T05:45:00Z,no_permit\n\
             T3,V01,A,AA000AA,IT,2026-10-26T06:45:00Z,no_permit\n"
        );
    }

    #[test]
    fn overnight_windows_run_into_the_next_day_across_the_clock_change() {
        // Saturday night 28→29 March 2026: 02:00 CET jumps to 03:00 CEST. 01:59 CET is
        // inside Saturday's 23:00-03:00; 03:00 CEST is past its end.
        let out = check(
            Vec::new(),
            "N1,N01,BB000BB,,2026-03-29T00:59:00Z\nN2,N01,BB000BB,,2026-03-29T01:00:00Z\n\
             N3,N01,BB000BB,,2026-03-27T22:30:00+01:00\nN4,N01,BB000BB,,2026-03-26T23:30:00+01:00\n",
        );
        // Friday 22:30 is before the window, Thursday night is not a window day.
        assert_eq!(
            out,
            "transit_id,gate,zone,plate,country,timestamp,reason\n\
             N1,N01,N,BB000BB,IT,2026-03-29T00:59:00Z,no_permit\n"
        );
    }

    #[test]
    fn star_zones_windows_and_reasons_in_order() {
        let year = ("2026-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00");
        let rows = vec![
            row("C1", "cude", "CC000CC", year.0, year.1, true),
            row("R1", "residenti", "RR000RR", year.0, year.1, true),
            row("S1", "residenti", "SS000SS", year.0, year.1, false),
            row("W1", "carico", "WW000WW", year.0, year.1, true),
            row(
                "E1",
                "residenti",
                "EE000EE",
                "2025-01-01T00:00:00+01:00",
                "2026-01-01T00:00:00+01:00",
                true,
            ),
        ];
        // Friday 6 March 2026: zone A active all day, zone N on Friday night.
        let out = check(
            rows,
            "1,N01,CC000CC,,2026-03-06T23:30:00+01:00\n2,N01,RR000RR,,2026-03-06T23:30:00+01:00\n\
             3,V01,SS000SS,,2026-03-06T09:00:00+01:00\n4,V01,WW000WW,,2026-03-06T09:00:00+01:00\n\
             5,V01,WW000WW,,2026-03-06T11:00:00+01:00\n6,V01,EE000EE,,2026-03-06T09:00:00+01:00\n\
             7,V01,rr 000 rr,it,2026-03-06T09:00:00+01:00\n",
        );
        assert_eq!(
            out,
            "transit_id,gate,zone,plate,country,timestamp,reason\n\
             3,V01,A,SS000SS,IT,2026-03-06T09:00:00+01:00,suspended_or_revoked\n\
             4,V01,A,WW000WW,IT,2026-03-06T09:00:00+01:00,outside_window\n\
             6,V01,A,EE000EE,IT,2026-03-06T09:00:00+01:00,not_valid_at_time\n\
             2,N01,N,RR000RR,IT,2026-03-06T23:30:00+01:00,wrong_zone\n"
        );
    }
}
