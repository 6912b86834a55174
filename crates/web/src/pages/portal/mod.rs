//! The citizen portal: the start page, applying for a permit (`/domanda`), following a
//! case (`/stato`: reference and fiscal code; the same answer, after the same time, for
//! every wrong pair, and rate limited), contesting a fine (`/contesta`), the
//! accessibility statement and the privacy notice.

mod apply;
mod contest;
mod cude;
mod form;
mod home;
mod slow_down;
mod status;

pub use slow_down::slow_down;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Frame, cookie, language, random_token, set_cookie};
use crate::AppState;
use crate::i18n::Tr;
use apply::{apply, apply_form};
use contest::{contest, contest_form};
use cude::{cude_form, cude_plate};
use home::{accessibility, home, privacy};
use status::{status_by_link, status_by_link_upload, status_form, status_lookup};

pub(super) fn routes(upload_limit: usize) -> Router<AppState> {
    let uploads = || DefaultBodyLimit::max(upload_limit);
    Router::new()
        .route("/", get(home))
        .route(
            "/stato",
            get(status_form).post(status_lookup).layer(uploads()),
        )
        .route(
            "/stato/{token}",
            get(status_by_link)
                .post(status_by_link_upload)
                .layer(uploads()),
        )
        .route("/cude", get(cude_form).post(cude_plate))
        .route("/domanda", get(apply_form).post(apply).layer(uploads()))
        .route(
            "/contesta",
            get(contest_form).post(contest).layer(uploads()),
        )
        .route("/accessibilita", get(accessibility))
        .route("/privacy", get(privacy))
}

/// Query of every page: the language.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The portal's frame and language for a request, with the cookies to set: the language
/// asked, and the double-submit CSRF cookie when the browser has none yet.
pub(super) fn portal_frame(
    state: &AppState,
    section: &'static str,
    query: &LangQuery,
    headers: &HeaderMap,
) -> (Tr, Frame, Vec<axum::http::HeaderValue>) {
    let tr = language(query.lang.as_deref(), headers);
    let mut cookies = Vec::new();
    let csrf = match cookie(headers, "csrf") {
        Some(token) if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) => token,
        _ => {
            let token = random_token();
            cookies.push(set_cookie(state, "csrf", &token, None));
            token
        }
    };
    (
        tr,
        Frame::new(state, section, None, csrf).with_language(&tr),
        cookies,
    )
}

pub(super) fn with_cookies(
    mut response: Response,
    cookies: Vec<axum::http::HeaderValue>,
) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The words for a fiscal code the form refuses: a blank field is missing, not wrong.
pub(super) fn fiscal_code_error(
    e: &sportello_domain::fiscal_code::FiscalCodeError,
) -> &'static str {
    match e {
        sportello_domain::fiscal_code::FiscalCodeError::Empty => "apply.error.fiscal_code_missing",
        _ => "apply.error.fiscal_code",
    }
}
