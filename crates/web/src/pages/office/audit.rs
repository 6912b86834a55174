//! Who read what: the access log of case files and documents, for the supervisor.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;

use super::staff;
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page};

/// Query of `/ufficio/accessi`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    lang: Option<String>,
    actor: Option<String>,
    target: Option<String>,
}

#[derive(Template)]
#[template(path = "office_audit.html")]
struct AuditPage {
    tr: Tr,
    frame: Frame,
    actor: String,
    target: String,
    rows: Vec<(String, String, String, String)>,
}

/// `GET /ufficio/accessi`: who opened which citizen's data, for the supervisor.
pub(super) async fn audit(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/accessi").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadReports) {
        crate::guard::permission_refused(&session.user.login, "read reports");
        return Redirect::to("/ufficio").into_response();
    }
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>()
    };
    let (actor, target) = (clean(&query.actor), clean(&query.target));
    let rows = state
        .store
        .recent_accesses(
            Some(actor.as_str()).filter(|a| !a.is_empty()),
            Some(target.as_str()).filter(|t| !t.is_empty()),
            500,
        )
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(at, who, action, what)| {
            (
                at.with_timezone(&sportello_domain::calendar::ROME)
                    .format("%d/%m/%Y %H:%M:%S")
                    .to_string(),
                who,
                action,
                what,
            )
        })
        .collect();
    let page_ = AuditPage {
        frame: Frame::staff(&state, "audit", &session).with_language(&tr),
        tr,
        actor,
        target,
        rows,
    };
    page(StatusCode::OK, &page_)
}

// ----- a permit -----
