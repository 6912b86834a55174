//! What the reports say: the period and grouping asked for, the figures returned, and the
//! rows the queries hand to the arithmetic.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::rome_start_of_day;
use utoipa::ToSchema;

use crate::{Result, StoreError};

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

/// The longest period a report covers (five years), so that one request cannot ask the
/// database for decades of weekly figures.
pub const MAX_PERIOD_DAYS: i64 = 5 * 366;

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
    pub(super) from: NaiveDate,
    pub(super) to: NaiveDate,
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

    pub(super) fn start(&self) -> DateTime<Utc> {
        rome_start_of_day(self.from)
    }

    pub(super) fn end(&self) -> DateTime<Utc> {
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
pub(super) struct ClosedCase {
    pub(super) case_type: u16,
    pub(super) channel: u16,
    pub(super) received_at: i64,
    pub(super) received_on: NaiveDate,
    pub(super) closed_at: i64,
    pub(super) paused_days: i64,
    pub(super) due_on: NaiveDate,
    pub(super) service_days: i64,
    pub(super) first_answer_at: Option<i64>,
}

/// Cases per day received (or open), case type and channel.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DayCount {
    pub(super) day: NaiveDate,
    pub(super) case_type: u16,
    pub(super) channel: u16,
    pub(super) count: i64,
}

/// Case types and channels read from packed rows, stored once (a handful of each: a
/// linear search beats hashing).
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) names: Vec<String>,
}

impl Names {
    pub(super) fn id(&mut self, name: &str) -> Result<u16> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(i as u16);
        }
        let id = u16::try_from(self.names.len())
            .map_err(|_| StoreError::Corrupt("too many distinct case types".into()))?;
        self.names.push(name.to_owned());
        Ok(id)
    }

    pub(super) fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("", String::as_str)
    }
}

/// An open case as the JSON aggregate of [`Store::open_cases_now`] lists it:
/// `[reference, subject, case_type, status, received_at, received_on, term_days,
/// paused_days, pause_kind, pause_started_on, last_event_at, assignee_id, login, name]`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct OpenCase {
    pub(super) reference: String,
    pub(super) subject: String,
    pub(super) case_type: String,
    pub(super) status: String,
    pub(super) received_at: i64,
    pub(super) received_on: String,
    pub(super) term_days: i64,
    pub(super) paused_days: i64,
    pub(super) pause_kind: Option<String>,
    pub(super) pause_started_on: Option<String>,
    pub(super) last_event_at: i64,
    pub(super) assignee_id: Option<i64>,
    pub(super) login: Option<String>,
    pub(super) name: Option<String>,
}

/// An open case with today's clock applied.
#[derive(Debug, Clone)]
pub(super) struct OpenCaseNow {
    pub(super) case: OpenCase,
    pub(super) due_at: NaiveDate,
    pub(super) days_left: i64,
    pub(super) overdue: bool,
    pub(super) unassigned_too_long: bool,
    pub(super) idle: bool,
    pub(super) orphan: bool,
}
