//! The office's measurements (issue #6): throughput over a period — lead times, time to
//! first answer, opened against closed per week, backlog, terms met — and the SLA report
//! with the lists of late and orphan cases.
//!
//! Both reports read a year of cases in a handful of queries whatever the number of cases
//! (no query per case): the rows come aggregated or packed into one text per query (the
//! drivers' cost is per row), the percentiles are computed here from the fetched values
//! (SQLite and PostgreSQL have no common percentile function), and the indexes of
//! migration 0014 let SQLite answer from indexes alone.
//!
//! Definitions, all in calendar days and Europe/Rome dates:
//! - a case is *closed in the period* when its `closed_at` falls in it; a case is *open at*
//!   an instant when it was received before it and not closed before it. A reopened case
//!   counts as open from its reception (the case row keeps only its last closing);
//! - *lead time*: `closed_at − received_at`; *net* lead time: that minus the days the legal
//!   clock was suspended (`paused_days`), never below zero;
//! - *first answer*: see [`ANSWER_ACTIONS`];
//! - *within the legal term*: closed on or before its due date (`due_on`, which already
//!   includes the suspensions); *within the service standard*: closed on or before
//!   received date + the office's `service_days` + the suspended days;
//! - overdue and orphan cases follow [`sportello_domain::sla`], exactly as the case list
//!   shows them.
//!
//! Percentiles interpolate linearly between the closest ranks (PostgreSQL's
//! `percentile_cont`), so the median of an even number of values is the mean of the two in
//! the middle.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::case::{Channel, Status};
use sportello_domain::sla::{self, ClockState, OrphanFacts, Pause};
use sportello_domain::workflow::PauseKind;
use utoipa::ToSchema;

use crate::time::rome_rfc3339;
use crate::{Backend, Result, Store, StoreError, date_text, from_ms, get_opt_str, to_ms};

/// The journal actions that count as the office's *first answer* to a citizen.
///
/// The first answer is the earliest journal entry, at or after the case's reception,
/// recorded by a person (any actor but `system`, so intake, timers and the citizen's own
/// replies do not count) that the citizen sees: an `action` entry whose action is one of
/// these — asking for missing documents, the art. 10-bis notice, the decision, the permit,
/// the outcome of a contested fine — or a document registered outgoing in the protocol
/// register (a `document_added` entry carrying a protocol number). Assigning, starting the
/// review or editing fields are internal and do not count. Measured on the cases closed in
/// the period, like the lead time; a case closed without any answer (withdrawn) is left
/// out of the first-answer figures (`answered` says how many had one).
pub const ANSWER_ACTIONS: &[&str] = &[
    "request_integration",
    "notify_rejection",
    "approve",
    "reject",
    "issue",
    "confirm",
    "annul",
];

/// The answer predicate on SQLite, word for word the predicate of the partial index
/// `case_events_answers` (migration 0014), so that the index applies and covers the query.
const ANSWER_PREDICATE_SQLITE: &str = "e.actor <> 'system' AND ((e.kind = 'action' AND json_extract(e.detail, '$.action') IN \
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul')) \
    OR (e.kind = 'document_added' AND json_extract(e.detail, '$.protocol') IS NOT NULL))";

/// The same on PostgreSQL (its index predicate in migration 0014).
const ANSWER_PREDICATE_POSTGRES: &str = "e.actor <> 'system' AND ((e.kind = 'action' AND (e.detail::json ->> 'action') IN \
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul')) \
    OR (e.kind = 'document_added' AND (e.detail::json ->> 'protocol') IS NOT NULL))";

/// The longest period a report covers (five years), so that one request cannot ask the
/// database for decades of weekly figures.
pub const MAX_PERIOD_DAYS: i64 = 5 * 366;

const DAY_MS: f64 = 86_400_000.0;

/// How the throughput figures are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By case type (`ztl_permit`, `cude`…).
    CaseType,
    /// By the channel the request came through.
    Channel,
    /// By month (`YYYY-MM`): closings by the month they happened in, receptions by the
    /// month received, open cases at the month's end.
    Month,
}

impl GroupBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::CaseType => "case_type",
            GroupBy::Channel => "channel",
            GroupBy::Month => "month",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "case_type" => Some(GroupBy::CaseType),
            "channel" => Some(GroupBy::Channel),
            "month" => Some(GroupBy::Month),
            _ => None,
        }
    }
}

/// A report's period: Europe/Rome dates, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    from: NaiveDate,
    to: NaiveDate,
}

impl Period {
    /// A period from `from` to `to` (both included); refused when it runs backwards or is
    /// longer than [`MAX_PERIOD_DAYS`].
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period> {
        if to < from {
            return Err(StoreError::invalid("to", "must not be before 'from'"));
        }
        if (to - from).num_days() >= MAX_PERIOD_DAYS {
            return Err(StoreError::invalid(
                "to",
                format!("the period may span at most {MAX_PERIOD_DAYS} days"),
            ));
        }
        Ok(Period { from, to })
    }

    /// The `days` days ending with `today` (the reports' default is the last 365).
    pub fn ending(today: NaiveDate, days: i64) -> Period {
        Period {
            from: today - Duration::days(days.clamp(1, MAX_PERIOD_DAYS) - 1),
            to: today,
        }
    }

    /// The first day.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The last day.
    pub fn to(&self) -> NaiveDate {
        self.to
    }

    fn start(&self) -> DateTime<Utc> {
        rome_start_of_day(self.from)
    }

    fn end(&self) -> DateTime<Utc> {
        rome_start_of_day(self.to + Duration::days(1))
    }
}

/// Median and 90th percentile of lead times, gross and net of suspensions, in days
/// (`null` when no case was closed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeadTimes {
    /// Median of `closed_at − received_at`.
    pub median: Option<f64>,
    /// 90th percentile of the same.
    pub p90: Option<f64>,
    /// Median net of the days the clock was suspended.
    pub median_net: Option<f64>,
    /// 90th percentile net of suspensions.
    pub p90_net: Option<f64>,
}

/// Time from reception to the office's first answer, in days (see [`ANSWER_ACTIONS`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FirstAnswer {
    /// Median.
    pub median: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// How many of the closed cases had an answer (the others are left out).
    pub answered: i64,
}

/// The throughput figures of one group (or of all cases, as `totals`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupFigures {
    /// The group: a case type, a channel, a month `YYYY-MM`, or `total`.
    pub group: String,
    /// Cases received in the period.
    pub opened: i64,
    /// Cases closed in the period.
    pub closed: i64,
    /// Cases open at the end of the period (for months: at the month's end).
    pub open: i64,
    /// Lead times of the cases closed in the period.
    pub lead_time_days: LeadTimes,
    /// Time to first answer of the cases closed in the period.
    pub first_answer_days: FirstAnswer,
    /// Closed cases closed on or before their legal due date.
    pub within_legal_term: i64,
    /// `within_legal_term / closed` (`null` without closed cases).
    pub within_legal_term_share: Option<f64>,
    /// Closed cases closed within the office's service standard.
    pub within_service: i64,
    /// `within_service / closed`.
    pub within_service_share: Option<f64>,
}

/// Opened against closed in one ISO week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WeekFigures {
    /// ISO week, `2026-W48`.
    pub week: String,
    /// Its Monday.
    pub starts_on: String,
    /// Cases received that week (within the period).
    pub opened: i64,
    /// Cases closed that week (within the period).
    pub closed: i64,
    /// Work in progress: cases open at the week's end (or at the backlog's `as_of`).
    pub open_at_end: i64,
}

