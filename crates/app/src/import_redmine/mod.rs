//! Taking over a Redmine project's issues (`sportello import redmine`, CONTRACT §8.4).
//!
//! The issues are listed in pages of 100; each one not imported yet (or changed since) is
//! read with its journals and attachments, a few at a time, and its attachments are put
//! in the document store (checked against Redmine's digest when it gives one). Then the
//! issue is written as one case in one transaction ([`Store::import_case`]), in the order
//! of the issue ids: a run stopped anywhere leaves whole cases, and the next run starts
//! where it stopped. An issue whose `updated_on` has not moved since the last run is not
//! even read again.

mod client;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::Digest as _;
use sportello_domain::case::Status;
use sportello_domain::redmine::{self, Digest, ImportMap, flags};
use sportello_domain::ztl::policy::Policy;
use sportello_store::Store;
use sportello_store::cases::{CaseTerms, CitizenInput};
use sportello_store::documents::{BlobStore, display_filename, sniff_media_type};
use sportello_store::imports::{ImportOutcome, ImportedCase, ImportedDocument, ImportedEntry};

pub use client::{
    Attachment, ClientError, CustomValue, Issue, Journal, JournalDetail, Named, RedmineClient,
    StatusRef, User,
};

use crate::AppError;

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Say what would be done; write nothing.
    pub dry_run: bool,
    /// Issues read from Redmine at the same time.
    pub concurrency: usize,
    /// Largest attachment taken, in bytes.
    pub max_attachment_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            concurrency: 8,
            max_attachment_bytes: 100 * 1024 * 1024,
        }
    }
}

/// The JSON summary of a run (CONTRACT §8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Issues of the project.
    pub issues: u64,
    /// Imported (or, with `--dry-run`, to import), including issues with new journals.
    pub imported: u64,
    /// Nothing new.
    pub unchanged: u64,
    /// Could not be imported at all (the next run tries again).
    pub failed: u64,
}

/// What happened to one issue, for the progress bar and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueReport {
    /// The number of issues, once listed.
    Listed(u64),
    /// A new case.
    Created {
        /// The issue.
        issue: i64,
        /// The case.
        reference: String,
        /// Flags set for bad data.
        flags: Vec<String>,
    },
    /// New journals or attachments on its case.
    Updated {
        /// The issue.
        issue: i64,
        /// The case.
        reference: String,
    },
    /// Nothing new.
    Unchanged {
        /// The issue.
        issue: i64,
    },
    /// `--dry-run`: what a run would do.
    WouldImport {
        /// The issue.
        issue: i64,
        /// In words.
        what: String,
    },
    /// Not imported; the next run tries again.
    Failed {
        /// The issue.
        issue: i64,
        /// Why.
        error: String,
    },
}

/// Everything the import needs besides the options.
pub struct ImportContext<'a> {
    /// The database.
    pub store: &'a Store,
    /// The document store.
    pub blobs: &'a BlobStore,
    /// The policy in force (a permit category's legal term).
    pub policy: &'a Policy,
    /// The map file, checked.
    pub map: &'a ImportMap,
}

/// Maps the client's errors for the command line: a Redmine that cannot be used at all is
/// bad usage (exit 2).
fn usage(e: ClientError) -> AppError {
    match e {
        ClientError::NotFound(path) => AppError::NotFound(format!("not found on Redmine: {path}")),
        other => AppError::BadRequest(other.to_string()),
    }
}

