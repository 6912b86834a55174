//! The users of the office (CONTRACT §8.6): `/ufficio/utenti` for admins (add, disable,
//! enable, reset a password, issue and revoke API tokens; a new secret is shown once),
//! and `/ufficio/password`, where every signed-in member of staff changes their own
//! password. Every change is recorded in the security log with the client's address.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use sportello_domain::roles::{Permission, Role};
use sportello_domain::security::SecurityEventKind;
use sportello_store::StoreError;
use sportello_store::security::SecurityEvent;
use sportello_store::sessions::Session;
use sportello_store::users::UserSummary;

use super::{PageQuery, SESSION_COOKIE, staff};
use crate::AppState;
use crate::client::ClientAddress;
use crate::i18n::Tr;
use crate::pages::{Frame, cookie, language, page, same_token};

/// The longest life a token issued from the page may have (ten years), in days.
const MAX_EXPIRES_DAYS: i64 = 3650;

/// One row of the users' table, formatted.
struct Row {
    login: String,
    name: String,
    role: &'static str,
    active: bool,
    last_sign_in: String,
    tokens: i64,
}

#[derive(Template)]
#[template(path = "office_users.html")]
struct UsersPage {
    tr: Tr,
    frame: Frame,
    rows: Vec<Row>,
    roles: Vec<&'static str>,
    /// What was done, in words.
    notice: Option<String>,
    /// A secret to show once: (what, value).
    secret: Option<(String, String)>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "office_password.html")]
struct PasswordPage {
    tr: Tr,
    frame: Frame,
    notice: Option<String>,
    error: Option<String>,
}

fn rows(users: Vec<UserSummary>) -> Vec<Row> {
    users
        .into_iter()
        .map(|u| Row {
            login: u.login,
            name: u.name,
            role: u.role.as_str(),
            active: u.active,
            last_sign_in: u.last_sign_in.map_or_else(String::new, |t| {
                t.with_timezone(&sportello_domain::calendar::ROME)
                    .format("%d/%m/%Y %H:%M")
                    .to_string()
            }),
            tokens: u.live_tokens,
        })
        .collect()
}

async fn record(state: &AppState, kind: SecurityEventKind, login: &str, ip: &str, detail: String) {
    let event = SecurityEvent::new(state.store.clock().now(), kind, Some(login), ip, detail);
    let _ = state.store.record_security_event(&event).await;
}

/// The page, for an admin; `Err` with the answer for anyone else (403 for other roles).
async fn admin(
    state: &AppState,
    headers: &HeaderMap,
    tr: Tr,
    ip: &str,
) -> Result<(Session, UsersPage), Response> {
    let session = staff(state, headers, "/ufficio/utenti").await?;
    let mut page_ = UsersPage {
        frame: Frame::staff(state, "users", &session).with_language(&tr),
        tr,
        rows: Vec::new(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        notice: None,
        secret: None,
        error: None,
    };
    if !session.user.role.can(Permission::ManageUsers) {
        record(
            state,
            SecurityEventKind::PermissionRefused,
            &session.user.login,
            ip,
            "the users' page needs the admin role".into(),
        )
        .await;
        page_.error = Some(tr.t("users.forbidden").to_owned());
        return Err(page(StatusCode::FORBIDDEN, &page_));
    }
    Ok((session, page_))
}

async fn listed(state: &AppState, mut page_: UsersPage, status: StatusCode) -> Response {
    match state.store.list_users().await {
        Ok(users) => page_.rows = rows(users),
        Err(_) => page_.error = Some(page_.tr.t("form.failed").to_owned()),
    }
    page(status, &page_)
}

/// `GET /ufficio/utenti`.
pub(super) async fn users_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientAddress(client_ip): ClientAddress,
    headers: HeaderMap,
) -> Response {
    let ip = client_ip.to_string();
    let tr = language(query.lang.as_deref(), &headers);
    match admin(&state, &headers, tr, &ip).await {
        Ok((_, page_)) => listed(&state, page_, StatusCode::OK).await,
        Err(answer) => answer,
    }
}

/// The form adding a user.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    csrf: String,
    login: String,
    #[serde(default)]
    name: String,
    role: String,
}

