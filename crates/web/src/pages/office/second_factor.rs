//! The second factor of staff sign-ins (TOTP, RFC 6238): after the password, a user who
//! has one gives its code at `/ufficio/codice`; a user whose role requires one
//! (`security.second_factor_roles`) and has none sets it up at `/ufficio/secondo-fattore`
//! (the secret as text and as an `otpauth://` URI, confirmed by a first code), which any
//! signed-in member of staff may also use. Until then the session is not signed in.
//! A wrong code ends the waiting session: guessing starts again from the password, whose
//! attempts are throttled.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sportello_domain::security::SecurityEventKind;
use sportello_domain::totp;
use sportello_store::security::SecurityEvent;
use sportello_store::sessions::Session;
use sportello_store::users::AuthUser;

use super::{PageQuery, SESSION_COOKIE, urlencode};
use crate::AppState;
use crate::i18n::Tr;
use crate::pages::{ClientIp, Frame, cookie, language, page, same_token};

/// Where sign-in goes after the password: the next page, the code, or enrolment.
pub(super) async fn after_password(
    state: &AppState,
    user: &AuthUser,
) -> (bool, Option<&'static str>) {
    let has = state
        .store
        .has_second_factor(user.id)
        .await
        .unwrap_or(false);
    let required = state
        .config
        .security
        .second_factor_roles
        .iter()
        .any(|r| r == user.role.as_str());
    match (has, required) {
        (true, _) => (true, Some("/ufficio/codice")),
        (false, true) => (true, Some("/ufficio/secondo-fattore")),
        (false, false) => (false, None),
    }
}

/// The target of a redirect to `path` keeping `next`.
pub(super) fn with_next(path: &str, next: &str) -> String {
    format!("{path}?next={}", urlencode(next))
}

/// A local path to go back to (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ufficio")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/ufficio".to_owned(),
    }
}

/// The session of the cookie, waiting for its code (`true`) or signed in (`false`).
async fn any_session(state: &AppState, headers: &HeaderMap) -> Option<(Session, bool, String)> {
    let token = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty() && t.len() <= 200)?;
    if let Ok(Some(s)) = state.store.pending_session(&token).await {
        return Some((s, true, token));
    }
    match state.store.session(&token).await {
        Ok(Some(s)) => Some((s, false, token)),
        _ => None,
    }
}

async fn record(state: &AppState, kind: SecurityEventKind, login: &str, ip: &str, detail: &str) {
    let event = SecurityEvent::new(state.store.clock().now(), kind, Some(login), ip, detail);
    let _ = state.store.record_security_event(&event).await;
}

#[derive(Template)]
#[template(path = "office_code.html")]
struct CodePage {
    tr: Tr,
    frame: Frame,
    next: String,
    error: Option<String>,
    /// False once the waiting session has ended (a wrong code).
    form: bool,
}

/// `GET /ufficio/codice`.
pub(super) async fn code_form(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let Some((session, true, _)) = any_session(&state, &headers).await else {
        return Redirect::to("/ufficio/login").into_response();
    };
    let page_ = CodePage {
        frame: Frame::new(&state, "login", None, session.csrf_token).with_language(&tr),
        tr,
        next: safe_next(query.next.as_deref()),
        error: None,
        form: true,
    };
    page(StatusCode::OK, &page_)
}

/// The code form.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
    next: Option<String>,
}

