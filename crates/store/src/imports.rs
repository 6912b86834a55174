//! Cases taken over from another system (`sportello import redmine`, CONTRACT §8.4).
//!
//! An imported case keeps its history: received when the old system received it, its
//! journal entries at their own times and by their own authors, its documents, its status
//! and its closing time. It is not registered again in today's protocol register (it was
//! registered in its time): the old number is kept as given. Each issue is written in one
//! transaction together with the row of `imported_issues` that remembers it, so a run
//! stopped anywhere leaves whole cases, and a second run adds only what is new.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use sportello_domain::calendar::rome_date;
use sportello_domain::case::{Reference, Status};
use sportello_domain::sla;
use sqlx::{Any, Transaction};

use crate::cases::{CaseTerms, CitizenInput};
use crate::citizens::upsert_citizen;
use crate::documents::insert_document;
use crate::journal::insert_event;
use crate::{Result, Store, StoreError, date_text, get_i64, get_str, to_ms};

/// One entry of an imported case's journal, in the order it happened.
#[derive(Debug, Clone)]
pub struct ImportedEntry {
    /// What identifies it in the old system (`j12`, `a7`): added once.
    pub key: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it (a login, a name, or the old system's word for a deleted user).
    pub actor: String,
    /// The journal's kind (`note`, `status_changed`, `assigned`, `document_added`…).
    pub kind: String,
    /// Its details.
    pub detail: serde_json::Value,
    /// A document it adds, already in the blob store.
    pub document: Option<ImportedDocument>,
}

/// A document of an imported case, already in the blob store under its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDocument {
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// File name as the old system had it (cleaned for display).
    pub filename: String,
    /// Media type.
    pub media_type: String,
}

/// An issue of the old system as the case it becomes (or, on a later run, what is new).
#[derive(Debug, Clone)]
pub struct ImportedCase {
    /// Which system and project (`https://redmine.example/projects/ztl`).
    pub source: String,
    /// The issue's id there.
    pub issue_id: i64,
    /// The issue's last change there, as it says it: unchanged means nothing to do.
    pub updated_on: String,
    /// Case type id (must exist).
    pub case_type: String,
    /// Subject.
    pub subject: String,
    /// Description.
    pub description: String,
    /// The citizen.
    pub citizen: CitizenInput,
    /// Fields, including the old protocol number and the issue id.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Flags for bad data (the raw values are in `fields`).
    pub flags: Vec<String>,
    /// The protocol number it had, kept on the case (not registered again).
    pub protocol: Option<String>,
    /// When it was received (the issue's creation).
    pub received_at: DateTime<Utc>,
    /// Who opened it.
    pub created_by: String,
    /// Its status now.
    pub status: Status,
    /// The login of its assignee, when a user of that login exists here.
    pub assignee: Option<String>,
    /// When it was closed (for a closed status).
    pub closed_at: Option<DateTime<Utc>>,
    /// Legal term and service standard of its own (the permit category's).
    pub terms: Option<CaseTerms>,
    /// Journal entries and documents, oldest first.
    pub entries: Vec<ImportedEntry>,
}

/// What an import did with one issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new case, with its reference.
    Created(String),
    /// New journal entries or documents added to the case.
    Updated(String),
    /// Nothing new.
    Unchanged(String),
}

/// What is already imported of one issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedState {
    /// The issue's `updated_on` at the last import.
    pub updated_on: String,
    /// Keys of the entries already on the case.
    pub items: HashSet<String>,
}

