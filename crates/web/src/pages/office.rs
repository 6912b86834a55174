//! The back office (`/ufficio`): sign-in with a session cookie, the queues that matter
//! with their counts, the case list, the case page (status, legal clock, the timeline of
//! every channel, the actions allowed now, the citizen's other cases), search that jumps
//! straight to a reference or a plate's case, and the permits desk.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sportello_domain::case::{Reference, Status};
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseSummary, CaseView};
use sportello_store::sessions::Session;

use super::i18n::Tr;
use super::{
    ClientIp, Frame, cookie, day, language, page, random_token, same_token, set_cookie, when,
};
use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sportello_session";
/// Failed sign-ins allowed per address and per login in [`LOGIN_WINDOW`].
const LOGIN_ATTEMPTS: u32 = 5;
/// The window of those limits (a lockout lasts at most this long).
const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(900);

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ufficio/login", get(login_form).post(login))
        .route("/ufficio/logout", post(logout))
        .route("/ufficio", get(home))
        .route("/ufficio/pratiche", get(case_list))
        .route("/ufficio/pratiche/{reference}", get(case_page))
        .route("/ufficio/pratiche/{reference}/azioni", post(act))
        .route(
            "/ufficio/pratiche/{reference}/scrivi",
            get(super::write::write_page).post(super::write::write_submit),
        )
        .route(
            "/ufficio/pratiche/{reference}/segnalazioni",
            post(clear_flag),
        )
        .route(
            "/ufficio/pratiche/{reference}/documenti",
            post(upload_document),
        )
        .route("/ufficio/pratiche/{reference}/dati", post(edit_fields))
        .route(
            "/ufficio/pratiche/{reference}/messaggi/{id}",
            post(move_message),
        )
        .route("/ufficio/cerca", get(search))
        .route("/ufficio/permessi", get(permits))
        .route("/ufficio/permessi/transiti", post(check_transits_page))
        .route("/ufficio/accessi", get(audit))
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local path to go back to after signing in (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ufficio") && !n.starts_with("//") && !n.contains("\\") => {
            n.to_owned()
        }
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

async fn login_form(
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

/// `POST /ufficio/login`: one message for any wrong pair; after [`LOGIN_ATTEMPTS`]
/// failures from an address or on a login, sign-ins wait out the window.
async fn login(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    ClientIp(ip): ClientIp,
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
    let limits = &state.page_limits;
    let ip_key = format!("login-ip:{ip}");
    let user_key = format!("login-user:{}", login_name.to_lowercase());
    if limits.used_up(&ip_key, LOGIN_ATTEMPTS, LOGIN_WINDOW)
        || limits.used_up(&user_key, LOGIN_ATTEMPTS, LOGIN_WINDOW)
    {
        return fail(page_, "login.locked", StatusCode::TOO_MANY_REQUESTS);
    }
    let user = state
        .store
        .user_by_password(&login_name, &form.password)
        .await
        .ok()
        .flatten()
        .filter(|u| u.role.can(Permission::ReadCase) || u.role.can(Permission::VerifyPermit));
    let Some(user) = user else {
        limits.allow(&ip_key, u32::MAX, LOGIN_WINDOW);
        limits.allow(&user_key, u32::MAX, LOGIN_WINDOW);
        page_.login = login_name;
        return fail(page_, "login.wrong", StatusCode::OK);
    };
    let Ok((token, _)) = state.store.create_session(user.id).await else {
        return fail(page_, "form.failed", StatusCode::INTERNAL_SERVER_ERROR);
    };
    let _ = state
        .store
        .record_access(&user.login, "login", "ufficio")
        .await;
    let mut response = Redirect::to(&page_.next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &token, None),
    );
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

async fn logout(
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

/// A case in a list, in words.
struct Row {
    reference: String,
    subject: String,
    case_type: String,
    status: String,
    citizen: String,
    due: String,
    late: bool,
    flags: Vec<String>,
}

fn row(tr: &Tr, c: &CaseSummary) -> Row {
    Row {
        reference: c.reference.clone(),
        subject: c.subject.clone(),
        case_type: tr.name("case_type", &c.case_type),
        status: tr.name("status", &c.status),
        citizen: c.citizen_name.clone().unwrap_or_default(),
        due: day(&c.due_at),
        late: c.overdue,
        flags: c.flags.iter().map(|f| tr.name("flag", f)).collect(),
    }
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

async fn home(
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

/// Filters of `/ufficio/pratiche`, as links and the filter form send them.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    lang: Option<String>,
    status: Option<String>,
    case_type: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
    orphan: Option<String>,
    open: Option<String>,
    due_within: Option<String>,
    flag: Option<String>,
    q: Option<String>,
    page: Option<u32>,
    /// `csv` or `xlsx`: the whole list (up to [`EXPORT_MAX`] cases) as a file.
    format: Option<String>,
}

/// The most cases one export carries.
const EXPORT_MAX: u32 = 20_000;

#[derive(Template)]
#[template(path = "office_cases.html")]
struct ListPage {
    tr: Tr,
    frame: Frame,
    rows: Vec<Row>,
    total: i64,
    page: u32,
    pages: u32,
    query: String,
    statuses: Vec<(String, String)>,
    status: String,
    q: String,
}

async fn case_list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/pratiche").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let export = query
        .format
        .as_deref()
        .filter(|f| matches!(*f, "csv" | "xlsx"))
        .map(str::to_owned);
    let per_page = if export.is_some() { EXPORT_MAX } else { 50 };
    let page_no = if export.is_some() {
        1
    } else {
        query.page.unwrap_or(1).clamp(1, 100_000)
    };
    let filter = CaseFilter {
        status: text(&query.status).and_then(|s| s.parse().ok()),
        case_type: text(&query.case_type),
        assignee: text(&query.assignee),
        overdue: query.overdue.as_deref() == Some("true"),
        orphan: query.orphan.as_deref() == Some("true"),
        open: query.open.as_deref() == Some("true"),
        due_within_days: text(&query.due_within).and_then(|d| d.parse().ok()),
        flag: text(&query.flag),
        q: text(&query.q).map(|q| q.chars().take(200).collect()),
        page: page_no,
        per_page,
        ..CaseFilter::default()
    };
    let (items, total) = match state.store.list_cases(&filter).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "case list");
            (Vec::new(), 0)
        }
    };
    let _ = state
        .store
        .record_access(&session.user.login, "list_cases", "ufficio/pratiche")
        .await;
    if let Some(format) = export {
        return export_cases(&tr, &items, &format);
    }
    let mut kept: Vec<String> = Vec::new();
    for (k, v) in [
        ("status", &query.status),
        ("case_type", &query.case_type),
        ("assignee", &query.assignee),
        ("overdue", &query.overdue),
        ("orphan", &query.orphan),
        ("open", &query.open),
        ("due_within", &query.due_within),
        ("flag", &query.flag),
        ("q", &query.q),
    ] {
        if let Some(v) = text(v) {
            kept.push(format!("{k}={}", urlencode(&v)));
        }
    }
    let statuses = [
        "received",
        "in_review",
        "waiting_citizen",
        "rejection_notice",
        "approved",
        "issued",
        "rejected",
        "closed",
    ]
    .iter()
    .map(|s| ((*s).to_owned(), tr.name("status", s)))
    .collect();
    let page_ = ListPage {
        rows: items.iter().map(|c| row(&tr, c)).collect(),
        total,
        page: page_no,
        pages: u32::try_from((total + i64::from(per_page) - 1) / i64::from(per_page))
            .unwrap_or(1)
            .max(1),
        query: kept.join("&"),
        statuses,
        status: text(&query.status).unwrap_or_default(),
        q: text(&query.q).unwrap_or_default(),
        frame: Frame::staff(&state, "cases", &session).with_language(&tr),
        tr,
    };
    page(StatusCode::OK, &page_)
}

