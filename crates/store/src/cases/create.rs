//! Opening cases: a gap-free reference and a protocol number taken in the same transaction
//! as the case, its citizen, its journal and its search entries.

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use sportello_domain::calendar::rome_date;
use sportello_domain::case::{CaseType, Reference, Status};
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::register::Direction;
use sportello_domain::sla;
use sqlx::{Any, Transaction};

use super::model::{CaseRecord, CaseView, CreatedCase, EventView, NewCase, json_text};
use crate::citizens::{correspondent_of, upsert_citizen};
use crate::register::{Registration, register_many_in};
use crate::time::rome_rfc3339;
use crate::values::values;
use crate::{Result, Store, StoreError, date_text, get_i64, get_str, to_ms};

impl Store {
    pub(crate) fn case_type_or_invalid(&self, id: &str) -> Result<&CaseType> {
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
    pub(super) fn check_new_case(&self, new: &NewCase) -> Result<()> {
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
        // 16 parameters a case; the last (ingested_at) also stands for last_event_at.
        let rows = values(
            "($1, $2, 'received', $3, $4, $5, $6, NULL, $7, $8, $9, $10, $11, $12, 0, $13, NULL, NULL, 0, 0, \
             $14, $15, $16, NULL, 1, $16)",
            batch.len(),
        );
        let sql = format!(
            "INSERT INTO cases (reference, case_type, status, subject, description, channel, citizen_id, assignee_id, \
             priority, protocol, received_at, received_on, term_days, service_days, paused_days, due_on, pause_kind, \
             pause_started_on, integration_requested, rejection_notified, flags, fields, last_event_at, closed_at, version, \
             ingested_at) \
             VALUES {rows} RETURNING id, reference"
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
        let events = values("($1, $2, $3, $4, $5)", batch.len());
        let sql =
            format!("INSERT INTO case_events (case_id, at, actor, kind, detail) VALUES {events}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::tests::request;
    use crate::testing::with_test_store;

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
}
