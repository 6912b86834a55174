//! The citizen portal: the start page, applying for a permit (`/domanda`), following a
//! case (`/stato`: reference and fiscal code; the same answer, after the same time, for
//! every wrong pair, and rate limited), contesting a fine (`/contesta`), the
//! accessibility statement and the privacy notice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::plate::Plate;
use sportello_store::cases::CaseView;
use sportello_store::documents::{BlobStore, StagedBlob};

use super::i18n::Tr;
use super::{Frame, cookie, day, language, page, random_token, same_token, set_cookie};
use crate::AppState;

/// Every answer of `/stato` takes at least this long, found or not, so that timing tells
/// nothing about which part of a pair was wrong.
const STATUS_ANSWER_TIME: Duration = Duration::from_millis(400);
/// Lookups of `/stato` allowed per client address and per reference in a window.
const STATUS_LOOKUPS: u32 = 10;
/// The window of those limits.
const STATUS_WINDOW: Duration = Duration::from_secs(600);
/// Files one form may carry.
const MAX_FILES: usize = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/stato", get(status_form).post(status_lookup))
        .route(
            "/stato/{token}",
            get(status_by_link).post(status_by_link_upload),
        )
        .route("/cude", get(cude_form).post(cude_plate))
        .route("/domanda", get(apply_form).post(apply))
        .route("/contesta", get(contest_form).post(contest))
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
fn portal_frame(
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

fn with_cookies(mut response: Response, cookies: Vec<axum::http::HeaderValue>) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage {
    tr: Tr,
    frame: Frame,
}

async fn home(
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

async fn accessibility(
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

async fn privacy(
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

/// What a form page shows again after a refusal: the values typed and an error per
/// field (`form` for the whole form).
#[derive(Debug, Default)]
struct FormState {
    values: HashMap<String, String>,
    errors: Vec<(String, String)>,
}

impl FormState {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn checked(&self, name: &str, value: &str) -> bool {
        self.value(name) == value
    }

    /// Keeps the submitted `names` (trimmed) to show them again.
    fn keep(&mut self, form: &Form, names: &[&str]) {
        for name in names {
            self.values
                .insert((*name).to_owned(), form.text(name).trim().to_owned());
        }
    }
}

// ----- /stato -----

/// A case as the citizen sees it: no journal, no operator, no personal data beyond what
/// they gave.
struct CitizenCase {
    reference: String,
    status: String,
    case_type: String,
    received: String,
    due: String,
    days_left: i64,
    clock: String,
    missing: Vec<String>,
    documents: Vec<String>,
    can_upload: bool,
    /// Appointments at the counter: `(id, when, place, reason, still to confirm)`.
    appointments: Vec<(i64, String, String, String, bool)>,
}

#[derive(Template)]
#[template(path = "portal_status.html")]
struct StatusPage {
    tr: Tr,
    frame: Frame,
    reference: String,
    fiscal_code: String,
    error: Option<String>,
    notice: Option<String>,
    case: Option<CitizenCase>,
    /// The private link the page was opened with (its forms post back to it).
    link: Option<String>,
}

impl StatusPage {
    fn new(tr: Tr, frame: Frame) -> StatusPage {
        StatusPage {
            tr,
            frame,
            reference: String::new(),
            fiscal_code: String::new(),
            error: None,
            notice: None,
            case: None,
            link: None,
        }
    }
}

async fn status_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "status", &query, &headers);
    let page_ = StatusPage::new(tr, frame);
    with_cookies(page(StatusCode::OK, &page_), cookies)
}

/// What a citizen sees of their case.
fn citizen_view(tr: &Tr, case: &CaseView) -> CitizenCase {
    let missing = case
        .timeline
        .iter()
        .rev()
        .find(|e| e.detail.get("action").and_then(|a| a.as_str()) == Some("request_integration"))
        .and_then(|e| e.detail.get("missing"))
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let waiting = case.summary.status == "waiting_citizen";
    CitizenCase {
        reference: case.summary.reference.clone(),
        status: tr.name("status", &case.summary.status),
        case_type: tr.name("case_type", &case.summary.case_type),
        received: super::when(&case.summary.received_at),
        due: day(&case.summary.due_at),
        days_left: case.summary.sla.days_left,
        clock: tr.name("clock", &case.summary.sla.state),
        missing: if waiting { missing } else { Vec::new() },
        documents: case.documents.iter().map(|d| d.filename.clone()).collect(),
        can_upload: case.summary.status != "closed",
        appointments: Vec::new(),
    }
}

/// Finds the case of a reference and fiscal code pair, within the limits; `None` for
/// anything wrong, whatever it was.
async fn find_case(
    state: &AppState,
    ip: &str,
    reference: &str,
    fiscal_code: &str,
) -> Result<Option<CaseView>, &'static str> {
    let reference = reference.trim().to_ascii_uppercase();
    let limits = &state.page_limits;
    let ip_ok = limits.allow(&format!("status-ip:{ip}"), STATUS_LOOKUPS, STATUS_WINDOW);
    let ref_ok = limits.allow(
        &format!("status-ref:{reference}"),
        STATUS_LOOKUPS,
        STATUS_WINDOW,
    );
    if !ip_ok || !ref_ok {
        return Err("status.too_many");
    }
    let Ok(code) = FiscalCode::parse(fiscal_code.trim()) else {
        return Ok(None);
    };
    let Ok(case) = state.store.get_case(&reference).await else {
        return Ok(None);
    };
    let matches = case
        .citizen
        .fiscal_code
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case(code.as_str()));
    Ok(matches.then_some(case))
}

