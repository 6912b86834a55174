//! What a case looks like: the case to open, the views the API shows, the filter of the
//! lists, and the row the queries read before today's clock is applied.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::case::{Channel, Status};
use sportello_domain::sla::Pause;
use sportello_domain::workflow::PauseKind;
use sqlx::Any;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::citizens::{CitizenInput, CitizenView};
use crate::documents::DocumentView;
use crate::{Result, StoreError, from_ms, get_i64, get_opt_i64, get_opt_str, get_str, parse_date};

/// A case to open.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// Case type id (must exist).
    pub case_type: String,
    /// Subject (oggetto).
    pub subject: String,
    /// Longer description.
    pub description: String,
    /// Where it came from.
    pub channel: Channel,
    /// Who asked.
    pub citizen: CitizenInput,
    /// Type-specific fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Flags to set from the start (e.g. set by intake).
    pub flags: Vec<String>,
    /// Who registers it (user login or `system`).
    pub actor: String,
    /// SHA-256 of the registered document; default: of the request itself.
    pub document_sha256: Option<String>,
    /// The protocol number of a document already registered (a message split off into a
    /// case of its own keeps its entry); `None` registers the request now.
    pub registered_as: Option<String>,
    /// Terms of its own instead of the case type's (the permit category asked for).
    pub terms: Option<CaseTerms>,
}

/// The legal term and the office's service standard of one case, in calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseTerms {
    /// Legal term of the procedure.
    pub term_days: u32,
    /// The office's own service standard.
    pub service_days: u32,
}

/// The legal clock as shown on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlaJson {
    /// `running`, `paused` or `stopped`.
    pub state: String,
    /// `due_at` − today in calendar days (negative when late).
    pub days_left: i64,
    /// Legal term in days.
    pub term_days: u32,
    /// Days of suspension counted.
    pub paused_days: i64,
    /// The office's own target date (service standard).
    pub service_due_at: String,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// When (RFC 3339, Europe/Rome offset).
    pub at: String,
    /// Who (login or `system`).
    pub actor: String,
    /// What kind of event (`created`, `action`, `assigned`, `document_added`, `pause_lapsed`…).
    pub kind: String,
    /// Details of the change.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A whole case, as `GET /api/v1/cases/{ref}` returns it: the list fields plus the
/// description, the citizen, the fields, the documents and the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseView {
    /// Reference, status, clock and the other list fields.
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// Description.
    pub description: String,
    /// The citizen.
    pub citizen: CitizenView,
    /// Type-specific fields.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// Attached documents.
    pub documents: Vec<DocumentView>,
    /// The journal, oldest first.
    pub timeline: Vec<EventView>,
    /// When Sportello took the case in (RFC 3339, Europe/Rome): later than `received_at`
    /// when the request was delivered before it was read (a PEC, a mailbox polled later).
    pub ingested_at: String,
}

/// A case in a list: the case without documents and journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseSummary {
    /// Reference.
    pub reference: String,
    /// Case type id.
    pub case_type: String,
    /// Status.
    pub status: String,
    /// Subject.
    pub subject: String,
    /// Channel.
    pub channel: String,
    /// Citizen's name.
    pub citizen_name: Option<String>,
    /// Assignee login.
    pub assignee: Option<String>,
    /// Priority.
    pub priority: String,
    /// Protocol number.
    pub protocol: Option<String>,
    /// Received (RFC 3339).
    pub received_at: String,
    /// Legal due date.
    pub due_at: String,
    /// The legal clock.
    pub sla: SlaJson,
    /// Late.
    pub overdue: bool,
    /// Orphan.
    pub orphan: bool,
    /// Flags.
    pub flags: Vec<String>,
}

/// Filters of `GET /api/v1/cases`.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this case type.
    pub case_type: Option<String>,
    /// Only this channel.
    pub channel: Option<Channel>,
    /// Only cases of this login; `none` for unassigned ones.
    pub assignee: Option<String>,
    /// Only late cases.
    pub overdue: bool,
    /// Only orphan cases.
    pub orphan: bool,
    /// Only open cases (not closed).
    pub open: bool,
    /// Only cases whose clock runs and whose legal term ends within this many days (late
    /// ones excluded).
    pub due_within_days: Option<i64>,
    /// Only cases carrying this flag (e.g. `unsorted_scan`, `ocr_failed`).
    pub flag: Option<String>,
    /// Only cases of the citizen with this fiscal code (exactly).
    pub citizen_fiscal_code: Option<String>,
    /// Only these cases (none: no such condition).
    pub references: Vec<String>,
    /// Free text in reference, subject, citizen name or fiscal code.
    pub q: Option<String>,
    /// Only cases received on or after this day (Europe/Rome).
    pub received_from: Option<NaiveDate>,
    /// Only cases received on or before this day (Europe/Rome).
    pub received_to: Option<NaiveDate>,
    /// Only cases whose legal term ends on or after this day.
    pub due_from: Option<NaiveDate>,
    /// Only cases whose legal term ends on or before this day.
    pub due_to: Option<NaiveDate>,
    /// The order of the list (default: newest first).
    pub sort: CaseSort,
    /// Page, from 1.
    pub page: u32,
    /// Page size; 0 counts without listing.
    pub per_page: u32,
}

/// What a list of cases is ordered by; each order has an index that reads it in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// When it was received (the default).
    #[default]
    Received,
    /// Its reference.
    Reference,
    /// Its subject.
    Subject,
    /// Its case type (then newest first within one).
    CaseType,
    /// Its status (then by type and reception).
    Status,
    /// Its legal due date.
    Due,
}

