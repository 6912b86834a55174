//! The ZTL policy agreed between the administration, the office and the municipal police
//! (CONTRACT §6.1): zones with their gates and active hours, permit categories with the
//! zones they cover, their time windows and their rules. Loaded from TOML and checked
//! thoroughly, so that a typo is caught when the policy is loaded, not when a citizen is
//! fined.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use serde::Deserialize;

/// The example policy used when none is configured (`policy.file`).
pub const EXAMPLE_POLICY: &str = include_str!("example_policy.toml");

/// A weekly time window in local wall-clock time (`mon-fri 07:30-20:00`): start inclusive,
/// end exclusive; an end not after the start ends on the next day (`fri,sat 23:00-03:00`
/// covers Friday night into Saturday and Saturday night into Sunday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Days the window starts on, Monday first.
    days: [bool; 7],
    /// Minutes after midnight.
    start: u16,
    /// Minutes after midnight; not after `start` means the next day.
    end: u16,
    /// As written, for exports.
    text: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Parses `DAYS HH:MM-HH:MM`; DAYS is a day (`mon`…`sun`), a range (`mon-fri`) or a
    /// list (`sat,sun`, items may be ranges).
    pub fn parse(text: &str) -> Result<Window, String> {
        let mut parts = text.split_whitespace();
        let (Some(days_text), Some(times), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "{text:?} is not DAYS HH:MM-HH:MM (e.g. \"mon-fri 07:30-20:00\")"
            ));
        };
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
        };
        let mut days = [false; 7];
        for item in days_text.split(',') {
            match item.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from)?, day(to)?);
                    let mut d = from;
                    loop {
                        days[d] = true;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(item)?] = true,
            }
        }
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("{times:?} is not HH:MM-HH:MM"))?;
        Ok(Window {
            days,
            start: minutes(start)?,
            end: minutes(end)?,
            text: text.trim().to_owned(),
        })
    }

    /// Whether a local wall-clock time (weekday, Monday = 0, and minutes after midnight)
    /// falls inside the window.
    pub fn contains_local(&self, weekday: usize, minute: u16) -> bool {
        let yesterday = (weekday + 6) % 7;
        if self.end > self.start {
            self.days[weekday] && self.start <= minute && minute < self.end
        } else {
            (self.days[weekday] && minute >= self.start)
                || (self.days[yesterday] && minute < self.end)
        }
    }

    /// The window as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn minutes(hhmm: &str) -> Result<u16, String> {
    let bad = || format!("{hhmm:?} is not a time HH:MM between 00:00 and 24:00");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A zone of limited traffic, with its camera gates.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Id, e.g. `A`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Gate ids.
    pub gates: Vec<String>,
    /// When enforced; empty means always.
    pub active: Vec<Window>,
}

/// A kind of permit.
#[derive(Debug, Clone)]
pub struct Category {
    /// Id, e.g. `residenti`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Permit number prefix.
    pub prefix: String,
    /// Zones covered (`*`: every zone).
    pub zones: Vec<String>,
    /// When transit is allowed; empty means whenever the zone is active.
    pub windows: Vec<Window>,
    /// Most plates on one permit.
    pub max_vehicles: u32,
    /// Validity of a new permit in days.
    pub validity_days: u32,
    /// CUDE: plates belong to the person.
    pub person_bound: bool,
    /// Person-bound only: how far back a communicated temporary plate may reach.
    pub temporary_plate_hours: u32,
    /// Documents required to issue.
    pub documents: Vec<String>,
    /// Legal term of the procedure, calendar days.
    pub term_days: u32,
    /// The office's service standard, calendar days.
    pub service_days: u32,
}

impl Category {
    /// Whether the category covers a zone.
    pub fn covers(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z == "*" || z == zone)
    }

    /// Whether one permit of the category may carry `plates` plates at once: the one place
    /// the count is checked against `max_vehicles` (application, plan, policy drafts).
    pub fn admits_plates(&self, plates: usize) -> bool {
        (1..=self.max_vehicles as usize).contains(&plates)
    }
}

/// A loaded, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Time zone of every window.
    pub timezone: chrono_tz::Tz,
    /// Zones.
    pub zones: Vec<Zone>,
    /// Categories.
    pub categories: Vec<Category>,
    gate_zone: HashMap<String, usize>,
}