/// `POST /stato`: a lookup (`reference`, `fiscal_code`) or, with files, documents for
/// the case (which resume its clock when it waits for them).
async fn status_lookup(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    super::ClientIp(ip): super::ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let started = Instant::now();
    let (tr, frame, cookies) = portal_frame(&state, "status", &query, &headers);
    let mut page_ = StatusPage::new(tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_.error = Some(tr.t(key).to_owned());
            return with_cookies(page(status, &page_), cookies);
        }
    };
    page_.reference = form.text("reference").trim().to_owned();
    page_.fiscal_code = form.text("fiscal_code").trim().to_owned();
    let found = find_case(&state, &ip, &page_.reference, &page_.fiscal_code).await;
    let status = match found {
        Err(key) => {
            page_.error = Some(tr.t(key).to_owned());
            StatusCode::TOO_MANY_REQUESTS
        }
        Ok(None) => {
            page_.error = Some(tr.t("status.not_found").to_owned());
            StatusCode::OK
        }
        Ok(Some(case)) => {
            let confirm = form.text("confirm_appointment").parse::<i64>().ok();
            show_case(&state, &mut page_, case, form.files, confirm).await;
            StatusCode::OK
        }
    };
    if let Some(rest) = STATUS_ANSWER_TIME.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    with_cookies(page(status, &page_), cookies)
}

/// Fills the status page with the citizen's case, after attaching the files they sent
/// (which resumes the clock when the office waits for them).
async fn show_case(
    state: &AppState,
    page_: &mut StatusPage,
    mut case: CaseView,
    files: Vec<(String, String, StagedBlob)>,
    confirm: Option<i64>,
) {
    let tr = page_.tr;
    // The citizen confirms an appointment the office proposed (only one of their case).
    if let Some(id) = confirm {
        let theirs = state
            .store
            .appointments_of_case(&case.summary.reference)
            .await
            .map(|list| list.iter().any(|a| a.id == id && a.status == "proposed"))
            .unwrap_or(false);
        if theirs {
            match state
                .store
                .confirm_appointment(id, "portal", "cittadino")
                .await
            {
                Ok(_) => page_.notice = Some(tr.t("status.appointment_confirmed").to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "appointment not confirmed");
                    page_.error = Some(tr.t("form.upload_failed").to_owned());
                }
            }
            if let Ok(fresh) = state.store.get_case(&case.summary.reference).await {
                case = fresh;
            }
        }
    }
    if !files.is_empty() && case.summary.status != "closed" {
        match attach_files(state, &case.summary.reference, files, "cittadino").await {
            Ok(n) => {
                if case.summary.status == "waiting_citizen" {
                    let _ = state
                        .store
                        .apply_action(
                            &case.summary.reference,
                            &sportello_domain::workflow::Action::IntegrationReceived,
                            Some("documenti caricati dal portale"),
                            "cittadino",
                        )
                        .await;
                }
                page_.notice = Some(tr.f("status.uploaded", &[("n", &n.to_string())]));
                if let Ok(fresh) = state.store.get_case(&case.summary.reference).await {
                    case = fresh;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "portal upload failed");
                page_.error = Some(tr.t("form.upload_failed").to_owned());
            }
        }
    }
    let mut view = citizen_view(&tr, &case);
    view.appointments = state
        .store
        .appointments_of_case(&case.summary.reference)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| matches!(a.status.as_str(), "proposed" | "confirmed"))
        .map(|a| {
            (
                a.id,
                super::when(&a.starts_at),
                a.place,
                a.reason,
                a.status == "proposed",
            )
        })
        .collect();
    page_.case = Some(view);
}