/// `POST /ufficio/utenti`: adds a user and shows their password and token once.
pub(super) async fn add_user(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientAddress(client_ip): ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AddForm>,
) -> Response {
    let ip = client_ip.to_string();
    let tr = language(query.lang.as_deref(), &headers);
    let (session, mut page_) = match admin(&state, &headers, tr, &ip).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    if let Some(answer) = csrf_refused(&state, &session, &form.csrf, &ip, &mut page_).await {
        return answer;
    }
    let login = form.login.trim();
    let Some(role) = Role::parse(form.role.trim()) else {
        page_.error = Some(tr.t("users.bad_role").to_owned());
        return listed(&state, page_, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let name = form.name.trim().chars().take(200).collect::<String>();
    match state.store.add_user(login, &name, role).await {
        Ok(secrets) => {
            record(
                &state,
                SecurityEventKind::UserAdded,
                login,
                &ip,
                format!(
                    "added by {} with the role {}",
                    session.user.login,
                    role.as_str()
                ),
            )
            .await;
            page_.notice = Some(tr.t("users.added").replace("{login}", login));
            page_.secret = Some((
                tr.t("users.password_and_token").to_owned(),
                format!("password: {}\ntoken: {}", secrets.password, secrets.token),
            ));
            listed(&state, page_, StatusCode::OK).await
        }
        Err(StoreError::Invalid { .. }) => {
            page_.error = Some(tr.t("users.bad_login").to_owned());
            listed(&state, page_, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(StoreError::Conflict(_)) => {
            page_.error = Some(tr.t("users.taken").replace("{login}", login));
            listed(&state, page_, StatusCode::CONFLICT).await
        }
        Err(e) => {
            page_.error = Some(tr.t("form.failed").to_owned());
            listed(&state, page_, failed_status(&e)).await
        }
    }
}

/// Refuses a form without the session's CSRF token (403, recorded).
async fn csrf_refused(
    state: &AppState,
    session: &Session,
    sent: &str,
    ip: &str,
    page_: &mut UsersPage,
) -> Option<Response> {
    if same_token(sent, &session.csrf_token) {
        return None;
    }
    record(
        state,
        SecurityEventKind::CsrfRefused,
        &session.user.login,
        ip,
        "users' page form without the session's CSRF token".into(),
    )
    .await;
    page_.error = Some(page_.tr.t("form.expired").to_owned());
    Some(page(StatusCode::FORBIDDEN, &*page_))
}

/// The forms acting on one user.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    csrf: String,
    /// `disable`, `enable`, `reset_password`, `new_token`, `revoke_tokens`.
    action: String,
    /// Days a new token stays valid; blank for "until revoked".
    #[serde(default)]
    expires_days: String,
}

/// `POST /ufficio/utenti/{login}`: one change to one user.
pub(super) async fn change_user(
    State(state): State<AppState>,
    Path(login): Path<String>,
    Query(query): Query<PageQuery>,
    ClientAddress(client_ip): ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ChangeForm>,
) -> Response {
    let ip = client_ip.to_string();
    let tr = language(query.lang.as_deref(), &headers);
    let (session, mut page_) = match admin(&state, &headers, tr, &ip).await {
        Ok(ok) => ok,
        Err(answer) => return answer,
    };
    if let Some(answer) = csrf_refused(&state, &session, &form.csrf, &ip, &mut page_).await {
        return answer;
    }
    let by = format!("by {} on the users' page", session.user.login);
    let done = match form.action.as_str() {
        "disable" | "enable" => {
            let active = form.action == "enable";
            if !active && login == session.user.login {
                page_.error = Some(tr.t("users.not_yourself").to_owned());
                return listed(&state, page_, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
            state.store.set_user_active(&login, active).await.map(|_| {
                let (kind, key) = if active {
                    (SecurityEventKind::UserEnabled, "users.enabled")
                } else {
                    (SecurityEventKind::UserDisabled, "users.disabled")
                };
                (kind, format!("{} {by}", kind.as_str()), key, None)
            })
        }
        "reset_password" => state.store.reset_password(&login).await.map(|password| {
            (
                SecurityEventKind::PasswordReset,
                format!("password reset {by}; sessions ended"),
                "users.password_reset",
                Some(("password", password)),
            )
        }),
        "new_token" => {
            let days = form.expires_days.trim();
            let expires = if days.is_empty() {
                None
            } else {
                match days.parse::<i64>() {
                    Ok(d) if (1..=MAX_EXPIRES_DAYS).contains(&d) => {
                        Some(state.store.clock().now() + chrono::Duration::days(d))
                    }
                    _ => {
                        page_.error = Some(tr.t("users.bad_days").to_owned());
                        return listed(&state, page_, StatusCode::UNPROCESSABLE_ENTITY).await;
                    }
                }
            };
            state
                .store
                .create_token(&login, "issued on the users' page", expires)
                .await
                .map(|token| {
                    let until = expires.map_or_else(
                        || "until revoked".to_owned(),
                        |t| format!("until {}", t.to_rfc3339()),
                    );
                    (
                        SecurityEventKind::TokenCreated,
                        format!("issued {by}, valid {until}"),
                        "users.token_created",
                        Some(("token", token)),
                    )
                })
        }
        "revoke_tokens" => state.store.revoke_tokens(&login).await.map(|n| {
            (
                SecurityEventKind::TokenRevoked,
                format!("{n} token(s) revoked {by}"),
                "users.tokens_revoked",
                None,
            )
        }),
        _ => {
            page_.error = Some(tr.t("users.bad_action").to_owned());
            return listed(&state, page_, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    match done {
        Ok((kind, detail, key, secret)) => {
            record(&state, kind, &login, &ip, detail).await;
            page_.notice = Some(tr.t(key).replace("{login}", &login));
            page_.secret = secret.map(|(what, value)| {
                (
                    tr.t("users.shown_once").to_owned(),
                    format!("{what}: {value}"),
                )
            });
            listed(&state, page_, StatusCode::OK).await
        }
        Err(StoreError::NotFound(_)) => {
            page_.error = Some(tr.t("users.unknown").replace("{login}", &login));
            listed(&state, page_, StatusCode::NOT_FOUND).await
        }
        Err(e) => {
            page_.error = Some(tr.t("form.failed").to_owned());
            listed(&state, page_, failed_status(&e)).await
        }
    }
}

/// `GET /ufficio/password`: the form changing one's own password.
pub(super) async fn password_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/password").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let page_ = PasswordPage {
        frame: Frame::staff(&state, "password", &session).with_language(&tr),
        tr,
        notice: None,
        error: None,
    };
    page(StatusCode::OK, &page_)
}

/// The form changing one's own password.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /ufficio/password`: the current password is needed; the new one has at least
/// 12 characters and is not the login; the user's other sessions end.
pub(super) async fn change_password(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientAddress(client_ip): ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Response {
    let ip = client_ip.to_string();
    let session = match staff(&state, &headers, "/ufficio/password").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let mut page_ = PasswordPage {
        frame: Frame::staff(&state, "password", &session).with_language(&tr),
        tr,
        notice: None,
        error: None,
    };
    if !same_token(&form.csrf, &session.csrf_token) {
        record(
            &state,
            SecurityEventKind::CsrfRefused,
            &session.user.login,
            &ip,
            "password form without the session's CSRF token".into(),
        )
        .await;
        page_.error = Some(tr.t("form.expired").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    if form.new_password != form.confirm_password {
        page_.error = Some(tr.t("password.mismatch").to_owned());
        return page(StatusCode::UNPROCESSABLE_ENTITY, &page_);
    }
    let keep = cookie(&headers, SESSION_COOKIE);
    match state
        .store
        .change_password(
            session.user.id,
            &form.current_password,
            &form.new_password,
            keep.as_deref(),
        )
        .await
    {
        Ok(()) => {
            record(
                &state,
                SecurityEventKind::PasswordChanged,
                &session.user.login,
                &ip,
                "changed by its owner; other sessions ended".into(),
            )
            .await;
            page_.notice = Some(tr.t("password.changed").to_owned());
            page(StatusCode::OK, &page_)
        }
        Err(StoreError::Invalid { field, message }) => {
            let key = match (field.as_str(), message.as_str()) {
                ("current_password", _) => "password.wrong_current",
                (_, m) if m.contains("login") => "password.is_login",
                (_, m) if m.contains("differ") => "password.same",
                (_, m) if m.contains("at most") => "password.too_long",
                _ => "password.too_short",
            };
            if field == "current_password" {
                record(
                    &state,
                    SecurityEventKind::SignInFailed,
                    &session.user.login,
                    &ip,
                    "wrong current password on the password form".into(),
                )
                .await;
            }
            page_.error = Some(tr.t(key).to_owned());
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
        Err(e) => {
            page_.error = Some(tr.t("form.failed").to_owned());
            page(failed_status(&e), &page_)
        }
    }
}

/// 503 (with `Retry-After`, added for every 503) when the database is busy, locked or
/// full; 500 for anything else.
fn failed_status(e: &StoreError) -> StatusCode {
    if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
