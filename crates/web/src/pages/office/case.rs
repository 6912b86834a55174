//! The case page: status, legal clock, the timeline of every channel, the actions allowed now
//! and the citizen's other cases.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseView};
use sportello_store::sessions::Session;

use super::case_path;
use super::cases::{Row, row};
use super::words::{self, Entry};
use super::{PageQuery, staff};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, day, language, page, when};

/// An action button of the case page.
struct ActionButton {
    name: &'static str,
    label: String,
    /// `note`, `reasons`, `missing`, `user` or nothing: the field it asks for.
    asks: &'static str,
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
    /// For permit requests: (category, plates, documents received) as the form shows them,
    /// with the policy's categories.
    permit_form: Option<(String, String, String)>,
    categories: Vec<(String, String)>,
    /// The form proposing an appointment (`office_case_appointment.html`).
    appointment_form: Option<super::contact::CaseAppointmentForm>,
}

/// The actions a case's status allows, with the field each asks for (the workflow
/// decides for good when one is pressed).
fn actions_for(tr: &Tr, case: &CaseView, report: bool) -> Vec<ActionButton> {
    let names: &[(&str, &str)] = match (case.summary.status.as_str(), report) {
        ("received", _) => &[
            ("assign", "user"),
            ("start_review", ""),
            ("withdraw", "note"),
        ],
        ("in_review", false) => &[
            ("assign", "user"),
            ("request_integration", "missing"),
            ("notify_rejection", "reasons"),
            ("approve", ""),
            ("reject", "reasons"),
        ],
        ("in_review", true) => &[
            ("assign", "user"),
            ("request_integration", "missing"),
            ("confirm", "reasons"),
            ("annul", "reasons"),
        ],
        ("waiting_citizen", _) => &[("integration_received", "")],
        ("rejection_notice", _) => &[("observations_received", ""), ("reject", "reasons")],
        ("approved", _) => &[("issue", "")],
        ("issued", _) | ("rejected", _) => &[("close", "")],
        ("closed", _) => &[("reopen", "note")],
        _ => &[],
    };
    names
        .iter()
        .map(|(name, asks)| ActionButton {
            name,
            label: tr.name("action", name),
            asks,
        })
        .collect()
}

pub(super) async fn case_page(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let here = case_path(&reference);
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    render_case(
        &state,
        &session,
        tr,
        &reference,
        query
            .esito
            .as_deref()
            .map(|a| tr.f("case.done", &[("action", &tr.name("action", a))])),
        None,
    )
    .await
}

pub(super) async fn render_case(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
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
    if let Ok(messages) = state.store.case_messages(&case.summary.reference).await {
        for m in messages {
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
                link: None,
                body: Some(m.excerpt.clone()).filter(|t| !t.trim().is_empty()),
                message: Some(m.id),
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
                joined("documents"),
            )
        });
    let categories = state
        .policy
        .categories
        .iter()
        .map(|c| (c.id.clone(), words::category_choice(&tr, c)))
        .collect();
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
        actions: actions_for(&tr, &case, report),
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