/// Open cases of an age range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgeBucket {
    /// `0-7`, `8-15`, `16-30`, `31-60`, `>60`.
    pub bucket: String,
    /// Youngest age in the bucket, in days since reception.
    pub min_days: i64,
    /// Oldest age (`null`: no limit).
    pub max_days: Option<i64>,
    /// Open cases of that age.
    pub open: i64,
}

/// The work in progress at the end of the period, by age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Backlog {
    /// The instant measured: the end of the period, or now when that is later.
    pub as_of: String,
    /// Cases open then.
    pub open: i64,
    /// By age since reception.
    pub age: Vec<AgeBucket>,
}

/// Orphan cases now, by reason (a case may have both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrphanCounts {
    /// Orphan cases.
    pub total: i64,
    /// Unassigned for more than two working days.
    pub unassigned: i64,
    /// Without journal entries for ten days while the clock runs.
    pub idle: i64,
}

/// One assignee's open cases now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperatorLoad {
    /// Login (`null`: not assigned).
    pub assignee: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Open cases.
    pub open: i64,
    /// Of which late.
    pub overdue: i64,
    /// Of which orphan.
    pub orphan: i64,
}

/// The figures that only exist for the present (the journal does not keep yesterday's
/// assignments cheaply): orphans and each operator's load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CurrentFigures {
    /// Now.
    pub as_of: String,
    /// Open cases now.
    pub open: i64,
    /// Late cases now.
    pub overdue: i64,
    /// Orphan cases now.
    pub orphans: OrphanCounts,
    /// Open cases by assignee, busiest first.
    pub operators: Vec<OperatorLoad>,
}

/// `GET /api/v1/reports/throughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ThroughputReport {
    /// First day of the period.
    pub from: String,
    /// Last day of the period.
    pub to: String,
    /// The grouping of `items`.
    pub group_by: GroupBy,
    /// One entry per group.
    pub items: Vec<GroupFigures>,
    /// All cases together.
    pub totals: GroupFigures,
    /// Opened, closed and work in progress per ISO week of the period.
    pub weekly: Vec<WeekFigures>,
    /// Work in progress at the end of the period, by age.
    pub backlog: Backlog,
    /// Orphans and operators' load now.
    pub current: CurrentFigures,
}

/// An open case past its legal due date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverdueCase {
    /// Reference.
    pub reference: String,
    /// Subject.
    pub subject: String,
    /// Case type.
    pub case_type: String,
    /// Legal due date.
    pub due_at: String,
    /// Days past it.
    pub days_late: i64,
    /// Assignee login.
    pub assignee: Option<String>,
}

/// An open case nobody is looking after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrphanCase {
    /// Reference.
    pub reference: String,
    /// Subject.
    pub subject: String,
    /// Case type.
    pub case_type: String,
    /// Received (RFC 3339).
    pub received_at: String,
    /// Assignee login.
    pub assignee: Option<String>,
    /// `unassigned`, `idle` or `unassigned_idle`.
    pub reason: String,
    /// Days since the last journal entry.
    pub idle_days: i64,
}

/// `GET /api/v1/reports/sla`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlaReport {
    /// First day of the period.
    pub from: String,
    /// Last day of the period.
    pub to: String,
    /// Cases closed in the period.
    pub closed: i64,
    /// Of which on or before their legal due date.
    pub on_time: i64,
    /// `on_time / closed` (`null` without closed cases).
    pub on_time_share: Option<f64>,
    /// Of which within the office's service standard.
    pub within_service: i64,
    /// `within_service / closed`.
    pub within_service_share: Option<f64>,
    /// When the lists were taken (now: they are the office's work to do).
    pub as_of: String,
    /// Open cases past their due date, latest first.
    pub overdue: Vec<OverdueCase>,
    /// Orphan cases, oldest first.
    pub orphans: Vec<OrphanCase>,
}

/// A case closed in the period, as packed by the database.
#[derive(Debug, Clone, PartialEq)]
struct ClosedCase {
    case_type: u16,
    channel: u16,
    received_at: i64,
    received_on: NaiveDate,
    closed_at: i64,
    paused_days: i64,
    due_on: NaiveDate,
    service_days: i64,
    first_answer_at: Option<i64>,
}

/// Cases per day received (or open), case type and channel.
#[derive(Debug, Clone, PartialEq)]
struct DayCount {
    day: NaiveDate,
    case_type: u16,
    channel: u16,
    count: i64,
}

/// Case types and channels read from packed rows, stored once (a handful of each: a
/// linear search beats hashing).
#[derive(Debug, Default)]
struct Names {
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> Result<u16> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(i as u16);
        }
        let id = u16::try_from(self.names.len())
            .map_err(|_| StoreError::Corrupt("too many distinct case types".into()))?;
        self.names.push(name.to_owned());
        Ok(id)
    }

    fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("", String::as_str)
    }
}

/// An open case as the JSON aggregate of [`Store::open_cases_now`] lists it:
/// `[reference, subject, case_type, status, received_at, received_on, term_days,
/// paused_days, pause_kind, pause_started_on, last_event_at, assignee_id, login, name]`.
#[derive(Debug, Clone, Deserialize)]
struct OpenCase {
    reference: String,
    subject: String,
    case_type: String,
    status: String,
    received_at: i64,
    received_on: String,
    term_days: i64,
    paused_days: i64,
    pause_kind: Option<String>,
    pause_started_on: Option<String>,
    last_event_at: i64,
    assignee_id: Option<i64>,
    login: Option<String>,
    name: Option<String>,
}

/// An open case with today's clock applied.
#[derive(Debug, Clone)]
struct OpenCaseNow {
    case: OpenCase,
    due_at: NaiveDate,
    days_left: i64,
    overdue: bool,
    unassigned_too_long: bool,
    idle: bool,
    orphan: bool,
}

/// Rome dates of instants by binary search over precomputed midnights: a time-zone lookup
/// per case would cost more than the rest of the report.
struct RomeDays {
    first: NaiveDate,
    starts: Vec<i64>,
}

impl RomeDays {
    fn new(first: NaiveDate, last: NaiveDate) -> RomeDays {
        let days = (last - first).num_days().max(0) + 2;
        let starts = (0..days)
            .map(|i| to_ms(rome_start_of_day(first + Duration::days(i))))
            .collect();
        RomeDays { first, starts }
    }

    fn date(&self, ms: i64) -> NaiveDate {
        let (Some(&lo), Some(&hi)) = (self.starts.first(), self.starts.last()) else {
            return self.first;
        };
        if ms < lo || ms >= hi {
            return from_ms(ms).map(rome_date).unwrap_or(self.first);
        }
        let i = self.starts.partition_point(|&s| s <= ms) - 1;
        self.first + Duration::days(i as i64)
    }
}

/// A `YYYY-MM-DD` date, without the cost of a format parser.
fn fast_date(s: &str) -> Result<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0_u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
        .then(|| {
            NaiveDate::from_ymd_opt(
                i32::try_from(digits(0..4)?).ok()?,
                digits(5..7)?,
                digits(8..10)?,
            )
        })
        .flatten()
        .ok_or_else(|| StoreError::Corrupt(format!("date {s:?}")))
}

