//! The citizen's data rights (GDPR art. 15 and 17) and retention (CONTRACT §8.5): what the
//! office holds about a person, their anonymisation, and the deletion of documents past
//! their retention period.
//!
//! Anonymising a case rewrites, in one transaction, everything that names the person —
//! the case's subject, description and fields, its journal's text, its messages in and
//! out (sender, subject, body, recipient), call notes and appointments, its documents'
//! file names and extracted (OCR) text, expired permits' holder — with the person's
//! pseudonym (`ANON-` and 10 random hex digits, drawn once per person and kept on the
//! citizen row), re-indexes what changed for search, and moves the case to a citizen row
//! that holds nothing but the pseudonym (the original row is deleted once no case names
//! it). Dates, statuses, case types, channels and every figure of the reports stay.
//!
//! What is kept, and why:
//! - the protocol register (`protocol_register`: the correspondent's name, the subject) is
//!   never rewritten: DPR 445/2000 art. 53-55 requires it unalterable, GDPR art. 17(3)(b)
//!   exempts data kept to meet a legal obligation, and its hash chain must still verify;
//! - the bytes of registered documents and of inbound messages as received: the register
//!   names them by hash (the database trigger `documents_retained` refuses to delete them);
//! - permits still in force keep their holder: the police check them at the gates;
//! - the audit trail of reads (`access_log`) and the security log are append-only records
//!   of staff actions, kept as evidence of who saw what.
//!
//! The case journal (`case_events`) is append-only by trigger. Its entries are never
//! deleted and their instant, actor, kind and case never change; their text (`detail`) can
//! be rewritten only while an unfinished `privacy_journal` row names the case — a row this
//! module writes at the start of the case's transaction and finishes at its end, so that
//! outside an anonymisation (and after any commit) the journal is as immutable as before,
//! and every rewrite is itself journaled (who, when, why, how many fields) without the
//! personal data it removed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_domain::privacy::Redactor;
use sqlx::{Any, Transaction};

use crate::citizens::CitizenView;
use crate::documents::BlobStore;
use crate::journal::insert_event;
use crate::{Result, Store, StoreError, get_i64, get_opt_i64, get_opt_str, get_str, to_ms};

/// A person as the office knows them: their citizen record.
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    /// Row id of the citizen.
    #[serde(skip)]
    pub id: i64,
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
    /// Postal address.
    pub address: Option<String>,
    /// How they prefer to be reached.
    pub preferred_channel: Option<String>,
    /// Their pseudonym, once drawn.
    #[serde(skip)]
    pub pseudonym: Option<String>,
}

/// One of a person's cases.
#[derive(Debug, Clone, Serialize)]
pub struct PersonCase {
    /// Row id.
    #[serde(skip)]
    pub id: i64,
    /// Reference.
    pub reference: String,
    /// Case type.
    pub case_type: String,
    /// Status.
    pub status: String,
}

/// What anonymising one case did (no personal data in it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseAnonymised {
    /// The case.
    pub reference: String,
    /// The case type.
    pub case_type: String,
    /// The pseudonym written.
    pub pseudonym: String,
    /// Texts rewritten (fields, journal entries, messages, document texts…).
    pub fields: u64,
    /// Documents deleted (retention only).
    pub documents_deleted: u64,
    /// Documents kept because the protocol register names them (retention only).
    pub documents_kept: u64,
    /// Whether the case had been anonymised before (nothing was left to do).
    pub already: bool,
}

/// A closed case past its retention period.
#[derive(Debug, Clone)]
pub struct RetentionCandidate {
    /// Row id.
    pub id: i64,
    /// Reference.
    pub reference: String,
    /// Documents not named by the register (would be deleted).
    pub deletable_documents: u64,
    /// Documents the register names (kept).
    pub registered_documents: u64,
}

const PERSON_COLUMNS: &str =
    "id, fiscal_code, name, email, pec, phone, fax, address, preferred_channel, pseudonym";

fn person_of_row(row: &sqlx::any::AnyRow) -> Result<Person> {
    Ok(Person {
        id: get_i64(row, "id")?,
        fiscal_code: get_opt_str(row, "fiscal_code")?,
        name: get_opt_str(row, "name")?,
        email: get_opt_str(row, "email")?,
        pec: get_opt_str(row, "pec")?,
        phone: get_opt_str(row, "phone")?,
        fax: get_opt_str(row, "fax")?,
        address: get_opt_str(row, "address")?,
        preferred_channel: get_opt_str(row, "preferred_channel")?,
        pseudonym: get_opt_str(row, "pseudonym")?,
    })
}

/// A new pseudonym: `ANON-` and 10 random hex digits (random, not derived from the fiscal
/// code, which is guessable and would let anyone re-identify the person by hashing).
fn new_pseudonym() -> String {
    let bytes: [u8; 5] = rand::random();
    format!("ANON-{}", hex::encode(bytes))
}

/// Adds what identifies the person to a redactor.
fn add_person(redactor: &mut Redactor, p: &Person) {
    if let Some(name) = &p.name
        && Some(name) != p.pseudonym.as_ref()
    {
        redactor.add_name(name);
    }
    for value in [&p.fiscal_code, &p.email, &p.pec, &p.address]
        .into_iter()
        .flatten()
    {
        if Some(value) != p.pseudonym.as_ref() {
            redactor.add_value(value);
        }
    }
    for number in [&p.phone, &p.fax].into_iter().flatten() {
        redactor.add_phone(number);
    }
}