impl Store {
    /// What is already imported of every issue of `source` (one query, read once per run).
    pub async fn imported_issues(&self, source: &str) -> Result<HashMap<i64, ImportedState>> {
        let rows = sqlx::query(
            "SELECT issue_id, updated_on, items FROM imported_issues WHERE source = $1",
        )
        .bind(source)
        .fetch_all(&self.read)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let items: Vec<String> =
                serde_json::from_str(&get_str(&row, "items")?).unwrap_or_default();
            out.insert(
                get_i64(&row, "issue_id")?,
                ImportedState {
                    updated_on: get_str(&row, "updated_on")?,
                    items: items.into_iter().collect(),
                },
            );
        }
        Ok(out)
    }

    /// Writes one issue in one transaction: a new case with its history, or only the
    /// entries the case does not have yet (and its status, assignee and closing time as
    /// the old system has them now). Running it again with the same issue changes nothing.
    pub async fn import_case(&self, issue: ImportedCase) -> Result<ImportOutcome> {
        let case_type = self.case_type_or_invalid(&issue.case_type)?.clone();
        if issue.subject.trim().is_empty() {
            return Err(StoreError::invalid("subject", "must not be empty"));
        }
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        let known = sqlx::query(
            "SELECT i.case_id, i.items, i.updated_on, c.reference FROM imported_issues i \
             JOIN cases c ON c.id = i.case_id WHERE i.source = $1 AND i.issue_id = $2",
        )
        .bind(&issue.source)
        .bind(issue.issue_id)
        .fetch_optional(&mut *tx)
        .await?;
        let assignee_id = match &issue.assignee {
            Some(login) => sqlx::query("SELECT id FROM users WHERE login = $1")
                .bind(login)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| get_i64(&r, "id"))
                .transpose()?,
            None => None,
        };
        let closed_at = (issue.status == Status::Closed).then(|| {
            issue
                .closed_at
                .or_else(|| issue.entries.last().map(|e| e.at))
                .unwrap_or(issue.received_at)
        });
        let last_event_at = issue
            .entries
            .iter()
            .map(|e| e.at)
            .chain(closed_at)
            .fold(issue.received_at, DateTime::max);

        if let Some(row) = known {
            let case_id = get_i64(&row, "case_id")?;
            let reference = get_str(&row, "reference")?;
            let mut items: Vec<String> =
                serde_json::from_str(&get_str(&row, "items")?).unwrap_or_default();
            let have: HashSet<String> = items.iter().cloned().collect();
            let new: Vec<&ImportedEntry> = issue
                .entries
                .iter()
                .filter(|e| !have.contains(&e.key))
                .collect();
            if new.is_empty() && get_str(&row, "updated_on")? == issue.updated_on {
                return Ok(ImportOutcome::Unchanged(reference));
            }
            for entry in &new {
                write_entry(&mut tx, case_id, entry).await?;
                items.push(entry.key.clone());
            }
            sqlx::query(
                "UPDATE cases SET status = $1, assignee_id = $2, closed_at = $3, \
                 last_event_at = $4, version = version + 1 WHERE id = $5",
            )
            .bind(issue.status.as_str())
            .bind(assignee_id)
            .bind(closed_at.map(to_ms))
            .bind(to_ms(last_event_at))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE imported_issues SET items = $1, updated_on = $2, imported_at = $3 \
                 WHERE source = $4 AND issue_id = $5",
            )
            .bind(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))
            .bind(&issue.updated_on)
            .bind(to_ms(now))
            .bind(&issue.source)
            .bind(issue.issue_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(if new.is_empty() {
                ImportOutcome::Unchanged(reference)
            } else {
                ImportOutcome::Updated(reference)
            });
        }

        let (term_days, service_days) = match issue.terms {
            Some(t) => (t.term_days, t.service_days),
            None => (case_type.term_days, case_type.service_days),
        };
        // A case received in the future of the clock is taken as received now.
        let received_at = crate::from_ms(to_ms(issue.received_at.min(now)))?;
        let received_on = rome_date(received_at);
        let year = received_on.year();
        let seq = advance(&mut tx, &case_type.prefix, year).await?;
        let reference = Reference {
            prefix: case_type.prefix.clone(),
            year,
            seq,
        }
        .to_string();
        let citizen = upsert_citizen(&mut tx, &issue.citizen, now).await?;
        let mut flags: Vec<String> = Vec::new();
        for f in &issue.flags {
            if !flags.contains(f) {
                flags.push(f.clone());
            }
        }
        let due_on = sla::due_date(&self.settings.calendar, received_on, term_days, 0);
        let row = sqlx::query(
            "INSERT INTO cases (reference, case_type, status, subject, description, channel, citizen_id, assignee_id, \
             priority, protocol, received_at, received_on, term_days, service_days, paused_days, due_on, pause_kind, \
             pause_started_on, integration_requested, rejection_notified, flags, fields, last_event_at, closed_at, version, \
             ingested_at) \
             VALUES ($1, $2, $3, $4, $5, 'counter', $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, NULL, NULL, 0, 0, \
             $15, $16, $17, $18, 1, $19) RETURNING id",
        )
        .bind(&reference)
        .bind(&case_type.id)
        .bind(issue.status.as_str())
        .bind(issue.subject.trim())
        .bind(issue.description.trim())
        .bind(citizen.as_ref().map(|(id, _)| *id))
        .bind(assignee_id)
        .bind(case_type.priority.as_str())
        .bind(issue.protocol.clone())
        .bind(to_ms(received_at))
        .bind(date_text(received_on))
        .bind(i64::from(term_days))
        .bind(i64::from(service_days))
        .bind(date_text(due_on))
        .bind(serde_json::to_string(&flags).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::Value::Object(issue.fields.clone()).to_string())
        .bind(to_ms(last_event_at))
        .bind(closed_at.map(to_ms))
        .bind(to_ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let case_id = get_i64(&row, "id")?;
        let created = serde_json::json!({
            "channel": "counter",
            "protocol": issue.protocol,
            "flags": flags,
            "imported_from": issue.source,
            "redmine_id": issue.issue_id,
        });
        insert_event(
            &mut tx,
            case_id,
            received_at,
            &issue.created_by,
            "created",
            &created,
        )
        .await?;
        let mut items = Vec::with_capacity(issue.entries.len());
        for entry in &issue.entries {
            write_entry(&mut tx, case_id, entry).await?;
            items.push(entry.key.clone());
        }
        let fields = serde_json::Value::Object(issue.fields);
        let citizen_view = citizen.map(|(_, v)| v).unwrap_or_default();
        let text = crate::search::case_text(
            &reference,
            issue.subject.trim(),
            issue.description.trim(),
            &fields,
            &citizen_view,
        );
        crate::search::insert_case_entries(&mut tx, &[(case_id, text)]).await?;
        sqlx::query(
            "INSERT INTO imported_issues (source, issue_id, case_id, updated_on, items, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&issue.source)
        .bind(issue.issue_id)
        .bind(case_id)
        .bind(&issue.updated_on)
        .bind(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ImportOutcome::Created(reference))
    }
}