/// Imports (or, dry, inspects) every issue of `project`; `report` hears of each issue as
/// it is done. An error only when Redmine cannot be used at all (unreachable, wrong key,
/// no such project) or the database fails; an issue that cannot be read or written is
/// counted as failed and reported.
pub async fn import(
    ctx: &ImportContext<'_>,
    client: &RedmineClient,
    project: &str,
    options: &ImportOptions,
    report: &(dyn Fn(IssueReport) + Sync),
) -> Result<Summary, AppError> {
    let project = client.project(project).await.map_err(usage)?;
    let statuses = client.statuses().await.map_err(usage)?;
    let issues = client.issues(project.id).await.map_err(usage)?;
    let source = format!("{}projects/{}", client.base(), project.identifier);
    let known = ctx.store.imported_issues(&source).await?;
    let mut summary = Summary {
        issues: issues.len() as u64,
        ..Summary::default()
    };
    report(IssueReport::Listed(summary.issues));
    let case_types: Vec<String> = ctx
        .store
        .settings()
        .case_types
        .iter()
        .map(|t| t.id.clone())
        .collect();
    let mut todo = Vec::new();
    for head in issues {
        match known.get(&head.id) {
            Some(state) if state.updated_on == head.updated_on => {
                summary.unchanged += 1;
                report(IssueReport::Unchanged { issue: head.id });
            }
            _ => todo.push(head.id),
        }
    }
    let reader = Reader {
        client,
        blobs: ctx.blobs,
        statuses: &statuses,
        options,
    };
    let mut read = futures::stream::iter(todo)
        .map(|id| {
            let reader = &reader;
            let known = known.get(&id);
            async move { (id, reader.read(id, known.map(|k| &k.items)).await) }
        })
        .buffered(options.concurrency.max(1));
    while let Some((id, read)) = read.next().await {
        let fetched = match read {
            Ok(f) => f,
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Unauthorized { .. })) => {
                // Redmine went away in the middle: stop, the next run goes on from here.
                return Err(usage(e));
            }
            Err(e) => {
                summary.failed += 1;
                report(IssueReport::Failed {
                    issue: id,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let case = to_case(&Conversion {
            source: &source,
            map: ctx.map,
            policy: ctx.policy,
            case_types: &case_types,
            statuses: &statuses,
            fetched: &fetched,
        });
        if options.dry_run {
            summary.imported += 1;
            report(IssueReport::WouldImport {
                issue: id,
                what: describe(&case, known.contains_key(&id)),
            });
            continue;
        }
        let flags = case.flags.clone();
        match ctx.store.import_case(case).await {
            Ok(ImportOutcome::Created(reference)) => {
                summary.imported += 1;
                report(IssueReport::Created {
                    issue: id,
                    reference,
                    flags,
                });
            }
            Ok(ImportOutcome::Updated(reference)) => {
                summary.imported += 1;
                report(IssueReport::Updated {
                    issue: id,
                    reference,
                });
            }
            Ok(ImportOutcome::Unchanged(_)) => {
                summary.unchanged += 1;
                report(IssueReport::Unchanged { issue: id });
            }
            Err(e) if e.is_unavailable() => return Err(e.into()),
            Err(e) => {
                summary.failed += 1;
                report(IssueReport::Failed {
                    issue: id,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(summary)
}

fn describe(case: &ImportedCase, again: bool) -> String {
    let notes = case.entries.iter().filter(|e| e.kind == "note").count();
    let documents = case
        .entries
        .iter()
        .filter(|e| e.kind.starts_with("document"))
        .count();
    format!(
        "{} {} \"{}\" ({}, {}, {notes} notes, {documents} attachments{}{})",
        if again { "update" } else { "import" },
        case.case_type,
        case.subject.chars().take(60).collect::<String>(),
        case.status.as_str(),
        case.received_at.to_rfc3339(),
        if case.flags.is_empty() {
            ""
        } else {
            ", flags: "
        },
        case.flags.join(" ")
    )
}

/// An issue read whole: its journals, the users it names, its attachments' fate.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The issue.
    pub issue: Issue,
    /// Users by id (`None`: Redmine no longer knows them).
    pub users: HashMap<i64, Option<User>>,
    /// Attachment id → the stored document, or why it could not be taken.
    pub attachments: HashMap<i64, Result<ImportedDocument, MissingAttachment>>,
}

/// An attachment not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingAttachment {
    /// What went wrong.
    pub error: String,
    /// The bytes did not match Redmine's digest (they are kept, flagged).
    pub digest_mismatch: Option<ImportedDocument>,
}

struct Reader<'a> {
    client: &'a RedmineClient,
    blobs: &'a BlobStore,
    statuses: &'a HashMap<i64, (String, bool)>,
    options: &'a ImportOptions,
}

impl Reader<'_> {
    async fn read(
        &self,
        id: i64,
        have: Option<&std::collections::HashSet<String>>,
    ) -> Result<Fetched, ClientError> {
        let issue = self.client.issue(id).await?;
        let mut ids: Vec<i64> = Vec::new();
        ids.extend(issue.author.as_ref().map(|a| a.id));
        ids.extend(issue.assigned_to.as_ref().map(|a| a.id));
        ids.extend(
            issue
                .journals
                .iter()
                .filter_map(|j| j.user.as_ref().map(|u| u.id)),
        );
        ids.extend(
            issue
                .attachments
                .iter()
                .filter_map(|a| a.author.as_ref().map(|u| u.id)),
        );
        for j in &issue.journals {
            for d in &j.details {
                if d.property == "attr" && d.name == "assigned_to_id" {
                    for v in [&d.old_value, &d.new_value].into_iter().flatten() {
                        ids.extend(v.parse::<i64>().ok());
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let mut users = HashMap::new();
        for uid in ids {
            users.insert(uid, self.client.user(uid).await?);
        }
        let _ = self.statuses;
        let mut attachments = HashMap::new();
        for a in &issue.attachments {
            if have.is_some_and(|h| h.contains(&format!("a{}", a.id))) || self.options.dry_run {
                continue;
            }
            attachments.insert(a.id, self.take(a).await?);
        }
        Ok(Fetched {
            issue,
            users,
            attachments,
        })
    }

    /// Downloads and stores one attachment; one Redmine cannot serve is missing, not an
    /// error of the issue.
    async fn take(
        &self,
        a: &Attachment,
    ) -> Result<Result<ImportedDocument, MissingAttachment>, ClientError> {
        let missing = |error: String| {
            Ok(Err(MissingAttachment {
                error,
                digest_mismatch: None,
            }))
        };
        let bytes = match self
            .client
            .download(&a.content_url, self.options.max_attachment_bytes)
            .await
        {
            Ok(b) => b,
            // Redmine says it has no such file (gone from its disk, or not to be shown):
            // the case comes over with a flag. Anything passing fails the issue, which
            // the next run tries again.
            Err(ClientError::NotFound(path)) => return missing(format!("not found: {path}")),
            Err(ClientError::Unauthorized { status, path }) => {
                return missing(format!("HTTP {status}: {path}"));
            }
            Err(e @ ClientError::TooLarge(_)) => return missing(e.to_string()),
            Err(ClientError::Protocol { detail, .. }) => return missing(detail),
            Err(e) => return Err(e),
        };
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let matches = match redmine::digest_kind(a.digest.as_deref()) {
            Some(Digest::Sha256(d)) => d.eq_ignore_ascii_case(&sha256),
            Some(Digest::Md5(d)) => {
                use md5::Digest as _;
                d.eq_ignore_ascii_case(&hex::encode(md5::Md5::digest(&bytes)))
            }
            None => true,
        };
        let document = ImportedDocument {
            sha256: sha256.clone(),
            size: bytes.len() as u64,
            filename: display_filename(&a.filename),
            media_type: sniff_media_type(&bytes[..bytes.len().min(8192)]),
        };
        let stored = self
            .blobs
            .put(bytes::Bytes::from(bytes))
            .await
            .map_err(|e| ClientError::Protocol {
                path: "document store".into(),
                detail: e.to_string(),
            })?;
        debug_assert_eq!(stored, sha256);
        if matches {
            Ok(Ok(document))
        } else {
            Ok(Err(MissingAttachment {
                error: format!(
                    "digest {} given by Redmine does not match the bytes",
                    a.digest.as_deref().unwrap_or_default()
                ),
                digest_mismatch: Some(document),
            }))
        }
    }
}

/// What [`to_case`] works from.
pub struct Conversion<'a> {
    /// The source naming the Redmine project.
    pub source: &'a str,
    /// The map file.
    pub map: &'a ImportMap,
    /// The policy in force.
    pub policy: &'a Policy,
    /// The configured case types.
    pub case_types: &'a [String],
    /// Status id → (name, closed).
    pub statuses: &'a HashMap<i64, (String, bool)>,
    /// The issue read.
    pub fetched: &'a Fetched,
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn custom_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The case an issue becomes (pure: everything it needs has been read).
pub fn to_case(c: &Conversion<'_>) -> ImportedCase {
    let issue = &c.fetched.issue;
    let mut flag_list: Vec<String> = Vec::new();
    let mut flag = |f: &str| {
        if !flag_list.iter().any(|x| x == f) {
            flag_list.push(f.to_owned());
        }
    };
    // Who: a login when Redmine knows the user, else the name it shows, flagged.
    let mut unknown_author = false;
    let mut who = |named: Option<&Named>| -> String {
        match named {
            Some(n) => match c.fetched.users.get(&n.id) {
                Some(Some(u)) if !u.login.is_empty() => u.login.clone(),
                Some(Some(u)) => u.name.clone(),
                // Authors are users, never groups: one Redmine no longer shows is deleted.
                _ => {
                    unknown_author = true;
                    if n.name.trim().is_empty() {
                        "redmine".to_owned()
                    } else {
                        n.name.clone()
                    }
                }
            },
            None => {
                unknown_author = true;
                "redmine".to_owned()
            }
        }
    };
    let user_word = |id: Option<&String>| -> Option<String> {
        let id: i64 = id?.parse().ok()?;
        match c.fetched.users.get(&id) {
            Some(Some(u)) if !u.login.is_empty() => Some(u.login.clone()),
            Some(Some(u)) => Some(u.name.clone()),
            _ => Some(format!("#{id}")),
        }
    };
    let status_word = |id: Option<&String>| -> Option<String> {
        let id: i64 = id?.parse().ok()?;
        Some(
            c.statuses
                .get(&id)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| format!("#{id}")),
        )
    };
    let received_at = instant(&issue.created_on).unwrap_or_default();
    let created_by = who(issue.author.as_ref());
    let mut entries: Vec<ImportedEntry> = Vec::new();
    for a in &issue.attachments {
        let at = instant(&a.created_on).unwrap_or(received_at);
        let actor = who(a.author.as_ref());
        let (kind, document, mut detail) = match c.fetched.attachments.get(&a.id) {
            Some(Ok(doc)) => ("document_added", Some(doc.clone()), serde_json::json!({})),
            Some(Err(missing)) => match &missing.digest_mismatch {
                Some(doc) => {
                    flag(flags::DIGEST_MISMATCH);
                    (
                        "document_added",
                        Some(doc.clone()),
                        serde_json::json!({ "error": missing.error }),
                    )
                }
                None => {
                    flag(flags::MISSING_ATTACHMENT);
                    (
                        "document_missing",
                        None,
                        serde_json::json!({
                            "filename": display_filename(&a.filename),
                            "error": missing.error,
                        }),
                    )
                }
            },
            // Already on the case (or a dry run): the key says so.
            None => ("document_added", None, serde_json::json!({})),
        };
        detail["redmine_attachment"] = a.id.into();
        entries.push(ImportedEntry {
            key: format!("a{}", a.id),
            at,
            actor,
            kind: kind.into(),
            detail,
            document,
        });
    }
    for j in &issue.journals {
        let at = instant(&j.created_on).unwrap_or(received_at);
        let actor = who(j.user.as_ref());
        for d in j.details.iter().filter(|d| d.property == "attr") {
            let (key, kind, detail) = match d.name.as_str() {
                "status_id" => (
                    "status",
                    "status_changed",
                    serde_json::json!({
                        "from": status_word(d.old_value.as_ref()),
                        "to": status_word(d.new_value.as_ref()),
                    }),
                ),
                "assigned_to_id" => (
                    "assignee",
                    "assignee_changed",
                    serde_json::json!({
                        "from": user_word(d.old_value.as_ref()),
                        "user": user_word(d.new_value.as_ref()),
                    }),
                ),
                _ => continue,
            };
            let mut detail = detail;
            detail["redmine_journal"] = j.id.into();
            entries.push(ImportedEntry {
                key: format!("j{}.{key}", j.id),
                at,
                actor: actor.clone(),
                kind: kind.into(),
                detail,
                document: None,
            });
        }
        if let Some(note) = j.notes.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            entries.push(ImportedEntry {
                key: format!("j{}.note", j.id),
                at,
                actor: actor.clone(),
                kind: "note".into(),
                detail: serde_json::json!({
                    "note": note,
                    "internal": j.private_notes,
                    "redmine_journal": j.id,
                }),
                document: None,
            });
        }
    }
    let closed = issue
        .status
        .is_closed
        .or_else(|| c.statuses.get(&issue.status.id).map(|(_, closed)| *closed))
        .unwrap_or(false);
    let status = redmine::case_status(closed, issue.assigned_to.is_some());
    let closed_at = (status == Status::Closed).then(|| {
        issue
            .closed_on
            .as_deref()
            .and_then(instant)
            .or_else(|| instant(&issue.updated_on))
            .unwrap_or(received_at)
    });
    if let Some(at) = closed_at {
        entries.push(ImportedEntry {
            key: format!("closed@{}", at.to_rfc3339()),
            at,
            actor: "redmine".into(),
            kind: "closed".into(),
            detail: serde_json::json!({ "to": "closed", "status": issue.status.name }),
            document: None,
        });
    }
    entries.sort_by_key(|e| e.at);
    let assignee = issue.assigned_to.as_ref().and_then(|a| {
        c.fetched
            .users
            .get(&a.id)
            .cloned()
            .flatten()
            .map(|u| u.login)
            .filter(|login| !login.is_empty())
    });
    let custom: Vec<(String, String)> = issue
        .custom_fields
        .iter()
        .filter_map(|cf| custom_value(&cf.value).map(|v| (cf.name.clone(), v)))
        .collect();
    let placed = c.map.place(&custom);
    for f in &placed.flags {
        flag(f);
    }
    if unknown_author {
        flag(flags::UNKNOWN_AUTHOR);
    }
    let mut fields = placed.fields;
    fields.insert("redmine_id".into(), issue.id.into());
    fields.insert("redmine_tracker".into(), issue.tracker.name.clone().into());
    fields.insert("redmine_status".into(), issue.status.name.clone().into());
    let types: Vec<&str> = c.case_types.iter().map(String::as_str).collect();
    let case_type = c.map.case_type(&issue.tracker.name, &types);
    let terms = matches!(case_type.as_str(), "ztl_permit" | "cude")
        .then(|| {
            let asked = fields
                .get("category")
                .and_then(|v| v.as_str())
                .or((case_type == "cude").then_some("cude"))?;
            let category = c.policy.category(asked)?;
            Some(CaseTerms {
                term_days: category.term_days,
                service_days: category.service_days,
            })
        })
        .flatten();
    ImportedCase {
        source: c.source.to_owned(),
        issue_id: issue.id,
        updated_on: issue.updated_on.clone(),
        case_type,
        subject: if issue.subject.trim().is_empty() {
            format!("Redmine #{}", issue.id)
        } else {
            issue.subject.chars().take(300).collect()
        },
        description: issue.description.clone().unwrap_or_default(),
        citizen: CitizenInput {
            fiscal_code: placed.fiscal_code,
            name: placed.name,
            email: placed.email,
            pec: placed.pec,
            phone: placed.phone,
            fax: None,
        },
        fields,
        flags: flag_list,
        protocol: placed.protocol,
        received_at,
        created_by,
        status,
        assignee,
        closed_at,
        terms,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_domain::ztl::policy::EXAMPLE_POLICY;

    fn named(id: i64, name: &str) -> Option<Named> {
        Some(Named {
            id,
            name: name.into(),
        })
    }

    fn issue() -> Issue {
        let journal = |id, user: Option<Named>, notes: &str, private, details| Journal {
            id,
            user,
            notes: Some(notes.into()),
            created_on: format!("2019-03-0{}T09:00:00Z", id + 1),
            private_notes: private,
            details,
        };
        Issue {
            id: 42,
            tracker: Named {
                id: 4,
                name: "Permesso ZTL".into(),
            },
            status: StatusRef {
                id: 5,
                name: "Closed".into(),
                is_closed: None,
            },
            author: named(3, "Anna Bianchi"),
            assigned_to: named(3, "Anna Bianchi"),
            subject: "Permesso".into(),
            description: None,
            custom_fields: vec![
                CustomValue {
                    name: "Codice fiscale".into(),
                    value: "RSSMRA80A01H501X".into(),
                },
                CustomValue {
                    name: "Categoria".into(),
                    value: "residenti".into(),
                },
                CustomValue {
                    name: "Altro".into(),
                    value: serde_json::json!(["a", "b"]),
                },
            ],
            created_on: "2019-03-01T09:00:00Z".into(),
            updated_on: "2019-03-09T09:00:00Z".into(),
            closed_on: Some("2019-03-08T09:00:00Z".into()),
            attachments: vec![Attachment {
                id: 7,
                filename: "../carta.pdf".into(),
                filesize: Some(3),
                content_url: "/attachments/download/7/carta.pdf".into(),
                author: named(3, "Anna Bianchi"),
                created_on: "2019-03-01T09:00:00Z".into(),
                digest: None,
            }],
            journals: vec![
                journal(
                    1,
                    named(3, "Anna Bianchi"),
                    "",
                    false,
                    vec![JournalDetail {
                        property: "attr".into(),
                        name: "status_id".into(),
                        old_value: Some("1".into()),
                        new_value: Some("5".into()),
                    }],
                ),
                journal(2, named(9, "Anonymous"), "riservata", true, vec![]),
            ],
        }
    }

    #[test]
    fn an_issue_becomes_a_case_with_its_history() {
        let policy = Policy::parse(EXAMPLE_POLICY).unwrap();
        let map = ImportMap::parse(
            "[citizen]\nfiscal_code = \"Codice fiscale\"\n[fields]\ncategory = \"Categoria\"\n",
            &["ztl_permit"],
        )
        .unwrap();
        let statuses: HashMap<i64, (String, bool)> = [
            (1, ("New".to_owned(), false)),
            (5, ("Closed".to_owned(), true)),
        ]
        .into_iter()
        .collect();
        let fetched = Fetched {
            issue: issue(),
            users: [
                (
                    3,
                    Some(User {
                        login: "anna".into(),
                        name: "Anna Bianchi".into(),
                    }),
                ),
                (9, None),
            ]
            .into_iter()
            .collect(),
            attachments: [(
                7,
                Err(MissingAttachment {
                    error: "not found".into(),
                    digest_mismatch: None,
                }),
            )]
            .into_iter()
            .collect(),
        };
        let case = to_case(&Conversion {
            source: "http://r/projects/p",
            map: &map,
            policy: &policy,
            case_types: &["ztl_permit".to_owned()],
            statuses: &statuses,
            fetched: &fetched,
        });
        assert_eq!(case.status, Status::Closed, "closed by the status list");
        assert_eq!(case.case_type, "ztl_permit");
        assert_eq!(case.assignee.as_deref(), Some("anna"));
        assert_eq!(case.created_by, "anna");
        assert_eq!(
            case.closed_at.unwrap().to_rfc3339(),
            "2019-03-08T09:00:00+00:00"
        );
        assert_eq!(case.fields["redmine_id"], 42);
        assert_eq!(case.fields["fiscal_code"], "RSSMRA80A01H501X");
        assert_eq!(case.fields["Altro"], "a, b");
        let category = policy.category("residenti").unwrap();
        assert_eq!(
            case.terms,
            Some(CaseTerms {
                term_days: category.term_days,
                service_days: category.service_days
            })
        );
        assert_eq!(
            case.flags,
            vec![
                flags::MISSING_ATTACHMENT,
                flags::INVALID_FISCAL_CODE,
                flags::UNKNOWN_AUTHOR
            ]
        );
        let kinds: Vec<(&str, &str)> = case
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a7", "document_missing"),
                ("j1.status", "status_changed"),
                ("j2.note", "note"),
                ("closed@2019-03-08T09:00:00+00:00", "closed"),
            ]
        );
        assert_eq!(case.entries[0].detail["filename"], "carta.pdf");
        assert_eq!(case.entries[1].detail["to"], "Closed");
        assert_eq!(case.entries[2].actor, "Anonymous");
        assert_eq!(case.entries[2].detail["internal"], true);
        // Open and unassigned: received.
        let mut open = fetched.clone();
        open.issue.status = StatusRef {
            id: 1,
            name: "New".into(),
            is_closed: None,
        };
        open.issue.assigned_to = None;
        let case = to_case(&Conversion {
            source: "s",
            map: &map,
            policy: &policy,
            case_types: &["ztl_permit".to_owned()],
            statuses: &statuses,
            fetched: &open,
        });
        assert_eq!(case.status, Status::Received);
        assert_eq!(case.closed_at, None);
    }
}

#[cfg(test)]
mod download_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-file HTTP server: `/attachments/download/1/a.pdf` is `body`, anything else 404.
    async fn serve(body: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let found = request.starts_with("GET /attachments/download/1/a.pdf ")
                        && request
                            .to_ascii_lowercase()
                            .contains("x-redmine-api-key: k");
                    let head = if found {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    if found {
                        let _ = socket.write_all(body).await;
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn attachment(path: &str, digest: Option<String>) -> Attachment {
        Attachment {
            id: 1,
            filename: "a.pdf".into(),
            filesize: None,
            content_url: path.into(),
            author: None,
            created_on: "2019-03-01T09:00:00Z".into(),
            digest,
        }
    }

    #[tokio::test]
    async fn attachments_are_checked_against_redmine_digest() {
        const BODY: &[u8] = b"%PDF-1.4 allegato";
        let base = serve(BODY).await;
        let client = RedmineClient::new(&base, "k").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(
            &format!("file://{}", dir.path().join("docs").display()),
            None,
            None,
        )
        .unwrap();
        let statuses = HashMap::new();
        let options = ImportOptions::default();
        let reader = Reader {
            client: &client,
            blobs: &blobs,
            statuses: &statuses,
            options: &options,
        };
        let sha = hex::encode(sha2::Sha256::digest(BODY));
        let md5 = {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(BODY))
        };
        let path = "/attachments/download/1/a.pdf";
        for digest in [None, Some(sha.clone()), Some(md5.to_uppercase())] {
            let doc = reader
                .take(&attachment(path, digest.clone()))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{digest:?}: {e:?}"));
            assert_eq!(doc.sha256, sha);
            assert_eq!(doc.media_type, "application/pdf");
            assert_eq!(blobs.get(&sha).await.unwrap().as_ref(), BODY);
        }
        for wrong in ["0".repeat(64), "0".repeat(32)] {
            let missing = reader
                .take(&attachment(path, Some(wrong)))
                .await
                .unwrap()
                .unwrap_err();
            assert!(missing.error.contains("does not match"), "{missing:?}");
            assert_eq!(
                missing.digest_mismatch.unwrap().sha256,
                sha,
                "kept, flagged"
            );
        }
        let gone = reader
            .take(&attachment("/attachments/download/2/b.pdf", None))
            .await
            .unwrap()
            .unwrap_err();
        assert!(gone.error.contains("not found"), "{gone:?}");
        assert_eq!(gone.digest_mismatch, None);
    }
}
