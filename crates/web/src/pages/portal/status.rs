//! Following a case (`/stato`): by reference and fiscal code, or by the private link of a message.
//! Every wrong pair gets the same answer after the same time, and lookups are rate limited, so the
//! form tells nothing about which half was wrong. The citizen may add documents from there.

use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_store::cases::CaseView;
use sportello_store::documents::StagedBlob;

use super::form::{attach_files, checked_form, refusal_words};
use super::{LangQuery, portal_frame, with_cookies};
use crate::AppState;
use crate::client::ClientAddress;
use crate::i18n::Tr;
use crate::pages::{Frame, day, page};

/// Every answer of `/stato` takes at least this long, found or not, so that timing tells
/// nothing about which part of a pair was wrong.
pub(super) const STATUS_ANSWER_TIME: Duration = Duration::from_millis(400);

/// Lookups of `/cude` and private links allowed per client in a window
/// (`crate::guard::STATUS_WINDOW`); wrong `/stato` pairs have their own counters there.
pub(super) const STATUS_LOOKUPS: u32 = 10;

/// A case as the citizen sees it: no journal, no operator, no personal data beyond what
/// they gave.
struct CitizenCase {
    reference: String,
    status: String,
    case_type: String,
    received: String,
    due: String,
    days_left: i64,
    clock: String,
    missing: Vec<String>,
    documents: Vec<String>,
    can_upload: bool,
    /// Appointments at the counter: `(id, when, place, reason, still to confirm)`.
    appointments: Vec<(i64, String, String, String, bool)>,
}

#[derive(Template)]
#[template(path = "portal_status.html")]
struct StatusPage {
    tr: Tr,
    frame: Frame,
    reference: String,
    fiscal_code: String,
    error: Option<String>,
    notice: Option<String>,
    case: Option<CitizenCase>,
    /// The private link the page was opened with (its forms post back to it).
    link: Option<String>,
}

impl StatusPage {
    fn new(tr: Tr, frame: Frame) -> StatusPage {
        StatusPage {
            tr,
            frame,
            reference: String::new(),
            fiscal_code: String::new(),
            error: None,
            notice: None,
            case: None,
            link: None,
        }
    }
}

pub(super) async fn status_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "status", &query, &headers);
    let page_ = StatusPage::new(tr, frame);
    with_cookies(page(StatusCode::OK, &page_), cookies)
}

/// What a citizen sees of their case.
fn citizen_view(tr: &Tr, case: &CaseView) -> CitizenCase {
    let missing = case
        .timeline
        .iter()
        .rev()
        .find(|e| e.detail.get("action").and_then(|a| a.as_str()) == Some("request_integration"))
        .and_then(|e| e.detail.get("missing"))
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|v| v.as_str().map(|d| tr.name("document", d)))
                .collect()
        })
        .unwrap_or_default();
    let waiting = case.summary.status == "waiting_citizen";
    CitizenCase {
        reference: case.summary.reference.clone(),
        status: tr.name("status", &case.summary.status),
        case_type: tr.name("case_type", &case.summary.case_type),
        received: crate::pages::when(&case.summary.received_at),
        due: day(&case.summary.due_at),
        days_left: case.summary.sla.days_left,
        clock: tr.name("clock", &case.summary.sla.state),
        missing: if waiting { missing } else { Vec::new() },
        documents: case.documents.iter().map(|d| d.filename.clone()).collect(),
        can_upload: case.summary.status != "closed",
        appointments: Vec::new(),
    }
}

/// Finds the case of a reference and fiscal code pair, within the limits; `None` for
/// anything wrong, whatever it was.
async fn find_case(
    state: &AppState,
    client: ClientAddress,
    reference: &str,
    fiscal_code: &str,
) -> Result<Option<CaseView>, &'static str> {
    let reference = reference.trim().to_ascii_uppercase();
    if !crate::guard::status_lookup_allowed(state, client, &reference).await {
        return Err("status.too_many");
    }
    let case = match FiscalCode::parse(fiscal_code.trim()) {
        Ok(code) => state.store.get_case(&reference).await.ok().filter(|case| {
            case.citizen
                .fiscal_code
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(code.as_str()))
        }),
        Err(_) => None,
    };
    if case.is_none() {
        crate::guard::status_lookup_failed(state, client, &reference).await;
    }
    Ok(case)
}

/// `POST /stato`: a lookup (`reference`, `fiscal_code`) or, with files, documents for
/// the case (which resume its clock when it waits for them).
pub(super) async fn status_lookup(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    client: ClientAddress,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let started = Instant::now();
    let (tr, frame, cookies) = portal_frame(&state, "status", &query, &headers);
    let mut page_ = StatusPage::new(tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_.error = Some(refusal_words(&state, tr, key));
            return with_cookies(page(status, &page_), cookies);
        }
    };
    if !form.files.is_empty()
        && let Some(refused) = crate::guard::anonymous_write(&state, client, &headers).await
    {
        return refused;
    }
    page_.reference = form.text("reference").trim().to_owned();
    page_.fiscal_code = form.text("fiscal_code").trim().to_owned();
    let found = find_case(&state, client, &page_.reference, &page_.fiscal_code).await;
    let status = match found {
        Err(key) => {
            page_.error = Some(tr.t(key).to_owned());
            StatusCode::TOO_MANY_REQUESTS
        }
        Ok(None) => {
            page_.error = Some(tr.t("status.not_found").to_owned());
            StatusCode::OK
        }
        Ok(Some(case)) => {
            let confirm = form.text("confirm_appointment").parse::<i64>().ok();
            show_case(&state, &mut page_, case, form.files, confirm).await;
            StatusCode::OK
        }
    };
    if let Some(rest) = STATUS_ANSWER_TIME.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    with_cookies(page(status, &page_), cookies)
}