/// The case list as CSV or XLSX (subjects and names are never taken for formulas).
fn export_cases(tr: &Tr, items: &[CaseSummary], format: &str) -> Response {
    use crate::api::reports::{Cell, Table};
    let table = Table {
        name: "pratiche",
        columns: vec![
            "reference",
            "case_type",
            "status",
            "subject",
            "channel",
            "citizen",
            "assignee",
            "protocol",
            "received_at",
            "due_at",
            "days_left",
            "overdue",
            "orphan",
            "flags",
        ],
        rows: items
            .iter()
            .map(|c| {
                vec![
                    Cell::Text(c.reference.clone()),
                    Cell::Text(tr.name("case_type", &c.case_type)),
                    Cell::Text(tr.name("status", &c.status)),
                    Cell::Text(c.subject.clone()),
                    Cell::Text(c.channel.clone()),
                    Cell::Text(c.citizen_name.clone().unwrap_or_default()),
                    Cell::Text(c.assignee.clone().unwrap_or_default()),
                    Cell::Text(c.protocol.clone().unwrap_or_default()),
                    Cell::Text(c.received_at.clone()),
                    Cell::Text(c.due_at.clone()),
                    Cell::Int(c.sla.days_left),
                    Cell::Int(i64::from(c.overdue)),
                    Cell::Int(i64::from(c.orphan)),
                    Cell::Text(c.flags.join(";")),
                ]
            })
            .collect(),
    };
    let result = if format == "xlsx" {
        crate::api::reports::xlsx_response(std::slice::from_ref(&table), "pratiche")
    } else {
        crate::api::reports::csv_response(&table, "pratiche")
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

// ----- case page -----

/// One entry of the timeline, in words.
struct Entry {
    at: String,
    actor: String,
    what: String,
    details: Vec<String>,
    link: Option<(String, String)>,
    /// A message's text, shown escaped in its own block.
    body: Option<String>,
    /// A message's id, for moving it to the right case.
    message: Option<i64>,
}

/// An action button of the case page.
struct ActionButton {
    name: &'static str,
    label: String,
    /// `note`, `reasons`, `missing`, `user` or nothing: the field it asks for.
    asks: &'static str,
}

#[derive(Template)]
#[template(path = "office_case.html")]
struct CasePage {
    tr: Tr,
    frame: Frame,
    case: CaseView,
    status: String,
    case_type: String,
    received: String,
    due: String,
    service_due: String,
    clock: String,
    entries: Vec<Entry>,
    actions: Vec<ActionButton>,
    others: Vec<Row>,
    fields: Vec<(String, String)>,
    /// (flag, its name).
    flags: Vec<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
    evidence: Vec<(String, String, String, String)>,
    /// For permit requests: (category, plates, documents received) as the form shows them,
    /// with the policy's categories.
    permit_form: Option<(String, String, String)>,
    categories: Vec<(String, String)>,
    /// The form proposing an appointment (`office_case_appointment.html`).
    appointment_form: Option<super::contact::CaseAppointmentForm>,
}

/// The actions a case's status allows, with the field each asks for (the workflow
/// decides for good when one is pressed).
fn actions_for(tr: &Tr, case: &CaseView, report: bool) -> Vec<ActionButton> {
    let names: &[(&str, &str)] = match (case.summary.status.as_str(), report) {
        ("received", _) => &[
            ("assign", "user"),
            ("start_review", ""),
            ("withdraw", "note"),
        ],
        ("in_review", false) => &[
            ("assign", "user"),
            ("request_integration", "missing"),
            ("notify_rejection", "reasons"),
            ("approve", ""),
            ("reject", "reasons"),
        ],
        ("in_review", true) => &[
            ("assign", "user"),
            ("request_integration", "missing"),
            ("confirm", "reasons"),
            ("annul", "reasons"),
        ],
        ("waiting_citizen", _) => &[("integration_received", "")],
        ("rejection_notice", _) => &[("observations_received", ""), ("reject", "reasons")],
        ("approved", _) => &[("issue", "")],
        ("issued", _) | ("rejected", _) => &[("close", "")],
        ("closed", _) => &[("reopen", "note")],
        _ => &[],
    };
    names
        .iter()
        .map(|(name, asks)| ActionButton {
            name,
            label: tr.name("action", name),
            asks,
        })
        .collect()
}

fn describe(tr: &Tr, event: &sportello_store::cases::EventView) -> Entry {
    let d = &event.detail;
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let list = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty())
    };
    let mut details = Vec::new();
    let what = match event.kind.as_str() {
        "action" | "assigned" => {
            let action = text("action").unwrap_or_default();
            if let (Some(from), Some(to)) = (text("from"), text("to"))
                && from != to
            {
                details.push(format!(
                    "{} → {}",
                    tr.name("status", &from),
                    tr.name("status", &to)
                ));
            }
            tr.name("action", &action)
        }
        kind => tr.name("event", kind),
    };
    for (key, label) in [
        ("user", "timeline.user"),
        ("note", "timeline.note"),
        ("protocol", "timeline.protocol"),
        ("permit", "timeline.permit"),
        ("filename", "timeline.document"),
        ("rule", "timeline.rule"),
        ("channel", "timeline.channel"),
        ("to", "timeline.to"),
        ("subject", "timeline.subject"),
        ("status", "timeline.state"),
        ("error", "timeline.error"),
    ] {
        if let Some(v) = text(key) {
            details.push(format!("{}: {v}", tr.t(label)));
        }
    }
    for (key, label) in [
        ("reasons", "timeline.reasons"),
        ("missing", "timeline.missing"),
    ] {
        if let Some(v) = list(key) {
            details.push(format!("{}: {v}", tr.t(label)));
        }
    }
    let link = text("document_id").map(|id| {
        (
            format!("/api/v1/documents/{id}/view"),
            tr.t("timeline.view").to_owned(),
        )
    });
    Entry {
        at: when(&event.at),
        actor: event.actor.clone(),
        what,
        details,
        link,
        body: None,
        message: None,
    }
}

