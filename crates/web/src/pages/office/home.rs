//! The clerk's start page: the queues that matter, each with its count and a link to its list.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sportello_domain::case::Status;
use sportello_domain::roles::Permission;
use sportello_store::cases::CaseFilter;

use super::cases::{Row, row};
use super::{PageQuery, staff};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page};

/// One queue of the home page.
struct Queue {
    label: String,
    count: i64,
    href: String,
    alert: bool,
}

#[derive(Template)]
#[template(path = "office_home.html")]
struct HomePage {
    tr: Tr,
    frame: Frame,
    queues: Vec<Queue>,
    mine: Vec<Row>,
}

/// The queues: (key, filter, link query, alerting when not empty).
fn queue_filters(login: &str) -> Vec<(&'static str, CaseFilter, String, bool)> {
    let base = CaseFilter {
        per_page: 0,
        page: 1,
        ..CaseFilter::default()
    };
    vec![
        (
            "queue.new",
            CaseFilter {
                status: Some(Status::Received),
                assignee: Some("none".into()),
                ..base.clone()
            },
            "status=received&assignee=none".into(),
            false,
        ),
        (
            "queue.mine",
            CaseFilter {
                assignee: Some(login.to_owned()),
                open: true,
                ..base.clone()
            },
            format!("assignee={login}&open=true"),
            false,
        ),
        (
            "queue.waiting",
            CaseFilter {
                status: Some(Status::WaitingCitizen),
                ..base.clone()
            },
            "status=waiting_citizen".into(),
            false,
        ),
        (
            "queue.due_soon",
            CaseFilter {
                due_within_days: Some(5),
                ..base.clone()
            },
            "due_within=5".into(),
            true,
        ),
        (
            "queue.overdue",
            CaseFilter {
                overdue: true,
                ..base.clone()
            },
            "overdue=true".into(),
            true,
        ),
        (
            "queue.orphan",
            CaseFilter {
                orphan: true,
                ..base.clone()
            },
            "orphan=true".into(),
            true,
        ),
        (
            // Something arrived for a closed case: it is in this queue although closed.
            "queue.attention",
            CaseFilter {
                flag: Some("needs_attention".into()),
                ..base.clone()
            },
            "flag=needs_attention".into(),
            true,
        ),
        (
            "queue.ocr_failed",
            CaseFilter {
                flag: Some("ocr_failed".into()),
                open: true,
                ..base.clone()
            },
            "flag=ocr_failed".into(),
            true,
        ),
        (
            "queue.unsorted",
            CaseFilter {
                flag: Some("unsorted_scan".into()),
                open: true,
                ..base.clone()
            },
            "flag=unsorted_scan".into(),
            true,
        ),
        (
            "queue.message_failed",
            CaseFilter {
                flag: Some("message_failed".into()),
                open: true,
                ..base.clone()
            },
            "flag=message_failed".into(),
            true,
        ),
        (
            "queue.pec_not_delivered",
            CaseFilter {
                flag: Some("pec_not_delivered".into()),
                open: true,
                ..base
            },
            "flag=pec_not_delivered".into(),
            true,
        ),
    ]
}

pub(super) async fn home(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let mut queues = Vec::new();
    for (key, filter, link, alert) in queue_filters(&session.user.login) {
        let count = state.store.list_cases(&filter).await.map_or(0, |(_, n)| n);
        queues.push(Queue {
            label: tr.t(key).to_owned(),
            count,
            href: format!("/ufficio/pratiche?{link}"),
            alert: alert && count > 0,
        });
    }
    // Citizens to call back (the call-back queue has its own page).
    let calls = state.store.call_queue(0, 0).await.map_or(0, |(_, n)| n);
    queues.push(Queue {
        label: tr.t("queue.callbacks").to_owned(),
        count: calls,
        href: "/ufficio/richiamate".into(),
        alert: false,
    });
    let mine = state
        .store
        .list_cases(&CaseFilter {
            assignee: Some(session.user.login.clone()),
            open: true,
            page: 1,
            per_page: 20,
            ..CaseFilter::default()
        })
        .await
        .map(|(items, _)| items.iter().map(|c| row(&tr, c)).collect())
        .unwrap_or_default();
    let page_ = HomePage {
        tr,
        frame: Frame::staff(&state, "home", &session).with_language(&tr),
        queues,
        mine,
    };
    page(StatusCode::OK, &page_)
}

// ----- case list -----