fn int(s: &str) -> Result<i64> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("number {s:?}")))
}

/// Linear interpolation between closest ranks of sorted values (`percentile_cont`).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (sorted[lo], sorted[hi.min(last)]);
    Some(a + (b - a) * (rank - lo as f64))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

fn median_p90(values: &mut [f64]) -> (Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    (
        percentile(values, 0.5).map(round2),
        percentile(values, 0.9).map(round2),
    )
}

/// What is summed per group while the cases are walked.
#[derive(Debug, Default)]
struct Accumulator {
    opened: i64,
    closed: i64,
    open: i64,
    gross: Vec<f64>,
    net: Vec<f64>,
    first_answer: Vec<f64>,
    within_legal_term: i64,
    within_service: i64,
}

impl Accumulator {
    fn add_closed(&mut self, c: &ClosedCase, closed_on: NaiveDate) {
        self.closed += 1;
        let gross = ((c.closed_at - c.received_at) as f64 / DAY_MS).max(0.0);
        self.gross.push(gross);
        self.net.push((gross - c.paused_days as f64).max(0.0));
        if let Some(at) = c.first_answer_at {
            self.first_answer
                .push(((at - c.received_at) as f64 / DAY_MS).max(0.0));
        }
        if closed_on <= c.due_on {
            self.within_legal_term += 1;
        }
        if closed_on <= c.received_on + Duration::days(c.service_days + c.paused_days) {
            self.within_service += 1;
        }
    }

    fn finish(mut self, group: String) -> GroupFigures {
        let (median, p90) = median_p90(&mut self.gross);
        let (median_net, p90_net) = median_p90(&mut self.net);
        let (fa_median, fa_p90) = median_p90(&mut self.first_answer);
        GroupFigures {
            group,
            opened: self.opened,
            closed: self.closed,
            open: self.open,
            lead_time_days: LeadTimes {
                median,
                p90,
                median_net,
                p90_net,
            },
            first_answer_days: FirstAnswer {
                median: fa_median,
                p90: fa_p90,
                answered: self.first_answer.len() as i64,
            },
            within_legal_term: self.within_legal_term,
            within_legal_term_share: share(self.within_legal_term, self.closed),
            within_service: self.within_service,
            within_service_share: share(self.within_service, self.closed),
        }
    }
}

/// The groups of a report by name, in the order met; sorted by name at the end.
#[derive(Debug, Default)]
struct Groups {
    slots: Vec<(String, Accumulator)>,
    index: HashMap<String, usize>,
}

impl Groups {
    fn slot(&mut self, key: &str) -> usize {
        if let Some(&slot) = self.index.get(key) {
            return slot;
        }
        self.slots.push((key.to_owned(), Accumulator::default()));
        self.index.insert(key.to_owned(), self.slots.len() - 1);
        self.slots.len() - 1
    }

    fn get(&mut self, slot: usize) -> &mut Accumulator {
        &mut self.slots[slot].1
    }

    fn finish(mut self) -> Vec<GroupFigures> {
        self.slots.sort_by(|a, b| a.0.cmp(&b.0));
        self.slots
            .into_iter()
            .map(|(group, acc)| acc.finish(group))
            .collect()
    }
}

fn month_key(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn first_of_next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

/// Backlog age buckets: label, youngest, oldest.
const AGE_BUCKETS: &[(&str, i64, Option<i64>)] = &[
    ("0-7", 0, Some(7)),
    ("8-15", 8, Some(15)),
    ("16-30", 16, Some(30)),
    ("31-60", 31, Some(60)),
    (">60", 61, None),
];

/// Open cases at any instant of the period from the open count at its `as_of` and the
/// receptions and closings in between: open(E) = open(as_of) − received in [E, as_of) +
/// closed in [E, as_of). Cheaper than asking the database once per week or month.
struct OpenAt<'a> {
    as_of_ms: i64,
    open_at_as_of: i64,
    /// Receptions per day, sorted by day.
    received: Vec<(NaiveDate, i64)>,
    /// Closing instants, sorted.
    closed_at: &'a [i64],
}

impl OpenAt<'_> {
    /// Open cases at the start of `day` (or at `as_of`, when earlier).
    fn at_start_of(&self, day: NaiveDate) -> i64 {
        let e = to_ms(rome_start_of_day(day));
        if e >= self.as_of_ms {
            return self.open_at_as_of;
        }
        let received_since: i64 = self
            .received
            .iter()
            .skip(self.received.partition_point(|(d, _)| *d < day))
            .map(|(_, n)| n)
            .sum();
        let closed_since =
            (self.closed_at.len() - self.closed_at.partition_point(|&c| c < e)) as i64;
        self.open_at_as_of - received_since + closed_since
    }
}

