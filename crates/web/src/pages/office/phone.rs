//! The phone at hand (issue 18 §5): `/ufficio/chiamata?numero=`, the page a PBX or the
//! operator opens when a call arrives. It reads what the CTI look-up reads
//! ([`crate::api::inbound::caller_card`]: same normalisation, same audit) and puts it in words.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::cases::CitizenView;

use super::{staff, urlencode};
use crate::AppState;
use crate::api::inbound::caller_card;
use crate::error::ApiError;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page};

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
    let mut view = CallPage {
        frame: Frame::staff(&state, "", &session).with_language(&tr),
        normalised: sportello_store::cases::phone_key(&number),
        number: number.clone(),
        error: None,
        citizen: None,
        cases: Vec::new(),
        more: 0,
        tr,
    };
    if number.is_empty() {
        return page(StatusCode::OK, &view);
    }
    match caller_card(&state, &session.user.login, &number).await {
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
            page(StatusCode::OK, &view)
        }
        Ok(None) => page(StatusCode::OK, &view),
        Err(ApiError::Invalid(_)) => {
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
