//! Cases: creation with a gap-free reference and a protocol number, workflow actions with
//! the legal clock, the journal, lists with filters, and the SLA tick.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sportello_domain::calendar::{ROME, rome_date};
use sportello_domain::case::{CaseType, Channel, Reference, Status, flags};
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::register::Direction;
use sportello_domain::sla::{self, ClockState, OrphanFacts, Pause};
use sportello_domain::workflow::{self, Action, CaseFacts, ClockChange, PauseKind};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

use crate::documents::DocumentView;
use crate::register::{Registration, register_many_in};
use crate::{
    Result, Store, StoreError, date_text, from_ms, get_i64, get_opt_i64, get_opt_str, get_str,
    parse_date, to_ms,
};

/// The citizen as given with a new case; the fiscal code is already validated.
#[derive(Debug, Clone, Default)]
pub struct CitizenInput {
    /// Codice fiscale.
    pub fiscal_code: Option<FiscalCode>,
    /// Full name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC address.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Fax number.
    pub fax: Option<String>,
}

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

/// The citizen as shown on a case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CitizenView {
    /// Codice fiscale.
    pub fiscal_code: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// PEC.
    pub pec: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Fax.
    pub fax: Option<String>,
}

impl CitizenView {
    /// From a row with the citizen's columns (`fiscal_code`, `name`, `email`, `pec`,
    /// `phone`, `fax`; each may be NULL).
    pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<CitizenView> {
        Ok(CitizenView {
            fiscal_code: get_opt_str(row, "fiscal_code")?,
            name: get_opt_str(row, "name")?,
            email: get_opt_str(row, "email")?,
            pec: get_opt_str(row, "pec")?,
            phone: get_opt_str(row, "phone")?,
            fax: get_opt_str(row, "fax")?,
        })
    }
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
    /// Page, from 1.
    pub page: u32,
    /// Page size; 0 counts without listing.
    pub per_page: u32,
}

/// Formats an instant as RFC 3339 with the Europe/Rome offset.
pub fn rome_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&ROME)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

const CASE_COLUMNS: &str = "c.id, c.reference, c.case_type, c.status, c.subject, c.description, c.channel, \
    c.priority, c.protocol, c.received_at, c.received_on, c.term_days, c.service_days, c.paused_days, \
    c.pause_kind, c.pause_started_on, c.flags, c.fields, c.last_event_at, c.assignee_id, \
    COALESCE(c.ingested_at, c.received_at) AS ingested_at, \
    ci.fiscal_code, ci.name AS citizen_name, ci.email, ci.pec, ci.phone, ci.fax, u.login AS assignee_login";

const CASE_FROM: &str = "cases c LEFT JOIN citizens ci ON ci.id = c.citizen_id LEFT JOIN users u ON u.id = c.assignee_id";

/// A case as stored, before the clock of today is applied to it.
struct CaseRecord {
    reference: String,
    case_type: String,
    status: Status,
    subject: String,
    description: String,
    channel: String,
    priority: String,
    protocol: Option<String>,
    received_at: DateTime<Utc>,
    received_on: NaiveDate,
    ingested_at: DateTime<Utc>,
    term_days: u32,
    service_days: i64,
    paused_days: i64,
    open_pause: Option<Pause>,
    flags: Vec<String>,
    fields: serde_json::Value,
    last_event_at: DateTime<Utc>,
    assignee: Option<String>,
    assigned: bool,
    citizen: CitizenView,
}