/// The case a private link opens, within the address's limit of lookups.
async fn case_by_link(
    state: &AppState,
    ip: &str,
    token: &str,
) -> Result<Option<CaseView>, &'static str> {
    if !state
        .page_limits
        .allow(&format!("link-ip:{ip}"), STATUS_LOOKUPS * 3, STATUS_WINDOW)
    {
        return Err("status.too_many");
    }
    if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match state.store.case_of_link(token).await {
        Ok(Some(reference)) => Ok(state.store.get_case(&reference).await.ok()),
        _ => Ok(None),
    }
}

/// `GET /stato/{token}`: the case behind a private link.
async fn status_by_link(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
    super::ClientIp(ip): super::ClientIp,
    headers: HeaderMap,
) -> Response {
    link_page(&state, &token, &query, &ip, &headers, None).await
}

/// `POST /stato/{token}`: documents sent from the private link's page.
async fn status_by_link_upload(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    Query(query): Query<LangQuery>,
    super::ClientIp(ip): super::ClientIp,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    link_page(&state, &token, &query, &ip, &headers, Some(multipart)).await
}

async fn link_page(
    state: &AppState,
    token: &str,
    query: &LangQuery,
    ip: &str,
    headers: &HeaderMap,
    form: Option<Result<Multipart, axum::extract::multipart::MultipartRejection>>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(state, "status", query, headers);
    let mut page_ = StatusPage {
        link: Some(token.to_owned()),
        ..StatusPage::new(tr, frame)
    };
    let (files, confirm) = match form {
        None => (Vec::new(), None),
        Some(multipart) => match checked_form(state, multipart, &page_.frame.csrf).await {
            Ok(form) => {
                let confirm = form.text("confirm_appointment").parse::<i64>().ok();
                (form.files, confirm)
            }
            Err((_, key)) => {
                page_.error = Some(tr.t(key).to_owned());
                (Vec::new(), None)
            }
        },
    };
    let status = match case_by_link(state, ip, token).await {
        Err(key) => {
            page_.error = Some(tr.t(key).to_owned());
            page_.link = None;
            StatusCode::TOO_MANY_REQUESTS
        }
        Ok(None) => {
            page_.error = Some(tr.t("status.link_unknown").to_owned());
            page_.link = None;
            StatusCode::NOT_FOUND
        }
        Ok(Some(case)) => {
            show_case(state, &mut page_, case, files, confirm).await;
            StatusCode::OK
        }
    };
    with_cookies(page(status, &page_), cookies)
}

// ----- /cude: temporary plates -----

#[derive(Template)]
#[template(path = "portal_cude.html")]
struct CudePage {
    tr: Tr,
    frame: Frame,
    f: FormState,
    done: Option<String>,
}

async fn cude_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "cude", &query, &headers);
    let page_ = CudePage {
        tr,
        frame,
        f: FormState::default(),
        done: None,
    };
    with_cookies(page(StatusCode::OK, &page_), cookies)
}

/// The temporary-plate form.
#[derive(Debug, Deserialize)]
pub struct CudeForm {
    csrf: String,
    permit: String,
    fiscal_code: String,
    plate: String,
    date_from: String,
    time_from: String,
    date_to: String,
    time_to: String,
}