async fn case_page(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let here = case_path(&reference);
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    render_case(
        &state,
        &session,
        tr,
        &reference,
        query
            .esito
            .as_deref()
            .map(|a| tr.f("case.done", &[("action", &tr.name("action", a))])),
        None,
    )
    .await
}

async fn render_case(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let Some(case) = (match Reference::parse(reference) {
        Some(_) => state.store.get_case(reference).await.ok(),
        None => None,
    }) else {
        let page_ = NotFoundPage {
            frame: Frame::staff(state, "cases", session).with_language(&tr),
            tr,
        };
        return page(StatusCode::NOT_FOUND, &page_);
    };
    let _ = state
        .store
        .record_access(&session.user.login, "read_case", &case.summary.reference)
        .await;
    let report = state
        .store
        .case_type(&case.summary.case_type)
        .is_some_and(|t| t.workflow == sportello_domain::case::WorkflowKind::Report);
    let mut entries: Vec<Entry> = case.timeline.iter().map(|e| describe(&tr, e)).collect();
    if let Ok(messages) = state.store.case_messages(&case.summary.reference).await {
        for m in messages {
            entries.push(Entry {
                at: when(&m.received_at),
                actor: m.sender.clone(),
                what: format!(
                    "{} ({})",
                    tr.t("timeline.message"),
                    tr.name("channel", &m.channel)
                ),
                details: [
                    Some(m.subject.clone()).filter(|s| !s.is_empty()),
                    m.protocol
                        .as_ref()
                        .map(|p| format!("{}: {p}", tr.t("timeline.protocol"))),
                    Some(format!(
                        "{}: {}",
                        tr.t("timeline.rule"),
                        tr.name("rule", &m.rule)
                    )),
                ]
                .into_iter()
                .flatten()
                .collect(),
                link: None,
                body: Some(m.excerpt.clone()).filter(|t| !t.trim().is_empty()),
                message: Some(m.id),
            });
        }
    }
    entries.sort_by(|a, b| {
        let key = |e: &Entry| chrono::NaiveDateTime::parse_from_str(&e.at, "%d/%m/%Y %H:%M").ok();
        key(a).cmp(&key(b))
    });
    let others = match case.citizen.fiscal_code.as_deref() {
        Some(code) => state
            .store
            .list_cases(&CaseFilter {
                citizen_fiscal_code: Some(code.to_owned()),
                page: 1,
                per_page: 20,
                ..CaseFilter::default()
            })
            .await
            .map(|(items, _)| {
                items
                    .iter()
                    .filter(|c| c.reference != case.summary.reference)
                    .map(|c| row(&tr, c))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let fields = case
        .fields
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    // Lists in words (documents by their names), values as they are.
                    let group = if k == "documents" { "document" } else { "" };
                    let shown = |v: &serde_json::Value| match v {
                        serde_json::Value::String(s) if group.is_empty() => s.clone(),
                        serde_json::Value::String(s) => tr.name(group, s),
                        other => other.to_string(),
                    };
                    let value = match v {
                        serde_json::Value::Array(items) => {
                            items.iter().map(shown).collect::<Vec<_>>().join(", ")
                        }
                        other => shown(other),
                    };
                    (tr.name("field", k), value)
                })
                .collect()
        })
        .unwrap_or_default();
    let evidence = if report {
        seg_evidence(state, &tr, &case).await
    } else {
        Vec::new()
    };
    let joined = |key: &str| match case.fields.get(key) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let permit_form = (matches!(case.summary.case_type.as_str(), "ztl_permit" | "cude")
        && case.summary.status != "closed")
        .then(|| {
            (
                case.fields
                    .get("category")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                joined("plates"),
                joined("documents"),
            )
        });
    let categories = state
        .policy
        .categories
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                format!("{} ({})", c.name, c.documents.join(", ")),
            )
        })
        .collect();
    let appointment_form = super::contact::case_appointment_form(state, &tr, session, &case);
    let page_ = CasePage {
        appointment_form,
        status: tr.name("status", &case.summary.status),
        case_type: tr.name("case_type", &case.summary.case_type),
        received: when(&case.summary.received_at),
        due: day(&case.summary.due_at),
        service_due: day(&case.summary.sla.service_due_at),
        clock: tr.name("clock", &case.summary.sla.state),
        actions: actions_for(&tr, &case, report),
        flags: case
            .summary
            .flags
            .iter()
            .map(|f| (f.clone(), tr.name("flag", f)))
            .collect(),
        entries,
        others,
        fields,
        notice,
        error,
        evidence,
        permit_form,
        categories,
        frame: Frame::staff(state, "cases", session).with_language(&tr),
        case,
        tr,
    };
    page(StatusCode::OK, &page_)
}