impl Store {
    /// The throughput report of a period, grouped as asked (see the module's definitions).
    pub async fn throughput_report(
        &self,
        period: Period,
        group_by: GroupBy,
    ) -> Result<ThroughputReport> {
        let now = self.clock.now();
        let start = period.start();
        let as_of = period.end().min(now).max(start);
        let (as_of_ms, start_ms) = (to_ms(as_of), to_ms(start));
        let mut names = Names::default();
        let (closed_packed, answers_packed, received_packed, open_packed, open_now) = tokio::try_join!(
            self.closed_cases_packed(start_ms, as_of_ms),
            self.first_answers_packed(start_ms, as_of_ms),
            self.received_per_day_packed(period.from, period.to),
            self.open_at_packed(as_of_ms),
            self.open_cases_now(),
        )?;
        let closed = parse_closed(&closed_packed, Some(&answers_packed), &mut names)?;
        let received = parse_day_counts(received_packed.as_deref(), &mut names)?;
        let open_at = parse_day_counts(open_packed.as_deref(), &mut names)?;
        let days = RomeDays::new(
            period.from - Duration::days(7),
            period.to + Duration::days(7),
        );
        let closed_on: Vec<NaiveDate> = closed.iter().map(|c| days.date(c.closed_at)).collect();

        let key = |case_type: u16, channel: u16, names: &Names| -> String {
            match group_by {
                GroupBy::CaseType => names.name(case_type).to_owned(),
                GroupBy::Channel => names.name(channel).to_owned(),
                GroupBy::Month => String::new(),
            }
        };
        let mut groups = Groups::default();
        match group_by {
            GroupBy::CaseType => {
                for t in &self.settings.case_types {
                    groups.slot(&t.id);
                }
            }
            GroupBy::Channel => {
                for c in Channel::ALL {
                    groups.slot(c.as_str());
                }
            }
            GroupBy::Month => {
                let mut month = period.from.with_day(1).unwrap_or(period.from);
                while month <= period.to {
                    groups.slot(&month_key(month));
                    month = first_of_next_month(month);
                }
            }
        }
        let mut totals = Accumulator::default();
        // The group of each closed case, looked up once per case type, channel or month.
        let mut slots: HashMap<(i32, u32), usize> = HashMap::new();
        for (c, &on) in closed.iter().zip(&closed_on) {
            let cache_key = match group_by {
                GroupBy::CaseType => (i32::from(c.case_type), 0),
                GroupBy::Channel => (i32::from(c.channel), 0),
                GroupBy::Month => (on.year(), on.month()),
            };
            let slot = match slots.get(&cache_key) {
                Some(&slot) => slot,
                None => {
                    let k = match group_by {
                        GroupBy::Month => month_key(on),
                        _ => key(c.case_type, c.channel, &names),
                    };
                    let slot = groups.slot(&k);
                    slots.insert(cache_key, slot);
                    slot
                }
            };
            groups.get(slot).add_closed(c, on);
            totals.add_closed(c, on);
        }
        for r in &received {
            let k = match group_by {
                GroupBy::Month => month_key(r.day),
                _ => key(r.case_type, r.channel, &names),
            };
            let slot = groups.slot(&k);
            groups.get(slot).opened += r.count;
            totals.opened += r.count;
        }
        let open_total: i64 = open_at.iter().map(|o| o.count).sum();
        totals.open = open_total;
        let mut closed_at: Vec<i64> = closed.iter().map(|c| c.closed_at).collect();
        closed_at.sort_unstable();
        let mut received_days: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for r in &received {
            *received_days.entry(r.day).or_default() += r.count;
        }
        let history = OpenAt {
            as_of_ms,
            open_at_as_of: open_total,
            received: received_days.into_iter().collect(),
            closed_at: &closed_at,
        };
        match group_by {
            GroupBy::Month => {
                for (month, acc) in &mut groups.slots {
                    if let Ok(first) = fast_date(&format!("{month}-01")) {
                        acc.open = history.at_start_of(first_of_next_month(first));
                    }
                }
            }
            _ => {
                for o in &open_at {
                    let slot = groups.slot(&key(o.case_type, o.channel, &names));
                    groups.get(slot).open += o.count;
                }
            }
        }

        // Weeks: every ISO week that meets the period.
        let mut weekly = Vec::new();
        let mut monday =
            period.from - Duration::days(i64::from(period.from.weekday().num_days_from_monday()));
        let mut week_opened: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for (day, n) in &history.received {
            *week_opened.entry(week_start(*day)).or_default() += n;
        }
        let mut week_closed: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for on in &closed_on {
            *week_closed.entry(week_start(*on)).or_default() += 1;
        }
        while monday <= period.to {
            let iso = monday.iso_week();
            let next = monday + Duration::days(7);
            weekly.push(WeekFigures {
                week: format!("{}-W{:02}", iso.year(), iso.week()),
                starts_on: date_text(monday),
                opened: week_opened.get(&monday).copied().unwrap_or(0),
                closed: week_closed.get(&monday).copied().unwrap_or(0),
                open_at_end: history.at_start_of(next),
            });
            monday = next;
        }

        // The backlog's age at the end of the period.
        let as_of_day = days.date(as_of_ms - 1).min(period.to);
        let mut age: Vec<AgeBucket> = AGE_BUCKETS
            .iter()
            .map(|(label, min, max)| AgeBucket {
                bucket: (*label).to_owned(),
                min_days: *min,
                max_days: *max,
                open: 0,
            })
            .collect();
        for o in &open_at {
            let days_old = (as_of_day - o.day).num_days().max(0);
            if let Some(bucket) = age.iter_mut().rev().find(|b| days_old >= b.min_days) {
                bucket.open += o.count;
            }
        }

        let current = self.current_figures(now, &open_now);
        Ok(ThroughputReport {
            from: date_text(period.from),
            to: date_text(period.to),
            group_by,
            items: groups.finish(),
            totals: totals.finish("total".into()),
            weekly,
            backlog: Backlog {
                as_of: rome_rfc3339(as_of),
                open: open_total,
                age,
            },
            current,
        })
    }

