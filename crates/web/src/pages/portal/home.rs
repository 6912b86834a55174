//! The portal's start page and its static pages: the accessibility statement and the privacy notice.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{LangQuery, portal_frame, with_cookies};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{Frame, page};

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage {
    tr: Tr,
    frame: Frame,
}

pub(super) async fn home(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "home", &query, &headers);
    with_cookies(page(StatusCode::OK, &HomePage { tr, frame }), cookies)
}

#[derive(Template)]
#[template(path = "portal_static.html")]
struct StaticPage {
    tr: Tr,
    frame: Frame,
    title_key: &'static str,
    body_keys: Vec<&'static str>,
    feedback: bool,
}

pub(super) async fn accessibility(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "", &query, &headers);
    let body_keys = vec![
        "accessibility.p1",
        "accessibility.p2",
        "accessibility.p3",
        "accessibility.p4",
    ];
    let page_ = StaticPage {
        tr,
        frame,
        title_key: "accessibility.title",
        body_keys,
        feedback: true,
    };
    with_cookies(page(StatusCode::OK, &page_), cookies)
}

pub(super) async fn privacy(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "", &query, &headers);
    let page_ = StaticPage {
        tr,
        frame,
        title_key: "privacy.title",
        body_keys: vec!["privacy.p1", "privacy.p2", "privacy.p3"],
        feedback: false,
    };
    with_cookies(page(StatusCode::OK, &page_), cookies)
}
