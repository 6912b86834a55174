//! The phone at hand (issue 18 §5): `/ufficio/chiamata?numero=`, the page a PBX or the
//! operator opens when a call arrives. It reads what the CTI look-up reads
//! ([`sportello_app::caller::caller_card`]: same normalisation, same audit) and puts it in
//! words; one click logs the call on a case (`POST /ufficio/chiamata/registra`), one form
//! opens a new case by telephone for the caller (`POST /ufficio/chiamata/nuova`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::cases::CitizenView;

use super::{staff, urlencode};
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page, same_token};
use sportello_app::AppError;
use sportello_app::caller::{caller_card, log_incoming_call};
use sportello_app::cases::{CaseRequest, CitizenRequest};

/// Query of `/ufficio/chiamata`.
#[derive(Debug, Default, Deserialize)]
pub struct CallQuery {
    lang: Option<String>,
    numero: Option<String>,
}

/// One open case as the operator says it on the phone.
struct OpenCase {
    reference: String,
    status: String,
    due: String,
    waiting_for: Vec<String>,
    call_task: Option<i64>,
}

#[derive(Template)]
#[template(path = "office_call.html")]
struct CallPage {
    tr: Tr,
    frame: Frame,
    /// The number as typed or given by the PBX.
    number: String,
    /// The number as it is matched (the CTI look-up's key), when it is one.
    normalised: Option<String>,
    /// Why the number is not one (422).
    error: Option<String>,
    citizen: Option<CitizenView>,
    cases: Vec<OpenCase>,
    /// More open cases than those shown.
    more: usize,
    /// The case types a new case can have: (id, name in words).
    case_types: Vec<(String, String)>,
    /// Why the last form was refused, in words.
    refused: Option<String>,
}

/// `GET /ufficio/chiamata?numero=`: who is calling, their open cases and what each waits
/// for, the open call-back; an unknown number says so (200), a bad one answers 422.
pub(super) async fn call_page(
    State(state): State<AppState>,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
) -> Response {
    let number = query
        .numero
        .clone()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(60)
        .collect::<String>();
    let session = match staff(
        &state,
        &headers,
        &format!("/ufficio/chiamata?numero={}", urlencode(&number)),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::LookupCaller) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    render_call(&state, &session, tr, &number, None).await
}

