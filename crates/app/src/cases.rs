//! Cases: open one, act on it (with what the action produces), change its fields.

use sportello_domain::case::Status;
use sportello_domain::case::WorkflowKind;
use sportello_domain::workflow::{Action, CaseFacts, plan};
use sportello_store::cases::{CaseView, CitizenView};

pub use crate::new_case::{CaseRequest, CitizenRequest};
use crate::validate::{check_reference, check_text};
use crate::{App, AppError, FieldError};

/// Opens a case, registered in the protocol. A caller that may not read case files
/// (`sees_records` false, e.g. the web-form backend) gets back only the citizen it sent,
/// never contacts already on record for that fiscal code.
pub async fn create(
    app: &App,
    request: CaseRequest,
    actor: &str,
    sees_records: bool,
) -> Result<CaseView, AppError> {
    let new = request.into_new_case(app, actor)?;
    let given = new.citizen.clone();
    let mut case = app.store.create_case(new).await?;
    if !sees_records {
        case.citizen = CitizenView {
            fiscal_code: given.fiscal_code.map(|f| f.as_str().to_owned()),
            name: given.name,
            email: given.email,
            pec: given.pec,
            phone: given.phone,
            fax: given.fax,
        };
    }
    Ok(case)
}

/// A workflow action asked of a case, as given.
#[derive(Debug, Clone, Default)]
pub struct ActionRequest {
    /// One of the workflow's actions (CONTRACT §7.2).
    pub action: Option<String>,
    /// Free note, kept in the journal (required by `withdraw`).
    pub note: Option<String>,
    /// `assign`: login of the new assignee.
    pub user: Option<String>,
    /// `request_integration`: what is missing.
    pub missing: Option<Vec<String>>,
    /// `notify_rejection`, `reject`, `confirm`, `annul`: the reasons.
    pub reasons: Option<Vec<String>>,
    /// Write to the citizen about it (default `true`).
    pub notify: Option<bool>,
    /// The channel to write on instead of the default.
    pub notify_channel: Option<String>,
    /// The message's language, `it` (default) or `en`.
    pub lang: Option<String>,
}