/// `POST /cude`: a CUDE holder communicates the plate of the vehicle they travel in
/// (the permit number and the holder's fiscal code prove it is theirs); the category's
/// limits apply (48 hours back, 24 forward in the example policy), with clear errors.
async fn cude_plate(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    super::ClientIp(ip): super::ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CudeForm>,
) -> Response {
    let started = Instant::now();
    let (tr, frame, cookies) = portal_frame(&state, "cude", &query, &headers);
    let mut page_ = CudePage {
        tr,
        frame,
        f: FormState::default(),
        done: None,
    };
    for (k, v) in [
        ("permit", &form.permit),
        ("fiscal_code", &form.fiscal_code),
        ("plate", &form.plate),
        ("date_from", &form.date_from),
        ("time_from", &form.time_from),
        ("date_to", &form.date_to),
        ("time_to", &form.time_to),
    ] {
        page_.f.values.insert(k.to_owned(), v.trim().to_owned());
    }
    if !same_token(&form.csrf, &page_.frame.csrf) {
        page_
            .f
            .errors
            .push(("form".into(), tr.t("form.expired").to_owned()));
        return with_cookies(page(StatusCode::FORBIDDEN, &page_), cookies);
    }
    let number = form.permit.trim().to_ascii_uppercase();
    let limits = &state.page_limits;
    if !limits.allow(&format!("cude-ip:{ip}"), STATUS_LOOKUPS, STATUS_WINDOW)
        || !limits.allow(
            &format!("cude-permit:{number}"),
            STATUS_LOOKUPS,
            STATUS_WINDOW,
        )
    {
        page_
            .f
            .errors
            .push(("form".into(), tr.t("status.too_many").to_owned()));
        return with_cookies(page(StatusCode::TOO_MANY_REQUESTS, &page_), cookies);
    }
    let local = |date: &str, time: &str| {
        chrono::NaiveDateTime::parse_from_str(
            &format!("{} {}", date.trim(), time.trim()),
            "%Y-%m-%d %H:%M",
        )
        .ok()
        .and_then(|t| t.and_local_timezone(state.policy.timezone).earliest())
    };
    let from = local(&form.date_from, &form.time_from);
    let to = local(&form.date_to, &form.time_to);
    let plate = Plate::parse(&form.plate, None);
    if plate.is_err() {
        page_
            .f
            .errors
            .push(("plate".into(), tr.t("contest.error.plate").to_owned()));
    }
    if from.is_none() {
        page_
            .f
            .errors
            .push(("date_from".into(), tr.t("cude.error.when").to_owned()));
    }
    if to.is_none() {
        page_
            .f
            .errors
            .push(("date_to".into(), tr.t("cude.error.when").to_owned()));
    }
    let owner = match state.store.permit(&number).await {
        Ok(p) => FiscalCode::parse(form.fiscal_code.trim())
            .is_ok_and(|f| f.as_str().eq_ignore_ascii_case(&p.holder_fiscal_code)),
        Err(_) => false,
    };
    if !owner {
        page_
            .f
            .errors
            .push(("permit".into(), tr.t("cude.error.permit").to_owned()));
    }
    let (Ok(plate), Some(from), Some(to), true) = (plate, from, to, page_.f.errors.is_empty())
    else {
        if let Some(rest) = STATUS_ANSWER_TIME.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let result = crate::api::permits::add_temporary(
        &state,
        &number,
        plate.clone(),
        (from.timestamp_millis(), to.timestamp_millis()),
        "cittadino",
    )
    .await;
    match result {
        Ok(_) => {
            page_.done = Some(plate.number);
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            // The category's rules, said as the store says them (which limit, which field).
            let field = match &e {
                sportello_store::StoreError::Invalid { field, .. }
                | sportello_store::StoreError::RefusedField { field, .. } => field.clone(),
                _ => "form".into(),
            };
            let message = crate::error::ApiError::from(e).detail_in(tr);
            page_.f.errors.push((field, message));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}

// ----- forms with files -----

/// A submitted form: its text fields, and its files already staged (hashed, on disk).
struct Form {
    fields: HashMap<String, String>,
    files: Vec<(String, String, StagedBlob)>,
}

impl Form {
    fn text(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Reads a multipart form: text fields (at most 64 KiB each) and up to [`MAX_FILES`]
/// files, each staged within the upload limit; empty file inputs are skipped.
async fn read_form(state: &AppState, mut multipart: Multipart) -> Result<Form, &'static str> {
    use futures::TryStreamExt;
    let mut form = Form {
        fields: HashMap::new(),
        files: Vec::new(),
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(form),
            Err(_) => return Err("form.unreadable"),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(filename) => {
                if filename.is_empty() {
                    continue;
                }
                if form.files.len() >= MAX_FILES {
                    return Err("form.too_many_files");
                }
                let stream = field.map_err(std::io::Error::other);
                let staged = BlobStore::stage(
                    &state.staging_dir,
                    tokio_util::io::StreamReader::new(stream),
                    state.config.documents.max_upload_bytes,
                )
                .await
                .map_err(|_| "form.file_too_large")?;
                if staged.size > 0 {
                    form.files.push((name, filename, staged));
                }
            }
            None => {
                let text = field.text().await.map_err(|_| "form.unreadable")?;
                if text.len() > 64 * 1024 {
                    return Err("form.unreadable");
                }
                form.fields.entry(name).or_insert(text);
            }
        }
    }
}

/// Stores staged files and attaches them to a case; returns how many.
async fn attach_files(
    state: &AppState,
    reference: &str,
    files: Vec<(String, String, StagedBlob)>,
    actor: &str,
) -> Result<usize, sportello_store::StoreError> {
    let n = files.len();
    for (_, filename, staged) in files {
        state.blobs.put_staged(&staged).await?;
        state
            .store
            .add_document(
                reference,
                &staged.sha256,
                staged.size,
                &filename,
                &staged.media_type,
                actor,
            )
            .await?;
    }
    Ok(n)
}

// ----- /domanda -----

/// A permit category as the application form offers it.
struct CategoryChoice {
    id: String,
    name: String,
    documents: Vec<String>,
    max_vehicles: u32,
}

#[derive(Template)]
#[template(path = "portal_apply.html")]
struct ApplyPage {
    tr: Tr,
    frame: Frame,
    categories: Vec<CategoryChoice>,
    document_kinds: Vec<String>,
    f: FormState,
    done: Option<(String, String, String)>,
}

fn apply_page(state: &AppState, tr: Tr, frame: Frame) -> ApplyPage {
    let categories: Vec<CategoryChoice> = state
        .policy
        .categories
        .iter()
        .map(|c| CategoryChoice {
            id: c.id.clone(),
            name: c.name.clone(),
            documents: c.documents.clone(),
            max_vehicles: c.max_vehicles,
        })
        .collect();
    let mut document_kinds: Vec<String> = categories
        .iter()
        .flat_map(|c| c.documents.iter().cloned())
        .collect();
    document_kinds.sort();
    document_kinds.dedup();
    ApplyPage {
        tr,
        frame,
        categories,
        document_kinds,
        f: FormState::default(),
        done: None,
    }
}

async fn apply_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "apply", &query, &headers);
    with_cookies(
        page(StatusCode::OK, &apply_page(&state, tr, frame)),
        cookies,
    )
}

/// `POST /domanda`: checks the application field by field (category, holder and fiscal
/// code, plates, the category's documents, the privacy notice); a complete one becomes a
/// `web` case with its documents, registered, and the page shows its reference.
async fn apply(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "apply", &query, &headers);
    let mut page_ = apply_page(&state, tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_.f.errors.push(("form".into(), tr.t(key).to_owned()));
            return with_cookies(page(status, &page_), cookies);
        }
    };
    page_.f.keep(
        &form,
        &[
            "category",
            "name",
            "fiscal_code",
            "email",
            "phone",
            "plates",
        ],
    );
    let mut errors: Vec<(String, String)> = Vec::new();
    let category = state.policy.category(form.text("category"));
    if category.is_none() {
        errors.push(("category".into(), tr.t("apply.error.category").to_owned()));
    }
    let name = form.text("name").trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(("name".into(), tr.t("apply.error.name").to_owned()));
    }
    let fiscal_code = FiscalCode::parse(form.text("fiscal_code").trim());
    if let Err(e) = &fiscal_code {
        errors.push(("fiscal_code".into(), tr.t(fiscal_code_error(e)).to_owned()));
    }
    let email = form.text("email").trim();
    if !email.is_empty() && (!email.contains('@') || email.len() > 254) {
        errors.push(("email".into(), tr.t("apply.error.email").to_owned()));
    }
    let mut plates = Vec::new();
    for text in form
        .text("plates")
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match Plate::parse(text, None) {
            Ok(plate) => plates.push(plate.number),
            Err(_) => errors.push((
                "plates".into(),
                tr.f("apply.error.plate", &[("plate", text)]),
            )),
        }
    }
    if let Some(c) = category {
        if plates.is_empty() || plates.len() > c.max_vehicles as usize {
            errors.push((
                "plates".into(),
                tr.f(
                    "apply.error.plates_count",
                    &[("max", &c.max_vehicles.to_string())],
                ),
            ));
        }
        for kind in &c.documents {
            if !form
                .files
                .iter()
                .any(|(field, _, _)| field == &format!("doc_{kind}"))
            {
                errors.push((
                    format!("doc_{kind}"),
                    tr.f(
                        "apply.error.document",
                        &[("document", &tr.name("document", kind))],
                    ),
                ));
            }
        }
    }
    if form.text("privacy") != "yes" {
        errors.push(("privacy".into(), tr.t("apply.error.privacy").to_owned()));
    }
    if !errors.is_empty() {
        page_.f.errors = errors;
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    }
    let Some(category) = category else {
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let documents: Vec<String> = category
        .documents
        .iter()
        .filter(|kind| {
            form.files
                .iter()
                .any(|(f, _, _)| f == &format!("doc_{kind}"))
        })
        .cloned()
        .collect();
    let request = crate::api::cases::CreateCaseBody {
        case_type: Some(
            if category.person_bound {
                "cude"
            } else {
                "ztl_permit"
            }
            .into(),
        ),
        subject: Some(format!("Domanda di permesso ZTL: {}", category.name)),
        description: None,
        channel: Some("web".into()),
        citizen: Some(crate::api::cases::CitizenBody {
            fiscal_code: Some(form.text("fiscal_code").trim().to_owned()),
            name: Some(name.to_owned()),
            email: (!email.is_empty()).then(|| email.to_owned()),
            phone: Some(form.text("phone").trim().to_owned()).filter(|p| !p.is_empty()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "category": category.id, "plates": plates, "documents": documents,
        })),
    };
    match register_web_case(&state, request, form.files).await {
        Ok((case, link)) => {
            let reference = case.summary.reference.clone();
            page_.done = Some((reference, day(&case.summary.due_at), link));
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            tracing::warn!(error = %e, "an application was refused");
            page_
                .f
                .errors
                .push(("form".into(), tr.t("form.failed").to_owned()));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}

// ----- /contesta -----

#[derive(Template)]
#[template(path = "portal_contest.html")]
struct ContestPage {
    tr: Tr,
    frame: Frame,
    gates: Vec<(String, String)>,
    f: FormState,
    done: Option<(String, String)>,
}

fn contest_page(state: &AppState, tr: Tr, frame: Frame) -> ContestPage {
    let gates = state
        .policy
        .zones
        .iter()
        .flat_map(|z| {
            z.gates
                .iter()
                .map(move |g| (g.clone(), format!("{g} — {}", z.name)))
        })
        .collect();
    ContestPage {
        tr,
        frame,
        gates,
        f: FormState::default(),
        done: None,
    }
}

async fn contest_form(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "contest", &query, &headers);
    with_cookies(
        page(StatusCode::OK, &contest_page(&state, tr, frame)),
        cookies,
    )
}

/// `POST /contesta`: a citizen contests a fine: an `SEG` case with the plate, the
/// passage (gate and local date and time) and the fine number, and their reasons.
async fn contest(
    State(state): State<AppState>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (tr, frame, cookies) = portal_frame(&state, "contest", &query, &headers);
    let mut page_ = contest_page(&state, tr, frame);
    let form = match checked_form(&state, multipart, &page_.frame.csrf).await {
        Ok(form) => form,
        Err((status, key)) => {
            page_.f.errors.push(("form".into(), tr.t(key).to_owned()));
            return with_cookies(page(status, &page_), cookies);
        }
    };
    page_.f.keep(
        &form,
        &[
            "plate",
            "fine",
            "gate",
            "date",
            "time",
            "name",
            "fiscal_code",
            "email",
            "reasons",
        ],
    );
    let mut errors: Vec<(String, String)> = Vec::new();
    let plate = Plate::parse(form.text("plate"), None);
    if plate.is_err() {
        errors.push(("plate".into(), tr.t("contest.error.plate").to_owned()));
    }
    let fine = form.text("fine").trim();
    if fine.is_empty() || fine.chars().count() > 64 {
        errors.push(("fine".into(), tr.t("contest.error.fine").to_owned()));
    }
    if state.policy.zone_of_gate(form.text("gate")).is_none() {
        errors.push(("gate".into(), tr.t("contest.error.gate").to_owned()));
    }
    let at = chrono::NaiveDateTime::parse_from_str(
        &format!("{} {}", form.text("date").trim(), form.text("time").trim()),
        "%Y-%m-%d %H:%M",
    )
    .ok()
    .and_then(|local| local.and_local_timezone(state.policy.timezone).earliest());
    if at.is_none() {
        errors.push(("date".into(), tr.t("contest.error.when").to_owned()));
    }
    if let Err(e) = FiscalCode::parse(form.text("fiscal_code").trim()) {
        errors.push(("fiscal_code".into(), tr.t(fiscal_code_error(&e)).to_owned()));
    }
    let name = form.text("name").trim();
    if name.is_empty() {
        errors.push(("name".into(), tr.t("apply.error.name").to_owned()));
    }
    if form.text("reasons").trim().is_empty() {
        errors.push(("reasons".into(), tr.t("contest.error.reasons").to_owned()));
    }
    let (Ok(plate), Some(at), true) = (plate, at, errors.is_empty()) else {
        page_.f.errors = errors;
        return with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies);
    };
    let email = form.text("email").trim();
    let request = crate::api::cases::CreateCaseBody {
        case_type: Some("seg".into()),
        subject: Some(format!(
            "Contestazione verbale {fine}, targa {}",
            plate.number
        )),
        description: Some(form.text("reasons").trim().to_owned()),
        channel: Some("web".into()),
        citizen: Some(crate::api::cases::CitizenBody {
            fiscal_code: Some(form.text("fiscal_code").trim().to_owned()),
            name: Some(name.to_owned()),
            email: (!email.is_empty()).then(|| email.to_owned()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "plate": plate.number, "country": plate.country, "fine": fine,
            "transits": [{"transit_id": format!("verbale {fine}"), "gate": form.text("gate").trim(),
                          "timestamp": at.to_rfc3339()}],
        })),
    };
    match register_web_case(&state, request, form.files).await {
        Ok((case, link)) => {
            let reference = case.summary.reference.clone();
            page_.done = Some((reference, link));
            with_cookies(page(StatusCode::CREATED, &page_), cookies)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a contest was refused");
            page_
                .f
                .errors
                .push(("form".into(), tr.t("form.failed").to_owned()));
            with_cookies(page(StatusCode::UNPROCESSABLE_ENTITY, &page_), cookies)
        }
    }
}