/// Fills the status page with the citizen's case, after attaching the files they sent
/// (which resumes the clock when the office waits for them).
async fn show_case(
    state: &AppState,
    page_: &mut StatusPage,
    mut case: CaseView,
    files: Vec<(String, String, StagedBlob)>,
    confirm: Option<i64>,
) {
    let tr = page_.tr;
    // The citizen confirms an appointment the office proposed (only one of their case).
    if let Some(id) = confirm {
        let theirs = state
            .store
            .appointments_of_case(&case.summary.reference)
            .await
            .map(|list| list.iter().any(|a| a.id == id && a.status == "proposed"))
            .unwrap_or(false);
        if theirs {
            match state
                .store
                .confirm_appointment(id, "portal", "cittadino")
                .await
            {
                Ok(_) => page_.notice = Some(tr.t("status.appointment_confirmed").to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "appointment not confirmed");
                    page_.error = Some(tr.t("form.upload_failed").to_owned());
                }
            }
            if let Ok(fresh) = state.store.get_case(&case.summary.reference).await {
                case = fresh;
            }
        }
    }
    if !files.is_empty() && case.summary.status != "closed" {
        match attach_files(state, &case.summary.reference, files, "cittadino").await {
            Ok(n) => {
                if case.summary.status == "waiting_citizen" {
                    let _ = state
                        .store
                        .apply_action(
                            &case.summary.reference,
                            &sportello_domain::workflow::Action::IntegrationReceived,
                            Some("documenti caricati dal portale"),
                            "cittadino",
                        )
                        .await;
                }
                page_.notice = Some(tr.f("status.uploaded", &[("n", &n.to_string())]));
                if let Ok(fresh) = state.store.get_case(&case.summary.reference).await {
                    case = fresh;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "portal upload failed");
                page_.error = Some(tr.t("form.upload_failed").to_owned());
            }
        }
    }
    let mut view = citizen_view(&tr, &case);
    view.appointments = state
        .store
        .appointments_of_case(&case.summary.reference)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| matches!(a.status.as_str(), "proposed" | "confirmed"))
        .map(|a| {
            (
                a.id,
                crate::pages::when(&a.starts_at),
                a.place,
                a.reason,
                a.status == "proposed",
            )
        })
        .collect();
    page_.case = Some(view);
}

/// The case a private link opens, within the address's limit of lookups.
async fn case_by_link(
    state: &AppState,
    client: ClientAddress,
    token: &str,
) -> Result<Option<CaseView>, &'static str> {
    if !crate::guard::lookup_allowed(state, client, "link", STATUS_LOOKUPS * 3).await {
        return Err("status.too_many");
    }
    if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match state.store.case_of_link(token).await {
        Ok(Some(reference)) => Ok(state.store.get_case(&reference).await.ok()),
        _ => Ok(None),
    }
}

/// `GET /stato/{token}`: the case behind a private link.
pub(super) async fn status_by_link(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Response {
    link_page(&state, &token, &query, client, &headers, None).await
}

/// `POST /stato/{token}`: documents sent from the private link's page.
pub(super) async fn status_by_link_upload(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
    client: ClientAddress,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    link_page(&state, &token, &query, client, &headers, Some(multipart)).await
}

async fn link_page(
    state: &AppState,
    token: &str,
    query: &LangQuery,
    client: ClientAddress,
    headers: &HeaderMap,
    form: Option<Result<Multipart, axum::extract::multipart::MultipartRejection>>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(state, "status", query, headers);
    let mut page_ = StatusPage {
        link: Some(token.to_owned()),
        ..StatusPage::new(tr, frame)
    };
    let mut refused = None;
    let (files, confirm) = match form {
        None => (Vec::new(), None),
        Some(multipart) => match checked_form(state, multipart, &page_.frame.csrf).await {
            Ok(form) => {
                let confirm = form.text("confirm_appointment").parse::<i64>().ok();
                (form.files, confirm)
            }
            Err((status, key)) => {
                page_.error = Some(refusal_words(state, tr, key));
                refused = Some(status);
                (Vec::new(), None)
            }
        },
    };
    let status = match case_by_link(state, client, token).await {
        Err(key) => {
            page_.error = Some(tr.t(key).to_owned());
            page_.link = None;
            StatusCode::TOO_MANY_REQUESTS
        }
        Ok(None) => {
            page_.error = Some(tr.t("status.link_unknown").to_owned());
            page_.link = None;
            StatusCode::NOT_FOUND
        }
        Ok(Some(case)) => {
            show_case(state, &mut page_, case, files, confirm).await;
            // What was sent and refused (too large, unreadable) is never answered 200.
            refused.unwrap_or(StatusCode::OK)
        }
    };
    with_cookies(page(status, &page_), cookies)
}

// ----- /cude: temporary plates -----