impl ActionRequest {
    /// The action named and its arguments, checked; the note.
    fn into_action(self) -> Result<(Action, Option<String>), AppError> {
        let mut errors = Vec::new();
        for (field, value, multiline) in [
            ("action", &self.action, false),
            ("user", &self.user, false),
            ("note", &self.note, true),
        ] {
            if let Some(v) = value
                && let Err(e) = check_text(field, v, multiline)
            {
                errors.push(e);
            }
        }
        for (field, list) in [("missing", &self.missing), ("reasons", &self.reasons)] {
            for (i, v) in list.iter().flatten().enumerate() {
                if let Err(e) = check_text(&format!("{field}[{i}]"), v, true) {
                    errors.push(e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let name = self.action.map(|a| a.trim().to_owned()).unwrap_or_default();
        let list = |v: Option<Vec<String>>| v.unwrap_or_default();
        let action = match name.as_str() {
            "assign" => Action::Assign {
                user: self.user.unwrap_or_default(),
            },
            "start_review" => Action::StartReview,
            "request_integration" => Action::RequestIntegration {
                missing: list(self.missing),
            },
            "integration_received" => Action::IntegrationReceived,
            "notify_rejection" => Action::NotifyRejection {
                reasons: list(self.reasons),
            },
            "observations_received" => Action::ObservationsReceived,
            "approve" => Action::Approve,
            "reject" => Action::Reject {
                reasons: list(self.reasons),
            },
            "issue" => Action::Issue,
            "close" => Action::Close,
            "withdraw" => Action::Withdraw,
            "reopen" => Action::Reopen,
            "confirm" => Action::Confirm {
                reasons: list(self.reasons),
            },
            "annul" => Action::Annul {
                reasons: list(self.reasons),
            },
            "" => return Err(AppError::field("action", "is required")),
            other => {
                return Err(AppError::field(
                    "action",
                    format!(
                        "unknown action '{}' (allowed: {})",
                        other.chars().take(40).collect::<String>(),
                        Action::NAMES.join(", ")
                    ),
                ));
            }
        };
        if self.note.as_ref().is_some_and(|n| n.chars().count() > 5000) {
            return Err(AppError::field("note", "must be at most 5000 characters"));
        }
        Ok((action, self.note))
    }
}

/// Applies a workflow action for `actor` (already allowed to act), with what the action
/// produces: the API, the back-office buttons and the demo share it.
///
/// Issuing a ZTL or CUDE case creates its permit (or changes the plates of the one it
/// amends): checked against the policy before the case changes state, so a refused permit
/// leaves the case as it was; the printed permit is attached and registered with the
/// change of status. (Only from `approved`: from anywhere else the workflow's own refusal
/// is the answer.) Annulling a contested fine produces the annulment request for the
/// police: its documents are prepared first and registered with the decision, atomically,
/// and the message taking them to the police is queued in the same transaction.
pub async fn perform_action(
    app: &App,
    actor: &str,
    reference: &str,
    request: ActionRequest,
) -> Result<CaseView, AppError> {
    check_reference(reference)?;
    let notify = request.notify.unwrap_or(true);
    let notify_channel = request.notify_channel.clone();
    let lang = request.lang.clone();
    let (action, note) = request.into_action()?;
    let mut to_police = Vec::new();
    let outgoing = match &action {
        Action::Issue => {
            let case = app.store.get_case(reference).await?;
            match case.summary.status.as_str() {
                "approved" => match crate::permits::plan(app, &case).await? {
                    Some(plan) => vec![crate::permits::issue(app, reference, &plan, actor).await?],
                    None => Vec::new(),
                },
                _ => Vec::new(),
            }
        }
        Action::Annul { reasons } if reasons.iter().any(|r| !r.trim().is_empty()) => {
            let case = app.store.get_case(reference).await?;
            let is_report = app
                .store
                .case_type(&case.summary.case_type)
                .is_some_and(|t| t.workflow == WorkflowKind::Report);
            if is_report && case.summary.status == "in_review" {
                let request = crate::remedy::annulment_request(app, &case, reasons).await?;
                to_police.push(request.to_police);
                request.documents
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let notice = if notify {
        crate::outbound::notice_of_action(
            app,
            reference,
            &action,
            notify_channel.as_deref(),
            lang.as_deref(),
        )
        .await?
    } else {
        crate::outbound::Notice::default()
    };
    let mut messages = notice.messages;
    messages.extend(to_police);
    let (case, queued) = app
        .store
        .apply_action_writing(
            reference,
            &action,
            note.as_deref(),
            actor,
            &outgoing,
            &messages,
        )
        .await?;
    if !queued.is_empty() {
        app.wake_outbound();
    }
    if let Some((phone, script)) = notice.call {
        // Nobody to write to: the case waits on a citizen reached only by phone. The action
        // stands whatever happens here (the minute's check of unanswered cases opens the
        // call later if this one is lost).
        match app
            .store
            .open_call_task(
                reference,
                "no_digital_contact",
                Some(&phone),
                &script,
                actor,
            )
            .await
        {
            Ok(_) => return Ok(app.store.get_case(reference).await.unwrap_or(case)),
            Err(e) => tracing::warn!(%reference, error = %e, "call-back task not opened"),
        }
    }
    Ok(case)
}

/// The desk's way to act (the back office's buttons): an action the workflow allows only in
/// review, asked of a case just received, first starts the review — its own journaled step,
/// exactly as if the operator had pressed "start review" — so that the operator does not
/// have to. The API keeps the workflow as it is (CONTRACT §7.2): only the pages call this.
pub async fn perform_from_desk(
    app: &App,
    actor: &str,
    reference: &str,
    request: ActionRequest,
) -> Result<CaseView, AppError> {
    check_reference(reference)?;
    if let Ok((action, note)) = request.clone().into_action()
        && !matches!(action, Action::StartReview)
    {
        let facts = CaseFacts {
            has_note: note.is_some(),
            ..app.store.case_facts(reference).await?
        };
        if facts.status == Status::Received {
            let in_review = CaseFacts {
                status: Status::InReview,
                ..facts.clone()
            };
            if plan(&facts, &action).is_err() && plan(&in_review, &action).is_ok() {
                let start = ActionRequest {
                    action: Some("start_review".into()),
                    ..ActionRequest::default()
                };
                perform_action(app, actor, reference, start).await?;
            }
        }
    }
    perform_action(app, actor, reference, request).await
}

/// Changes the case's type-specific fields with a JSON merge patch (`null` removes a key),
/// each change journaled with its old and new value.
pub async fn patch_fields(
    app: &App,
    reference: &str,
    patch: serde_json::Value,
    actor: &str,
) -> Result<CaseView, AppError> {
    check_reference(reference)?;
    let serde_json::Value::Object(patch) = patch else {
        return Err(AppError::field("fields", "must be a JSON object"));
    };
    if patch.len() > 50 {
        return Err(AppError::field("fields", "at most 50 fields at once"));
    }
    let errors: Vec<FieldError> = patch
        .keys()
        .filter(|key| {
            key.is_empty()
                || key.len() > 64
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .map(|key| {
            FieldError::new(
                format!("fields.{}", key.chars().take(64).collect::<String>()),
                "a field name is 1-64 letters, digits, '_' or '-'",
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    Ok(app
        .store
        .update_case_fields(reference, &patch, actor)
        .await?)
}