/// Adds the contacts given with the case (its `created` journal entry), which may differ
/// from the ones kept on the citizen record.
fn add_contacts_given(redactor: &mut Redactor, detail: &serde_json::Value) {
    let Some(given) = detail.get("contacts_given").and_then(|g| g.as_object()) else {
        return;
    };
    for (key, value) in given {
        let Some(value) = value.as_str() else {
            continue;
        };
        match key.as_str() {
            "name" => redactor.add_name(value),
            "phone" | "fax" => redactor.add_phone(value),
            _ => redactor.add_value(value),
        }
    }
}

impl Store {
    /// The citizen with this fiscal code, if the office knows them.
    pub async fn person_by_fiscal_code(&self, fiscal_code: &str) -> Result<Option<Person>> {
        let sql = format!("SELECT {PERSON_COLUMNS} FROM citizens WHERE fiscal_code = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fiscal_code)
            .fetch_optional(&self.write)
            .await?
            .as_ref()
            .map(person_of_row)
            .transpose()
    }

    /// A person's cases, oldest first.
    pub async fn person_cases(&self, person: &Person) -> Result<Vec<PersonCase>> {
        let rows = sqlx::query(
            "SELECT id, reference, case_type, status FROM cases WHERE citizen_id = $1 ORDER BY received_at, id",
        )
        .bind(person.id)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PersonCase {
                    id: get_i64(r, "id")?,
                    reference: get_str(r, "reference")?,
                    case_type: get_str(r, "case_type")?,
                    status: get_str(r, "status")?,
                })
            })
            .collect()
    }

    /// The permit numbers a person holds or held (by fiscal code, or issued from their cases).
    pub async fn person_permits(
        &self,
        person: &Person,
        cases: &[PersonCase],
    ) -> Result<Vec<String>> {
        let mut numbers = std::collections::BTreeSet::new();
        if let Some(code) = &person.fiscal_code {
            for r in
                sqlx::query("SELECT DISTINCT permit FROM permit_rows WHERE holder_fiscal_code = $1")
                    .bind(code.clone())
                    .fetch_all(&self.write)
                    .await?
            {
                numbers.insert(get_str(&r, "permit")?);
            }
        }
        for case in cases {
            for r in
                sqlx::query("SELECT DISTINCT permit FROM permit_rows WHERE case_reference = $1")
                    .bind(case.reference.clone())
                    .fetch_all(&self.write)
                    .await?
            {
                numbers.insert(get_str(&r, "permit")?);
            }
        }
        Ok(numbers.into_iter().collect())
    }

    /// The inbound messages of a case in full (sender, subject, text as read, the hash of
    /// the bytes received), for the person's copy of their data.
    pub async fn case_messages_full(&self, case_id: i64) -> Result<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT id, channel, sender, subject, received_at, protocol, raw_sha256, body_text \
             FROM inbound_messages WHERE case_id = $1 ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "id": get_i64(r, "id")?,
                    "channel": get_str(r, "channel")?,
                    "sender": get_str(r, "sender")?,
                    "subject": get_str(r, "subject")?,
                    "received_at": crate::time::rome_rfc3339(crate::from_ms(get_i64(r, "received_at")?)?),
                    "protocol": get_opt_str(r, "protocol")?,
                    "raw_sha256": get_str(r, "raw_sha256")?,
                    "text": get_opt_str(r, "body_text")?,
                }))
            })
            .collect()
    }

    /// The calls to make or made about a case (call-back queue), for the person's copy.
    pub async fn case_calls_full(&self, case_id: i64) -> Result<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT reason, phone, script, status, outcome, note, created_at, done_at \
             FROM call_tasks WHERE case_id = $1 ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.write)
        .await?;
        let instant = |ms: Option<i64>| -> Result<Option<String>> {
            ms.map(|ms| crate::from_ms(ms).map(crate::time::rome_rfc3339))
                .transpose()
        };
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "reason": get_str(r, "reason")?,
                    "phone": get_opt_str(r, "phone")?,
                    "script": get_str(r, "script")?,
                    "status": get_str(r, "status")?,
                    "outcome": get_opt_str(r, "outcome")?,
                    "note": get_opt_str(r, "note")?,
                    "created_at": instant(Some(get_i64(r, "created_at")?))?,
                    "done_at": instant(get_opt_i64(r, "done_at")?)?,
                }))
            })
            .collect()
    }

    /// Anonymises one closed case in one transaction (see the module's documentation);
    /// with `delete_documents`, also deletes the case's documents the protocol register
    /// does not name (retention), queuing their bytes for [`Store::sweep_deleted_blobs`].
    /// `action` is what the journal calls it (`anonymise`, `retention`). Anonymising a case
    /// twice finds nothing left to rewrite.
    pub async fn anonymise_case(
        &self,
        case_id: i64,
        actor: &str,
        action: &str,
        reason: &str,
        delete_documents: bool,
    ) -> Result<CaseAnonymised> {
        let now = self.clock.now();
        let mut tx = self.write.begin().await?;
        // Take the case's row lock first, like every change to a case.
        let case = sqlx::query(
            "UPDATE cases SET version = version + 1 WHERE id = $1 \
             RETURNING reference, case_type, status, subject, description, fields, citizen_id",
        )
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("case {case_id}")))?;
        let reference = get_str(&case, "reference")?;
        let status = get_str(&case, "status")?;
        if status != "closed" {
            return Err(StoreError::Conflict(format!(
                "case {reference} is {status}: only closed cases are anonymised"
            )));
        }
        let citizen_id = get_opt_i64(&case, "citizen_id")?;
        let person = match citizen_id {
            Some(id) => {
                let sql = format!("SELECT {PERSON_COLUMNS} FROM citizens WHERE id = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(person_of_row)
                    .transpose()?
            }
            None => None,
        };
        // The person's pseudonym, drawn once and kept on their record.
        let pseudonym = match &person {
            Some(p) => match &p.pseudonym {
                Some(existing) => existing.clone(),
                None => {
                    let row = sqlx::query(
                        "UPDATE citizens SET pseudonym = COALESCE(pseudonym, $1) WHERE id = $2 RETURNING pseudonym",
                    )
                    .bind(new_pseudonym())
                    .bind(p.id)
                    .fetch_one(&mut *tx)
                    .await?;
                    get_str(&row, "pseudonym")?
                }
            },
            None => new_pseudonym(),
        };
        let already = sqlx::query(
            "SELECT 1 AS one FROM privacy_journal WHERE case_id = $1 AND finished_at IS NOT NULL \
             AND action IN ('anonymise', 'retention') LIMIT 1",
        )
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();

        // The journal row that opens the case's journal to this rewrite, and only it.
        let journal = sqlx::query(
            "INSERT INTO privacy_journal (at, actor, action, reason, case_id, pseudonym, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, '{}') RETURNING id",
        )
        .bind(to_ms(now))
        .bind(actor)
        .bind(action)
        .bind(reason)
        .bind(case_id)
        .bind(pseudonym.clone())
        .fetch_one(&mut *tx)
        .await?;
        let journal_id = get_i64(&journal, "id")?;

        let mut redactor = Redactor::new(&pseudonym);
        if let Some(p) = &person {
            add_person(&mut redactor, p);
        }
        let events =
            sqlx::query("SELECT id, kind, detail FROM case_events WHERE case_id = $1 ORDER BY id")
                .bind(case_id)
                .fetch_all(&mut *tx)
                .await?;
        let mut parsed = Vec::with_capacity(events.len());
        for e in &events {
            let detail: serde_json::Value =
                serde_json::from_str(&get_str(e, "detail")?).unwrap_or(serde_json::Value::Null);
            if get_str(e, "kind")? == "created" {
                add_contacts_given(&mut redactor, &detail);
            }
            parsed.push((get_i64(e, "id")?, detail));
        }
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut bump = |what: &'static str, n: u64| {
            if n > 0 {
                *counts.entry(what).or_default() += n;
            }
        };

        // The case itself.
        let subject = get_str(&case, "subject")?;
        let description = get_str(&case, "description")?;
        let mut fields: serde_json::Value =
            serde_json::from_str(&get_str(&case, "fields")?).unwrap_or_default();
        let new_subject = redactor.redact(&subject);
        let new_description = redactor.redact(&description);
        let fields_changed = redactor.redact_json(&mut fields) as u64;
        bump(
            "case",
            u64::from(new_subject.is_some())
                + u64::from(new_description.is_some())
                + fields_changed,
        );
        let subject = new_subject.unwrap_or(subject);
        let description = new_description.unwrap_or(description);
        // The journal's text.
        for (id, mut detail) in parsed {
            let n = redactor.redact_json(&mut detail) as u64;
            if n > 0 {
                sqlx::query("UPDATE case_events SET detail = $1 WHERE id = $2")
                    .bind(detail.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                bump("journal", n);
            }
        }
        // Messages received.
        let rows = sqlx::query(
            "SELECT id, sender, subject, body_text FROM inbound_messages WHERE case_id = $1",
        )
        .bind(case_id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let (sender, subj, body) = (
                get_str(r, "sender")?,
                get_str(r, "subject")?,
                get_opt_str(r, "body_text")?.unwrap_or_default(),
            );
            let (ns, nsub, nb) = (
                redactor.redact(&sender),
                redactor.redact(&subj),
                redactor.redact(&body),
            );
            let n = [&ns, &nsub, &nb].iter().filter(|v| v.is_some()).count() as u64;
            if n == 0 {
                continue;
            }
            let (sender, subj, body) = (
                ns.unwrap_or(sender),
                nsub.unwrap_or(subj),
                nb.unwrap_or(body),
            );
            sqlx::query("UPDATE inbound_messages SET sender = $1, subject = $2, body_text = $3 WHERE id = $4")
                .bind(sender.clone())
                .bind(subj.clone())
                .bind(body.clone())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            reindex(
                &mut tx,
                &format!("m:{id}"),
                &format!("{subj}\n{sender}\n{body}"),
            )
            .await?;
            bump("messages_in", n);
        }
        // Messages sent.
        let rows = sqlx::query(
            "SELECT id, recipient, subject, body FROM outbound_messages WHERE case_id = $1",
        )
        .bind(case_id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let texts = [
                get_str(r, "recipient")?,
                get_str(r, "subject")?,
                get_str(r, "body")?,
            ];
            let new: Vec<Option<String>> = texts.iter().map(|t| redactor.redact(t)).collect();
            let n = new.iter().filter(|v| v.is_some()).count() as u64;
            if n == 0 {
                continue;
            }
            let [a, b, c] = texts;
            let mut it = new.into_iter();
            let mut pick = |old: String| it.next().flatten().unwrap_or(old);
            let (a, b, c) = (pick(a), pick(b), pick(c));
            sqlx::query("UPDATE outbound_messages SET recipient = $1, subject = $2, body = $3 WHERE id = $4")
                .bind(a)
                .bind(b)
                .bind(c)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            bump("messages_out", n);
        }
        // Calls and appointments.
        let rows = sqlx::query("SELECT id, phone, script, note FROM call_tasks WHERE case_id = $1")
            .bind(case_id)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let phone = get_opt_str(r, "phone")?;
            let script = get_str(r, "script")?;
            let note = get_opt_str(r, "note")?;
            let new_script = redactor.redact(&script);
            let new_note = note.as_deref().and_then(|n| redactor.redact(n));
            let n = u64::from(phone.is_some())
                + u64::from(new_script.is_some())
                + u64::from(new_note.is_some());
            if n == 0 {
                continue;
            }
            sqlx::query("UPDATE call_tasks SET phone = NULL, script = $1, note = $2 WHERE id = $3")
                .bind(new_script.unwrap_or(script))
                .bind(new_note.or(note))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            bump("calls", n);
        }
        let rows = sqlx::query("SELECT id, place, reason FROM appointments WHERE case_id = $1")
            .bind(case_id)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let (place, why) = (get_str(r, "place")?, get_str(r, "reason")?);
            let (np, nw) = (redactor.redact(&place), redactor.redact(&why));
            let n = u64::from(np.is_some()) + u64::from(nw.is_some());
            if n == 0 {
                continue;
            }
            sqlx::query("UPDATE appointments SET place = $1, reason = $2 WHERE id = $3")
                .bind(np.unwrap_or(place))
                .bind(nw.unwrap_or(why))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            bump("appointments", n);
        }

        // Documents: deleted when retention says so and the register does not name them;
        // the others keep their bytes, and their names and extracted text are rewritten.
        let mut documents_deleted = 0u64;
        let mut documents_kept = 0u64;
        let docs = sqlx::query(
            "SELECT d.id, d.sha256, d.filename, \
             (SELECT COUNT(*) FROM protocol_register r WHERE r.document_sha256 = d.sha256) AS registered \
             FROM documents d WHERE d.case_id = $1 ORDER BY d.id",
        )
        .bind(case_id)
        .fetch_all(&mut *tx)
        .await?;
        for d in &docs {
            let id = get_str(d, "id")?;
            let sha = get_str(d, "sha256")?;
            let registered = get_i64(d, "registered")? > 0;
            if delete_documents && !registered {
                sqlx::query("DELETE FROM search_entries WHERE key = $1")
                    .bind(format!("d:{id}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM documents WHERE id = $1")
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
                let still = sqlx::query("SELECT 1 AS one FROM documents WHERE sha256 = $1 LIMIT 1")
                    .bind(sha.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                if still.is_none() {
                    sqlx::query("DELETE FROM document_texts WHERE sha256 = $1")
                        .bind(sha.clone())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO privacy_blob_sweep (sha256, queued_at) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                    )
                    .bind(sha.clone())
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await?;
                }
                documents_deleted += 1;
                continue;
            }
            if delete_documents {
                documents_kept += 1;
            }
            let filename = get_str(d, "filename")?;
            if let Some(new) = redactor.redact(&filename) {
                sqlx::query("UPDATE documents SET filename = $1 WHERE id = $2")
                    .bind(new)
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
                bump("documents", 1);
            }
            let pages = sqlx::query(
                "SELECT page, text FROM document_texts WHERE sha256 = $1 ORDER BY page",
            )
            .bind(sha.clone())
            .fetch_all(&mut *tx)
            .await?;
            let mut all = String::new();
            let mut changed = 0u64;
            for p in &pages {
                let text = get_str(p, "text")?;
                let text = match redactor.redact(&text) {
                    Some(new) => {
                        sqlx::query(
                            "UPDATE document_texts SET text = $1 WHERE sha256 = $2 AND page = $3",
                        )
                        .bind(new.clone())
                        .bind(sha.clone())
                        .bind(get_i64(p, "page")?)
                        .execute(&mut *tx)
                        .await?;
                        changed += 1;
                        new
                    }
                    None => text,
                };
                all.push_str(&text);
                all.push('\n');
            }
            if changed > 0 {
                // Every document with these bytes is indexed from this text.
                let same = sqlx::query("SELECT id FROM documents WHERE sha256 = $1")
                    .bind(sha.clone())
                    .fetch_all(&mut *tx)
                    .await?;
                for s in &same {
                    reindex(&mut tx, &format!("d:{}", get_str(s, "id")?), &all).await?;
                }
                bump("document_texts", changed);
            }
        }

        // Permits issued from the case or held by the person, once no longer in force.
        if let Some(p) = &person {
            let rows = sqlx::query(
                "SELECT id, permit, holder_name, holder_fiscal_code FROM permit_rows \
                 WHERE (case_reference = $1 OR holder_fiscal_code = $2) AND valid_to < $3",
            )
            .bind(reference.clone())
            .bind(p.fiscal_code.clone().unwrap_or_default())
            .bind(to_ms(now))
            .fetch_all(&mut *tx)
            .await?;
            let mut permits = std::collections::BTreeSet::new();
            for r in &rows {
                let name = get_str(r, "holder_name")?;
                let code = get_str(r, "holder_fiscal_code")?;
                if name == pseudonym && code == pseudonym {
                    continue;
                }
                sqlx::query("UPDATE permit_rows SET holder_name = $1, holder_fiscal_code = $1 WHERE id = $2")
                    .bind(pseudonym.clone())
                    .bind(get_i64(r, "id")?)
                    .execute(&mut *tx)
                    .await?;
                permits.insert(get_str(r, "permit")?);
                bump("permits", 1);
            }
            for permit in permits {
                let events = sqlx::query("SELECT id, detail FROM permit_events WHERE permit = $1")
                    .bind(permit)
                    .fetch_all(&mut *tx)
                    .await?;
                for e in &events {
                    let mut detail: serde_json::Value =
                        serde_json::from_str(&get_str(e, "detail")?).unwrap_or_default();
                    if redactor.redact_json(&mut detail) > 0 {
                        sqlx::query("UPDATE permit_events SET detail = $1 WHERE id = $2")
                            .bind(detail.to_string())
                            .bind(get_i64(e, "id")?)
                            .execute(&mut *tx)
                            .await?;
                        bump("permits", 1);
                    }
                }
            }
        }

        // The case moves to a record holding nothing but the pseudonym.
        let anonymous = if person.as_ref().is_some_and(|p| {
            p.name.as_deref() == Some(pseudonym.as_str()) && p.fiscal_code.is_none()
        }) {
            citizen_id
        } else {
            let found = sqlx::query(
                "SELECT id FROM citizens WHERE pseudonym = $1 AND name = $1 AND fiscal_code IS NULL ORDER BY id LIMIT 1",
            )
            .bind(pseudonym.clone())
            .fetch_optional(&mut *tx)
            .await?;
            let id = match found {
                Some(r) => get_i64(&r, "id")?,
                None => {
                    let r = sqlx::query(
                        "INSERT INTO citizens (fiscal_code, name, created_at, updated_at, pseudonym) \
                         VALUES (NULL, $1, $2, $2, $1) RETURNING id",
                    )
                    .bind(pseudonym.clone())
                    .bind(to_ms(now))
                    .fetch_one(&mut *tx)
                    .await?;
                    get_i64(&r, "id")?
                }
            };
            Some(id)
        };
        if anonymous != citizen_id {
            bump("citizen", 1);
        }
        sqlx::query("UPDATE cases SET subject = $1, description = $2, fields = $3, citizen_id = $4 WHERE id = $5")
            .bind(subject.clone())
            .bind(description.clone())
            .bind(fields.to_string())
            .bind(anonymous)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let view = CitizenView {
            name: Some(pseudonym.clone()),
            ..CitizenView::default()
        };
        let text = crate::search::case_text(&reference, &subject, &description, &fields, &view);
        reindex(&mut tx, &format!("c:{case_id}"), &text).await?;
        // The person's own record goes once no case names it.
        if let (Some(old), Some(p)) = (citizen_id, &person)
            && anonymous != citizen_id
        {
            let left = sqlx::query("SELECT 1 AS one FROM cases WHERE citizen_id = $1 LIMIT 1")
                .bind(old)
                .fetch_optional(&mut *tx)
                .await?;
            if left.is_none() {
                sqlx::query("DELETE FROM citizens WHERE id = $1")
                    .bind(p.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }

        let fields_total: u64 = counts.values().sum();
        let detail = serde_json::json!({
            "fields": counts,
            "documents_deleted": documents_deleted,
            "documents_kept": documents_kept,
        });
        sqlx::query("UPDATE privacy_journal SET detail = $1, finished_at = $2 WHERE id = $3")
            .bind(detail.to_string())
            .bind(to_ms(now))
            .bind(journal_id)
            .execute(&mut *tx)
            .await?;
        let event = serde_json::json!({
            "action": action,
            "reason": reason,
            "pseudonym": pseudonym,
            "fields": fields_total,
            "documents_deleted": documents_deleted,
        });
        insert_event(&mut tx, case_id, now, actor, "anonymised", &event).await?;
        tx.commit().await?;
        // A structured line for the operators' logs: which case and how much, no personal data.
        tracing::info!(
            case = %reference,
            action,
            actor,
            fields = fields_total,
            documents_deleted,
            "case anonymised"
        );
        Ok(CaseAnonymised {
            reference,
            case_type: get_str(&case, "case_type")?,
            pseudonym,
            fields: fields_total,
            documents_deleted,
            documents_kept,
            already,
        })
    }

    /// After every case of a person was anonymised: their record, if no case names it any
    /// more, is deleted (cases then name only the pseudonym's record).
    pub async fn forget_person(&self, person: &Person) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let left = sqlx::query("SELECT 1 AS one FROM cases WHERE citizen_id = $1 LIMIT 1")
            .bind(person.id)
            .fetch_optional(&mut *tx)
            .await?;
        if left.is_some() {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM citizens WHERE id = $1")
            .bind(person.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(done)
    }

    /// Closed cases of a type closed at or before `cutoff` and not yet through retention,
    /// oldest first, with their documents counted (deletable, and kept by the register).
    pub async fn retention_candidates(
        &self,
        case_type: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<RetentionCandidate>> {
        let rows = sqlx::query(
            "SELECT c.id, c.reference, \
             (SELECT COUNT(*) FROM documents d WHERE d.case_id = c.id AND NOT EXISTS \
                (SELECT 1 FROM protocol_register r WHERE r.document_sha256 = d.sha256)) AS deletable, \
             (SELECT COUNT(*) FROM documents d WHERE d.case_id = c.id AND EXISTS \
                (SELECT 1 FROM protocol_register r WHERE r.document_sha256 = d.sha256)) AS registered \
             FROM cases c WHERE c.case_type = $1 AND c.status = 'closed' AND c.closed_at IS NOT NULL \
             AND c.closed_at <= $2 AND NOT EXISTS (SELECT 1 FROM privacy_journal j \
                WHERE j.case_id = c.id AND j.action = 'retention' AND j.finished_at IS NOT NULL) \
             ORDER BY c.closed_at, c.id",
        )
        .bind(case_type)
        .bind(to_ms(cutoff))
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RetentionCandidate {
                    id: get_i64(r, "id")?,
                    reference: get_str(r, "reference")?,
                    deletable_documents: u64::try_from(get_i64(r, "deletable")?).unwrap_or(0),
                    registered_documents: u64::try_from(get_i64(r, "registered")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Deletes the bytes queued by retention once no record names them (a document, the
    /// raw bytes of an inbound message, a gate file); the queue entry goes after the bytes,
    /// so a run killed midway sweeps them next time. Returns how many objects were deleted.
    pub async fn sweep_deleted_blobs(&self, blobs: &BlobStore) -> Result<u64> {
        let queued =
            sqlx::query("SELECT sha256 FROM privacy_blob_sweep ORDER BY queued_at, sha256")
                .fetch_all(&self.write)
                .await?;
        let mut deleted = 0;
        for q in &queued {
            let sha = get_str(q, "sha256")?;
            let named = sqlx::query(
                "SELECT 1 AS one FROM documents WHERE sha256 = $1 \
                 UNION ALL SELECT 1 AS one FROM inbound_messages WHERE raw_sha256 = $1 \
                 UNION ALL SELECT 1 AS one FROM transit_checks WHERE sha256 = $1 \
                 UNION ALL SELECT 1 AS one FROM protocol_register WHERE document_sha256 = $1",
            )
            .bind(sha.clone())
            .fetch_optional(&self.write)
            .await?;
            if named.is_none() {
                blobs.delete(&sha).await?;
                deleted += 1;
            }
            sqlx::query("DELETE FROM privacy_blob_sweep WHERE sha256 = $1")
                .bind(sha)
                .execute(&self.write)
                .await?;
        }
        Ok(deleted)
    }

    /// Journals a run (`citizen_export`, `citizen_anonymise`, `retention_run`) with counts
    /// and no personal data.
    pub async fn journal_privacy_run(
        &self,
        actor: &str,
        action: &str,
        reason: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let now = to_ms(self.clock.now());
        sqlx::query(
            "INSERT INTO privacy_journal (at, actor, action, reason, case_id, pseudonym, detail, finished_at) \
             VALUES ($1, $2, $3, $4, NULL, NULL, $5, $1)",
        )
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(reason)
        .bind(detail.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The privacy journal, newest first: `(at, actor, action, reason, case reference, detail)`.
    pub async fn privacy_journal(
        &self,
        limit: i64,
    ) -> Result<
        Vec<(
            DateTime<Utc>,
            String,
            String,
            String,
            Option<String>,
            serde_json::Value,
        )>,
    > {
        let rows = sqlx::query(
            "SELECT j.at, j.actor, j.action, j.reason, c.reference, j.detail FROM privacy_journal j \
             LEFT JOIN cases c ON c.id = j.case_id WHERE j.finished_at IS NOT NULL ORDER BY j.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    crate::from_ms(get_i64(r, "at")?)?,
                    get_str(r, "actor")?,
                    get_str(r, "action")?,
                    get_str(r, "reason")?,
                    get_opt_str(r, "reference")?,
                    serde_json::from_str(&get_str(r, "detail")?).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// Rewrites an existing index entry's terms (an entry that does not exist stays absent).
async fn reindex(tx: &mut Transaction<'static, Any>, key: &str, text: &str) -> Result<()> {
    sqlx::query("UPDATE search_entries SET terms = $1 WHERE key = $2")
        .bind(sportello_domain::text::analyse(text))
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use sportello_domain::case::Channel;
    use sportello_domain::fiscal_code::FiscalCode;
    use sportello_domain::workflow::Action;

    use super::*;
    use crate::cases::NewCase;
    use crate::citizens::CitizenInput;
    use crate::search::SearchQuery;
    use crate::testing::with_test_store;
    use crate::texts::{PageText, TextOutcome};

    const CF: &str = "RSSMRA80A01H501U";

    fn new_case(subject: &str) -> NewCase {
        let mut fields = serde_json::Map::new();
        fields.insert("plates".into(), serde_json::json!(["AB123CD"]));
        fields.insert(
            "note".into(),
            serde_json::json!("richiedente Mario Rossi, tel. 333 1234567"),
        );
        NewCase {
            case_type: "ztl_permit".into(),
            subject: subject.into(),
            description: "Il sig. ROSSI Mario (mario.rossi@example.it) chiede il permesso".into(),
            channel: Channel::Counter,
            citizen: CitizenInput {
                fiscal_code: Some(FiscalCode::parse(CF).unwrap()),
                name: Some("Mario Rossi".into()),
                email: Some("mario.rossi@example.it".into()),
                phone: Some("+39 333 123 4567".into()),
                ..CitizenInput::default()
            },
            fields,
            flags: Vec::new(),
            actor: "op".into(),
            document_sha256: None,
            registered_as: None,
            terms: None,
        }
    }

    fn search(q: &str) -> SearchQuery {
        SearchQuery {
            q: q.into(),
            include_documents: true,
            limit: 20,
            ..SearchQuery::default()
        }
    }

    #[tokio::test]
    async fn anonymising_rewrites_the_case_its_journal_texts_and_index_only_once_closed() {
        with_test_store(|store, _clock| async move {
            let case = store
                .create_case(new_case("Permesso per Mario Rossi"))
                .await
                .unwrap();
            let reference = case.summary.reference.clone();
            let doc = store
                .add_document(
                    &reference,
                    &"ab".repeat(32),
                    10,
                    "rossi_mario_patente.pdf",
                    "application/pdf",
                    "op",
                )
                .await
                .unwrap();
            let jobs = store
                .claim_text_jobs(10, Duration::from_secs(60))
                .await
                .unwrap();
            let pages = vec![PageText {
                page: 1,
                method: "ocr".into(),
                text: "Patente di guida intestata a Rossì Mario, codice rssmra80a01h501u".into(),
            }];
            store
                .finish_text_job(&jobs[0], TextOutcome::Pages(pages))
                .await
                .unwrap();
            assert_eq!(
                store.search(&search("Rossi")).await.unwrap().len(),
                2,
                "case and document"
            );

            let person = store.person_by_fiscal_code(CF).await.unwrap().unwrap();
            let cases = store.person_cases(&person).await.unwrap();
            assert_eq!(cases.len(), 1);
            // Open: refused, nothing changed.
            let err = store
                .anonymise_case(cases[0].id, "cli", "anonymise", "art. 17", false)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Conflict(ref m) if m.contains(&reference)),
                "{err}"
            );
            assert!(
                store
                    .get_case(&reference)
                    .await
                    .unwrap()
                    .description
                    .contains("ROSSI")
            );

            store
                .apply_action(&reference, &Action::Withdraw, Some("rinuncia"), "op")
                .await
                .unwrap();
            let done = store
                .anonymise_case(cases[0].id, "cli", "anonymise", "richiesta art. 17", false)
                .await
                .unwrap();
            assert!(
                done.pseudonym.starts_with("ANON-") && done.pseudonym.len() == 15,
                "{}",
                done.pseudonym
            );
            assert!(done.fields >= 6, "{done:?}");
            assert!(
                store.forget_person(&person).await.unwrap()
                    || store.person_by_fiscal_code(CF).await.unwrap().is_none()
            );

            let after = store.get_case(&reference).await.unwrap();
            let json = serde_json::to_string(&after).unwrap().to_lowercase();
            for needle in [
                "rossi",
                "mario",
                &CF.to_lowercase(),
                "example.it",
                "1234567",
            ] {
                assert!(!json.contains(needle), "{needle} left in {json}");
            }
            assert_eq!(after.citizen.name.as_deref(), Some(done.pseudonym.as_str()));
            assert_eq!(after.summary.status, "closed");
            assert_eq!(
                after.fields["plates"][0], "AB123CD",
                "what is not personal stays"
            );
            assert_eq!(
                after.documents[0].id, doc.id,
                "anonymising deletes no document"
            );
            assert_eq!(after.timeline.last().unwrap().kind, "anonymised");
            for q in ["Rossi", "Mario", CF, "mario.rossi@example.it", "3331234567"] {
                assert!(
                    store.search(&search(q)).await.unwrap().is_empty(),
                    "{q} still found"
                );
            }
            assert_eq!(
                store.search(&search(&done.pseudonym)).await.unwrap().len(),
                2
            );
            assert!(store.person_by_fiscal_code(CF).await.unwrap().is_none());
            assert!(store.verify_register().await.unwrap().is_ok());

            // The journal is append-only again, and the rewrite itself is journaled without the data.
            assert!(
                sqlx::query("UPDATE case_events SET detail = '{}'")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("DELETE FROM privacy_journal")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("UPDATE privacy_journal SET reason = 'x'")
                    .execute(&store.write)
                    .await
                    .is_err()
            );
            let journal = store.privacy_journal(10).await.unwrap();
            assert_eq!(journal.len(), 1);
            assert_eq!(
                (journal[0].2.as_str(), journal[0].3.as_str()),
                ("anonymise", "richiesta art. 17")
            );
            assert!(!journal[0].5.to_string().to_lowercase().contains("rossi"));

            // Twice: nothing left to rewrite.
            let again = store
                .anonymise_case(cases[0].id, "cli", "anonymise", "di nuovo", false)
                .await
                .unwrap();
            assert_eq!(
                (again.fields, again.already, again.pseudonym),
                (0, true, done.pseudonym)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn an_unfinished_journal_row_is_the_only_way_into_the_case_journal() {
        with_test_store(|store, _clock| async move {
            let case = store.create_case(new_case("Permesso")).await.unwrap();
            let id: i64 = sqlx::query("SELECT id FROM cases WHERE reference = $1")
                .bind(case.summary.reference.clone())
                .fetch_one(&store.write)
                .await
                .map(|r| get_i64(&r, "id").unwrap())
                .unwrap();
            let mut tx = store.write.begin().await.unwrap();
            sqlx::query("INSERT INTO privacy_journal (at, actor, action, reason, case_id, detail) VALUES (1, 'x', 'anonymise', 'r', $1, '{}')")
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
            // Text only: the instant, actor and kind stay, and nothing is deleted.
            sqlx::query("UPDATE case_events SET detail = '{}' WHERE case_id = $1").bind(id).execute(&mut *tx).await.unwrap();
            assert!(sqlx::query("UPDATE case_events SET actor = 'y' WHERE case_id = $1").bind(id).execute(&mut *tx).await.is_err());
            tx.rollback().await.unwrap();
            let mut tx = store.write.begin().await.unwrap();
            sqlx::query("INSERT INTO privacy_journal (at, actor, action, reason, case_id, detail) VALUES (1, 'x', 'anonymise', 'r', $1, '{}')")
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
            assert!(sqlx::query("DELETE FROM case_events WHERE case_id = $1").bind(id).execute(&mut *tx).await.is_err());
            tx.rollback().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn retention_deletes_unregistered_documents_and_sweeps_their_bytes() {
        with_test_store(|store, clock| async move {
            let dir = tempfile::tempdir().unwrap();
            let blobs =
                BlobStore::open(&format!("file://{}", dir.path().display()), None, None).unwrap();
            let registered = blobs
                .put(bytes::Bytes::from_static(b"registered letter"))
                .await
                .unwrap();
            let plain = blobs
                .put(bytes::Bytes::from_static(b"identity card scan"))
                .await
                .unwrap();
            let case = store.create_case(new_case("Permesso")).await.unwrap();
            let reference = case.summary.reference.clone();
            store
                .add_document(&reference, &plain, 18, "ci.pdf", "application/pdf", "op")
                .await
                .unwrap();
            store
                .add_document(
                    &reference,
                    &registered,
                    17,
                    "lettera.pdf",
                    "application/pdf",
                    "op",
                )
                .await
                .unwrap();
            store
                .register(&crate::register::Registration {
                    direction: sportello_domain::register::Direction::Out,
                    correspondent: "Mario Rossi",
                    subject: "Lettera",
                    document_sha256: &registered,
                    case_reference: Some(&reference),
                })
                .await
                .unwrap();
            store
                .apply_action(&reference, &Action::Withdraw, Some("rinuncia"), "op")
                .await
                .unwrap();
            let cutoff = store.clock().now();
            clock.advance(chrono::Duration::days(1));
            let due = store
                .retention_candidates("ztl_permit", cutoff)
                .await
                .unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!(
                (due[0].deletable_documents, due[0].registered_documents),
                (1, 1)
            );
            assert!(
                store
                    .retention_candidates("ztl_permit", cutoff - chrono::Duration::days(1))
                    .await
                    .unwrap()
                    .is_empty()
            );

            let done = store
                .anonymise_case(due[0].id, "retention", "retention", "ztl_permit 5y", true)
                .await
                .unwrap();
            assert_eq!((done.documents_deleted, done.documents_kept), (1, 1));
            // Killed here: the bytes are still there, the row is gone; the next run sweeps them.
            assert!(blobs.get(&plain).await.is_ok());
            assert_eq!(store.sweep_deleted_blobs(&blobs).await.unwrap(), 1);
            assert!(matches!(
                blobs.get(&plain).await,
                Err(StoreError::NotFound(_))
            ));
            assert!(blobs.get(&registered).await.is_ok());
            assert_eq!(store.sweep_deleted_blobs(&blobs).await.unwrap(), 0);
            let after = store.get_case(&reference).await.unwrap();
            assert_eq!(after.documents.len(), 1);
            assert_eq!(after.documents[0].sha256, registered);
            assert!(
                store
                    .retention_candidates("ztl_permit", cutoff)
                    .await
                    .unwrap()
                    .is_empty(),
                "done once"
            );
            assert!(store.verify_register().await.unwrap().is_ok());
        })
        .await;
    }

    #[tokio::test]
    async fn a_run_stopped_between_cases_is_finished_by_the_next() {
        with_test_store(|store, clock| async move {
            let mut ids = Vec::new();
            for subject in ["Primo", "Secondo"] {
                let r = store.create_case(new_case(subject)).await.unwrap().summary.reference;
                store.apply_action(&r, &Action::Withdraw, Some("rinuncia"), "op").await.unwrap();
                ids.push(r);
            }
            let cutoff = store.clock().now();
            clock.advance(chrono::Duration::days(1));
            let due = store.retention_candidates("ztl_permit", cutoff).await.unwrap();
            assert_eq!(due.len(), 2);
            // The first case is done, then the process dies before the second.
            store.anonymise_case(due[0].id, "retention", "retention", "r", true).await.unwrap();
            // A transaction that died midway leaves nothing: its journal row and rewrites go together.
            let mut tx = store.write.begin().await.unwrap();
            sqlx::query("INSERT INTO privacy_journal (at, actor, action, reason, case_id, detail) VALUES (1, 'retention', 'retention', 'r', $1, '{}')")
                .bind(due[1].id)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("UPDATE case_events SET detail = '{}' WHERE case_id = $1").bind(due[1].id).execute(&mut *tx).await.unwrap();
            drop(tx);
            let left = store.retention_candidates("ztl_permit", cutoff).await.unwrap();
            assert_eq!(left.iter().map(|c| c.reference.as_str()).collect::<Vec<_>>(), [due[1].reference.as_str()]);
            let second = store.get_case(&due[1].reference).await.unwrap();
            assert!(second.description.contains("ROSSI"), "untouched until its turn");
            store.anonymise_case(left[0].id, "retention", "retention", "r", true).await.unwrap();
            assert!(store.retention_candidates("ztl_permit", cutoff).await.unwrap().is_empty());
            for r in &ids {
                let c = store.get_case(r).await.unwrap();
                assert!(!serde_json::to_string(&c).unwrap().contains("Rossi"), "{r}");
            }
            // Both cases of the person carry the same pseudonym, on one record.
            let (a, b) = (store.get_case(&ids[0]).await.unwrap(), store.get_case(&ids[1]).await.unwrap());
            assert_eq!(a.citizen, b.citizen);
            assert!(store.person_by_fiscal_code(CF).await.unwrap().is_none());
        })
        .await;
    }
}