/// The verdict on each contested transit of an SEG case, for its page.
async fn seg_evidence(
    state: &AppState,
    tr: &Tr,
    case: &CaseView,
) -> Vec<(String, String, String, String)> {
    let Ok(evidence) = crate::api::remedy::gather(state, case).await else {
        return Vec::new();
    };
    evidence
        .transits
        .iter()
        .map(|t| {
            (
                t.transit_id.clone(),
                format!("{} {}", t.gate, when(&t.timestamp)),
                tr.name("verdict", &t.verdict),
                t.permit.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[derive(Template)]
#[template(path = "office_not_found.html")]
struct NotFoundPage {
    tr: Tr,
    frame: Frame,
}

/// The checks of every form of the case page that changes it: a signed-in user (else the
/// sign-in page), the session's CSRF token and the right to act (else the case page again
/// saying why).
async fn case_form(
    state: &AppState,
    headers: &HeaderMap,
    reference: &str,
    lang: Option<&str>,
    csrf: &str,
) -> Result<(Session, Tr), Response> {
    let session = staff(state, headers, &case_path(reference)).await?;
    let tr = language(lang, headers);
    match refusal(&session, csrf) {
        Some(key) => Err(case_error(state, &session, tr, reference, tr.t(key).to_owned()).await),
        None => Ok((session, tr)),
    }
}

/// The address of a case's page.
pub(super) fn case_path(reference: &str) -> String {
    format!("/ufficio/pratiche/{}", urlencode(reference))
}

/// The case page again, saying why what was asked was not done.
pub(super) async fn case_error(
    state: &AppState,
    session: &Session,
    tr: Tr,
    reference: &str,
    message: String,
) -> Response {
    render_case(state, session, tr, reference, None, Some(message)).await
}

/// Why a form that changes data is refused (the words' key): a wrong CSRF token, or a
/// role without the right to act; `None` when it may go ahead.
fn refusal(session: &Session, csrf: &str) -> Option<&'static str> {
    if !same_token(csrf, &session.csrf_token) {
        Some("form.expired")
    } else if !session.user.role.can(Permission::ActOnCase) {
        Some("case.forbidden")
    } else {
        None
    }
}

/// The action form of the case page.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: String,
    note: Option<String>,
    /// One per line.
    reasons: Option<String>,
    /// One per line.
    missing: Option<String>,
    user: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/azioni`: the same action as the API, from a button; on
/// success back to the case page (so a reload does not act twice), else the page again
/// with the reason.
async fn act(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    let here = case_path(&reference);
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let lines = |v: &Option<String>| {
        v.as_deref().map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    let body = crate::api::cases::ActionBody {
        action: Some(form.action.clone()),
        note: form.note.clone().filter(|n| !n.trim().is_empty()),
        user: form.user.clone().filter(|u| !u.trim().is_empty()),
        missing: lines(&form.missing),
        reasons: lines(&form.reasons),
        // The citizen is told on their default channel, in Italian.
        notify: None,
        notify_channel: None,
        lang: None,
    };
    match crate::api::cases::perform_action(&state, &session.user, &reference, body).await {
        Ok(_) => Redirect::to(&format!("{here}?esito={}", urlencode(&form.action))).into_response(),
        Err(e) => {
            let message = e.detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// The form that clears a flag.
#[derive(Debug, Deserialize)]
pub struct FlagForm {
    csrf: String,
    flag: String,
    note: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/segnalazioni`: a flag dealt with leaves the case (and
/// its queue), journaled.
async fn clear_flag(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FlagForm>,
) -> Response {
    let here = case_path(&reference);
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state
        .store
        .clear_flag(
            &reference,
            form.flag.trim(),
            form.note.as_deref(),
            &session.user.login,
        )
        .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// `POST /ufficio/pratiche/{ref}/documenti`: documents brought to the counter or received
/// on paper, attached from the case page (multipart: `csrf`, one or more `file`).
async fn upload_document(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    use futures::TryStreamExt;
    let here = case_path(&reference);
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::UploadDocument) {
        return case_error(
            &state,
            &session,
            tr,
            &reference,
            tr.t("case.forbidden").to_owned(),
        )
        .await;
    }
    let Ok(mut multipart) = multipart else {
        return case_error(
            &state,
            &session,
            tr,
            &reference,
            tr.t("form.unreadable").to_owned(),
        )
        .await;
    };
    let mut csrf_ok = false;
    let mut added = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return case_error(
                    &state,
                    &session,
                    tr,
                    &reference,
                    tr.t("form.unreadable").to_owned(),
                )
                .await;
            }
        };
        match (
            field.name().map(str::to_owned),
            field.file_name().map(str::to_owned),
        ) {
            (Some(name), None) if name == "csrf" => {
                csrf_ok = same_token(&field.text().await.unwrap_or_default(), &session.csrf_token);
            }
            (_, Some(filename)) if !filename.is_empty() => {
                if !csrf_ok {
                    return case_error(
                        &state,
                        &session,
                        tr,
                        &reference,
                        tr.t("form.expired").to_owned(),
                    )
                    .await;
                }
                let stream = field.map_err(std::io::Error::other);
                let stored = async {
                    let staged = sportello_store::documents::BlobStore::stage(
                        &state.staging_dir,
                        tokio_util::io::StreamReader::new(stream),
                        state.config.documents.max_upload_bytes,
                    )
                    .await?;
                    if staged.size == 0 {
                        return Ok(false);
                    }
                    state.blobs.put_staged(&staged).await?;
                    state
                        .store
                        .add_document(
                            &reference,
                            &staged.sha256,
                            staged.size,
                            &filename,
                            &staged.media_type,
                            &session.user.login,
                        )
                        .await?;
                    Ok::<bool, sportello_store::StoreError>(true)
                }
                .await;
                match stored {
                    Ok(true) => added += 1,
                    Ok(false) => {}
                    Err(e) => {
                        let message = crate::error::ApiError::from(e).detail_in(tr);
                        return case_error(&state, &session, tr, &reference, message).await;
                    }
                }
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return case_error(
            &state,
            &session,
            tr,
            &reference,
            tr.t("form.expired").to_owned(),
        )
        .await;
    }
    render_case(
        &state,
        &session,
        tr,
        &reference,
        Some(tr.f("status.uploaded", &[("n", &added.to_string())])),
        None,
    )
    .await
}

/// The form of a permit request's data.
#[derive(Debug, Deserialize)]
pub struct FieldsForm {
    csrf: String,
    category: Option<String>,
    plates: Option<String>,
    /// Document kinds received, comma separated (the category's names).
    documents: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/dati`: the permit request's category, plates and the
/// documents received, as the operator checked them (a journaled change of the fields).
async fn edit_fields(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FieldsForm>,
) -> Response {
    let here = case_path(&reference);
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let list = |v: &Option<String>| -> Vec<serde_json::Value> {
        v.as_deref()
            .unwrap_or_default()
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| serde_json::Value::String(x.to_owned()))
            .collect()
    };
    let mut patch = serde_json::Map::new();
    if let Some(category) = form
        .category
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        if state.policy.category(category).is_none() {
            return case_error(
                &state,
                &session,
                tr,
                &reference,
                tr.t("apply.error.category").to_owned(),
            )
            .await;
        }
        patch.insert("category".into(), category.into());
    }
    patch.insert("plates".into(), list(&form.plates).into());
    patch.insert("documents".into(), list(&form.documents).into());
    match state
        .store
        .update_case_fields(&reference, &patch, &session.user.login)
        .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

/// The form that moves a message: to an existing case (`to`), or to a new one (`to`
/// empty), with a note saying why.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    csrf: String,
    to: Option<String>,
    note: String,
}

/// `POST /ufficio/pratiche/{ref}/messaggi/{id}`: a message linked to the wrong case goes
/// where it belongs, with its attachments and its protocol entry (journaled on both).
async fn move_message(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, i64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<MoveForm>,
) -> Response {
    let (session, tr) = match case_form(
        &state,
        &headers,
        &reference,
        query.lang.as_deref(),
        &form.csrf,
    )
    .await
    {
        Ok(found) => found,
        Err(r) => return r,
    };
    let to = form
        .to
        .as_deref()
        .map(|t| t.trim().to_ascii_uppercase())
        .filter(|t| !t.is_empty());
    let target = match &to {
        Some(to) if Reference::parse(to).is_none() => {
            return case_error(
                &state,
                &session,
                tr,
                &reference,
                tr.t("case.bad_reference").to_owned(),
            )
            .await;
        }
        Some(to) => sportello_store::messages::MoveTarget::Case(to.clone()),
        None => sportello_store::messages::MoveTarget::NewCase(None),
    };
    match state
        .store
        .move_message(id, target, &form.note, &session.user.login)
        .await
    {
        Ok(moved) => Redirect::to(&format!("/ufficio/pratiche/{}", moved.to)).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            case_error(&state, &session, tr, &reference, message).await
        }
    }
}

// ----- search -----

/// Query of `/ufficio/cerca`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    lang: Option<String>,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "office_search.html")]
struct SearchPage {
    tr: Tr,
    frame: Frame,
    q: String,
    hits: Vec<sportello_store::search::SearchHit>,
}

/// `GET /ufficio/cerca?q=`: a reference, or a plate with exactly one case, opens that
/// case; anything else is a full-text search.
async fn search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
    headers: HeaderMap,
) -> Response {
    let q = query
        .q
        .clone()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let session = match staff(
        &state,
        &headers,
        &format!("/ufficio/cerca?q={}", urlencode(&q)),
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if !session.user.role.can(Permission::ReadCase) {
        return Redirect::to("/ufficio/permessi").into_response();
    }
    let upper = q.to_ascii_uppercase();
    if Reference::parse(&upper).is_some() && state.store.get_case(&upper).await.is_ok() {
        return Redirect::to(&format!("/ufficio/pratiche/{upper}")).into_response();
    }
    let hits = if q.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .search(&sportello_store::search::SearchQuery {
                q: q.clone(),
                case_type: None,
                status: None,
                from: None,
                to: None,
                include_documents: session.user.role.can(Permission::ReadDocument),
                limit: 50,
                offset: 0,
            })
            .await
            .unwrap_or_default()
    };
    let _ = state
        .store
        .record_access(&session.user.login, "search", &q)
        .await;
    if let Ok(plate) = sportello_domain::plate::Plate::parse(&q, None) {
        let mut cases: Vec<&str> = hits.iter().map(|h| h.reference.as_str()).collect();
        cases.dedup();
        if cases.len() == 1 && plate.number.len() >= 5 && q.chars().any(|c| c.is_ascii_digit()) {
            return Redirect::to(&format!("/ufficio/pratiche/{}", cases[0])).into_response();
        }
    }
    let page_ = SearchPage {
        frame: Frame::staff(&state, "", &session).with_language(&tr),
        tr,
        q,
        hits,
    };
    page(StatusCode::OK, &page_)
}

// ----- permits desk -----

/// Query of `/ufficio/permessi`.
#[derive(Debug, Default, Deserialize)]
pub struct PermitQuery {
    lang: Option<String>,
    plate: Option<String>,
    gate: Option<String>,
}

#[derive(Template)]
#[template(path = "office_permits.html")]
struct PermitsPage {
    tr: Tr,
    frame: Frame,
    gates: Vec<String>,
    plate: String,
    gate: String,
    verdict: Option<(bool, String, String)>,
    error: Option<String>,
    /// Rejected lines of an uploaded gate file.
    rejected: Vec<(u64, String)>,
}

/// `GET /ufficio/permessi`: a plate's check at a gate now, and the whitelist downloads.
async fn permits(
    State(state): State<AppState>,
    Query(query): Query<PermitQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/permessi").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let gates: Vec<String> = state
        .policy
        .zones
        .iter()
        .flat_map(|z| z.gates.clone())
        .collect();
    let plate = query.plate.clone().unwrap_or_default().trim().to_owned();
    let gate = query.gate.clone().unwrap_or_default();
    let mut verdict = None;
    let mut error = None;
    if !plate.is_empty() {
        match (
            sportello_domain::plate::Plate::parse(&plate, None),
            state.policy.zone_of_gate(&gate),
        ) {
            (Ok(p), Some(zone)) => {
                let rows = state
                    .store
                    .permit_rows_of(&p.number, &p.country)
                    .await
                    .unwrap_or_default();
                let index = sportello_domain::ztl::transits::PermitIndex::new(&state.policy, rows);
                let now = state.store.clock().now();
                use sportello_domain::ztl::transits::Judgement;
                verdict = Some(
                    match sportello_domain::ztl::transits::judge(
                        &state.policy,
                        &index,
                        &p,
                        zone,
                        &now,
                    ) {
                        Judgement::ZoneNotActive => {
                            (true, tr.name("verdict", "zone_not_active"), String::new())
                        }
                        Judgement::Authorised(permit) => {
                            (true, tr.name("verdict", "permit"), permit.to_owned())
                        }
                        Judgement::Violation(reason) => {
                            (false, tr.name("verdict", reason.as_str()), String::new())
                        }
                    },
                );
            }
            (Err(_), _) => error = Some(tr.t("permits.bad_plate").to_owned()),
            (_, None) => error = Some(tr.t("permits.bad_gate").to_owned()),
        }
    }
    let page_ = PermitsPage {
        frame: Frame::staff(&state, "permits", &session).with_language(&tr),
        tr,
        gates,
        plate,
        gate,
        verdict,
        error,
        rejected: Vec::new(),
    };
    page(StatusCode::OK, &page_)
}

/// `POST /ufficio/permessi/transiti`: a gate file (CONTRACT §6.4) checked from the desk;
/// the violations come back as a CSV download, or the page names the refused lines.
async fn check_transits_page(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let session = match staff(&state, &headers, "/ufficio/permessi").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let mut page_ = PermitsPage {
        frame: Frame::staff(&state, "permits", &session).with_language(&tr),
        tr,
        gates: state
            .policy
            .zones
            .iter()
            .flat_map(|z| z.gates.clone())
            .collect(),
        plate: String::new(),
        gate: String::new(),
        verdict: None,
        error: None,
        rejected: Vec::new(),
    };
    if !session.user.role.can(Permission::CheckTransits) {
        page_.error = Some(tr.t("case.forbidden").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    let (mut csrf, mut file) = (String::new(), None);
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(field)) = multipart.next_field().await {
            match field.name() {
                Some("csrf") => csrf = field.text().await.unwrap_or_default(),
                Some("file") => file = field.bytes().await.ok(),
                _ => {}
            }
        }
    }
    if !same_token(&csrf, &session.csrf_token) {
        page_.error = Some(tr.t("form.expired").to_owned());
        return page(StatusCode::FORBIDDEN, &page_);
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        page_.error = Some(tr.t("permits.no_file").to_owned());
        return page(StatusCode::UNPROCESSABLE_ENTITY, &page_);
    };
    match crate::api::ztl::run_check(&state, &session.user.login, file).await {
        Ok((summary, _)) if summary.rejected_count > 0 => {
            page_.error = Some(tr.f(
                "permits.rejected",
                &[("n", &summary.rejected_count.to_string())],
            ));
            page_.rejected = summary
                .rejected
                .iter()
                .take(200)
                .map(|r| (r.line, r.reason.clone()))
                .collect();
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
        Ok((_, out)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"violazioni.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            out,
        )
            .into_response(),
        Err(e) => {
            page_.error = Some(e.detail_in(tr));
            page(StatusCode::UNPROCESSABLE_ENTITY, &page_)
        }
    }
}

// ----- audit -----

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
async fn audit(
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

#[derive(Template)]
#[template(path = "office_permit.html")]
struct PermitPage {
    tr: Tr,
    frame: Frame,
    permit: sportello_store::permits::PermitView,
    /// (plate, country, from, to, status, source) per row, in words.
    rows: Vec<(String, String, String, String, String, String)>,
    /// (when, who, what, details) per history entry.
    history: Vec<(String, String, String, String)>,
    can_manage: bool,
    /// Whether the permit's category takes temporary plates (CUDE).
    person_bound: bool,
    error: Option<String>,
}

async fn render_permit(
    state: &AppState,
    session: &Session,
    tr: Tr,
    number: &str,
    error: Option<String>,
) -> Response {
    let Ok(permit) = state.store.permit(number.trim()).await else {
        let page_ = NotFoundPage {
            frame: Frame::staff(state, "permits", session).with_language(&tr),
            tr,
        };
        return page(StatusCode::NOT_FOUND, &page_);
    };
    let _ = state
        .store
        .record_access(&session.user.login, "read_permit", &permit.number)
        .await;
    let instant = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&sportello_domain::calendar::ROME)
                    .format("%d/%m/%Y %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let rows = permit
        .plates
        .iter()
        .map(|r| {
            (
                r.plate.clone(),
                r.country.clone(),
                instant(r.valid_from),
                instant(r.valid_to),
                tr.name("permit_status", &r.status),
                tr.name("permit_source", &r.source),
            )
        })
        .collect();
    let history = permit
        .history
        .iter()
        .map(|e| {
            let details = e
                .detail
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}: {}",
                                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            (
                when(&e.at),
                e.actor.clone(),
                tr.name("permit_event", &e.kind),
                details,
            )
        })
        .collect();
    let page_ = PermitPage {
        frame: Frame::staff(state, "permits", session).with_language(&tr),
        can_manage: session.user.role.can(Permission::ActOnCase),
        person_bound: state
            .policy
            .category(&permit.category)
            .is_some_and(|c| c.person_bound),
        tr,
        rows,
        history,
        permit,
        error,
    };
    page(StatusCode::OK, &page_)
}

/// Query of the permit-number box.
#[derive(Debug, Default, Deserialize)]
pub struct OpenPermitQuery {
    numero: Option<String>,
}

/// `GET /ufficio/permessi/apri?numero=`: the permit-number box of the desk.
async fn open_permit(Query(query): Query<OpenPermitQuery>) -> Response {
    let number = query.numero.unwrap_or_default().trim().to_ascii_uppercase();
    Redirect::to(&format!("/ufficio/permessi/{}", urlencode(&number))).into_response()
}

/// `GET /ufficio/permessi/{number}`: a permit with its plates, state and history.
async fn permit_page(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/ufficio/permessi/{}", urlencode(&number));
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    render_permit(&state, &session, tr, &number, None).await
}

/// The permit page's forms: a change of status with its reason, or a renewal.
#[derive(Debug, Deserialize)]
pub struct PermitForm {
    csrf: String,
    /// `suspended`, `revoked`, `active`, `renew` or `temporary_plate`.
    change: String,
    reason: Option<String>,
    /// A temporary plate (person-bound permits) and its period, local date and time.
    plate: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `POST /ufficio/permessi/{number}`: suspends, revokes or reinstates the permit with a
/// reason (journaled), or opens its renewal case and goes there.
async fn permit_change(
    State(state): State<AppState>,
    Path(number): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<PermitForm>,
) -> Response {
    let here = format!("/ufficio/permessi/{}", urlencode(&number));
    let session = match staff(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    if let Some(key) = refusal(&session, &form.csrf) {
        return render_permit(&state, &session, tr, &number, Some(tr.t(key).to_owned())).await;
    }
    if form.change == "renew" {
        return match crate::api::permits::open_renewal(
            &state,
            &session.user.login,
            number.trim(),
            None,
            None,
        )
        .await
        {
            Ok(case) => Redirect::to(&format!("/ufficio/pratiche/{}", case.summary.reference))
                .into_response(),
            Err(e) => render_permit(&state, &session, tr, &number, Some(e.detail_in(tr))).await,
        };
    }
    if form.change == "temporary_plate" {
        let local = |v: &Option<String>| {
            chrono::NaiveDateTime::parse_from_str(
                v.as_deref().unwrap_or_default().trim(),
                "%Y-%m-%dT%H:%M",
            )
            .ok()
            .and_then(|t| t.and_local_timezone(state.policy.timezone).earliest())
        };
        let plate =
            sportello_domain::plate::Plate::parse(form.plate.as_deref().unwrap_or_default(), None);
        let (Ok(plate), Some(from), Some(to)) = (plate, local(&form.from), local(&form.to)) else {
            return render_permit(
                &state,
                &session,
                tr,
                &number,
                Some(tr.t("permit.temporary_invalid").to_owned()),
            )
            .await;
        };
        let added = crate::api::permits::add_temporary(
            &state,
            number.trim(),
            plate,
            (from.timestamp_millis(), to.timestamp_millis()),
            &session.user.login,
        )
        .await;
        return match added {
            Ok(_) => Redirect::to(&here).into_response(),
            Err(e) => {
                let message = crate::error::ApiError::from(e).detail_in(tr);
                render_permit(&state, &session, tr, &number, Some(message)).await
            }
        };
    }
    let reason: String = form.reason.unwrap_or_default().chars().take(1000).collect();
    match state
        .store
        .set_permit_status(
            number.trim(),
            form.change.trim(),
            &reason,
            &session.user.login,
        )
        .await
    {
        Ok(_) => Redirect::to(&here).into_response(),
        Err(e) => {
            let message = crate::error::ApiError::from(e).detail_in(tr);
            render_permit(&state, &session, tr, &number, Some(message)).await
        }
    }
}