/// `POST /ufficio/codice`.
pub(super) async fn code(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CodeForm>,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let Some((session, true, token)) = any_session(&state, &headers).await else {
        return Redirect::to("/ufficio/login").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let mut page_ = CodePage {
        frame: Frame::new(&state, "login", None, session.csrf_token.clone()).with_language(&tr),
        tr,
        next: next.clone(),
        error: None,
        form: true,
    };
    if !same_token(&form.csrf, &session.csrf_token) {
        record(
            &state,
            SecurityEventKind::CsrfRefused,
            &session.user.login,
            &ip,
            "second factor form without the session's CSRF token",
        )
        .await;
        page_.error = Some(tr.t("form.expired").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    if crate::guard::second_factor_blocked(&state, session.user.id).await {
        let _ = state.store.end_session(&token).await;
        record(
            &state,
            SecurityEventKind::SignInThrottled,
            &session.user.login,
            &ip,
            "too many wrong second factor codes",
        )
        .await;
        page_.error = Some(tr.t("second_factor.wrong").to_owned());
        page_.form = false;
        return page(StatusCode::TOO_MANY_REQUESTS, &page_);
    }
    if state
        .store
        .check_second_factor(session.user.id, &form.code)
        .await
        .unwrap_or(false)
    {
        crate::guard::second_factor_passed(&state, session.user.id).await;
        let _ = state.store.complete_second_factor(&token).await;
        return Redirect::to(&next).into_response();
    }
    crate::guard::second_factor_failed(&state, session.user.id).await;
    let _ = state.store.end_session(&token).await;
    record(
        &state,
        SecurityEventKind::SignInFailed,
        &session.user.login,
        &ip,
        "wrong or reused second factor code",
    )
    .await;
    page_.error = Some(tr.t("second_factor.wrong").to_owned());
    page_.form = false;
    page(StatusCode::OK, &page_)
}

#[derive(Template)]
#[template(path = "office_enrol.html")]
struct EnrolPage {
    tr: Tr,
    frame: Frame,
    next: String,
    secret: String,
    uri: String,
    error: Option<String>,
    done: bool,
}

fn enrol_page(
    state: &AppState,
    tr: Tr,
    session: &Session,
    pending: bool,
    next: String,
    secret: &[u8],
) -> EnrolPage {
    let frame = if pending {
        Frame::new(state, "login", None, session.csrf_token.clone())
    } else {
        Frame::staff(state, "password", session)
    };
    EnrolPage {
        frame: frame.with_language(&tr),
        tr,
        next,
        secret: totp::secret_base32(secret),
        uri: totp::otpauth_uri(&state.config.office.authority, &session.user.login, secret),
        error: None,
        done: false,
    }
}

/// A second factor is never replaced from a page: whoever knows only the password (a
/// waiting session) could otherwise swap it for their own. An admin removes it with
/// `sportello user remove-second-factor`; then it is set up again.
async fn already(state: &AppState, session: &Session, page_: &mut EnrolPage) -> Option<StatusCode> {
    if !state
        .store
        .has_second_factor(session.user.id)
        .await
        .unwrap_or(true)
    {
        return None;
    }
    page_.error = Some(page_.tr.t("second_factor.already").to_owned());
    page_.done = true;
    Some(StatusCode::CONFLICT)
}

/// `GET /ufficio/secondo-fattore`: a new secret to add to an authenticator app.
pub(super) async fn enrol_form(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let Some((session, pending, _)) = any_session(&state, &headers).await else {
        return Redirect::to("/ufficio/login?next=/ufficio/secondo-fattore").into_response();
    };
    let secret = sportello_store::Store::new_second_factor_secret();
    let mut page_ = enrol_page(
        &state,
        tr,
        &session,
        pending,
        safe_next(query.next.as_deref()),
        &secret,
    );
    if let Some(status) = already(&state, &session, &mut page_).await {
        return page(status, &page_);
    }
    page(StatusCode::OK, &page_)
}

/// The enrolment form: the secret shown, and the first code it gives.
#[derive(Debug, Deserialize)]
pub struct EnrolForm {
    csrf: String,
    secret: String,
    code: String,
    next: Option<String>,
}

/// `POST /ufficio/secondo-fattore`.
pub(super) async fn enrol(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<EnrolForm>,
) -> Response {
    let tr = language(query.lang.as_deref(), &headers);
    let Some((session, pending, token)) = any_session(&state, &headers).await else {
        return Redirect::to("/ufficio/login").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let Some(secret) = totp::secret_from_base32(form.secret.trim()).filter(|s| s.len() >= 16)
    else {
        let secret = sportello_store::Store::new_second_factor_secret();
        let mut page_ = enrol_page(&state, tr, &session, pending, next, &secret);
        page_.error = Some(tr.t("second_factor.wrong").to_owned());
        return page(StatusCode::UNPROCESSABLE_ENTITY, &page_);
    };
    let mut page_ = enrol_page(&state, tr, &session, pending, next.clone(), &secret);
    if let Some(status) = already(&state, &session, &mut page_).await {
        return page(status, &page_);
    }
    if !same_token(&form.csrf, &session.csrf_token) {
        record(
            &state,
            SecurityEventKind::CsrfRefused,
            &session.user.login,
            &ip,
            "second factor enrolment without the session's CSRF token",
        )
        .await;
        page_.error = Some(tr.t("form.expired").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    match state
        .store
        .enrol_second_factor(session.user.id, &secret, &form.code)
        .await
    {
        Ok(true) => {
            record(
                &state,
                SecurityEventKind::SecondFactorChanged,
                &session.user.login,
                &ip,
                "second factor set up by its owner",
            )
            .await;
            if pending {
                let _ = state.store.complete_second_factor(&token).await;
                return Redirect::to(&next).into_response();
            }
            page_.done = true;
            page(StatusCode::OK, &page_)
        }
        _ => {
            page_.error = Some(tr.t("second_factor.wrong").to_owned());
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}
