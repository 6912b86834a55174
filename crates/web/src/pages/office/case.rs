//! The case page: status, legal clock, the timeline of every channel, the actions allowed now
//! and the citizen's other cases.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseView};
use sportello_store::sessions::Session;

use super::case_path;
use super::cases::{Row, row};
use super::staff;
use super::words::{self, Entry};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, day, language, page, when};

/// An action button of the case page.
struct ActionButton {
    name: &'static str,
    label: String,
    /// `note`, `reasons`, `missing`, `user` or nothing: the field it asks for.
    asks: &'static str,
    /// Its access key (listed on the page), or nothing.
    key: &'static str,
}

/// An inbound message of the case, in the messages section with the form that moves it.
struct MessageItem {
    id: i64,
    at: String,
    sender: String,
    channel: String,
    subject: String,
    protocol: Option<String>,
    body: String,
}

/// The step before a message moves: what moves where, asked once more.
pub(super) struct MoveConfirm {
    /// The message.
    pub(super) message: i64,
    /// "Sposta il messaggio … dalla pratica A alla pratica B?", in words.
    pub(super) question: String,
    /// The destination as typed (empty: a new case).
    pub(super) to: String,
    /// Why it moves.
    pub(super) note: String,
}

/// After a move, on the destination's page: the button that moves the message back.
pub(super) struct UndoOffer {
    /// The message.
    pub(super) message: i64,
    /// The case it came from.
    pub(super) from: String,
    /// The session-bound token ([`super::workspace::undo_token`]).
    pub(super) token: String,
}

/// What the case page shows besides the case: the outcome of what was just done, the
/// confirmation of a move, the undo of one.
#[derive(Default)]
pub(super) struct Extras {
    pub(super) notice: Option<String>,
    pub(super) error: Option<String>,
    pub(super) confirm_move: Option<MoveConfirm>,
    pub(super) undo: Option<UndoOffer>,
}

/// The case page's query: the language, the outcome of an action, and after a message was
/// moved here the case it came from with the session's undo token.
#[derive(Debug, Default, Deserialize)]
pub struct CaseQuery {
    #[serde(flatten)]
    page: super::PageQuery,
    /// The message moved here (its id).
    spostato: Option<String>,
    /// The case it came from.
    da: Option<String>,
    /// The undo token.
    annulla: Option<String>,
    /// Set after an undo: the message is back on this case.
    ripristinato: Option<String>,
}