/// Why a policy cannot be used: where (line and field) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", .line.map(|l| format!("line {l}, ")).unwrap_or_default())]
pub struct PolicyError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The field, e.g. `category[2].windows[0]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    timezone: toml::Spanned<String>,
    #[serde(default)]
    zone: Vec<toml::Spanned<RawZone>>,
    #[serde(default)]
    category: Vec<toml::Spanned<RawCategory>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: String,
    name: String,
    gates: Vec<String>,
    #[serde(default)]
    active: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: String,
    name: String,
    prefix: String,
    zones: Vec<String>,
    #[serde(default)]
    windows: Vec<String>,
    max_vehicles: u32,
    validity_days: u32,
    #[serde(default)]
    person_bound: bool,
    #[serde(default)]
    temporary_plate_hours: u32,
    #[serde(default)]
    documents: Vec<String>,
    term_days: u32,
    service_days: u32,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Policy {
    /// Reads and checks a policy (TOML, CONTRACT §6.1).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            line: e.span().map(|s| line_of(text, s.start)),
            field: "policy".into(),
            message: e.message().to_owned(),
        })?;
        let err = |span: std::ops::Range<usize>, field: String, message: String| PolicyError {
            line: Some(line_of(text, span.start)),
            field,
            message,
        };
        let timezone: chrono_tz::Tz = raw.timezone.get_ref().parse().map_err(|_| {
            err(
                raw.timezone.span(),
                "timezone".into(),
                format!(
                    "{:?} is not a time zone such as Europe/Rome",
                    raw.timezone.get_ref()
                ),
            )
        })?;
        if raw.zone.is_empty() {
            return Err(PolicyError {
                line: None,
                field: "zone".into(),
                message: "the policy has no [[zone]]".into(),
            });
        }
        let mut zones = Vec::with_capacity(raw.zone.len());
        let mut gate_zone = HashMap::new();
        for (i, spanned) in raw.zone.iter().enumerate() {
            let span = spanned.span();
            let z = spanned.get_ref();
            let field = |f: &str| format!("zone[{i}].{f}");
            if z.id.trim().is_empty() {
                return Err(err(span, field("id"), "must not be empty".into()));
            }
            if zones.iter().any(|other: &Zone| other.id == z.id) {
                return Err(err(
                    span,
                    field("id"),
                    format!("zone {:?} is defined twice", z.id),
                ));
            }
            if z.gates.is_empty() {
                return Err(err(
                    span,
                    field("gates"),
                    "a zone needs at least one gate".into(),
                ));
            }
            for (g, gate) in z.gates.iter().enumerate() {
                if gate.trim().is_empty() {
                    return Err(err(
                        span.clone(),
                        field(&format!("gates[{g}]")),
                        "must not be empty".into(),
                    ));
                }
                if let Some(&other) = gate_zone.get(gate) {
                    let other: &Zone = &zones[other];
                    return Err(err(
                        span.clone(),
                        field(&format!("gates[{g}]")),
                        format!("gate {gate:?} already belongs to zone {:?}", other.id),
                    ));
                }
                gate_zone.insert(gate.clone(), zones.len());
            }
            let active = z
                .active
                .iter()
                .enumerate()
                .map(|(w, text)| {
                    Window::parse(text)
                        .map_err(|m| err(span.clone(), field(&format!("active[{w}]")), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            zones.push(Zone {
                id: z.id.clone(),
                name: z.name.clone(),
                gates: z.gates.clone(),
                active,
            });
        }
        let mut categories: Vec<Category> = Vec::with_capacity(raw.category.len());
        for (i, spanned) in raw.category.iter().enumerate() {
            let span = spanned.span();
            let c = spanned.get_ref();
            let field = |f: &str| format!("category[{i}].{f}");
            if c.id.trim().is_empty() {
                return Err(err(span, field("id"), "must not be empty".into()));
            }
            if categories.iter().any(|other| other.id == c.id) {
                return Err(err(
                    span,
                    field("id"),
                    format!("category {:?} is defined twice", c.id),
                ));
            }
            if c.prefix.len() < 2
                || c.prefix.len() > 5
                || !c.prefix.bytes().all(|b| b.is_ascii_uppercase())
            {
                return Err(err(
                    span,
                    field("prefix"),
                    "must be 2 to 5 capital letters".into(),
                ));
            }
            if c.zones.is_empty() {
                return Err(err(
                    span,
                    field("zones"),
                    "a category must cover at least one zone (or \"*\")".into(),
                ));
            }
            for (z, zone) in c.zones.iter().enumerate() {
                if zone != "*" && !zones.iter().any(|known| &known.id == zone) {
                    return Err(err(
                        span.clone(),
                        field(&format!("zones[{z}]")),
                        format!("unknown zone {zone:?}"),
                    ));
                }
            }
            let windows = c
                .windows
                .iter()
                .enumerate()
                .map(|(w, text)| {
                    Window::parse(text)
                        .map_err(|m| err(span.clone(), field(&format!("windows[{w}]")), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if c.max_vehicles == 0 {
                return Err(err(
                    span,
                    field("max_vehicles"),
                    "must be at least 1".into(),
                ));
            }
            if c.validity_days == 0 {
                return Err(err(
                    span,
                    field("validity_days"),
                    "must be at least 1".into(),
                ));
            }
            if c.temporary_plate_hours > 0 && !c.person_bound {
                return Err(err(
                    span,
                    field("temporary_plate_hours"),
                    "only person-bound categories (CUDE) take temporary plates".into(),
                ));
            }
            if c.term_days == 0 || c.service_days == 0 {
                return Err(err(
                    span,
                    field("term_days"),
                    "terms must be at least 1 day".into(),
                ));
            }
            categories.push(Category {
                id: c.id.clone(),
                name: c.name.clone(),
                prefix: c.prefix.clone(),
                zones: c.zones.clone(),
                windows,
                max_vehicles: c.max_vehicles,
                validity_days: c.validity_days,
                person_bound: c.person_bound,
                temporary_plate_hours: c.temporary_plate_hours,
                documents: c.documents.clone(),
                term_days: c.term_days,
                service_days: c.service_days,
            });
        }
        Ok(Policy {
            timezone,
            zones,
            categories,
            gate_zone,
        })
    }

    /// The zone a gate belongs to.
    pub fn zone_of_gate(&self, gate: &str) -> Option<&Zone> {
        self.gate_zone.get(gate).map(|&i| &self.zones[i])
    }

    /// A category by id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// Local weekday (Monday = 0) and minute of an instant in the policy's time zone.
    pub fn local<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> (usize, u16) {
        let local = at.with_timezone(&self.timezone);
        (
            local.weekday().num_days_from_monday() as usize,
            (local.hour() * 60 + local.minute()) as u16,
        )
    }
}

/// Whether any window of a list contains the local time; an empty list means always.
pub fn any_window(windows: &[Window], weekday: usize, minute: u16) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains_local(weekday, minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_contract() {
        let w = Window::parse("mon-fri 07:30-20:00").unwrap();
        assert!(w.contains_local(0, 7 * 60 + 30), "start inclusive");
        assert!(!w.contains_local(0, 20 * 60), "end exclusive");
        assert!(!w.contains_local(5, 12 * 60));
        let night = Window::parse("fri,sat 23:00-03:00").unwrap();
        assert!(night.contains_local(4, 23 * 60 + 30), "friday night");
        assert!(night.contains_local(5, 2 * 60 + 59), "into saturday");
        assert!(night.contains_local(6, 60), "saturday night into sunday");
        assert!(!night.contains_local(4, 2 * 60), "thursday night is not in");
        assert!(!night.contains_local(0, 60), "sunday night is not in");
        let wrap = Window::parse("sat-mon 10:00-12:00").unwrap();
        assert!(
            wrap.contains_local(6, 11 * 60)
                && wrap.contains_local(0, 11 * 60)
                && !wrap.contains_local(1, 11 * 60)
        );
        let whole_day = Window::parse("sun 00:00-24:00").unwrap();
        assert!(
            whole_day.contains_local(6, 0)
                && whole_day.contains_local(6, 1439)
                && !whole_day.contains_local(0, 0)
        );
        for bad in [
            "mon",
            "mon 7:30-20:00",
            "lun 07:30-20:00",
            "mon 07:30",
            "mon 25:00-26:00",
            "mon 07:60-08:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_permit_carries_between_one_plate_and_its_category_s_maximum() {
        let policy = Policy::parse(EXAMPLE_POLICY).unwrap();
        let category = policy.categories.first().unwrap();
        let max = category.max_vehicles as usize;
        assert!(!category.admits_plates(0), "no plate");
        assert!(category.admits_plates(1));
        assert!(category.admits_plates(max));
        assert!(!category.admits_plates(max + 1), "one over {max}");
    }

    #[test]
    fn the_built_in_policy_loads() {
        let p = Policy::parse(EXAMPLE_POLICY).unwrap();
        assert!(p.category("cude").unwrap().person_bound);
    }

    #[test]
    fn the_fixture_policy_loads() {
        let Ok(text) = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/ztl/policy.toml"
        )) else {
            return;
        };
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.zone_of_gate("N01").unwrap().id, "N");
        assert!(p.category("cude").unwrap().covers("N"));
        assert!(!p.category("residenti").unwrap().covers("B"));
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let text = "timezone = \"Europe/Rome\"\n[[zone]]\nid = \"A\"\nname = \"x\"\ngates = [\"V1\"]\n\n[[category]]\nid = \"r\"\nname = \"R\"\nprefix = \"RES\"\nzones = [\"Z\"]\nmax_vehicles = 1\nvalidity_days = 1\nterm_days = 1\nservice_days = 1\n";
        let e = Policy::parse(text).unwrap_err();
        assert_eq!(e.field, "category[0].zones[0]");
        assert_eq!(e.line, Some(7));
        assert!(e.to_string().contains("unknown zone"), "{e}");
        let e = Policy::parse(
            "timezone = \"Mars/Base\"\n[[zone]]\nid=\"A\"\nname=\"a\"\ngates=[\"G\"]\n",
        )
        .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("timezone", Some(1)));
        let e = Policy::parse("timezone = \"Europe/Rome\"\n[[zone]]\nid=\"A\"\nname=\"a\"\ngates=[\"G\"]\ncolour = 1\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        let e = Policy::parse("timezone = \"Europe/Rome\"\n[[zone]]\nid=\"A\"\nname=\"a\"\ngates=[\"G\"]\n[[zone]]\nid=\"B\"\nname=\"b\"\ngates=[\"G\"]\n").unwrap_err();
        assert!(e.message.contains("already belongs"), "{e}");
    }
}
