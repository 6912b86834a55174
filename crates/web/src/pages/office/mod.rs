//! The back office (`/ufficio`): sign-in with a session cookie, the queues that matter
//! with their counts, the case list, the case page (status, legal clock, the timeline of
//! every channel, the actions allowed now, the citizen's other cases), search that jumps
//! straight to a reference or a plate's case, and the permits desk.

mod audit;
mod case;
mod case_forms;
mod cases;
mod citizen;
pub mod contact;
mod home;
mod login;
mod permits;
mod phone;
pub mod reports;
mod search;
mod second_factor;
mod users;
mod words;
mod workspace;
pub mod write;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sportello_domain::roles::Permission;
use sportello_store::sessions::Session;

use super::cookie;
use crate::AppState;
use audit::audit;
use case::case_page;
pub(super) use case_forms::case_error;
use case_forms::{act, clear_flag, edit_fields, move_message, undo_move, upload_document};
use cases::case_list;
use home::home;
use login::{login, login_form, logout};
use permits::{check_transits_page, open_permit, permit_change, permit_page, permits};
use search::search;

pub use crate::cookies::SESSION_COOKIE;

/// The address of a case's page.
pub(crate) fn case_path(reference: &str) -> String {
    format!("/ufficio/pratiche/{}", urlencode(reference))
}

/// The address of a citizen's record.
pub(crate) fn citizen_path(id: i64) -> String {
    format!("/ufficio/cittadini/{id}")
}

pub(super) fn routes(upload_limit: usize) -> Router<AppState> {
    let uploads = || axum::extract::DefaultBodyLimit::max(upload_limit);
    Router::new()
        .merge(reports::routes())
        .merge(contact::routes())
        .route("/ufficio/login", get(login_form).post(login))
        .route("/ufficio/logout", post(logout))
        .route("/ufficio", get(home))
        .route("/ufficio/pratiche", get(case_list))
        .route("/ufficio/assegna", post(cases::bulk_assign))
        .route("/ufficio/viste", post(cases::save_view))
        .route("/ufficio/viste/{id}/elimina", post(cases::delete_view))
        .route("/ufficio/pratiche/{reference}", get(case_page))
        .route("/ufficio/pratiche/{reference}/azioni", post(act))
        .route(
            "/ufficio/pratiche/{reference}/scrivi",
            get(write::write_page).post(write::write_submit),
        )
        .route(
            "/ufficio/pratiche/{reference}/segnalazioni",
            post(clear_flag),
        )
        .route(
            "/ufficio/pratiche/{reference}/documenti",
            post(upload_document).layer(uploads()),
        )
        .route("/ufficio/pratiche/{reference}/dati", post(edit_fields))
        .route(
            "/ufficio/pratiche/{reference}/messaggi/{id}",
            post(move_message),
        )
        .route(
            "/ufficio/pratiche/{reference}/messaggi/{id}/annulla",
            post(undo_move),
        )
        .route("/ufficio/cittadini/{id}", get(citizen::citizen_page))
        .route("/ufficio/cerca", get(search))
        .route("/ufficio/chiamata", get(phone::call_page))
        .route("/ufficio/chiamata/registra", post(phone::log_call))
        .route("/ufficio/chiamata/nuova", post(phone::new_case))
        .route("/ufficio/permessi", get(permits))
        .route(
            "/ufficio/permessi/transiti",
            post(check_transits_page).layer(uploads()),
        )
        .route("/ufficio/accessi", get(audit))
        .route(
            "/ufficio/utenti",
            get(users::users_page).post(users::add_user),
        )
        .route("/ufficio/utenti/{login}", post(users::change_user))
        .route(
            "/ufficio/codice",
            get(second_factor::code_form).post(second_factor::code),
        )
        .route(
            "/ufficio/secondo-fattore",
            get(second_factor::enrol_form).post(second_factor::enrol),
        )
        .route(
            "/ufficio/password",
            get(users::password_page).post(users::change_password),
        )
        .route("/ufficio/permessi/apri", get(open_permit))
        .route(
            "/ufficio/permessi/{number}",
            get(permit_page).post(permit_change),
        )
}

/// Query of the pages: the language, and a message to show after a redirect.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    esito: Option<String>,
    next: Option<String>,
}

/// The signed-in staff member of a page request, or the redirect to the sign-in page.
pub(super) async fn staff(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Session, Response> {
    let session = match cookie(headers, SESSION_COOKIE) {
        Some(token) if token.len() <= 200 => state.store.session(&token).await.ok().flatten(),
        _ => None,
    };
    match session {
        Some(s)
            if s.user.role.can(Permission::ReadCase)
                || s.user.role.can(Permission::VerifyPermit) =>
        {
            Ok(s)
        }
        _ => Err(Redirect::to(&format!("/ufficio/login?next={}", urlencode(here))).into_response()),
    }
}

/// Why a form that changes data is refused (the words' key): a wrong CSRF token, or a
/// role without the right to act; `None` when it may go ahead.
pub(super) fn refusal(session: &Session, csrf: &str) -> Option<&'static str> {
    if !crate::pages::same_token(csrf, &session.csrf_token) {
        Some("form.expired")
    } else if !session.user.role.can(Permission::ActOnCase) {
        crate::guard::permission_refused(&session.user.login, "act on cases");
        Some("case.forbidden")
    } else {
        None
    }
}

/// The configured case types as (id, name in words): the list's filter, the call page's
/// new case.
pub(super) fn case_types(state: &AppState, tr: &crate::i18n::Tr) -> Vec<(String, String)> {
    state
        .store
        .settings()
        .case_types
        .iter()
        .map(|t| (t.id.clone(), tr.name("case_type", &t.id)))
        .collect()
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