/// One journal entry, with its document when it adds one, at its own time.
async fn write_entry(
    tx: &mut Transaction<'static, Any>,
    case_id: i64,
    entry: &ImportedEntry,
) -> Result<()> {
    let mut detail = entry.detail.clone();
    if let Some(doc) = &entry.document {
        let (id, filename) = insert_document(
            tx,
            case_id,
            (&doc.sha256, doc.size, &doc.filename, &doc.media_type),
            entry.at,
            &entry.actor,
            None,
        )
        .await?;
        if let Some(map) = detail.as_object_mut() {
            map.insert("document_id".into(), id.into());
            map.insert("filename".into(), filename.into());
            map.insert("sha256".into(), doc.sha256.clone().into());
            map.insert("size".into(), doc.size.into());
        }
    }
    insert_event(tx, case_id, entry.at, &entry.actor, &entry.kind, &detail).await
}

/// The next number of a prefix's reference counter for a year (gap-free: the counter row
/// is written first and rolls back with the transaction).
async fn advance(tx: &mut Transaction<'static, Any>, prefix: &str, year: i32) -> Result<u64> {
    let row = sqlx::query(
        "INSERT INTO sequences (name, value) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
    )
    .bind(format!("case:{prefix}:{year}"))
    .fetch_one(&mut **tx)
    .await?;
    Ok(get_i64(&row, "value")? as u64)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use sportello_domain::clock::Clock;
    use sportello_domain::fiscal_code::FiscalCode;
    use sportello_domain::roles::Role;

    use super::*;
    use crate::testing::with_test_store;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).single().unwrap()
    }

    fn issue(id: i64, status: Status) -> ImportedCase {
        let mut fields = serde_json::Map::new();
        fields.insert("redmine_id".into(), id.into());
        fields.insert("protocol".into(), "2019/0004711".into());
        ImportedCase {
            source: "http://redmine.test/projects/ztl".into(),
            issue_id: id,
            updated_on: "2019-03-04T10:00:00Z".into(),
            case_type: "ztl_permit".into(),
            subject: "Permesso residenti".into(),
            description: "Richiesta".into(),
            citizen: CitizenInput {
                fiscal_code: Some(FiscalCode::parse("RSSMRA80A01H501U").unwrap()),
                ..CitizenInput::default()
            },
            fields,
            flags: vec!["invalid_fiscal_code".into(), "invalid_fiscal_code".into()],
            protocol: Some("2019/0004711".into()),
            received_at: at(2019, 3, 1),
            created_by: "anna".into(),
            status,
            assignee: Some("op1".into()),
            closed_at: (status == Status::Closed).then(|| at(2019, 3, 20)),
            terms: None,
            entries: vec![ImportedEntry {
                key: "j1".into(),
                at: at(2019, 3, 2),
                actor: "op1".into(),
                kind: "note".into(),
                detail: serde_json::json!({"note": "privata", "internal": true}),
                document: None,
            }],
        }
    }

    #[tokio::test]
    async fn an_issue_keeps_its_history_and_is_imported_once() {
        with_test_store(|store, _clock| async move {
            store.add_user("op1", "Op", Role::Operator).await.unwrap();
            let outcome = store.import_case(issue(7, Status::Closed)).await.unwrap();
            assert_eq!(outcome, ImportOutcome::Created("ZTL-2019-000001".into()));
            let case = store.get_case("ZTL-2019-000001").await.unwrap();
            assert_eq!(case.summary.received_at, "2019-03-01T10:00:00+01:00");
            assert_eq!(case.summary.status, "closed");
            assert_eq!(case.summary.protocol.as_deref(), Some("2019/0004711"));
            assert_eq!(case.summary.assignee.as_deref(), Some("op1"));
            assert_eq!(case.summary.flags, vec!["invalid_fiscal_code".to_owned()]);
            assert_eq!(case.summary.sla.state, "stopped");
            assert_eq!(case.timeline.len(), 2);
            assert_eq!(case.timeline[0].at, "2019-03-01T10:00:00+01:00");
            assert_eq!(case.timeline[0].actor, "anna");
            assert_eq!(case.timeline[1].detail["internal"], true);
            assert_eq!(
                store.verify_register().await.unwrap(),
                Ok(0),
                "not registered again"
            );
            // Again: nothing changes.
            let again = store.import_case(issue(7, Status::Closed)).await.unwrap();
            assert_eq!(again, ImportOutcome::Unchanged("ZTL-2019-000001".into()));
            assert_eq!(store.get_case("ZTL-2019-000001").await.unwrap(), case);
            // A journal added later in the old system comes over, once.
            let mut later = issue(7, Status::Closed);
            later.updated_on = "2019-04-01T10:00:00Z".into();
            later.entries.push(ImportedEntry {
                key: "j2".into(),
                at: at(2019, 4, 1),
                actor: "Anonymous".into(),
                kind: "note".into(),
                detail: serde_json::json!({"note": "dopo", "internal": false}),
                document: None,
            });
            let updated = store.import_case(later.clone()).await.unwrap();
            assert_eq!(updated, ImportOutcome::Updated("ZTL-2019-000001".into()));
            assert_eq!(
                store.import_case(later).await.unwrap(),
                ImportOutcome::Unchanged("ZTL-2019-000001".into())
            );
            let case = store.get_case("ZTL-2019-000001").await.unwrap();
            assert_eq!(case.timeline.len(), 3);
            let known = store
                .imported_issues("http://redmine.test/projects/ztl")
                .await
                .unwrap();
            assert_eq!(known[&7].items.len(), 2);
            assert!(store.imported_issues("other").await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn an_open_imported_case_runs_its_clock_from_its_received_date() {
        with_test_store(|store, clock| async move {
            let mut open = issue(8, Status::Received);
            open.assignee = Some("nobody".into());
            open.received_at = clock.now() - Duration::days(10);
            let outcome = store.import_case(open).await.unwrap();
            let ImportOutcome::Created(reference) = outcome else {
                panic!("{outcome:?}")
            };
            let case = store.get_case(&reference).await.unwrap();
            assert_eq!(case.summary.assignee, None, "no such user here");
            assert_eq!(case.summary.sla.state, "running");
            assert_eq!(case.summary.sla.term_days, 30);
            assert!(case.summary.sla.days_left <= 22, "{:?}", case.summary.sla);
            let mut bad = issue(9, Status::Received);
            bad.case_type = "nope".into();
            assert!(matches!(
                store.import_case(bad).await,
                Err(StoreError::Invalid { .. })
            ));
        })
        .await;
    }
}
