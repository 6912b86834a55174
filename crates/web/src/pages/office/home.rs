//! The clerk's start page: the queues that matter, each with its count and a link to its list.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sportello_domain::roles::Permission;
use sportello_store::cases::CaseFilter;

use super::cases::{ListQuery, Row, row};
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

/// The queues: (key, the case list's query, alerting when not empty). The card's count
/// and its link are both read from this one query (through [`ListQuery`]), so the number
/// on the card is the total of the list it opens.
pub(super) const QUEUES: [(&str, &str, bool); 11] = [
    ("queue.new", "status=received&assignee=none", false),
    ("queue.mine", "assignee=me&open=true", false),
    ("queue.waiting", "status=waiting_citizen", false),
    ("queue.due_soon", "due_within=5", true),
    ("queue.overdue", "overdue=true", true),
    ("queue.orphan", "orphan=true", true),
    // Something arrived for a closed case: it is in this queue although closed.
    ("queue.attention", "flag=needs_attention", true),
    ("queue.ocr_failed", "flag=ocr_failed&open=true", true),
    ("queue.unsorted", "flag=unsorted_scan&open=true", true),
    (
        "queue.message_failed",
        "flag=message_failed&open=true",
        true,
    ),
    (
        "queue.pec_not_delivered",
        "flag=pec_not_delivered&open=true",
        true,
    ),
];

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
    for (key, link, alert) in QUEUES {
        let list = ListQuery::parse(link);
        let filter = CaseFilter {
            page: 1,
            per_page: 0,
            ..list.filter(&session.user.login)
        };
        let count = state.store.list_cases(&filter).await.map_or(0, |(_, n)| n);
        queues.push(Queue {
            label: tr.t(key).to_owned(),
            count,
            href: format!("/ufficio/pratiche?{}", list.canonical()),
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