impl CaseRecord {
    fn from_row(row: &AnyRow) -> Result<CaseRecord> {
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
    record: CaseRecord,
    event: EventView,
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
type EventTuple = (i64, i64, String, String, String);
type DocumentTuple = (
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

impl Store {
    fn case_type_or_invalid(&self, id: &str) -> Result<&CaseType> {
        self.case_type(id).ok_or_else(|| {
            let known: Vec<&str> = self
                .settings
                .case_types
                .iter()
                .map(|t| t.id.as_str())
                .collect();
            StoreError::invalid(
                "case_type",
                format!("unknown case type '{id}' (known: {})", known.join(", ")),
            )
        })
    }

    /// Checks what can be checked before a transaction, so that a bad request never
    /// spoils a batch of good ones.
    fn check_new_case(&self, new: &NewCase) -> Result<()> {
        self.case_type_or_invalid(&new.case_type)?;
        if new.subject.trim().is_empty() {
            return Err(StoreError::invalid("subject", "must not be empty"));
        }
        Ok(())
    }

    /// Opens a case: reference, citizen, protocol registration and journal in one
    /// transaction. With [`Store::with_write_batching`] concurrent creations share
    /// transactions (group commit); the guarantees are the same.
    pub async fn create_case(&self, new: NewCase) -> Result<CaseView> {
        self.check_new_case(&new)?;
        if let Some(batcher) = &self.batcher {
            return batcher.create(new).await;
        }
        self.create_one(new).await
    }

    /// Creates every case in one transaction, all or none, with as few statements as the
    /// batch allows: one counter update per prefix, one register update for all, one
    /// multi-row insert each for cases and journals (citizens are upserted one by one).
    pub(crate) async fn create_cases_in_one_transaction(
        &self,
        batch: Vec<NewCase>,
    ) -> Result<Vec<CaseView>> {
        let mut tx = self.write.begin().await?;
        let created = self.insert_cases(&mut tx, batch, None).await?;
        tx.commit().await?;
        Ok(created
            .into_iter()
            .map(|c| self.full_view(c.record, vec![c.event], Vec::new()))
            .collect())
    }

    /// The statements of [`Store::create_cases_in_one_transaction`], inside the caller's
    /// transaction (intake opens a case and records the message that opened it together).
    ///
    /// `delivered_at` is when the request reached the office, for every case of the batch
    /// (a message's delivery, see [`crate::intake::Inbound::received_at`]); `None` is now.
    /// The case is received then — its `received_at`, its legal term (CONTRACT §7.2) and
    /// the reports run from it — while its reference, its protocol entry and its journal
    /// say when it was registered (now), and `ingested_at` keeps that instant too. A
    /// delivery after the clock is taken as now.
    pub(crate) async fn insert_cases(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: Vec<NewCase>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<CreatedCase>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let ingested_at = crate::from_ms(to_ms(now))?;
        let received_at = crate::from_ms(to_ms(delivered_at.map_or(now, |d| d.min(now))))?;
        let received_on = rome_date(received_at);
        let registered_year = rome_date(now).year();
        // The case type's terms, unless the request names terms of its own (a permit
        // category's legal term and service standard).
        let types: Vec<CaseType> = batch
            .iter()
            .map(|n| {
                let mut case_type = self.case_type_or_invalid(&n.case_type)?.clone();
                if let Some(terms) = n.terms {
                    case_type.term_days = terms.term_days;
                    case_type.service_days = terms.service_days;
                }
                Ok(case_type)
            })
            .collect::<Result<_>>()?;
        let tx = &mut *tx;

        // References: the counter rows are written first (taking the lock), one per prefix.
        let mut references: Vec<String> = vec![String::new(); batch.len()];
        let mut prefixes: Vec<&str> = types.iter().map(|t| t.prefix.as_str()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        for prefix in prefixes {
            let slots: Vec<usize> = (0..batch.len())
                .filter(|&i| types[i].prefix == prefix)
                .collect();
            let last = advance_sequence(tx, prefix, registered_year, slots.len()).await?;
            let first = last + 1 - slots.len() as u64;
            for (k, i) in slots.into_iter().enumerate() {
                references[i] = Reference {
                    prefix: prefix.to_owned(),
                    year: registered_year,
                    seq: first + k as u64,
                }
                .to_string();
            }
        }

        let mut citizens = Vec::with_capacity(batch.len());
        for new in &batch {
            citizens.push(upsert_citizen(tx, &new.citizen, now).await?);
        }

        let correspondents: Vec<String> =
            batch.iter().map(|n| correspondent_of(&n.citizen)).collect();
        let digests: Vec<String> = batch
            .iter()
            .map(|n| {
                n.document_sha256
                    .clone()
                    .unwrap_or_else(|| request_digest(n))
            })
            .collect();
        let to_register: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].registered_as.is_none())
            .collect();
        let registrations: Vec<Registration<'_>> = to_register
            .iter()
            .map(|&i| Registration {
                direction: Direction::In,
                correspondent: &correspondents[i],
                subject: batch[i].subject.trim(),
                document_sha256: &digests[i],
                case_reference: Some(&references[i]),
            })
            .collect();
        let mut numbers = register_many_in(tx, now, &registrations).await?.into_iter();
        let protocols: Vec<String> = batch
            .iter()
            .map(|n| match &n.registered_as {
                Some(number) => Ok(number.clone()),
                None => numbers
                    .next()
                    .map(|n| n.to_string())
                    .ok_or_else(|| StoreError::Corrupt("protocol number missing".into())),
            })
            .collect::<Result<_>>()?;

        let flags: Vec<Vec<String>> = batch
            .iter()
            .map(|n| {
                let mut unique: Vec<String> = Vec::new();
                for f in &n.flags {
                    if !unique.contains(f) {
                        unique.push(f.clone());
                    }
                }
                unique
            })
            .collect();
        const CASE_PARAMS: usize = 16;
        let rows: Vec<String> = (0..batch.len())
            .map(|i| {
                let p: Vec<String> = (1..=CASE_PARAMS).map(|k| format!("${}", i * CASE_PARAMS + k)).collect();
                format!(
                    "({}, {}, 'received', {}, {}, {}, {}, NULL, {}, {}, {}, {}, {}, {}, 0, {}, NULL, NULL, 0, 0, {}, {}, {}, NULL, 1, {})",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[15]
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO cases (reference, case_type, status, subject, description, channel, citizen_id, assignee_id, \
             priority, protocol, received_at, received_on, term_days, service_days, paused_days, due_on, pause_kind, \
             pause_started_on, integration_requested, rejection_notified, flags, fields, last_event_at, closed_at, version, \
             ingested_at) \
             VALUES {} RETURNING id, reference",
            rows.join(", ")
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, new) in batch.iter().enumerate() {
            let due_on = sla::due_date(&self.settings.calendar, received_on, types[i].term_days, 0);
            insert = insert
                .bind(references[i].clone())
                .bind(types[i].id.clone())
                .bind(new.subject.trim().to_owned())
                .bind(new.description.trim().to_owned())
                .bind(new.channel.as_str())
                .bind(citizens[i].as_ref().map(|(id, _)| *id))
                .bind(types[i].priority.as_str())
                .bind(protocols[i].clone())
                .bind(to_ms(received_at))
                .bind(date_text(received_on))
                .bind(i64::from(types[i].term_days))
                .bind(i64::from(types[i].service_days))
                .bind(date_text(due_on))
                .bind(json_text(&flags[i]))
                .bind(json_text(&new.fields))
                .bind(to_ms(ingested_at));
        }
        // Ids come back by reference: the order of RETURNING rows is not promised.
        let mut case_ids: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for row in insert.fetch_all(&mut **tx).await? {
            case_ids.insert(get_str(&row, "reference")?, get_i64(&row, "id")?);
        }

        let details: Vec<serde_json::Value> = (0..batch.len())
            .map(|i| {
                let c = &batch[i].citizen;
                let given: serde_json::Map<String, serde_json::Value> = [
                    ("name", &c.name),
                    ("email", &c.email),
                    ("pec", &c.pec),
                    ("phone", &c.phone),
                    ("fax", &c.fax),
                ]
                .into_iter()
                .filter_map(|(k, v)| {
                    v.as_ref()
                        .map(|v| (k.to_owned(), serde_json::Value::from(v.trim())))
                })
                .collect();
                serde_json::json!({
                    "channel": batch[i].channel.as_str(),
                    "protocol": protocols[i],
                    "flags": flags[i],
                    "contacts_given": given,
                })
            })
            .collect();
        let events: Vec<String> = (0..batch.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    i * 5 + 1,
                    i * 5 + 2,
                    i * 5 + 3,
                    i * 5 + 4,
                    i * 5 + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO case_events (case_id, at, actor, kind, detail) VALUES {}",
            events.join(", ")
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, new) in batch.iter().enumerate() {
            let case_id = case_ids
                .get(&references[i])
                .copied()
                .ok_or_else(|| StoreError::Corrupt("case id not returned".into()))?;
            insert = insert
                .bind(case_id)
                .bind(to_ms(now))
                .bind(new.actor.clone())
                .bind("created")
                .bind(details[i].to_string());
        }
        insert.execute(&mut **tx).await?;
        // Everything about the new cases is known here: no need to read them back.
        let mut created = Vec::with_capacity(batch.len());
        for (i, (new, ((citizen, detail), flags))) in batch
            .into_iter()
            .zip(citizens.into_iter().zip(details).zip(flags))
            .enumerate()
        {
            let event = EventView {
                at: rome_rfc3339(now),
                actor: new.actor.clone(),
                kind: "created".into(),
                detail,
            };
            let record = CaseRecord {
                reference: references[i].clone(),
                case_type: types[i].id.clone(),
                status: Status::Received,
                subject: new.subject.trim().to_owned(),
                description: new.description.trim().to_owned(),
                channel: new.channel.as_str().to_owned(),
                priority: types[i].priority.as_str().to_owned(),
                protocol: Some(protocols[i].clone()),
                received_at,
                received_on,
                ingested_at,
                term_days: types[i].term_days,
                service_days: i64::from(types[i].service_days),
                paused_days: 0,
                open_pause: None,
                flags,
                fields: serde_json::Value::Object(new.fields),
                last_event_at: ingested_at,
                assignee: None,
                assigned: false,
                citizen: citizen.map(|(_, view)| view).unwrap_or_default(),
            };
            let case_id = case_ids
                .get(&references[i])
                .copied()
                .ok_or_else(|| StoreError::Corrupt("case id not returned".into()))?;
            created.push(CreatedCase {
                record,
                event,
                case_id,
            });
        }
        let entries: Vec<(i64, String)> = created
            .iter()
            .map(|c| {
                let r = &c.record;
                (
                    c.case_id,
                    crate::search::case_text(
                        &r.reference,
                        &r.subject,
                        &r.description,
                        &r.fields,
                        &r.citizen,
                    ),
                )
            })
            .collect();
        crate::search::insert_case_entries(tx, &entries).await?;
        Ok(created)
    }

    /// The whole case with documents and journal, read in one query (the journal and the
    /// documents are aggregated to JSON by the database).
    pub async fn get_case(&self, reference: &str) -> Result<CaseView> {
        let aggregates = match self.backend {
            crate::Backend::Sqlite => {
                "(SELECT json_group_array(json_array(e.id, e.at, e.actor, e.kind, e.detail)) \
                   FROM case_events e WHERE e.case_id = c.id) AS events_json, \
                 (SELECT json_group_array(json_array(d.id, d.sha256, d.filename, d.media_type, d.size, d.uploaded_at, d.uploaded_by, d.text_status, d.text_error)) \
                   FROM documents d WHERE d.case_id = c.id) AS documents_json"
            }
            crate::Backend::Postgres => {
                "(SELECT COALESCE(json_agg(json_build_array(e.id, e.at, e.actor, e.kind, e.detail)), '[]'::json)::text \
                   FROM case_events e WHERE e.case_id = c.id) AS events_json, \
                 (SELECT COALESCE(json_agg(json_build_array(d.id, d.sha256, d.filename, d.media_type, d.size, d.uploaded_at, d.uploaded_by, d.text_status, d.text_error)), '[]'::json)::text \
                   FROM documents d WHERE d.case_id = c.id) AS documents_json"
            }
        };
        let sql =
            format!("SELECT {CASE_COLUMNS}, {aggregates} FROM {CASE_FROM} WHERE c.reference = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let record = CaseRecord::from_row(&row)?;
        let mut events: Vec<EventTuple> = serde_json::from_str(&get_str(&row, "events_json")?)
            .map_err(|e| StoreError::Corrupt(format!("journal of {reference}: {e}")))?;
        events.sort_by_key(|e| e.0);
        let timeline = events
            .into_iter()
            .map(|(_, at, actor, kind, detail)| {
                Ok(EventView {
                    at: rome_rfc3339(from_ms(at)?),
                    actor,
                    kind,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut docs: Vec<DocumentTuple> = serde_json::from_str(&get_str(&row, "documents_json")?)
            .map_err(|e| StoreError::Corrupt(format!("documents of {reference}: {e}")))?;
        docs.sort_by(|a, b| (a.5, &a.0).cmp(&(b.5, &b.0)));
        let documents = docs
            .into_iter()
            .map(
                |(
                    id,
                    sha256,
                    filename,
                    media_type,
                    size,
                    uploaded_at,
                    uploaded_by,
                    text_status,
                    text_error,
                )| {
                    Ok(DocumentView {
                        id,
                        sha256,
                        filename,
                        media_type,
                        size,
                        uploaded_at: rome_rfc3339(from_ms(uploaded_at)?),
                        uploaded_by,
                        text_status,
                        text_error,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok(self.full_view(record, timeline, documents))
    }

    /// Applies today's clock to a stored case: due date, clock state, overdue, orphan.
    fn summarise(&self, rec: &CaseRecord) -> CaseSummary {
        let now = self.clock.now();
        let today = rome_date(now);
        let view = sla::compute_from_totals(
            &self.settings.calendar,
            rec.received_on,
            rec.term_days,
            rec.paused_days,
            rec.open_pause.as_ref(),
            rec.status,
            today,
        );
        let orphan = sla::is_orphan(
            &self.settings.calendar,
            &OrphanFacts {
                status: rec.status,
                assigned: rec.assigned,
                received_at: rec.received_at,
                last_event_at: rec.last_event_at,
                clock: view.state,
            },
            now,
        );
        let state = match view.state {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Stopped => "stopped",
        };
        CaseSummary {
            reference: rec.reference.clone(),
            case_type: rec.case_type.clone(),
            status: rec.status.as_str().to_owned(),
            subject: rec.subject.clone(),
            channel: rec.channel.clone(),
            citizen_name: rec.citizen.name.clone(),
            assignee: rec.assignee.clone(),
            priority: rec.priority.clone(),
            protocol: rec.protocol.clone(),
            received_at: rome_rfc3339(rec.received_at),
            due_at: date_text(view.due_at),
            overdue: view.state == ClockState::Running && view.days_left < 0,
            sla: SlaJson {
                state: state.to_owned(),
                days_left: view.days_left,
                term_days: view.term_days,
                paused_days: view.paused_days,
                service_due_at: date_text(
                    rec.received_on + Duration::days(rec.service_days + view.paused_days),
                ),
            },
            orphan,
            flags: rec.flags.clone(),
        }
    }

    /// The whole view of a case from its record, journal and documents.
    fn full_view(
        &self,
        rec: CaseRecord,
        timeline: Vec<EventView>,
        documents: Vec<DocumentView>,
    ) -> CaseView {
        let summary = self.summarise(&rec);
        CaseView {
            summary,
            description: rec.description,
            citizen: rec.citizen,
            fields: rec.fields,
            documents,
            timeline,
            ingested_at: rome_rfc3339(rec.ingested_at),
        }
    }

    /// A page of cases, newest first, with the total count for the filter.
    pub async fn list_cases(&self, filter: &CaseFilter) -> Result<(Vec<CaseSummary>, i64)> {
        let now = self.clock.now();
        let today = rome_date(now);
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let bind = |args: &mut Vec<Arg>, value: Arg| {
            args.push(value);
            format!("${}", args.len())
        };
        if let Some(status) = filter.status {
            clauses.push(format!(
                "c.status = {}",
                bind(&mut args, Arg::Text(status.as_str().into()))
            ));
        }
        if let Some(case_type) = &filter.case_type {
            clauses.push(format!(
                "c.case_type = {}",
                bind(&mut args, Arg::Text(case_type.clone()))
            ));
        }
        if let Some(channel) = filter.channel {
            clauses.push(format!(
                "c.channel = {}",
                bind(&mut args, Arg::Text(channel.as_str().into()))
            ));
        }
        match filter.assignee.as_deref() {
            Some("none") => clauses.push("c.assignee_id IS NULL".into()),
            Some(login) => clauses.push(format!(
                "u.login = {}",
                bind(&mut args, Arg::Text(login.into()))
            )),
            None => {}
        }
        // The clock runs: not decided, and no suspension in force.
        // (`c.status || ''` keeps the engines from choosing the status index, which holds
        // nearly every open case, over the selective due-date and idle-time ones.)
        let running = "(c.status || '') IN ('received', 'in_review', 'waiting_citizen', 'rejection_notice') AND c.pause_kind IS NULL";
        if filter.overdue {
            clauses.push(format!(
                "{running} AND c.due_on < {}",
                bind(&mut args, Arg::Text(date_text(today)))
            ));
        }
        if filter.orphan {
            let cutoff = sla::unassigned_orphan_cutoff(&self.settings.calendar, today);
            let idle = now - Duration::days(sla::IDLE_DAYS);
            clauses.push(format!(
                "c.status <> 'closed' AND ((c.assignee_id IS NULL AND c.received_on <= {}) OR ({running} AND c.last_event_at <= {}))",
                bind(&mut args, Arg::Text(date_text(cutoff))),
                bind(&mut args, Arg::Int(to_ms(idle)))
            ));
        }
        if filter.open {
            clauses.push("c.status <> 'closed'".into());
        }
        if let Some(days) = filter.due_within_days {
            clauses.push(format!(
                "{running} AND c.due_on >= {} AND c.due_on <= {}",
                bind(&mut args, Arg::Text(date_text(today))),
                bind(
                    &mut args,
                    Arg::Text(date_text(today + Duration::days(days)))
                )
            ));
        }
        if let Some(flag) = filter.flag.as_deref() {
            // Flags are a JSON array of names; a name is matched with its quotes.
            let quoted = json_text(&flag)
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            // `flags <> '[]'` lets the engines read the small index of flagged cases.
            clauses.push(format!(
                "c.flags <> '[]' AND c.flags LIKE {} ESCAPE '\\'",
                bind(&mut args, Arg::Text(format!("%{quoted}%")))
            ));
        }
        if let Some(code) = filter.citizen_fiscal_code.as_deref() {
            clauses.push(format!(
                "c.citizen_id = (SELECT id FROM citizens WHERE fiscal_code = {})",
                bind(&mut args, Arg::Text(code.to_owned()))
            ));
        }
        if !filter.references.is_empty() {
            let placeholders: Vec<String> = filter
                .references
                .iter()
                .map(|r| bind(&mut args, Arg::Text(r.clone())))
                .collect();
            clauses.push(format!("c.reference IN ({})", placeholders.join(", ")));
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let p = bind(&mut args, Arg::Text(pattern));
            clauses.push(format!(
                "(LOWER(c.reference) LIKE {p} ESCAPE '\\' OR LOWER(c.subject) LIKE {p} ESCAPE '\\' \
                 OR LOWER(ci.name) LIKE {p} ESCAPE '\\' OR LOWER(ci.fiscal_code) LIKE {p} ESCAPE '\\')"
            ));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        // Counting needs the joins only when a filter looks at the citizen or the assignee's login.
        let joins_needed = filter.q.as_deref().is_some_and(|q| !q.trim().is_empty())
            || filter.assignee.as_deref().is_some_and(|a| a != "none");
        let count_from = if joins_needed { CASE_FROM } else { "cases c" };
        let count_sql = format!("SELECT COUNT(*) AS n FROM {count_from} {where_sql}");
        let mut count_query = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for a in &args {
            count_query = a.bind_to(count_query);
        }
        let total = get_i64(&count_query.fetch_one(&self.read).await?, "n")?;
        if filter.per_page == 0 {
            // Only the count was asked (a queue's number).
            return Ok((Vec::new(), total));
        }
        let per_page = filter.per_page.max(1);
        let offset = i64::from(filter.page.max(1) - 1) * i64::from(per_page);
        // With a selective filter (late, due soon, flagged, orphan) the few matches are
        // found by their own index and sorted; ordering by the bare column would walk the
        // whole reception index looking for them.
        let selective = filter.overdue
            || filter.orphan
            || filter.due_within_days.is_some()
            || filter.flag.is_some();
        let order = if selective {
            "c.received_at + 0 DESC, c.id DESC"
        } else {
            "c.received_at DESC, c.id DESC"
        };
        let list_sql = format!(
            "SELECT {CASE_COLUMNS} FROM {CASE_FROM} {where_sql} ORDER BY {order} LIMIT {per_page} OFFSET {offset}"
        );
        let mut list_query = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for a in &args {
            list_query = a.bind_to(list_query);
        }
        let rows = list_query.fetch_all(&self.read).await?;
        let items = rows
            .iter()
            .map(|r| CaseRecord::from_row(r).map(|rec| self.summarise(&rec)))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, total))
    }

    /// Applies a workflow action in one transaction: the case row is locked first, the
    /// domain decides, then status, clock and journal change together.
    pub async fn apply_action(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
    ) -> Result<CaseView> {
        self.apply_action_with(reference, action, note, actor, &[])
            .await
    }

    /// [`Store::apply_action`] for an action that produces documents (an annulment
    /// request, a letter): they are attached to the case, and registered outgoing in the
    /// protocol register when asked, in the same transaction as the change of status, so
    /// the outcome never exists without its documents nor the documents without it. The
    /// bytes must already be in the blob store.
    pub async fn apply_action_with(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
        outgoing: &[OutgoingDocument],
    ) -> Result<CaseView> {
        self.apply_action_writing(reference, action, note, actor, outgoing, &[])
            .await
            .map(|(case, _)| case)
    }

    /// [`Store::apply_action_with`], also queueing messages to the citizen in the same
    /// transaction (a message without an idempotency key gets one naming this change of
    /// the case, so a retried request cannot queue it twice). Returns the case and the
    /// messages' ids.
    pub async fn apply_action_writing(
        &self,
        reference: &str,
        action: &Action,
        note: Option<&str>,
        actor: &str,
        outgoing: &[OutgoingDocument],
        messages: &[crate::outbound::NewOutbound],
    ) -> Result<(CaseView, Vec<i64>)> {
        let now = self.clock.now();
        let today = rome_date(now);
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, case_type, status, \
             integration_requested, rejection_notified, pause_kind, pause_started_on, paused_days, received_on, term_days, flags, version",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let case_id = get_i64(&row, "id")?;
        let case_type_id = get_str(&row, "case_type")?;
        let workflow_kind = self
            .case_type(&case_type_id)
            .map(|t| t.workflow)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "case type {case_type_id:?} is no longer configured"
                ))
            })?;
        let status_text = get_str(&row, "status")?;
        let status: Status = status_text
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("status {status_text:?}")))?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let facts = CaseFacts {
            status,
            workflow: workflow_kind,
            integration_requested: get_i64(&row, "integration_requested")? != 0,
            rejection_notified: get_i64(&row, "rejection_notified")? != 0,
            notice_period_open: match (
                get_opt_str(&row, "pause_kind")?,
                get_opt_str(&row, "pause_started_on")?,
            ) {
                (Some(kind), Some(started)) if kind == PauseKind::RejectionNotice.as_str() => {
                    Pause {
                        kind: PauseKind::RejectionNotice,
                        started_on: parse_date(&started)?,
                        ended_on: None,
                    }
                    .in_force(today)
                }
                _ => false,
            },
            has_note: note.is_some(),
        };
        let transition = workflow::plan(&facts, action)?;
        let mut detail = serde_json::json!({
            "action": action.name(),
            "from": transition.from.as_str(),
            "to": transition.to.as_str(),
        });
        if let Some(note) = note {
            detail["note"] = note.into();
        }
        match action {
            Action::Assign { user } => {
                let assignee =
                    sqlx::query("SELECT id, role FROM users WHERE login = $1 AND active = 1")
                        .bind(user.trim())
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            StoreError::invalid("user", format!("no active user '{}'", user.trim()))
                        })?;
                let role = get_str(&assignee, "role")?;
                if !["admin", "supervisor", "operator"].contains(&role.as_str()) {
                    return Err(StoreError::invalid(
                        "user",
                        format!("'{}' ({role}) cannot work cases", user.trim()),
                    ));
                }
                sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2")
                    .bind(get_i64(&assignee, "id")?)
                    .bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                detail["user"] = user.trim().into();
            }
            Action::RequestIntegration { missing } => {
                detail["missing"] = clean_list(missing).into()
            }
            Action::NotifyRejection { reasons }
            | Action::Reject { reasons }
            | Action::Confirm { reasons }
            | Action::Annul { reasons } => detail["reasons"] = clean_list(reasons).into(),
            _ => {}
        }
        match transition.clock {
            ClockChange::None => {}
            ClockChange::Pause(kind) => {
                sqlx::query("INSERT INTO case_pauses (case_id, kind, started_on, started_at) VALUES ($1, $2, $3, $4)")
                    .bind(case_id)
                    .bind(kind.as_str())
                    .bind(date_text(today))
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await?;
                let marker = match kind {
                    PauseKind::Integration => "integration_requested",
                    PauseKind::RejectionNotice => "rejection_notified",
                };
                let sql = format!(
                    "UPDATE cases SET pause_kind = $1, pause_started_on = $2, {marker} = 1 WHERE id = $3"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(kind.as_str())
                    .bind(date_text(today))
                    .bind(case_id)
                    .execute(&mut *tx)
                    .await?;
                detail["clock"] = "paused".into();
            }
            ClockChange::Resume => {
                if let Some(days) = self.end_pause(&mut tx, case_id, &row, today, now).await? {
                    detail["clock"] = "resumed".into();
                    detail["paused_days"] = days.into();
                }
            }
        }
        sqlx::query(
            "UPDATE cases SET status = $1, last_event_at = $2, closed_at = $3 WHERE id = $4",
        )
        .bind(transition.to.as_str())
        .bind(to_ms(now))
        .bind((transition.to == Status::Closed).then_some(to_ms(now)))
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
        let kind = if matches!(action, Action::Assign { .. }) {
            "assigned"
        } else {
            "action"
        };
        insert_event(&mut tx, case_id, now, actor, kind, &detail).await?;
        let documents = attach_outgoing(&mut tx, case_id, reference, now, actor, outgoing).await?;
        let version = get_i64(&row, "version")?;
        let mut queued = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mut message = message.clone();
            if message.idempotency_key.is_empty() {
                message.idempotency_key = format!("{reference}/v{version}/{i}");
            }
            if message.with_outgoing_documents {
                message.attachments.extend(documents.iter().cloned());
            }
            let (id, _) =
                crate::outbound::queue_in(&mut tx, case_id, reference, now, actor, &message)
                    .await?;
            queued.push(id);
        }
        tx.commit().await?;
        Ok((self.get_case(reference).await?, queued))
    }

    /// Removes a flag once staff have dealt with it (a message that arrived for a closed
    /// case, a failed OCR), journaled with who and why; removing an absent flag changes
    /// nothing.
    pub async fn clear_flag(
        &self,
        reference: &str,
        flag: &str,
        note: Option<&str>,
        actor: &str,
    ) -> Result<CaseView> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, flags",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        let mut flags: Vec<String> =
            serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
        let before = flags.len();
        flags.retain(|f| f != flag);
        if flags.len() == before {
            drop(tx);
            return self.get_case(reference).await;
        }
        let case_id = get_i64(&row, "id")?;
        sqlx::query("UPDATE cases SET flags = $1, last_event_at = $2 WHERE id = $3")
            .bind(json_text(&flags))
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let mut detail = serde_json::json!({ "flag": flag });
        if let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) {
            detail["note"] = note.into();
        }
        insert_event(&mut tx, case_id, now, actor, "flag_cleared", &detail).await?;
        tx.commit().await?;
        self.get_case(reference).await
    }

    /// Changes a case's type-specific fields (JSON merge patch: `null` removes a key),
    /// journaling each change with its old and new value and re-indexing the case for
    /// search, in one transaction. A closed case is not changed (reopen it first).
    pub async fn update_case_fields(
        &self,
        reference: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
        actor: &str,
    ) -> Result<CaseView> {
        let before = self.get_case(reference).await?;
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, status, fields",
        )
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
        if get_str(&row, "status")? == Status::Closed.as_str() {
            return Err(StoreError::Refused(
                sportello_domain::refusal::Refusal::new("refusal.closed_fields")
                    .with("reference", reference),
            ));
        }
        let case_id = get_i64(&row, "id")?;
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&get_str(&row, "fields")?).unwrap_or_default();
        let mut changes = serde_json::Map::new();
        for (key, value) in patch {
            let old = fields.get(key).cloned().unwrap_or(serde_json::Value::Null);
            if &old == value {
                continue;
            }
            if value.is_null() {
                fields.remove(key);
            } else {
                fields.insert(key.clone(), value.clone());
            }
            changes.insert(key.clone(), serde_json::json!({ "from": old, "to": value }));
        }
        if changes.is_empty() {
            return Ok(before);
        }
        sqlx::query("UPDATE cases SET fields = $1, last_event_at = $2 WHERE id = $3")
            .bind(json_text(&fields))
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let detail = serde_json::json!({ "changes": changes });
        insert_event(&mut tx, case_id, now, actor, "fields_changed", &detail).await?;
        let text = crate::search::case_text(
            reference,
            &before.summary.subject,
            &before.description,
            &serde_json::Value::Object(fields),
            &before.citizen,
        );
        crate::search::insert_case_entries(&mut tx, &[(case_id, text)]).await?;
        tx.commit().await?;
        self.get_case(reference).await
    }