#[derive(Template)]
#[template(path = "office_case.html")]
struct CasePage {
    tr: Tr,
    frame: Frame,
    case: CaseView,
    status: String,
    case_type: String,
    received: String,
    due: String,
    service_due: String,
    clock: String,
    entries: Vec<Entry>,
    actions: Vec<ActionButton>,
    others: Vec<Row>,
    /// The citizen's record (`/ufficio/cittadini/{id}`), when the case has a citizen.
    citizen_link: Option<String>,
    fields: Vec<(String, String)>,
    /// (flag, its name).
    flags: Vec<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
    evidence: Vec<(String, String, String, String)>,
    /// For permit requests: (category, plates) as the form shows them, with the policy's
    /// categories (id, name) and the chosen category's documents as a checklist.
    permit_form: Option<(String, String)>,
    categories: Vec<(String, String)>,
    checklist: Vec<super::workspace::CheckItem>,
    /// The permit issued (or last changed) on this case, for a link to its page.
    permit: Option<String>,
    /// The checklist's documents not received yet (id, name): what an integration asks.
    missing_choices: Vec<(String, String)>,
    /// What approving still lacks, in words (the approve button is disabled meanwhile).
    approve_gaps: Vec<String>,
    /// Active colleagues (login, label) for the assignment.
    colleagues: Vec<(String, String)>,
    /// Whether "assign to me" is offered.
    assign_me: bool,
    /// The signed-in user's login.
    me: String,
    /// The access keys of this page: (key, what it does).
    keys: Vec<(&'static str, String)>,
    messages: Vec<MessageItem>,
    confirm_move: Option<MoveConfirm>,
    undo: Option<UndoOffer>,
    /// The form proposing an appointment (`office_case_appointment.html`).
    appointment_form: Option<super::contact::CaseAppointmentForm>,
}

/// The actions a case's status allows, with the field each asks for (the workflow
/// decides for good when one is pressed).
/// `reject` is offered only when the workflow would accept it now (`reject_allowed`:
/// after the art. 10-bis notice and its ten days).
fn actions_for(tr: &Tr, case: &CaseView, report: bool, reject_allowed: bool) -> Vec<ActionButton> {
    // What review offers; on a case just received the desk starts the review itself
    // (`perform_from_desk`), so these are offered there too.
    let review: &[(&str, &str)] = if report {
        &[
            ("request_integration", "missing"),
            ("confirm", "reasons"),
            ("annul", "reasons"),
        ]
    } else {
        &[
            ("request_integration", "missing"),
            ("notify_rejection", "reasons"),
            ("approve", ""),
            ("reject", "reasons"),
        ]
    };
    let assign = ("assign", "user");
    let names: Vec<(&str, &str)> = match case.summary.status.as_str() {
        "received" => [
            &[assign, ("start_review", "")],
            review,
            &[("withdraw", "note")],
        ]
        .concat(),
        "in_review" => [&[assign], review].concat(),
        "waiting_citizen" => vec![assign, ("integration_received", "")],
        "rejection_notice" => vec![assign, ("observations_received", ""), ("reject", "reasons")],
        "approved" => vec![assign, ("issue", "")],
        "issued" | "rejected" => vec![("close", "")],
        "closed" => vec![("reopen", "note")],
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter(|(name, _)| *name != "reject" || reject_allowed)
        .map(|(name, asks)| ActionButton {
            name,
            label: tr.name("action", name),
            asks,
            key: access_key(name),
        })
        .collect()
}

/// The access key of a main action, or nothing.
fn access_key(action: &str) -> &'static str {
    match action {
        "start_review" => "i",
        "approve" => "a",
        "request_integration" => "r",
        "notify_rejection" => "n",
        "issue" => "e",
        "close" => "c",
        "assign" => "g",
        _ => "",
    }
}

pub(super) async fn case_page(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<CaseQuery>,
    headers: HeaderMap,
) -> Response {
    let here = case_path(&reference);
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.page.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let mut extras = Extras {
        notice: query
            .page
            .esito
            .as_deref()
            .map(|a| tr.f("case.done", &[("action", &tr.name("action", a))])),
        ..Extras::default()
    };
    // After a move: the undo, only for the session whose token it is.
    let moved = query
        .spostato
        .as_deref()
        .and_then(|m| m.parse::<i64>().ok());
    if let (Some(message), Some(from), Some(token)) = (moved, query.da, query.annulla)
        && crate::cookies::same_token(
            &token,
            &super::workspace::undo_token(&session.csrf_token, message, &from, &reference),
        )
    {
        extras.notice = Some(tr.f("workspace.moved", &[("from", &from), ("to", &reference)]));
        extras.undo = Some(UndoOffer {
            message,
            from,
            token,
        });
    }
    if query.ripristinato.is_some() {
        extras.notice = Some(tr.t("workspace.undone").to_owned());
    }
    render_workspace(&state, &session, tr, &reference, extras).await
}

pub(super) async fn render_case(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let extras = Extras {
        notice,
        error,
        ..Extras::default()
    };
    render_workspace(state, session, tr, reference, extras).await
}

/// The case page with what was just done, a move to confirm or a move to undo.
pub(super) async fn render_workspace(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    extras: Extras,
) -> Response {
    let Extras {
        notice,
        error,
        confirm_move,
        undo,
    } = extras;
    let found = match Reference::parse(reference) {
        Some(_) => state.store.get_case(reference).await,
        None => Err(sportello_store::StoreError::NotFound(reference.to_owned())),
    };
    // A busy, locked or full database is not a missing case: 503 with Retry-After.
    if let Err(e) = &found
        && e.is_unavailable()
    {
        return crate::pages::temporarily_unavailable();
    }
    let Ok(case) = found else {
        let page_ = NotFoundPage {
            frame: Frame::staff(state, "cases", session).with_language(&tr),
            tr,
        };
        return page(StatusCode::NOT_FOUND, &page_);
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "read_case", &case.summary.reference)
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    let report = state
        .store
        .case_type(&case.summary.case_type)
        .is_some_and(|t| t.workflow == sportello_domain::case::WorkflowKind::Report);
    let mut entries: Vec<Entry> = case
        .timeline
        .iter()
        .map(|e| words::describe(&tr, &state.policy, e))
        .collect();
    let mut messages = Vec::new();
    if let Ok(found) = state.store.case_messages(&case.summary.reference).await {
        for m in found {
            messages.push(MessageItem {
                id: m.id,
                at: when(&m.received_at),
                sender: m.sender.clone(),
                channel: tr.name("channel", &m.channel),
                subject: m.subject.clone(),
                protocol: m.protocol.clone(),
                body: m.excerpt.clone(),
            });
            entries.push(Entry {
                at: when(&m.received_at),
                actor: m.sender.clone(),
                what: format!(
                    "{} ({})",
                    tr.t("timeline.message"),
                    tr.name("channel", &m.channel)
                ),
                details: [
                    Some(m.subject.clone()).filter(|s| !s.is_empty()),
                    m.protocol
                        .as_ref()
                        .map(|p| format!("{}: {p}", tr.t("timeline.protocol"))),
                    Some(format!(
                        "{}: {}",
                        tr.t("timeline.rule"),
                        tr.name("rule", &m.rule)
                    )),
                ]
                .into_iter()
                .flatten()
                .collect(),
                link: Some((
                    format!("#messaggio-{}", m.id),
                    tr.t("workspace.read_message").to_owned(),
                )),
                body: None,
                message: None,
            });
        }
    }
    entries.sort_by(|a, b| {
        let key = |e: &Entry| chrono::NaiveDateTime::parse_from_str(&e.at, "%d/%m/%Y %H:%M").ok();
        key(a).cmp(&key(b))
    });
    let others = match case.citizen.fiscal_code.as_deref() {
        Some(code) => state
            .store
            .list_cases(&CaseFilter {
                citizen_fiscal_code: Some(code.to_owned()),
                page: 1,
                per_page: 20,
                ..CaseFilter::default()
            })
            .await
            .map(|(items, _)| {
                items
                    .iter()
                    .filter(|c| c.reference != case.summary.reference)
                    .map(|c| row(&tr, c))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let fields = words::fields(&tr, &state.policy, &case.fields);
    let evidence = if report {
        words::seg_evidence(state, &tr, &case).await
    } else {
        Vec::new()
    };
    let joined = |key: &str| match case.fields.get(key) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let permit_form = (matches!(case.summary.case_type.as_str(), "ztl_permit" | "cude")
        && case.summary.status != "closed")
        .then(|| {
            (
                case.fields
                    .get("category")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                joined("plates"),
            )
        });
    let checklist = if permit_form.is_some() {
        super::workspace::checklist(state, &tr, &case).await
    } else {
        Vec::new()
    };
    let categories = state
        .policy
        .categories
        .iter()
        .map(|c| (c.id.clone(), words::category_choice(&tr, c)))
        .collect();
    let reject_allowed = state
        .store
        .case_facts(&case.summary.reference)
        .await
        .is_ok_and(|facts| super::workspace::reject_allowed(&facts));
    let actions = actions_for(&tr, &case, report, reject_allowed);
    let approve_gaps = if actions.iter().any(|a| a.name == "approve") {
        super::workspace::approval_gaps(state, &tr, &case).await
    } else {
        Vec::new()
    };
    let can_act = session.user.role.can(Permission::ActOnCase);
    let offers_assign = can_act && actions.iter().any(|a| a.name == "assign");
    let colleagues = if offers_assign {
        super::workspace::colleagues(state).await
    } else {
        Vec::new()
    };
    let assign_me =
        offers_assign && case.summary.assignee.as_deref() != Some(session.user.login.as_str());
    let mut keys = vec![("z", tr.t("workspace.skip_actions").to_owned())];
    if assign_me {
        keys.push(("m", tr.t("workspace.assign_me").to_owned()));
    }
    keys.extend(
        actions
            .iter()
            .filter(|a| !a.key.is_empty())
            .filter(|a| a.name != "approve" || approve_gaps.is_empty())
            .map(|a| (a.key, a.label.clone())),
    );
    let appointment_form = super::contact::case_appointment_form(state, &tr, session, &case);
    let citizen_link = state
        .store
        .citizen_id_of_case(&case.summary.reference)
        .await
        .ok()
        .flatten()
        .map(super::citizen_path);
    let page_ = CasePage {
        citizen_link,
        appointment_form,
        status: tr.name("status", &case.summary.status),
        case_type: tr.name("case_type", &case.summary.case_type),
        received: when(&case.summary.received_at),
        due: day(&case.summary.due_at),
        service_due: day(&case.summary.sla.service_due_at),
        clock: tr.name("clock", &case.summary.sla.state),
        actions,
        approve_gaps,
        colleagues,
        assign_me,
        me: session.user.login.clone(),
        keys,
        // The permit the case produced: its number is on the timeline (issue, plate change).
        permit: case
            .timeline
            .iter()
            .rev()
            .find_map(|e| e.detail.get("permit").and_then(|p| p.as_str()))
            .map(str::to_owned),
        missing_choices: checklist
            .iter()
            .filter(|c| !c.checked)
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect(),
        checklist,
        messages,
        confirm_move,
        undo,
        flags: case
            .summary
            .flags
            .iter()
            .map(|f| (f.clone(), tr.name("flag", f)))
            .collect(),
        entries,
        others,
        fields,
        notice,
        error,
        evidence,
        permit_form,
        categories,
        frame: Frame::staff(state, "cases", session).with_language(&tr),
        case,
        tr,
    };
    page(StatusCode::OK, &page_)
}

#[derive(Template)]
#[template(path = "office_not_found.html")]
pub(super) struct NotFoundPage {
    pub(super) tr: Tr,
    pub(super) frame: Frame,
}