impl SortKey {
    /// Every key, with the name the list's links use.
    pub const ALL: [(SortKey, &'static str); 6] = [
        (SortKey::Reference, "reference"),
        (SortKey::Subject, "subject"),
        (SortKey::CaseType, "case_type"),
        (SortKey::Status, "status"),
        (SortKey::Received, "received"),
        (SortKey::Due, "due"),
    ];

    /// The key of a link's name (`due`), if known.
    pub fn parse(name: &str) -> Option<SortKey> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }

    /// The name the list's links use.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("received", |(_, n)| n)
    }
}

/// The order of a list: a key and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSort {
    /// What the list is ordered by.
    pub key: SortKey,
    /// Largest (newest, latest) first.
    pub descending: bool,
}

impl Default for CaseSort {
    /// Newest first, as the office always read its list.
    fn default() -> Self {
        CaseSort {
            key: SortKey::Received,
            descending: true,
        }
    }
}

pub(super) const CASE_COLUMNS: &str = "c.id, c.reference, c.case_type, c.status, c.subject, c.description, c.channel, \
    c.priority, c.protocol, c.received_at, c.received_on, c.term_days, c.service_days, c.paused_days, \
    c.pause_kind, c.pause_started_on, c.flags, c.fields, c.last_event_at, c.assignee_id, \
    COALESCE(c.ingested_at, c.received_at) AS ingested_at, \
    ci.fiscal_code, ci.name AS citizen_name, ci.email, ci.pec, ci.phone, ci.fax, u.login AS assignee_login";

pub(super) const CASE_FROM: &str = "cases c LEFT JOIN citizens ci ON ci.id = c.citizen_id LEFT JOIN users u ON u.id = c.assignee_id";

/// A case as stored, before the clock of today is applied to it.
pub(super) struct CaseRecord {
    pub(super) reference: String,
    pub(super) case_type: String,
    pub(super) status: Status,
    pub(super) subject: String,
    pub(super) description: String,
    pub(super) channel: String,
    pub(super) priority: String,
    pub(super) protocol: Option<String>,
    pub(super) received_at: DateTime<Utc>,
    pub(super) received_on: NaiveDate,
    pub(super) ingested_at: DateTime<Utc>,
    pub(super) term_days: u32,
    pub(super) service_days: i64,
    pub(super) paused_days: i64,
    pub(super) open_pause: Option<Pause>,
    pub(super) flags: Vec<String>,
    pub(super) fields: serde_json::Value,
    pub(super) last_event_at: DateTime<Utc>,
    pub(super) assignee: Option<String>,
    pub(super) assigned: bool,
    pub(super) citizen: CitizenView,
}

impl CaseRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<CaseRecord> {
        let status_text = get_str(row, "status")?;
        let open_pause = match (
            get_opt_str(row, "pause_kind")?,
            get_opt_str(row, "pause_started_on")?,
        ) {
            (Some(kind), Some(started)) => Some(Pause {
                kind: PauseKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("pause kind {kind:?}")))?,
                started_on: parse_date(&started)?,
                ended_on: None,
            }),
            _ => None,
        };
        Ok(CaseRecord {
            reference: get_str(row, "reference")?,
            case_type: get_str(row, "case_type")?,
            status: status_text
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("status {status_text:?}")))?,
            subject: get_str(row, "subject")?,
            description: get_str(row, "description")?,
            channel: get_str(row, "channel")?,
            priority: get_str(row, "priority")?,
            protocol: get_opt_str(row, "protocol")?,
            received_at: from_ms(get_i64(row, "received_at")?)?,
            received_on: parse_date(&get_str(row, "received_on")?)?,
            ingested_at: from_ms(get_i64(row, "ingested_at")?)?,
            term_days: u32::try_from(get_i64(row, "term_days")?).unwrap_or(30),
            service_days: get_i64(row, "service_days")?,
            paused_days: get_i64(row, "paused_days")?,
            open_pause,
            flags: serde_json::from_str(&get_str(row, "flags")?).unwrap_or_default(),
            fields: serde_json::from_str(&get_str(row, "fields")?)
                .unwrap_or(serde_json::Value::Null),
            last_event_at: from_ms(get_i64(row, "last_event_at")?)?,
            assignee: get_opt_str(row, "assignee_login")?,
            assigned: get_opt_i64(row, "assignee_id")?.is_some(),
            citizen: CitizenView {
                fiscal_code: get_opt_str(row, "fiscal_code")?,
                name: get_opt_str(row, "citizen_name")?,
                email: get_opt_str(row, "email")?,
                pec: get_opt_str(row, "pec")?,
                phone: get_opt_str(row, "phone")?,
                fax: get_opt_str(row, "fax")?,
            },
        })
    }
}

/// A case just inserted, before its transaction commits.
pub(crate) struct CreatedCase {
    pub(super) record: CaseRecord,
    pub(super) event: EventView,
    pub(crate) case_id: i64,
}

impl CreatedCase {
    /// The new case's reference.
    pub(crate) fn reference(&self) -> &str {
        &self.record.reference
    }

    /// Its protocol number.
    pub(crate) fn protocol(&self) -> Option<&str> {
        self.record.protocol.as_deref()
    }
}

/// Journal entries and documents as aggregated to JSON by [`Store::get_case`]'s one query:
/// `[id, at, actor, kind, detail]` and `[id, sha256, filename, media_type, size, uploaded_at, uploaded_by]`.
pub(super) type EventTuple = (i64, i64, String, String, String);
pub(super) type DocumentTuple = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    Option<String>,
);

/// A value bound to a dynamically built query.
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    pub(super) fn bind_to<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        match self {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::Int(i) => q.bind(*i),
        }
    }
}

pub(super) fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(super) fn clean_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