/// Reads a submitted form and checks its CSRF token against the page's; the status and
/// the words' key of a refusal.
async fn checked_form(
    state: &AppState,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    csrf: &str,
) -> Result<Form, (StatusCode, &'static str)> {
    let Ok(multipart) = multipart else {
        return Err((StatusCode::BAD_REQUEST, "form.unreadable"));
    };
    let form = read_form(state, multipart)
        .await
        .map_err(|key| (StatusCode::BAD_REQUEST, key))?;
    if same_token(form.text("csrf"), csrf) {
        Ok(form)
    } else {
        Err((StatusCode::FORBIDDEN, "form.expired"))
    }
}

/// Registers a case the citizen submitted online, with its files, and makes its private
/// link; the error is logged and only said to the citizen as a failure.
async fn register_web_case(
    state: &AppState,
    request: crate::api::cases::CreateCaseBody,
    files: Vec<(String, String, StagedBlob)>,
) -> Result<(CaseView, String), String> {
    let created = match request.validate(state, "portale") {
        Ok(new) => state
            .store
            .create_case(new)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.detail()),
    };
    let case = created?;
    let reference = case.summary.reference.clone();
    if let Err(e) = attach_files(state, &reference, files, "portale").await {
        tracing::warn!(error = %e, %reference, "documents sent online not stored");
    }
    let link = private_link(state, &reference).await;
    Ok((case, link))
}

/// The private link of a new case, as a full address (empty if it could not be made: the
/// reference and fiscal code still work).
pub(crate) async fn private_link(state: &AppState, reference: &str) -> String {
    match state.store.create_case_link(reference).await {
        Ok(token) => format!(
            "{}/stato/{token}",
            state.config.public_url.trim_end_matches('/')
        ),
        Err(e) => {
            tracing::warn!(error = %e, %reference, "no private link");
            String::new()
        }
    }
}

/// The words for a fiscal code the form refuses: a blank field is missing, not wrong.
fn fiscal_code_error(e: &sportello_domain::fiscal_code::FiscalCodeError) -> &'static str {
    match e {
        sportello_domain::fiscal_code::FiscalCodeError::Empty => "apply.error.fiscal_code_missing",
        _ => "apply.error.fiscal_code",
    }
}