    /// Ends the open pause of a locked case row; returns the days it counted.
    async fn end_pause(
        &self,
        tx: &mut Transaction<'static, Any>,
        case_id: i64,
        row: &AnyRow,
        ended_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let (Some(kind), Some(started)) = (
            get_opt_str(row, "pause_kind")?,
            get_opt_str(row, "pause_started_on")?,
        ) else {
            return Ok(None);
        };
        let kind = PauseKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("pause kind {kind:?}")))?;
        let pause = Pause {
            kind,
            started_on: parse_date(&started)?,
            ended_on: Some(ended_on),
        };
        let days = pause.counted_days(ended_on);
        let paused_total = get_i64(row, "paused_days")? + days;
        let received_on = parse_date(&get_str(row, "received_on")?)?;
        let term_days = u32::try_from(get_i64(row, "term_days")?).unwrap_or(30);
        let due_on = sla::due_date(
            &self.settings.calendar,
            received_on,
            term_days,
            paused_total,
        );
        sqlx::query(
            "UPDATE case_pauses SET ended_on = $1, ended_at = $2, counted_days = $3 WHERE case_id = $4 AND ended_on IS NULL",
        )
        .bind(date_text(ended_on))
        .bind(to_ms(now))
        .bind(days)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE cases SET pause_kind = NULL, pause_started_on = NULL, paused_days = $1, due_on = $2 WHERE id = $3",
        )
        .bind(paused_total)
        .bind(date_text(due_on))
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
        Ok(Some(days))
    }

    /// Ends suspensions that have reached their legal maximum (integration: 30 days, then
    /// flag `integration_expired`; art. 10-bis: 10 days), so lists and reports see the
    /// clock running again. Idempotent; returns how many cases changed.
    pub async fn sla_tick(&self) -> Result<usize> {
        let now = self.clock.now();
        let today = rome_date(now);
        let open = sqlx::query("SELECT reference, pause_kind, pause_started_on FROM cases WHERE pause_kind IS NOT NULL")
            .fetch_all(&self.read)
            .await?;
        let mut changed = 0;
        for row in open {
            let (Some(kind), Some(started)) = (
                get_opt_str(&row, "pause_kind")?,
                get_opt_str(&row, "pause_started_on")?,
            ) else {
                continue;
            };
            let Some(kind) = PauseKind::parse(&kind) else {
                continue;
            };
            let pause = Pause {
                kind,
                started_on: parse_date(&started)?,
                ended_on: None,
            };
            if pause.in_force(today) {
                continue;
            }
            let reference = get_str(&row, "reference")?;
            if self.lapse_pause(&reference, &pause, now).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn lapse_pause(
        &self,
        reference: &str,
        expected: &Pause,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE reference = $1 RETURNING id, pause_kind, pause_started_on, \
             paused_days, received_on, term_days, flags",
        )
        .bind(reference)
        .fetch_one(&mut *tx)
        .await?;
        // Someone may have resumed the clock meanwhile.
        if get_opt_str(&row, "pause_kind")?.as_deref() != Some(expected.kind.as_str())
            || get_opt_str(&row, "pause_started_on")? != Some(date_text(expected.started_on))
        {
            return Ok(false);
        }
        let case_id = get_i64(&row, "id")?;
        let lapsed_on = expected.lapses_on();
        let days = self
            .end_pause(&mut tx, case_id, &row, lapsed_on, now)
            .await?
            .unwrap_or(0);
        let mut detail = serde_json::json!({ "pause": expected.kind.as_str(), "lapsed_on": date_text(lapsed_on), "paused_days": days });
        if expected.kind == PauseKind::Integration {
            let mut case_flags: Vec<String> =
                serde_json::from_str(&get_str(&row, "flags")?).unwrap_or_default();
            if !case_flags.iter().any(|f| f == flags::INTEGRATION_EXPIRED) {
                case_flags.push(flags::INTEGRATION_EXPIRED.to_owned());
            }
            sqlx::query("UPDATE cases SET flags = $1 WHERE id = $2")
                .bind(json_text(&case_flags))
                .bind(case_id)
                .execute(&mut *tx)
                .await?;
            detail["flag"] = flags::INTEGRATION_EXPIRED.into();
        }
        sqlx::query("UPDATE cases SET last_event_at = $1 WHERE id = $2")
            .bind(to_ms(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, case_id, now, "system", "pause_lapsed", &detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Counts for `/metrics`: open, overdue and orphan cases.
    pub async fn case_gauges(&self) -> Result<BTreeMap<&'static str, i64>> {
        let mut out = BTreeMap::new();
        let open = sqlx::query("SELECT COUNT(*) AS n FROM cases WHERE status <> 'closed'")
            .fetch_one(&self.read)
            .await?;
        out.insert("open", get_i64(&open, "n")?);
        for (name, filter) in [
            (
                "overdue",
                CaseFilter {
                    overdue: true,
                    per_page: 0,
                    ..CaseFilter::default()
                },
            ),
            (
                "orphan",
                CaseFilter {
                    orphan: true,
                    per_page: 0,
                    ..CaseFilter::default()
                },
            ),
        ] {
            out.insert(name, self.list_cases(&filter).await?.1);
        }
        Ok(out)
    }
}

/// The office's gauges of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DailyGauges {
    /// The day (Europe/Rome).
    pub day: String,
    /// Open cases.
    pub open: i64,
    /// Open cases past their legal term.
    pub overdue: i64,
    /// Orphan cases.
    pub orphan: i64,
}

impl Store {
    /// Records today's gauges the first time it is called on a day (the minute tick calls
    /// it); later calls that day change nothing. Returns whether it recorded.
    pub async fn record_daily_gauges(&self) -> Result<bool> {
        let now = self.clock.now();
        let day = date_text(rome_date(now));
        let seen = sqlx::query("SELECT 1 AS seen FROM daily_gauges WHERE day = $1")
            .bind(&day)
            .fetch_optional(&self.read)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        let gauges = self.case_gauges().await?;
        let done = sqlx::query(
            "INSERT INTO daily_gauges (day, open, overdue, orphan, recorded_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (day) DO NOTHING",
        )
        .bind(&day)
        .bind(gauges.get("open").copied().unwrap_or_default())
        .bind(gauges.get("overdue").copied().unwrap_or_default())
        .bind(gauges.get("orphan").copied().unwrap_or_default())
        .bind(to_ms(now))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The recorded gauges of the days `from`..=`to`, in order.
    pub async fn gauge_history(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyGauges>> {
        let rows = sqlx::query(
            "SELECT day, open, overdue, orphan FROM daily_gauges WHERE day >= $1 AND day <= $2 ORDER BY day",
        )
        .bind(date_text(from))
        .bind(date_text(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyGauges {
                    day: get_str(r, "day")?,
                    open: get_i64(r, "open")?,
                    overdue: get_i64(r, "overdue")?,
                    orphan: get_i64(r, "orphan")?,
                })
            })
            .collect()
    }
}

/// A value bound to a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    fn bind_to<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        match self {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::Int(i) => q.bind(*i),
        }
    }
}

fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn clean_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Takes `count` numbers from the reference counter of a prefix and year and returns the
/// last one. The counter row is written first, which takes the lock, and rolls back with
/// the transaction, so references have no gaps.
async fn advance_sequence(
    tx: &mut Transaction<'static, Any>,
    prefix: &str,
    year: i32,
    count: usize,
) -> Result<u64> {
    let row = sqlx::query(
        "INSERT INTO sequences (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = sequences.value + $2 RETURNING value",
    )
    .bind(format!("case:{prefix}:{year}"))
    .bind(count as i64)
    .fetch_one(&mut **tx)
    .await?;
    Ok(get_i64(&row, "value")? as u64)
}

/// Finds the citizen by fiscal code (else by e-mail, PEC or phone) and fills in contacts
/// the record does not have yet — never overwrites one, so a request naming someone
/// else's fiscal code cannot redirect their mail — or creates the citizen; returns the id
/// and the citizen as stored. The contacts as given stay in the case's journal.
async fn upsert_citizen(
    tx: &mut Transaction<'static, Any>,
    c: &CitizenInput,
    now: DateTime<Utc>,
) -> Result<Option<(i64, CitizenView)>> {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (name, phone, fax) = (clean(&c.name), clean(&c.phone), clean(&c.fax));
    let email = clean(&c.email).map(|e| e.to_lowercase());
    let pec = clean(&c.pec).map(|e| e.to_lowercase());
    if c.fiscal_code.is_none()
        && name.is_none()
        && email.is_none()
        && pec.is_none()
        && phone.is_none()
        && fax.is_none()
    {
        return Ok(None);
    }
    const RETURNING: &str = "RETURNING id, fiscal_code, name, email, pec, phone, fax";
    let key = phone.as_deref().and_then(phone_key);
    let row = if let Some(code) = &c.fiscal_code {
        // One statement: the fiscal code is unique, so it is the key of the upsert.
        let sql = format!(
            "INSERT INTO citizens (fiscal_code, name, email, pec, phone, fax, created_at, updated_at, phone_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (fiscal_code) DO UPDATE SET \
             name = COALESCE(citizens.name, excluded.name), email = COALESCE(citizens.email, excluded.email), \
             pec = COALESCE(citizens.pec, excluded.pec), phone = COALESCE(citizens.phone, excluded.phone), \
             fax = COALESCE(citizens.fax, excluded.fax), phone_key = COALESCE(citizens.phone_key, excluded.phone_key), \
             updated_at = excluded.updated_at {RETURNING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(code.as_str().to_owned())
            .bind(name)
            .bind(email)
            .bind(pec)
            .bind(phone)
            .bind(fax)
            .bind(to_ms(now))
            .bind(key)
            .fetch_one(&mut **tx)
            .await?
    } else {
        let mut found = None;
        for (column, value) in [("email", &email), ("pec", &pec), ("phone_key", &key)] {
            if let Some(value) = value {
                let sql = format!(
                    "SELECT id FROM citizens WHERE {column} = $1 AND fiscal_code IS NULL ORDER BY id LIMIT 1"
                );
                found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(value.clone())
                    .fetch_optional(&mut **tx)
                    .await?;
                if found.is_some() {
                    break;
                }
            }
        }
        match found {
            Some(existing) => {
                let sql = format!(
                    "UPDATE citizens SET name = COALESCE(name, $1), email = COALESCE(email, $2), pec = COALESCE(pec, $3), \
                     phone = COALESCE(phone, $4), fax = COALESCE(fax, $5), phone_key = COALESCE(phone_key, $8), \
                     updated_at = $6 WHERE id = $7 {RETURNING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .bind(email)
                    .bind(pec)
                    .bind(phone)
                    .bind(fax)
                    .bind(to_ms(now))
                    .bind(get_i64(&existing, "id")?)
                    .bind(key.clone())
                    .fetch_one(&mut **tx)
                    .await?
            }
            None => {
                let sql = format!(
                    "INSERT INTO citizens (fiscal_code, name, email, pec, phone, fax, created_at, updated_at, phone_key) \
                     VALUES (NULL, $1, $2, $3, $4, $5, $6, $6, $7) {RETURNING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .bind(email)
                    .bind(pec)
                    .bind(phone)
                    .bind(fax)
                    .bind(to_ms(now))
                    .bind(key.clone())
                    .fetch_one(&mut **tx)
                    .await?
            }
        }
    };
    let view = CitizenView::from_row(&row)?;
    Ok(Some((get_i64(&row, "id")?, view)))
}

/// The key telephone numbers are matched on: the last nine digits, so that `+39 333 123 4567`
/// and `3331234567` are the same number. `None` for fewer than six digits.
pub fn phone_key(number: &str) -> Option<String> {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return None;
    }
    Some(digits[digits.len().saturating_sub(9)..].iter().collect())
}

/// Who a registration names as sender: the name, else a contact, else the fiscal code.
fn correspondent_of(c: &CitizenInput) -> String {
    [
        c.name.as_deref(),
        c.pec.as_deref(),
        c.email.as_deref(),
        c.phone.as_deref(),
        c.fax.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .find(|s| !s.is_empty())
    .map(str::to_owned)
    .or_else(|| c.fiscal_code.as_ref().map(|f| f.as_str().to_owned()))
    .unwrap_or_else(|| "anonimo".into())
}

/// The digest registered for a request typed in by staff: a canonical JSON of what was asked.
fn request_digest(new: &NewCase) -> String {
    let canonical = serde_json::json!({
        "case_type": new.case_type,
        "subject": new.subject,
        "description": new.description,
        "channel": new.channel.as_str(),
        "fiscal_code": new.citizen.fiscal_code.as_ref().map(FiscalCode::as_str),
        "name": new.citizen.name,
        "email": new.citizen.email,
        "fields": new.fields,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Marks a case as changed now (last event, version) inside `tx`, taking its row lock,
/// and returns its id; the first statement of every change that adds to a case.
/// A document an action produces, already stored in the blob store.
#[derive(Debug, Clone)]
pub struct OutgoingDocument {
    /// SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// File name shown on the case.
    pub filename: String,
    /// Media type.
    pub media_type: String,
    /// `Some((recipient, subject))` to register it outgoing in the protocol register.
    pub register: Option<(String, String)>,
}

/// Attaches documents to the locked case and registers those that ask for it, each with
/// its journal entry (naming the protocol number when there is one); returns their ids.
pub(crate) async fn attach_outgoing(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    reference: &str,
    now: DateTime<Utc>,
    actor: &str,
    outgoing: &[OutgoingDocument],
) -> Result<Vec<String>> {
    let registrations: Vec<Registration<'_>> = outgoing
        .iter()
        .filter_map(|doc| {
            doc.register
                .as_ref()
                .map(|(recipient, subject)| Registration {
                    direction: Direction::Out,
                    correspondent: recipient,
                    subject,
                    document_sha256: &doc.sha256,
                    case_reference: Some(reference),
                })
        })
        .collect();
    let mut numbers = register_many_in(tx, now, &registrations).await?.into_iter();
    let mut ids = Vec::with_capacity(outgoing.len());
    for doc in outgoing {
        let (id, filename) = insert_document(
            tx,
            case_id,
            (&doc.sha256, doc.size, &doc.filename, &doc.media_type),
            now,
            actor,
            None,
        )
        .await?;
        let mut detail = serde_json::json!({
            "document_id": id, "filename": filename, "sha256": doc.sha256, "size": doc.size,
        });
        if doc.register.is_some()
            && let Some(number) = numbers.next()
        {
            detail["protocol"] = number.to_string().into();
        }
        insert_event(tx, case_id, now, actor, "document_added", &detail).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Inserts one document row (`sha256, size, filename, media_type`), the file name cleaned
/// for display, linked to the inbound message it came with, if any; returns its new id
/// and the cleaned name.
pub(crate) async fn insert_document(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    (sha256, size, filename, media_type): (&str, u64, &str, &str),
    now: DateTime<Utc>,
    actor: &str,
    inbound_message: Option<i64>,
) -> Result<(String, String)> {
    let id = format!("{:032x}", rand::random::<u128>());
    let filename = crate::documents::display_filename(filename);
    sqlx::query(
        "INSERT INTO documents (id, case_id, sha256, filename, media_type, size, uploaded_at, uploaded_by, inbound_message_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(case_id)
    .bind(sha256)
    .bind(&filename)
    .bind(media_type)
    .bind(size as i64)
    .bind(to_ms(now))
    .bind(actor)
    .bind(inbound_message)
    .execute(&mut **tx)
    .await?;
    Ok((id, filename))
}

pub(crate) async fn touch_case(
    tx: &mut Transaction<'static, Any>,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let row = sqlx::query("UPDATE cases SET last_event_at = $1, version = version + 1 WHERE reference = $2 RETURNING id")
        .bind(to_ms(now))
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {reference}")))?;
    get_i64(&row, "id")
}

/// Appends to a case's journal.
pub(crate) async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_events (case_id, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(case_id)
    .bind(to_ms(at))
    .bind(actor)
    .bind(kind)
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::with_test_store;
    use sportello_domain::roles::Role;
    use sportello_domain::workflow::WorkflowError;

    pub(crate) fn request(case_type: &str) -> NewCase {
        NewCase {
            case_type: case_type.into(),
            subject: "Permesso residenti".into(),
            description: String::new(),
            channel: Channel::Counter,
            citizen: CitizenInput {
                fiscal_code: Some(FiscalCode::parse("RSSMRA80A01H501U").unwrap()),
                name: Some("Mario Rossi".into()),
                email: Some("Mario.Rossi@example.it".into()),
                ..CitizenInput::default()
            },
            fields: serde_json::Map::new(),
            flags: vec![],
            actor: "op1".into(),
            document_sha256: None,
            registered_as: None,
            terms: None,
        }
    }

    #[tokio::test]
    async fn queues_filter_by_flag_open_and_coming_due_date() {
        with_test_store(|store, clock| async move {
            let mut flagged = request("ztl_permit");
            flagged.flags = vec!["unsorted_scan".into()];
            let flagged = store.create_case(flagged).await.unwrap().summary.reference;
            clock.advance(Duration::days(27));
            let young = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let closed = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            store
                .apply_action(&closed, &Action::Withdraw, Some("ritirata"), "op1")
                .await
                .unwrap();
            let refs = |filter: CaseFilter| {
                let store = store.clone();
                async move {
                    let (items, total) = store
                        .list_cases(&CaseFilter {
                            per_page: 50,
                            ..filter
                        })
                        .await
                        .unwrap();
                    assert_eq!(total as usize, items.len());
                    let mut refs: Vec<String> = items.into_iter().map(|c| c.reference).collect();
                    refs.sort();
                    refs
                }
            };
            let flag = |f: &str| CaseFilter {
                flag: Some(f.into()),
                ..CaseFilter::default()
            };
            assert_eq!(
                refs(flag("unsorted_scan")).await,
                std::slice::from_ref(&flagged)
            );
            assert!(refs(flag("unsorted")).await.is_empty(), "whole names only");
            assert!(refs(flag("unsorted%scan")).await.is_empty(), "no wildcards");
            let open = CaseFilter {
                open: true,
                ..CaseFilter::default()
            };
            assert_eq!(refs(open).await, [flagged.clone(), young.clone()]);
            // The first case is due in 3 days (its 30 days end on a working day or later).
            let soon = CaseFilter {
                due_within_days: Some(5),
                ..CaseFilter::default()
            };
            let due_soon = refs(soon).await;
            assert!(
                due_soon.contains(&flagged) && !due_soon.contains(&young),
                "{due_soon:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_flag_dealt_with_is_cleared_and_journaled() {
        with_test_store(|store, _clock| async move {
            let mut flagged = request("ztl_permit");
            flagged.flags = vec!["needs_attention".into(), "ocr_failed".into()];
            let reference = store.create_case(flagged).await.unwrap().summary.reference;
            let case = store
                .clear_flag(&reference, "needs_attention", Some("risposto"), "op1")
                .await
                .unwrap();
            assert_eq!(case.summary.flags, ["ocr_failed"]);
            let last = case.timeline.last().unwrap();
            assert_eq!(
                (last.kind.as_str(), last.actor.as_str()),
                ("flag_cleared", "op1")
            );
            assert_eq!(last.detail["note"], "risposto");
            let again = store
                .clear_flag(&reference, "needs_attention", None, "op1")
                .await
                .unwrap();
            assert_eq!(
                again.timeline.len(),
                case.timeline.len(),
                "nothing to clear"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_gauges_are_recorded_once_a_day() {
        use sportello_domain::clock::Clock;
        with_test_store(|store, clock| async move {
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(store.record_daily_gauges().await.unwrap());
            assert!(!store.record_daily_gauges().await.unwrap(), "once a day");
            clock.advance(Duration::days(40));
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(store.record_daily_gauges().await.unwrap());
            let today = rome_date(clock.now());
            let history = store
                .gauge_history(today - Duration::days(60), today)
                .await
                .unwrap();
            let figures: Vec<(i64, i64, i64)> = history
                .iter()
                .map(|g| (g.open, g.overdue, g.orphan))
                .collect();
            // 40 days on, the first case is late and orphan (unassigned, no news).
            assert_eq!(figures, [(1, 0, 0), (2, 1, 1)]);
            assert_eq!(history[1].day, date_text(today));
        })
        .await;
    }

    #[tokio::test]
    async fn a_new_case_has_reference_protocol_and_clock() {
        with_test_store(|store, _clock| async move {
            let case = store.create_case(request("ztl_permit")).await.unwrap();
            assert_eq!(case.summary.reference, "ZTL-2026-000001");
            assert_eq!(case.summary.protocol.as_deref(), Some("2026/0000001"));
            assert_eq!(case.summary.status, "received");
            assert_eq!(case.summary.due_at, "2026-12-28");
            assert_eq!(
                (
                    case.summary.sla.state.as_str(),
                    case.summary.sla.days_left,
                    case.summary.sla.term_days
                ),
                ("running", 32, 30)
            );
            assert_eq!(case.summary.received_at, "2026-11-26T10:30:00+01:00");
            assert_eq!(case.summary.priority, "normal");
            assert_eq!(
                case.citizen.email.as_deref(),
                Some("mario.rossi@example.it")
            );
            assert_eq!(case.timeline.len(), 1);
            assert_eq!(case.timeline[0].kind, "created");
            let cude = store.create_case(request("cude")).await.unwrap();
            assert_eq!(
                (
                    cude.summary.reference.as_str(),
                    cude.summary.priority.as_str()
                ),
                ("CUD-2026-000001", "high")
            );
            assert_eq!(cude.summary.protocol.as_deref(), Some("2026/0000002"));
            // Same fiscal code: the same citizen, contacts kept.
            assert_eq!(cude.citizen, case.citizen);
            // Another request with the same fiscal code cannot overwrite the stored contacts;
            // what it gave stays in its journal.
            let mut other = request("ztl_permit");
            other.citizen.email = Some("intruder@example.com".into());
            other.citizen.phone = Some("+39 333 1234567".into());
            let third = store.create_case(other).await.unwrap();
            assert_eq!(
                third.citizen.email.as_deref(),
                Some("mario.rossi@example.it")
            );
            assert_eq!(
                third.citizen.phone.as_deref(),
                Some("+39 333 1234567"),
                "missing contacts are filled in"
            );
            assert_eq!(
                third.timeline[0].detail["contacts_given"]["email"],
                "intruder@example.com"
            );
            let err = store.create_case(request("bogus")).await.unwrap_err();
            assert!(
                matches!(err, StoreError::Invalid { ref field, .. } if field == "case_type"),
                "{err}"
            );
            assert!(matches!(
                store.get_case("ZTL-2026-000099").await,
                Err(StoreError::NotFound(_))
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn references_and_protocol_numbers_have_no_gaps_under_concurrency() {
        with_test_store(|store, _clock| async move { concurrent_creations(store).await }).await;
    }

    #[tokio::test]
    async fn group_commit_keeps_the_same_guarantees() {
        with_test_store(|store, _clock| async move {
            concurrent_creations(store.with_write_batching()).await
        })
        .await;
    }

    async fn concurrent_creations(store: Store) {
        {
            let mut tasks = Vec::new();
            for _ in 0..40 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store.create_case(request("ztl_permit")).await
                }));
            }
            let mut refs = Vec::new();
            let mut protocols = Vec::new();
            for t in tasks {
                let case = t.await.unwrap().unwrap();
                refs.push(case.summary.reference);
                protocols.push(case.summary.protocol.unwrap());
            }
            refs.sort();
            protocols.sort();
            let expected: Vec<String> = (1..=40).map(|n| format!("ZTL-2026-{n:06}")).collect();
            assert_eq!(refs, expected);
            let expected: Vec<String> = (1..=40).map(|n| format!("2026/{n:07}")).collect();
            assert_eq!(protocols, expected);
            assert_eq!(store.verify_register().await.unwrap(), Ok(40));
            let bad = store.create_case(request("nope")).await;
            assert!(
                matches!(bad, Err(StoreError::Invalid { .. })),
                "validated before the batch"
            );
            let next = store.create_case(request("ztl_permit")).await.unwrap();
            assert_eq!(next.summary.reference, "ZTL-2026-000041");
        }
    }

    #[tokio::test]
    async fn integration_pauses_once_and_moves_the_due_date() {
        with_test_store(|store, clock| async move {
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let err = store
                .apply_action(&r, &Action::Issue, None, "op1")
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                StoreError::Workflow(WorkflowError::NotAllowed { .. })
            ));
            store
                .apply_action(&r, &Action::StartReview, None, "op1")
                .await
                .unwrap();
            let missing = Action::RequestIntegration {
                missing: vec!["carta_circolazione".into()],
            };
            let c = store
                .apply_action(&r, &missing, Some("manca il libretto"), "op1")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.status.as_str(), c.summary.sla.state.as_str()),
                ("waiting_citizen", "paused")
            );
            clock.advance(Duration::days(5));
            let c = store.get_case(&r).await.unwrap();
            assert_eq!(
                (c.summary.sla.paused_days, c.summary.due_at.as_str()),
                (5, "2026-12-31")
            );
            let c = store
                .apply_action(&r, &Action::IntegrationReceived, None, "op1")
                .await
                .unwrap();
            assert_eq!(
                (
                    c.summary.status.as_str(),
                    c.summary.sla.state.as_str(),
                    c.summary.sla.paused_days
                ),
                ("in_review", "running", 5)
            );
            assert_eq!(c.summary.due_at, "2026-12-31"); // 26/11 + 30 + 5 paused days
            let again = store
                .apply_action(&r, &missing, None, "op1")
                .await
                .unwrap_err();
            assert!(matches!(
                again,
                StoreError::Workflow(WorkflowError::IntegrationAlreadyRequested)
            ));
            let kinds: Vec<&str> = c.timeline.iter().map(|e| e.kind.as_str()).collect();
            assert_eq!(kinds, vec!["created", "action", "action", "action"]);
            assert_eq!(c.timeline[2].detail["missing"][0], "carta_circolazione");
            assert_eq!(c.timeline[2].detail["note"], "manca il libretto");
        })
        .await;
    }

    #[tokio::test]
    async fn rejection_needs_notice_and_lapsed_pauses_are_closed_by_the_tick() {
        with_test_store(|store, clock| async move {
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let reasons = vec!["residenza non nella ZTL".to_string()];
            store
                .apply_action(&r, &Action::StartReview, None, "op1")
                .await
                .unwrap();
            let err = store
                .apply_action(
                    &r,
                    &Action::Reject {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                StoreError::Workflow(WorkflowError::NoRejectionNotice)
            ));
            store
                .apply_action(
                    &r,
                    &Action::NotifyRejection {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap();
            let early = store
                .apply_action(
                    &r,
                    &Action::Reject {
                        reasons: reasons.clone(),
                    },
                    None,
                    "op1",
                )
                .await
                .unwrap_err();
            assert!(
                matches!(early, StoreError::Workflow(WorkflowError::NoticePeriodOpen)),
                "{early}"
            );
            clock.advance(Duration::days(12));
            assert_eq!(store.sla_tick().await.unwrap(), 1);
            assert_eq!(store.sla_tick().await.unwrap(), 0, "the tick is idempotent");
            let c = store.get_case(&r).await.unwrap();
            assert_eq!(
                (c.summary.sla.state.as_str(), c.summary.sla.paused_days),
                ("running", 10)
            );
            assert_eq!(
                c.timeline.last().map(|e| e.kind.as_str()),
                Some("pause_lapsed")
            );
            let c = store
                .apply_action(&r, &Action::Reject { reasons }, None, "op1")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.status.as_str(), c.summary.sla.state.as_str()),
                ("rejected", "stopped")
            );

            let r2 = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            let missing = Action::RequestIntegration {
                missing: vec!["documento_identita".into()],
            };
            store
                .apply_action(&r2, &missing, None, "op1")
                .await
                .unwrap();
            clock.advance(Duration::days(31));
            store.sla_tick().await.unwrap();
            let c = store.get_case(&r2).await.unwrap();
            assert!(
                c.summary.flags.contains(&"integration_expired".to_string()),
                "{:?}",
                c.summary.flags
            );
            assert_eq!(
                (
                    c.summary.status.as_str(),
                    c.summary.sla.state.as_str(),
                    c.summary.sla.paused_days
                ),
                ("waiting_citizen", "running", 30)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn assignment_checks_the_user() {
        with_test_store(|store, _clock| async move {
            store.add_user("op1", "Op", Role::Operator).await.unwrap();
            store
                .add_user("vigile", "Vigile", Role::Police)
                .await
                .unwrap();
            let r = store
                .create_case(request("ztl_permit"))
                .await
                .unwrap()
                .summary
                .reference;
            for user in ["ghost", "vigile"] {
                let err = store
                    .apply_action(&r, &Action::Assign { user: user.into() }, None, "sup")
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, StoreError::Invalid { ref field, .. } if field == "user"),
                    "{user}: {err}"
                );
            }
            let c = store
                .apply_action(&r, &Action::Assign { user: "op1".into() }, None, "sup")
                .await
                .unwrap();
            assert_eq!(
                (c.summary.assignee.as_deref(), c.summary.status.as_str()),
                (Some("op1"), "received")
            );
            assert_eq!(c.timeline.last().map(|e| e.kind.as_str()), Some("assigned"));
        })
        .await;
    }

    #[tokio::test]
    async fn lists_filter_count_and_page() {
        with_test_store(|store, clock| async move {
            store.add_user("op1", "Op", Role::Operator).await.unwrap();
            for i in 0..7 {
                let mut req = request(if i % 2 == 0 { "ztl_permit" } else { "cude" });
                req.subject = format!("Domanda numero {i}");
                if i == 3 {
                    req.citizen = CitizenInput {
                        name: Some("Giulia Bianchi".into()),
                        ..CitizenInput::default()
                    };
                }
                store.create_case(req).await.unwrap();
                clock.advance(Duration::hours(1));
            }
            let all = CaseFilter {
                page: 1,
                per_page: 3,
                ..CaseFilter::default()
            };
            let (items, total) = store.list_cases(&all).await.unwrap();
            assert_eq!((items.len(), total), (3, 7));
            assert_eq!(items[0].reference, "ZTL-2026-000004", "newest first");
            let (page3, _) = store
                .list_cases(&CaseFilter {
                    page: 3,
                    ..all.clone()
                })
                .await
                .unwrap();
            assert_eq!(page3.len(), 1);
            let cude = CaseFilter {
                case_type: Some("cude".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&cude).await.unwrap().1, 3);
            let text = CaseFilter {
                q: Some("bianchi".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            let (found, n) = store.list_cases(&text).await.unwrap();
            assert_eq!(
                (n, found[0].citizen_name.as_deref()),
                (1, Some("Giulia Bianchi"))
            );
            let wildcard = CaseFilter {
                q: Some("%".into()),
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(
                store.list_cases(&wildcard).await.unwrap().1,
                0,
                "LIKE wildcards are escaped"
            );
            store
                .apply_action(
                    "ZTL-2026-000001",
                    &Action::Assign { user: "op1".into() },
                    None,
                    "sup",
                )
                .await
                .unwrap();
            let orphan = CaseFilter {
                orphan: true,
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&orphan).await.unwrap().1, 0);
            // Three working days later (Thu 26/11 → Tue 1/12) the six unassigned cases are orphan.
            clock.advance(Duration::days(5));
            let (orphans, n) = store.list_cases(&orphan).await.unwrap();
            assert_eq!(n, 6);
            assert!(orphans.iter().all(|c| c.orphan && c.assignee.is_none()));
            // Ten days without events: the assigned one too.
            clock.advance(Duration::days(6));
            assert_eq!(store.list_cases(&orphan).await.unwrap().1, 7);
            let overdue = CaseFilter {
                overdue: true,
                per_page: 50,
                page: 1,
                ..CaseFilter::default()
            };
            assert_eq!(store.list_cases(&overdue).await.unwrap().1, 0);
            clock.advance(Duration::days(30));
            let (late, n) = store.list_cases(&overdue).await.unwrap();
            assert_eq!(n, 7);
            assert!(late.iter().all(|c| c.overdue && c.sla.days_left < 0));
            let gauges = store.case_gauges().await.unwrap();
            assert_eq!(
                (gauges["open"], gauges["overdue"], gauges["orphan"]),
                (7, 7, 7)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_journal_is_append_only() {
        with_test_store(|store, _clock| async move {
            store.create_case(request("ztl_permit")).await.unwrap();
            assert!(
                sqlx::query("UPDATE case_events SET actor = 'x'")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("DELETE FROM case_events")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
        })
        .await;
    }
}