/// The call page of `number` for `session`'s operator; `refused` says why a form of it was
/// not done (then the answer is 422).
async fn render_call(
    state: &AppState,
    session: &sportello_store::sessions::Session,
    tr: Tr,
    number: &str,
    refused: Option<String>,
) -> Response {
    let ok = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut view = CallPage {
        frame: Frame::staff(state, "", session).with_language(&tr),
        normalised: sportello_store::cases::phone_key(number),
        number: number.to_owned(),
        error: None,
        citizen: None,
        cases: Vec::new(),
        more: 0,
        case_types: super::case_types(state, &tr),
        refused,
        tr,
    };
    if number.is_empty() {
        return page(ok, &view);
    }
    match caller_card(state, &session.user.login, number).await {
        Ok(Some(card)) => {
            view.more = card.open_cases.len().saturating_sub(card.waiting.len());
            view.cases = card
                .waiting
                .into_iter()
                .map(|w| OpenCase {
                    status: view.tr.name("status", &w.status),
                    due: w.due_at.get(..10).unwrap_or(&w.due_at).to_owned(),
                    waiting_for: w
                        .waiting_for
                        .iter()
                        .map(|d| view.tr.name("document", d))
                        .collect(),
                    reference: w.reference,
                    call_task: w.call_task,
                })
                .collect();
            view.citizen = Some(card.citizen);
            page(ok, &view)
        }
        Ok(None) => page(ok, &view),
        Err(AppError::Invalid(_)) => {
            view.error = Some(view.tr.t("call.bad_number").to_owned());
            view.normalised = None;
            page(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
        Err(e) => {
            tracing::warn!(error = ?e, "call page: look-up failed");
            crate::pages::temporarily_unavailable()
        }
    }
}

/// The call page's forms: log the call on a case, or open a new case for the caller.
#[derive(Debug, Deserialize)]
pub struct CallForm {
    csrf: String,
    /// The calling number, as the page was opened with.
    numero: String,
    /// `registra`: the case the call is about.
    case: Option<String>,
    /// The operator's note (optional when logging, the description of a new case).
    note: Option<String>,
    /// `nuova`: the new case's type and subject, and for an unknown caller who they are.
    case_type: Option<String>,
    subject: Option<String>,
    name: Option<String>,
    fiscal_code: Option<String>,
}

/// The signed-in operator who may take calls and change cases, with a valid CSRF token.
async fn call_form(
    state: &AppState,
    headers: &HeaderMap,
    form: &CallForm,
) -> Result<sportello_store::sessions::Session, Response> {
    let here = format!("/ufficio/chiamata?numero={}", urlencode(&form.numero));
    let session = staff(state, headers, &here).await?;
    if !same_token(&form.csrf, &session.csrf_token) {
        let tr = language(None, headers);
        let expired = tr.t("form.expired").to_owned();
        return Err(render_call(state, &session, tr, form.numero.trim(), Some(expired)).await);
    }
    if !(session.user.role.can(Permission::LookupCaller)
        && session.user.role.can(Permission::ActOnCase))
    {
        crate::guard::permission_refused(&session.user.login, "log calls");
        return Err(Redirect::to("/ufficio/permessi").into_response());
    }
    Ok(session)
}

/// The call page again, saying in the reader's language why a use case refused its form.
async fn refused(
    state: &AppState,
    session: &sportello_store::sessions::Session,
    headers: &HeaderMap,
    number: &str,
    error: AppError,
) -> Response {
    let tr = language(None, headers);
    let why = ApiError::from(error).detail_in(tr);
    render_call(state, session, tr, number, Some(why)).await
}

/// `POST /ufficio/chiamata/registra`: the call goes on the case's timeline (one click from
/// the call page), then the case page opens.
pub(super) async fn log_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CallForm>,
) -> Response {
    let session = match call_form(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reference = form.case.clone().unwrap_or_default();
    match log_incoming_call(
        &state,
        &session.user.login,
        &reference,
        form.numero.trim(),
        form.note.as_deref(),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("{}?esito=log_call", super::case_path(&reference)))
            .into_response(),
        Err(e) => refused(&state, &session, &headers, form.numero.trim(), e).await,
    }
}

/// `POST /ufficio/chiamata/nuova`: a new case by telephone for the caller (known: their
/// record; unknown: the name and fiscal code the operator asks), registered like any other,
/// then its page opens.
pub(super) async fn new_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CallForm>,
) -> Response {
    let session = match call_form(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.user.role.can(Permission::CreateCase) {
        crate::guard::permission_refused(&session.user.login, "open cases");
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let number = form.numero.trim().to_owned();
    if let Err(e) = sportello_app::caller::check_number(&number) {
        return refused(&state, &session, &headers, &number, e).await;
    }
    // A known caller's identity comes from their record, never from the form.
    let known = match state.store.lookup_caller(&number).await {
        Ok(found) => found.map(|(citizen, _)| citizen),
        Err(_) => return crate::pages::temporarily_unavailable(),
    };
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let citizen = match known {
        Some(c) => CitizenRequest {
            fiscal_code: c.fiscal_code,
            name: c.name,
            phone: c.phone.or(Some(number.clone())),
            ..CitizenRequest::default()
        },
        None => CitizenRequest {
            fiscal_code: given(&form.fiscal_code).map(|f| f.to_ascii_uppercase()),
            name: given(&form.name),
            phone: Some(number.clone()),
            ..CitizenRequest::default()
        },
    };
    let request = CaseRequest {
        case_type: given(&form.case_type),
        subject: given(&form.subject),
        description: given(&form.note),
        channel: Some("phone".into()),
        citizen: Some(citizen),
        fields: None,
    };
    match sportello_app::cases::create(&state, request, &session.user.login, true).await {
        Ok(case) => Redirect::to(&format!(
            "{}?esito=new_case",
            super::case_path(&case.summary.reference)
        ))
        .into_response(),
        Err(e) => refused(&state, &session, &headers, &number, e).await,
    }
}
