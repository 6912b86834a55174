//! The web pages of CONTRACT §5, rendered on the server: the citizen portal (`/`) and the
//! back office (`/ufficio`). Italian first, English complete (`i18n`); no script at all,
//! so the Content-Security-Policy forbids every script; every form that changes state
//! carries a CSRF token (the session's, or a double-submit cookie before login).

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub mod office;
pub mod portal;

pub use crate::cookies::{cookie, random_token, set_cookie};

/// Whether a form's CSRF token is the expected one (constant time); a refusal is noted in
/// the security log (`crate::guard`). Every page's CSRF check goes through here.
pub fn same_token(sent: &str, expected: &str) -> bool {
    let ok = crate::cookies::same_token(sent, expected);
    if !ok {
        crate::guard::note(
            sportello_domain::security::SecurityEventKind::CsrfRefused,
            None,
            "form without its CSRF token",
        );
    }
    ok
}
use crate::i18n::{Lang, Tr};

/// What every page's frame shows: the office's names, who is signed in, the CSRF token
/// of its forms and the section of the menu to mark.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The administration (letterhead).
    pub authority: String,
    /// The office.
    pub office: String,
    /// The signed-in user's name, on back-office pages.
    pub user: Option<String>,
    /// The token the page's forms carry.
    pub csrf: String,
    /// The menu entry of this page.
    pub section: &'static str,
    /// Whether the signed-in user may see the reports and the access log.
    pub supervisor: bool,
    /// Whether the signed-in user manages users (the menu links `/ufficio/utenti`).
    pub admin: bool,
    /// This page in the other language (same path and query, `lang` switched).
    pub other_language: String,
}

impl Frame {
    /// A frame for `section`.
    pub fn new(
        state: &AppState,
        section: &'static str,
        user: Option<String>,
        csrf: String,
    ) -> Frame {
        Frame {
            authority: state.config.office.authority.clone(),
            office: state.config.office.name.clone(),
            user,
            csrf,
            section,
            supervisor: false,
            admin: false,
            other_language: String::new(),
        }
    }

    /// The link to this page in the other language than `tr`'s.
    pub fn with_language(mut self, tr: &Tr) -> Frame {
        let other = if tr.lang == Lang::It { "en" } else { "it" };
        let here = HERE
            .try_with(String::clone)
            .unwrap_or_else(|_| "/".to_owned());
        let sep = if here.contains('?') { "&" } else { "?" };
        self.other_language = format!("{here}{sep}lang={other}");
        self
    }

    /// The frame of a back-office page for a signed-in user.
    pub fn staff(
        state: &AppState,
        section: &'static str,
        session: &sportello_store::sessions::Session,
    ) -> Frame {
        Frame {
            supervisor: session
                .user
                .role
                .can(sportello_domain::roles::Permission::ReadReports),
            admin: session
                .user
                .role
                .can(sportello_domain::roles::Permission::ManageUsers),
            ..Frame::new(
                state,
                section,
                Some(session.user.name.clone()),
                session.csrf_token.clone(),
            )
        }
    }
}

tokio::task_local! {
    /// The path and query of the page being rendered, `lang` removed: the other
    /// language's link keeps the search, the filters and the page number.
    static HERE: String;
}

/// The routes of the pages and their stylesheet.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/static/sportello.css", get(stylesheet))
        .merge(portal::routes(upload_limit(&state)))
        .merge(office::routes(upload_limit(&state)))
        .layer(axum::middleware::from_fn_with_state(
            state,
            remember_language,
        ))
}

/// The body limit of the pages' upload forms: `documents.max_upload_bytes` and room for
/// the form's other fields (the files themselves are held to the limit when staged).
fn upload_limit(state: &AppState) -> usize {
    usize::try_from(state.config.documents.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024)
}

/// Runs a page with its address at hand, and remembers a `?lang=` choice in a cookie
/// so that every later page speaks that language.
async fn remember_language(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    let mut chosen = None;
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| match pair.strip_prefix("lang=") {
            Some(code) => {
                chosen = Lang::parse(code);
                false
            }
            None => true,
        })
        .collect();
    let here = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut response = HERE.scope(here, next.run(request)).await;
    if let Some(lang) = chosen {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state, "lang", lang.code(), Some(365 * 86_400)),
        );
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/sportello.css"),
    )
        .into_response()
}

/// 503 with `Retry-After`: the database is busy, locked or full, or a read of personal data
/// could not have its audit entry written (then the data is not shown: CONTRACT §8.6, every
/// read answered has its entry).
pub fn temporarily_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5"), (header::CACHE_CONTROL, "no-store")],
        "Servizio momentaneamente non disponibile: riprovare tra poco. / Temporarily unavailable: try again shortly.",
    )
        .into_response()
}

/// Renders a template as a page (`no-store`: pages may show personal data).
pub fn page<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "errore interno").into_response()
        }
    }
}

/// The language of a request (`?lang=`, the cookie, `Accept-Language`; the choice is
/// remembered by the pages' middleware).
pub fn language(query_lang: Option<&str>, headers: &HeaderMap) -> Tr {
    Tr {
        lang: Lang::negotiate(query_lang, headers),
    }
}

/// Formats an RFC 3339 instant as a local date and time for people.
pub fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&sportello_domain::calendar::ROME)
                .format("%d/%m/%Y %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// Formats a `YYYY-MM-DD` date for people.
pub fn day(date: &str) -> String {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_else(|_| date.to_owned())
}

/// The client's address as text, for pages that only write it down (the security log):
/// the same address as [`crate::client::ClientAddress`], after `trusted_proxies`.
pub struct ClientIp(pub String);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let address = crate::client::ClientAddress::from_request_parts(parts, state).await?;
        Ok(ClientIp(address.key()))
    }
}