    /// The SLA report: terms met by the cases closed in the period, and the lists of the
    /// cases late or orphan now.
    pub async fn sla_report(&self, period: Period) -> Result<SlaReport> {
        let now = self.clock.now();
        let start = period.start();
        let as_of = period.end().min(now).max(start);
        let (closed_packed, open_now) = tokio::try_join!(
            self.closed_cases_packed(to_ms(start), to_ms(as_of)),
            self.open_cases_now(),
        )?;
        let mut names = Names::default();
        let closed = parse_closed(&closed_packed, None, &mut names)?;
        let days = RomeDays::new(period.from, period.to);
        let mut totals = Accumulator::default();
        for c in &closed {
            totals.add_closed(c, days.date(c.closed_at));
        }
        let cases = self.with_clock(now, open_now);
        let mut overdue: Vec<OverdueCase> = cases
            .iter()
            .filter(|c| c.overdue)
            .map(|c| OverdueCase {
                reference: c.case.reference.clone(),
                subject: c.case.subject.clone(),
                case_type: c.case.case_type.clone(),
                due_at: date_text(c.due_at),
                days_late: -c.days_left,
                assignee: c.case.login.clone(),
            })
            .collect();
        overdue.sort_by(|a, b| {
            b.days_late
                .cmp(&a.days_late)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        let mut orphan_cases: Vec<&OpenCaseNow> = cases.iter().filter(|c| c.orphan).collect();
        orphan_cases.sort_by(|a, b| {
            (a.case.received_at, &a.case.reference).cmp(&(b.case.received_at, &b.case.reference))
        });
        let orphans = orphan_cases
            .into_iter()
            .map(|c| OrphanCase {
                reference: c.case.reference.clone(),
                subject: c.case.subject.clone(),
                case_type: c.case.case_type.clone(),
                received_at: from_ms(c.case.received_at)
                    .map(rome_rfc3339)
                    .unwrap_or_default(),
                assignee: c.case.login.clone(),
                reason: match (c.unassigned_too_long, c.idle) {
                    (true, true) => "unassigned_idle",
                    (true, false) => "unassigned",
                    _ => "idle",
                }
                .into(),
                idle_days: (to_ms(now) - c.case.last_event_at).max(0) / 86_400_000,
            })
            .collect();
        Ok(SlaReport {
            from: date_text(period.from),
            to: date_text(period.to),
            closed: totals.closed,
            on_time: totals.within_legal_term,
            on_time_share: share(totals.within_legal_term, totals.closed),
            within_service: totals.within_service,
            within_service_share: share(totals.within_service, totals.closed),
            as_of: rome_rfc3339(now),
            overdue,
            orphans,
        })
    }

    /// Applies the legal clock and the orphan rule of `now` to the open cases, as the case
    /// list does ([`sla::compute_from_totals`], [`sla::is_orphan`]).
    fn with_clock(&self, now: DateTime<Utc>, cases: Vec<OpenCase>) -> Vec<OpenCaseNow> {
        let today = rome_date(now);
        let cal = &self.settings.calendar;
        let idle_since = to_ms(now - Duration::days(sla::IDLE_DAYS));
        cases
            .into_iter()
            .filter_map(|case| {
                let status: Status = case.status.parse().ok()?;
                let received_on = fast_date(&case.received_on).ok()?;
                let received_at = from_ms(case.received_at).ok()?;
                let last_event_at = from_ms(case.last_event_at).ok()?;
                let open_pause = match (&case.pause_kind, &case.pause_started_on) {
                    (Some(kind), Some(started)) => Some(Pause {
                        kind: PauseKind::parse(kind)?,
                        started_on: fast_date(started).ok()?,
                        ended_on: None,
                    }),
                    _ => None,
                };
                let view = sla::compute_from_totals(
                    cal,
                    received_on,
                    u32::try_from(case.term_days).unwrap_or(30),
                    case.paused_days,
                    open_pause.as_ref(),
                    status,
                    today,
                );
                let assigned = case.assignee_id.is_some();
                let orphan = sla::is_orphan(
                    cal,
                    &OrphanFacts {
                        status,
                        assigned,
                        received_at,
                        last_event_at,
                        clock: view.state,
                    },
                    now,
                );
                let unassigned_too_long = !assigned
                    && cal.working_days_between(received_on, today) > sla::UNASSIGNED_WORKING_DAYS;
                let idle = view.state == ClockState::Running && case.last_event_at <= idle_since;
                Some(OpenCaseNow {
                    due_at: view.due_at,
                    days_left: view.days_left,
                    overdue: view.state == ClockState::Running && view.days_left < 0,
                    unassigned_too_long: orphan && unassigned_too_long,
                    idle: orphan && idle,
                    orphan,
                    case,
                })
            })
            .collect()
    }

    fn current_figures(&self, now: DateTime<Utc>, open_now: &[OpenCase]) -> CurrentFigures {
        let cases = self.with_clock(now, open_now.to_vec());
        let mut orphans = OrphanCounts::default();
        let mut operators: BTreeMap<Option<String>, OperatorLoad> = BTreeMap::new();
        let mut overdue = 0;
        for c in &cases {
            let load = operators
                .entry(c.case.login.clone())
                .or_insert_with(|| OperatorLoad {
                    assignee: c.case.login.clone(),
                    name: c.case.name.clone(),
                    open: 0,
                    overdue: 0,
                    orphan: 0,
                });
            load.open += 1;
            if c.overdue {
                load.overdue += 1;
                overdue += 1;
            }
            if c.orphan {
                load.orphan += 1;
                orphans.total += 1;
                orphans.unassigned += i64::from(c.unassigned_too_long);
                orphans.idle += i64::from(c.idle);
            }
        }
        let mut operators: Vec<OperatorLoad> = operators.into_values().collect();
        operators.sort_by(|a, b| {
            b.open
                .cmp(&a.open)
                .then_with(|| a.assignee.cmp(&b.assignee))
        });
        CurrentFigures {
            as_of: rome_rfc3339(now),
            open: cases.len() as i64,
            overdue,
            orphans,
            operators,
        }
    }

    /// The cases closed in `[start_ms, end_ms)` packed into one text ([`Store::packed_rows`]),
    /// per case `id, case_type, channel, received_at, received_on, closed_at, paused_days,
    /// due_on, service_days`.
    async fn closed_cases_packed(&self, start_ms: i64, end_ms: i64) -> Result<String> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.closed_cases_sql()))
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one(&self.read)
            .await?;
        Ok(get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into()))
    }

    /// The first answer ([`ANSWER_ACTIONS`]) of the cases closed in `[start_ms, end_ms)`,
    /// packed as `case_id, at` per case. One pass over the partial index
    /// `case_events_answers`, between the lowest and the highest id of those cases (a few
    /// other cases in that range come too and are ignored): several times cheaper than a
    /// lookup per case.
    async fn first_answers_packed(&self, start_ms: i64, end_ms: i64) -> Result<String> {
        let row = sqlx::query(sqlx::AssertSqlSafe(self.first_answers_sql()))
            .bind(start_ms)
            .bind(end_ms)
            .fetch_one(&self.read)
            .await?;
        Ok(get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into()))
    }

    fn closed_cases_sql(&self) -> String {
        let columns = [
            "c.id",
            "c.case_type",
            "c.channel",
            "c.received_at",
            "c.received_on",
            "c.closed_at",
            "c.paused_days",
            "c.due_on",
            "c.service_days",
        ];
        format!(
            "SELECT {} AS packed FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2",
            self.packed_rows(&columns)
        )
    }

    fn first_answers_sql(&self) -> String {
        let predicate = match self.backend {
            Backend::Sqlite => ANSWER_PREDICATE_SQLITE,
            Backend::Postgres => ANSWER_PREDICATE_POSTGRES,
        };
        format!(
            "SELECT {} AS packed FROM (SELECT e.case_id, MIN(e.at) AS first_at FROM case_events e \
             WHERE e.case_id >= (SELECT MIN(c.id) FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2) \
             AND e.case_id <= (SELECT MAX(c.id) FROM cases c WHERE c.closed_at >= $1 AND c.closed_at < $2) \
             AND {predicate} GROUP BY e.case_id) f",
            self.packed_rows(&["f.case_id", "f.first_at"])
        )
    }

    /// The aggregate that packs rows of plain `columns` (numbers, identifiers, dates; no
    /// NULL) into one text, in whichever form the engine builds fastest, both read by
    /// [`Scalars`]: a JSON array of arrays on SQLite (`json_array` is several times
    /// cheaper there than chains of `||`), `v,v;v,v` on PostgreSQL (where `json_agg` of
    /// `json_build_array` costs twice `string_agg`).
    fn packed_rows(&self, columns: &[&str]) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_group_array(json_array({}))", columns.join(", ")),
            Backend::Postgres => format!("string_agg({}, ';')", columns.join(" || ',' || ")),
        }
    }

    /// The aggregate that turns rows of `columns` into one JSON array of arrays.
    fn json_rows(&self, columns: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_group_array(json_array({columns}))"),
            Backend::Postgres => {
                format!("COALESCE(json_agg(json_build_array({columns})), '[]'::json)::text")
            }
        }
    }

    /// Cases received per day, case type and channel from `from` to `to` (Rome dates),
    /// packed as `day,case_type,channel,count;…`.
    async fn received_per_day_packed(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Option<String>> {
        let sql = format!(
            "SELECT {} AS packed FROM (SELECT c.received_on AS d, c.case_type AS t, c.channel AS ch, COUNT(*) AS n \
             FROM cases c WHERE c.received_on >= $1 AND c.received_on <= $2 \
             GROUP BY c.received_on, c.case_type, c.channel) g",
            self.pack_day_counts()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(date_text(from))
            .bind(date_text(to))
            .fetch_one(&self.read)
            .await?;
        get_opt_str(&row, "packed")
    }

    /// Cases open at `at_ms` (received before, not closed before) per day received, case
    /// type and channel, packed as [`Store::received_per_day_packed`]. Two index ranges
    /// (never closed, closed later) rather than an `OR` the planners may scan the table for.
    async fn open_at_packed(&self, at_ms: i64) -> Result<Option<String>> {
        let sql = format!(
            "SELECT {} AS packed FROM (SELECT o.received_on AS d, o.case_type AS t, o.channel AS ch, COUNT(*) AS n FROM (\
             SELECT c.received_on, c.case_type, c.channel FROM cases c WHERE c.closed_at IS NULL AND c.received_at < $1 \
             UNION ALL \
             SELECT c.received_on, c.case_type, c.channel FROM cases c WHERE c.closed_at >= $1 AND c.received_at < $1\
             ) o GROUP BY o.received_on, o.case_type, o.channel) g",
            self.pack_day_counts()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .fetch_one(&self.read)
            .await?;
        get_opt_str(&row, "packed")
    }

    fn pack_day_counts(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "group_concat(g.d || ',' || g.t || ',' || g.ch || ',' || g.n, ';')",
            Backend::Postgres => "string_agg(g.d || ',' || g.t || ',' || g.ch || ',' || g.n, ';')",
        }
    }

    /// Every open case now, with what the clock, the orphan rule and the lists need,
    /// aggregated to one JSON text by the database (subjects may hold any character).
    async fn open_cases_now(&self) -> Result<Vec<OpenCase>> {
        let columns = "c.reference, c.subject, c.case_type, c.status, c.received_at, c.received_on, c.term_days, \
            c.paused_days, c.pause_kind, c.pause_started_on, c.last_event_at, c.assignee_id, u.login, u.name";
        let sql = format!(
            "SELECT {} AS packed FROM cases c LEFT JOIN users u ON u.id = c.assignee_id \
             WHERE c.closed_at IS NULL AND c.status <> 'closed'",
            self.json_rows(columns)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.read)
            .await?;
        let packed = get_opt_str(&row, "packed")?.unwrap_or_else(|| "[]".into());
        serde_json::from_str(&packed)
            .map_err(|e| StoreError::Corrupt(format!("open cases for the reports: {e}")))
    }
}

fn week_start(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// The scalars of rows packed by [`Store::packed_rows`] — a JSON array of arrays of
/// numbers and plain strings, or `v,v;v,v` — in order, quotes removed. Their strings (case
/// types, channels, dates) never need escaping nor hold a separator. A general JSON parser
/// costs several times more on a hundred thousand cases; anything unexpected is refused.
struct Scalars<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scalars<'a> {
    fn new(text: &'a str) -> Scalars<'a> {
        Scalars { text, at: 0 }
    }

    fn next(&mut self) -> Result<Option<&'a str>> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if matches!(b, b'[' | b']' | b',' | b';' | b' ' | b'\n' | b'\r' | b'\t') {
                self.at += 1;
                continue;
            }
            let start = self.at;
            if b == b'"' {
                let len = bytes[start + 1..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\')
                    .ok_or_else(|| StoreError::Corrupt("unterminated text in a report".into()))?;
                if bytes[start + 1 + len] != b'"' {
                    return Err(StoreError::Corrupt("escaped text in a report".into()));
                }
                self.at = start + len + 2;
                return Ok(Some(&self.text[start + 1..start + 1 + len]));
            }
            let len = bytes[start..]
                .iter()
                .position(|&c| matches!(c, b']' | b',' | b';' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(bytes.len() - start);
            self.at = start + len;
            return Ok(Some(&self.text[start..start + len]));
        }
        Ok(None)
    }

    /// The next `N` scalars (one row); `None` at the end, an error for a short row.
    fn row<const N: usize>(&mut self) -> Result<Option<[&'a str; N]>> {
        let mut out = [""; N];
        for (i, slot) in out.iter_mut().enumerate() {
            match self.next()? {
                Some(v) => *slot = v,
                None if i == 0 => return Ok(None),
                None => return Err(StoreError::Corrupt("a short row in a report".into())),
            }
        }
        Ok(Some(out))
    }
}

fn parse_closed(json: &str, answers: Option<&str>, names: &mut Names) -> Result<Vec<ClosedCase>> {
    // By case id (the database groups them so, but that order is not promised).
    let mut first: Vec<(i64, i64)> = Vec::new();
    if let Some(text) = answers {
        let mut scalars = Scalars::new(text);
        first.reserve(text.len() / 24);
        while let Some([id, at]) = scalars.row::<2>()? {
            first.push((int(id)?, int(at)?));
        }
    }
    if !first.is_sorted() {
        first.sort_unstable();
    }
    let first_answer = |id: i64| {
        first
            .binary_search_by_key(&id, |(case, _)| *case)
            .ok()
            .map(|i| first[i].1)
    };
    let mut out = Vec::with_capacity(json.len() / 80);
    let mut scalars = Scalars::new(json);
    while let Some(
        [
            id,
            case_type,
            channel,
            received_at,
            received_on,
            closed_at,
            paused_days,
            due_on,
            service_days,
        ],
    ) = scalars.row::<9>()?
    {
        out.push(ClosedCase {
            case_type: names.id(case_type)?,
            channel: names.id(channel)?,
            received_at: int(received_at)?,
            received_on: fast_date(received_on)?,
            closed_at: int(closed_at)?,
            paused_days: int(paused_days)?,
            due_on: fast_date(due_on)?,
            service_days: int(service_days)?,
            first_answer_at: first_answer(int(id)?),
        });
    }
    Ok(out)
}

fn parse_day_counts(packed: Option<&str>, names: &mut Names) -> Result<Vec<DayCount>> {
    let Some(packed) = packed.filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    packed
        .split(';')
        .map(|record| {
            let f: Vec<&str> = record.split(',').collect();
            let [day, case_type, channel, count] = f[..] else {
                return Err(StoreError::Corrupt(format!("report record {record:?}")));
            };
            Ok(DayCount {
                day: fast_date(day)?,
                case_type: names.id(case_type)?,
                channel: names.id(channel)?,
                count: int(count)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::tests::request;
    use crate::documents::OutgoingDocument;
    use crate::testing::{fixture_now, with_test_store};
    use sportello_domain::roles::Role;
    use sportello_domain::workflow::Action;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[4.0], 0.9), Some(4.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(
            percentile(&[1.0, 2.0, 5.0, 12.0, 36.0], 0.9).map(round2),
            Some(26.4)
        );
        let mut v = vec![36.0, 1.0, 5.0];
        assert_eq!(median_p90(&mut v), (Some(5.0), Some(29.8)));
        assert_eq!(share(3, 4), Some(0.75));
        assert_eq!(share(1, 3), Some(0.3333));
        assert_eq!(share(0, 0), None);
    }

    #[test]
    fn packed_rows_are_read_in_both_dialects() {
        // SQLite writes `[[1,"a"],[2,"b"]]`, PostgreSQL `[[1, "a"], [2, "b"]]`.
        for text in [
            r#"[[1,"ztl_permit",-3],[2,"cude",4]]"#,
            r#"[[1, "ztl_permit", -3], [2, "cude", 4]]"#,
        ] {
            let mut s = Scalars::new(text);
            assert_eq!(s.row::<3>().unwrap(), Some(["1", "ztl_permit", "-3"]));
            assert_eq!(s.row::<3>().unwrap(), Some(["2", "cude", "4"]));
            assert_eq!(s.row::<3>().unwrap(), None);
        }
        assert_eq!(Scalars::new("[]").row::<2>().unwrap(), None);
        assert!(Scalars::new("[[1]]").row::<2>().is_err(), "short row");
        assert!(
            Scalars::new(r#"[["a\"b"]]"#).row::<1>().is_err(),
            "escapes are refused"
        );
        assert!(Scalars::new(r#"[["ab"#).row::<1>().is_err());
    }

    /// The answer list, the two predicates and the two partial indexes must say the same,
    /// or the reports would count other answers or stop using the indexes.
    #[test]
    fn answer_predicates_match_the_list_and_the_migrations() {
        let normal = |s: &str| {
            s.replace("e.", "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("( ", "(")
        };
        let list = ANSWER_ACTIONS
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(", ");
        for (predicate, migration) in [
            (
                ANSWER_PREDICATE_SQLITE,
                include_str!("../migrations/sqlite/0014_reports.sql"),
            ),
            (
                ANSWER_PREDICATE_POSTGRES,
                include_str!("../migrations/postgres/0014_reports.sql"),
            ),
        ] {
            assert!(predicate.contains(&format!("IN ({list})")), "{predicate}");
            assert!(
                normal(migration).contains(&normal(predicate)),
                "migration 0014 and reports.rs differ: {}",
                normal(predicate)
            );
        }
    }

    #[test]
    fn dates_and_periods() {
        assert_eq!(fast_date("2026-02-28").unwrap(), d(2026, 2, 28));
        for bad in ["2026-02-30", "2026-2-28", "20260228xx", "", "abcd-ef-gh"] {
            assert!(fast_date(bad).is_err(), "{bad}");
        }
        let days = RomeDays::new(d(2026, 3, 20), d(2026, 4, 2));
        // 29 March 2026: clocks go forward; 23:30 UTC on the 28th is already the 29th in Rome.
        for ms in [
            to_ms(Utc.with_ymd_and_hms(2026, 3, 28, 23, 30, 0).unwrap()),
            to_ms(Utc.with_ymd_and_hms(2026, 3, 29, 22, 30, 0).unwrap()),
            to_ms(Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()),
            to_ms(rome_start_of_day(d(2026, 3, 25))),
            to_ms(rome_start_of_day(d(2026, 3, 25))) - 1,
        ] {
            assert_eq!(days.date(ms), rome_date(from_ms(ms).unwrap()), "{ms}");
        }
        assert!(Period::new(d(2026, 2, 1), d(2026, 1, 31)).is_err());
        assert!(Period::new(d(2020, 1, 1), d(2026, 1, 31)).is_err());
        let p = Period::ending(d(2026, 11, 26), 365);
        assert_eq!((p.from(), p.to()), (d(2025, 11, 27), d(2026, 11, 26)));
        assert_eq!(GroupBy::parse("month"), Some(GroupBy::Month));
        assert_eq!(GroupBy::parse("week"), None);
        assert_eq!(first_of_next_month(d(2026, 12, 31)), d(2027, 1, 1));
    }

    use chrono::TimeZone;

    /// Seven cases over forty days (fixture start: Thursday 26 November 2026):
    /// - A ztl/counter: answered (approve) after 3 days, closed after 5;
    /// - B cude/web: integration asked after 2 days, received after 8 (6 days suspended),
    ///   closed after 12;
    /// - C ztl/email: withdrawn after 1 day, no answer;
    /// - D ztl/counter: never touched (late and orphan at the end);
    /// - E cude/web: received on day 35, assigned, open;
    /// - F ztl/phone: approved on day 35, closed on day 36 (past its due date, 28 December);
    /// - G seg/pec: a letter registered outgoing on day 1, withdrawn on day 2.
    async fn seed(store: &Store, clock: &sportello_domain::clock::FixedClock) {
        store
            .add_user("op1", "Olga Prima", Role::Operator)
            .await
            .unwrap();
        store
            .add_user("op2", "Otto Secondo", Role::Operator)
            .await
            .unwrap();
        let t0 = fixture_now();
        let at =
            |days: i64, hours: i64| clock.set(t0 + Duration::days(days) + Duration::hours(hours));
        let open = |case_type: &str, channel: Channel| {
            let mut r = request(case_type);
            r.channel = channel;
            r
        };
        let act = |r: String, action: Action, actor: &'static str| async move {
            store
                .apply_action(&r, &action, Some("nota"), actor)
                .await
                .unwrap();
        };
        let assign = |user: &str| Action::Assign { user: user.into() };
        at(0, 0);
        let mut refs = Vec::new();
        for (t, ch) in [
            ("ztl_permit", Channel::Counter),
            ("cude", Channel::Web),
            ("ztl_permit", Channel::Email),
            ("ztl_permit", Channel::Counter),
            ("ztl_permit", Channel::Phone),
            ("seg", Channel::Pec),
        ] {
            refs.push(
                store
                    .create_case(open(t, ch))
                    .await
                    .unwrap()
                    .summary
                    .reference,
            );
        }
        let [a, b, c, _d, f, g] = <[String; 6]>::try_from(refs).unwrap();
        at(0, 1);
        for r in [&a, &b, &f] {
            act(r.clone(), assign("op1"), "sup").await;
        }
        act(g.clone(), assign("op2"), "sup").await;
        at(1, 0);
        act(a.clone(), Action::StartReview, "op1").await;
        act(c.clone(), Action::Withdraw, "op2").await;
        let letter = OutgoingDocument {
            sha256: "ab".repeat(32),
            size: 10,
            filename: "lettera.pdf".into(),
            media_type: "application/pdf".into(),
            register: Some(("Mario Rossi".into(), "Comunicazione".into())),
        };
        store
            .apply_action_with(&g, &Action::StartReview, None, "op2", &[letter])
            .await
            .unwrap();
        at(2, 0);
        act(
            b.clone(),
            Action::RequestIntegration {
                missing: vec!["libretto".into()],
            },
            "op1",
        )
        .await;
        act(g.clone(), Action::Withdraw, "op2").await;
        at(3, 0);
        act(a.clone(), Action::Approve, "op1").await;
        at(4, 0);
        act(a.clone(), Action::Issue, "op1").await;
        at(5, 0);
        act(a.clone(), Action::Close, "op1").await;
        at(8, 0);
        act(b.clone(), Action::IntegrationReceived, "op1").await;
        at(10, 0);
        act(b.clone(), Action::Approve, "op1").await;
        act(b.clone(), Action::Issue, "op1").await;
        at(12, 0);
        act(b.clone(), Action::Close, "op1").await;
        at(20, 0);
        act(f.clone(), Action::StartReview, "op1").await;
        at(35, 0);
        let e = store
            .create_case(open("cude", Channel::Web))
            .await
            .unwrap()
            .summary
            .reference;
        act(e, assign("op2"), "sup").await;
        act(f.clone(), Action::Approve, "op1").await;
        act(f.clone(), Action::Issue, "op1").await;
        at(36, 0);
        act(f, Action::Close, "op1").await;
        at(40, 0);
    }

    fn period() -> Period {
        Period::new(d(2026, 11, 1), d(2027, 1, 5)).unwrap()
    }

    #[tokio::test]
    async fn throughput_by_case_type() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store
                .throughput_report(period(), GroupBy::CaseType)
                .await
                .unwrap();
            let t = &r.totals;
            assert_eq!((t.opened, t.closed, t.open), (7, 5, 2));
            // Gross 1, 2, 5, 12, 36 days; net 1, 2, 5, 6, 36; first answers 1, 2, 3, 35.
            assert_eq!(
                t.lead_time_days,
                LeadTimes {
                    median: Some(5.0),
                    p90: Some(26.4),
                    median_net: Some(5.0),
                    p90_net: Some(24.0)
                }
            );
            assert_eq!(
                t.first_answer_days,
                FirstAnswer {
                    median: Some(2.5),
                    p90: Some(25.4),
                    answered: 4
                }
            );
            assert_eq!(
                (t.within_legal_term, t.within_legal_term_share),
                (4, Some(0.8))
            );
            assert_eq!((t.within_service, t.within_service_share), (4, Some(0.8)));
            let groups: Vec<(&str, i64, i64, i64)> = r
                .items
                .iter()
                .map(|g| (g.group.as_str(), g.opened, g.closed, g.open))
                .collect();
            assert_eq!(
                groups,
                [("cude", 2, 1, 1), ("seg", 1, 1, 0), ("ztl_permit", 4, 3, 1)]
            );
            let ztl = &r.items[2];
            assert_eq!(ztl.lead_time_days.median, Some(5.0));
            assert_eq!(
                ztl.first_answer_days.answered, 2,
                "C was withdrawn unanswered"
            );
            let cude = &r.items[0];
            assert_eq!(
                (cude.lead_time_days.median, cude.lead_time_days.median_net),
                (Some(12.0), Some(6.0))
            );

            // Week 48 (from Monday 23 November): six received, C and G closed.
            let w48 = r.weekly.iter().find(|w| w.week == "2026-W48").unwrap();
            assert_eq!(
                (
                    w48.starts_on.as_str(),
                    w48.opened,
                    w48.closed,
                    w48.open_at_end
                ),
                ("2026-11-23", 6, 2, 4)
            );
            assert_eq!(r.weekly.first().unwrap().week, "2026-W44");
            assert_eq!(r.weekly.last().unwrap().week, "2027-W01");
            assert_eq!(r.weekly.iter().map(|w| w.opened).sum::<i64>(), 7);
            assert_eq!(r.weekly.iter().map(|w| w.closed).sum::<i64>(), 5);
            assert_eq!(r.weekly.last().unwrap().open_at_end, 2);
            let wip: Vec<i64> = r.weekly.iter().map(|w| w.open_at_end).collect();
            // Week 53 of 2026 takes E in (31 December) and F out (1 January).
            assert_eq!(wip, [0, 0, 0, 0, 4, 3, 2, 2, 2, 2, 2]);

            assert_eq!(r.backlog.open, 2);
            let ages: Vec<(&str, i64)> = r
                .backlog
                .age
                .iter()
                .map(|b| (b.bucket.as_str(), b.open))
                .collect();
            assert_eq!(
                ages,
                [
                    ("0-7", 1),
                    ("8-15", 0),
                    ("16-30", 0),
                    ("31-60", 1),
                    (">60", 0)
                ]
            );

            let now = &r.current;
            assert_eq!((now.open, now.overdue), (2, 1));
            assert_eq!(
                now.orphans,
                OrphanCounts {
                    total: 1,
                    unassigned: 1,
                    idle: 1
                }
            );
            let load: Vec<(Option<&str>, i64, i64, i64)> = now
                .operators
                .iter()
                .map(|o| (o.assignee.as_deref(), o.open, o.overdue, o.orphan))
                .collect();
            assert_eq!(load, [(None, 1, 1, 1), (Some("op2"), 1, 0, 0)]);
            assert_eq!(now.operators[1].name.as_deref(), Some("Otto Secondo"));
        })
        .await;
    }

    #[tokio::test]
    async fn throughput_by_month_and_channel() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store
                .throughput_report(period(), GroupBy::Month)
                .await
                .unwrap();
            let months: Vec<(&str, i64, i64, i64)> = r
                .items
                .iter()
                .map(|g| (g.group.as_str(), g.opened, g.closed, g.open))
                .collect();
            // Open at each month's end: November 6 − 2, December 7 − 4, January now.
            assert_eq!(
                months,
                [
                    ("2026-11", 6, 2, 4),
                    ("2026-12", 1, 2, 3),
                    ("2027-01", 0, 1, 2)
                ]
            );
            assert_eq!(r.items[1].lead_time_days.median, Some(8.5), "A and B");

            let r = store
                .throughput_report(period(), GroupBy::Channel)
                .await
                .unwrap();
            assert_eq!(r.items.len(), Channel::ALL.len());
            let counter = r.items.iter().find(|g| g.group == "counter").unwrap();
            assert_eq!((counter.opened, counter.closed, counter.open), (2, 1, 1));
            let sms = r.items.iter().find(|g| g.group == "sms").unwrap();
            assert_eq!(
                (sms.opened, sms.closed, sms.lead_time_days.median),
                (0, 0, None)
            );

            // A period that ends before the work did: figures as of its last day.
            let early = Period::new(d(2026, 11, 1), d(2026, 11, 30)).unwrap();
            let r = store
                .throughput_report(early, GroupBy::CaseType)
                .await
                .unwrap();
            assert_eq!((r.totals.opened, r.totals.closed, r.totals.open), (6, 2, 4));
            assert_eq!(r.backlog.as_of, "2026-12-01T00:00:00+01:00");
            assert_eq!(r.backlog.age[0].open, 4, "four days old on 30 November");
            assert_eq!(r.current.open, 2, "the present is the present");
            let empty = Period::new(d(2025, 1, 1), d(2025, 1, 31)).unwrap();
            let r = store
                .throughput_report(empty, GroupBy::CaseType)
                .await
                .unwrap();
            assert_eq!((r.totals.opened, r.totals.closed, r.totals.open), (0, 0, 0));
            assert_eq!(r.totals.lead_time_days, LeadTimes::default());
        })
        .await;
    }

    #[tokio::test]
    async fn sla_shares_and_lists() {
        with_test_store(|store, clock| async move {
            seed(&store, &clock).await;
            let r = store.sla_report(period()).await.unwrap();
            assert_eq!((r.closed, r.on_time, r.on_time_share), (5, 4, Some(0.8)));
            assert_eq!((r.within_service, r.within_service_share), (4, Some(0.8)));
            assert_eq!(r.overdue.len(), 1);
            let late = &r.overdue[0];
            assert_eq!(
                (
                    late.case_type.as_str(),
                    late.due_at.as_str(),
                    late.days_late,
                    late.assignee.as_deref()
                ),
                ("ztl_permit", "2026-12-28", 8, None)
            );
            assert_eq!(r.orphans.len(), 1);
            let orphan = &r.orphans[0];
            assert_eq!(orphan.reference, late.reference);
            assert_eq!(
                (orphan.reason.as_str(), orphan.idle_days),
                ("unassigned_idle", 40)
            );
            assert_eq!(orphan.received_at, "2026-11-26T10:30:00+01:00");
            assert_eq!(r.as_of, "2027-01-05T10:30:00+01:00");
            // The lists agree with the case list's filters.
            let listed = |overdue, orphan| crate::cases::CaseFilter {
                overdue,
                orphan,
                page: 1,
                per_page: 50,
                ..Default::default()
            };
            assert_eq!(store.list_cases(&listed(true, false)).await.unwrap().1, 1);
            assert_eq!(store.list_cases(&listed(false, true)).await.unwrap().1, 1);
        })
        .await;
    }

    /// The first-answer lookup must come from the partial index alone on SQLite; if the
    /// predicate here and in migration 0014 drift apart, this fails (the report would
    /// still be right, but read the journal row by row).
    #[tokio::test]
    async fn sqlite_reads_the_reports_from_indexes() {
        with_test_store(|store, _clock| async move {
            if store.backend() != Backend::Sqlite {
                return;
            }
            let mut plans = Vec::new();
            for sql in [store.closed_cases_sql(), store.first_answers_sql()] {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
                    .bind(0_i64)
                    .bind(1_i64)
                    .fetch_all(&store.read)
                    .await
                    .unwrap();
                for r in rows {
                    plans.push(crate::get_str(&r, "detail").unwrap());
                }
            }
            let plan = plans.join("\n");
            assert!(plan.contains("COVERING INDEX cases_closed"), "{plan}");
            assert!(
                !plan.contains("SCAN c\n") && !plan.contains("SCAN e\n"),
                "{plan}"
            );
            assert!(
                plan.contains("COVERING INDEX case_events_answers"),
                "{plan}"
            );
        })
        .await;
    }
}
