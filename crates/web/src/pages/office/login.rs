//! Signing in and out of the back office: a session cookie, a CSRF token per session, and
//! failed attempts throttled per (account, client) and per client, with a device cookie for
//! browsers that signed in before, so that a stranger cannot lock a clerk out
//! (`crate::guard`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::roles::Permission;

use super::{PageQuery, SESSION_COOKIE, staff};
use crate::AppState;
use crate::client::ClientAddress;
use crate::i18n::Tr;
use crate::pages::{Frame, cookie, language, page, random_token, same_token, set_cookie};

/// A local path of the back office to go back to after signing in (never another site,
/// never a header-splitting CR/LF: [`crate::hygiene::safe_local_path`]).
fn safe_next(next: Option<&str>) -> String {
    match next.and_then(crate::hygiene::safe_local_path) {
        Some(n) if n.starts_with("/ufficio") => n.to_owned(),
        _ => "/ufficio".to_owned(),
    }
}

// ----- sign-in -----

#[derive(Template)]
#[template(path = "office_login.html")]
struct LoginPage {
    tr: Tr,
    frame: Frame,
    login: String,
    next: String,
    error: Option<String>,
}

pub(super) async fn login_form(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let csrf = random_token();
    let page_ = LoginPage {
        tr,
        frame: Frame::new(&state, "login", None, csrf.clone()).with_language(&tr),
        login: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
    };
    let mut response = page(StatusCode::OK, &page_);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, "csrf_login", &csrf, None),
    );
    response
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /ufficio/login`: one message for any wrong pair; after `limits.sign_in_failures`
/// failures on an account from one client (or `sign_in_failures_per_client` from one
/// client), that client waits out the window; a browser with the account's device cookie
/// is counted on its own.
pub(super) async fn login(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    client: ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let csrf = random_token();
    let login_name = form.login.trim().chars().take(100).collect::<String>();
    let mut page_ = LoginPage {
        tr,
        frame: Frame::new(&state, "login", None, csrf.clone()).with_language(&tr),
        login: login_name.clone(),
        next: safe_next(form.next.as_deref()),
        error: None,
    };
    let fail = |mut page_: LoginPage, key: &str, status: StatusCode| {
        page_.error = Some(tr.t(key).to_owned());
        let mut response = page(status, &page_);
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state, "csrf_login", &csrf, None),
        );
        response
    };
    let expected = cookie(&headers, "csrf_login").unwrap_or_default();
    if !same_token(&form.csrf, &expected) {
        return fail(page_, "form.expired", StatusCode::FORBIDDEN);
    }
    let attempt = match crate::guard::sign_in_gate(&state, client, &login_name, &headers).await {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            let mut response = fail(page_, "login.locked", StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
            return response;
        }
    };
    let user = state
        .store
        .user_by_password(&login_name, &form.password)
        .await
        .ok()
        .flatten();
    let user = match user {
        Some(u) if u.role.can(Permission::ReadCase) || u.role.can(Permission::VerifyPermit) => u,
        other => {
            let why = if other.is_some() {
                "office sign-in with a role that has no office pages"
            } else {
                "wrong login or password"
            };
            crate::guard::sign_in_failed(&state, &attempt, why).await;
            page_.login = login_name;
            return fail(page_, "login.wrong", StatusCode::OK);
        }
    };
    // A second factor, when the user has one or their role requires it, comes first.
    let (pending, then) = super::second_factor::after_password(&state, &user).await;
    let (token, _) = match state.store.create_session_with(user.id, pending).await {
        Ok(created) => created,
        Err(e) if e.is_unavailable() => {
            return fail(page_, "form.failed", StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(_) => return fail(page_, "form.failed", StatusCode::INTERNAL_SERVER_ERROR),
    };
    if let Some(path) = then {
        page_.next = super::second_factor::with_next(path, &page_.next);
    }
    let _ = state
        .store
        .record_access(&user.login, "login", "ufficio")
        .await;
    let device = crate::guard::signed_in(&state, &attempt, &user.login).await;
    let mut response = Redirect::to(&page_.next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &token, None),
    );
    if let Some(device) = device {
        response.headers_mut().append(header::SET_COOKIE, device);
    }
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, "csrf_login", "", Some(0)),
    );
    response
}

/// A form carrying only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Ok(session) = staff(&state, &headers, "/ufficio").await
        && same_token(&form.csrf, &session.csrf_token)
        && let Some(token) = cookie(&headers, SESSION_COOKIE)
    {
        let _ = state.store.end_session(&token).await;
    }
    let mut response = Redirect::to("/ufficio/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    response
}

// ----- queues -----
