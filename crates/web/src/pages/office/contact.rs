//! The contact centre and the counter: `/ufficio/richiamate` lists the calls to make (who,
//! the number, the case, what to say), each closed with one click; `/ufficio/appuntamenti`
//! is the counter's day, with whether each case is ready. Same rules as the API; a change
//! answers 303 to its page so that a reload does not repeat it.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use sportello_domain::calendar::ROME;
use sportello_domain::roles::Permission;
use sportello_store::contact::{AppointmentView, CallTaskView};
use sportello_store::sessions::Session;

use super::staff;
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Tr;
use crate::pages::{Frame, language, page, same_token, when};
use sportello_app::contact::{
    AppointmentRequest, CallLog, cancel_appointment, confirm_appointment, day_or_today,
    log_call as log_the_call, propose_appointment,
};

/// Tasks on one page of the queue.
const PER_PAGE: u32 = 25;

/// The routes of the two pages and their forms, and the case page's form proposing an
/// appointment.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ufficio/richiamate", get(callbacks))
        .route("/ufficio/richiamate/{id}", post(log_call))
        .route("/ufficio/appuntamenti", get(appointments))
        .route("/ufficio/appuntamenti/{id}", post(change_appointment))
        .route(
            "/ufficio/pratiche/{reference}/appuntamento",
            post(propose_from_case),
        )
}

/// Query of the call-back queue.
#[derive(Debug, Default, Deserialize)]
pub struct CallbacksQuery {
    lang: Option<String>,
    page: Option<String>,
    /// The outcome just logged, to say it was.
    esito: Option<String>,
}

/// A call to make, in words.
struct TaskRow {
    id: i64,
    case: String,
    citizen: String,
    phone: String,
    /// The number for a `tel:` link (digits and `+` only); empty without a number.
    tel: String,
    reason: String,
    script: String,
    case_status: String,
    due: String,
    attempts: i64,
    /// The last call's outcome and note, in words.
    last: Option<String>,
}

fn task_row(tr: &Tr, t: &CallTaskView) -> TaskRow {
    let phone = t.phone.clone().unwrap_or_default();
    TaskRow {
        id: t.id,
        case: t.case.clone(),
        citizen: t
            .citizen_name
            .clone()
            .unwrap_or_else(|| tr.t("callbacks.unnamed").to_owned()),
        tel: phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect(),
        phone,
        reason: tr.name("call_reason", &t.reason),
        script: t.script.clone(),
        case_status: tr.name("status", &t.case_status),
        due: when(&t.due_at),
        attempts: t.attempts,
        last: t.outcome.as_ref().map(|o| {
            let outcome = tr.name("call_outcome", o);
            match &t.note {
                Some(note) => format!("{outcome}: {note}"),
                None => outcome,
            }
        }),
    }
}

#[derive(Template)]
#[template(path = "office_callbacks.html")]
struct CallbacksPage {
    tr: Tr,
    frame: Frame,
    tasks: Vec<TaskRow>,
    total: i64,
    page: u32,
    pages: u32,
    /// Whether the user may log calls (else the queue is read-only).
    can_write: bool,
    /// The earliest appointment the date-time fields offer (`YYYY-MM-DDTHH:MM`, Rome).
    min_when: String,
    notice: Option<String>,
    error: Option<String>,
}

/// The signed-in staff member who may read cases, or the response to send instead (the
/// sign-in page, or the permits desk for the police).
async fn reader(state: &AppState, headers: &HeaderMap, here: &str) -> Result<Session, Response> {
    let session = staff(state, headers, here).await?;
    if session.user.role.can(Permission::ReadCase) {
        Ok(session)
    } else {
        Err(Redirect::to("/ufficio/permessi").into_response())
    }
}

/// The queue page, with a notice or an error.
async fn render_callbacks(
    state: &AppState,
    session: &Session,
    tr: Tr,
    page_no: u32,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let offset = i64::from(page_no.saturating_sub(1)) * i64::from(PER_PAGE);
    let (items, total) = match state.store.call_queue(i64::from(PER_PAGE), offset).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "call-back queue");
            (Vec::new(), 0)
        }
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(&session.user.login, "list_callbacks", "ufficio/richiamate")
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    let now = state.store.clock().now() + Duration::minutes(1);
    let page_ = CallbacksPage {
        tasks: items.iter().map(|t| task_row(&tr, t)).collect(),
        total,
        page: page_no,
        pages: u32::try_from((total + i64::from(PER_PAGE) - 1) / i64::from(PER_PAGE))
            .unwrap_or(1)
            .max(1),
        can_write: session.user.role.can(Permission::SendMessage),
        min_when: now
            .with_timezone(&ROME)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        notice,
        error,
        frame: Frame::staff(state, "callbacks", session).with_language(&tr),
        tr,
    };
    page(status, &page_)
}

/// `GET /ufficio/richiamate`: the calls to make, due first.
async fn callbacks(
    State(state): State<AppState>,
    Query(query): Query<CallbacksQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match reader(&state, &headers, "/ufficio/richiamate").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let page_no = query
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let notice = query
        .esito
        .as_deref()
        .filter(|o| sportello_store::contact::CALL_OUTCOMES.contains(o))
        .map(|o| {
            tr.f(
                "callbacks.done",
                &[("outcome", &tr.name("call_outcome", o))],
            )
        });
    render_callbacks(&state, &session, tr, page_no, StatusCode::OK, notice, None).await
}

/// The form of a call made: the button pressed names the outcome.
#[derive(Debug, Deserialize)]
pub struct CallForm {
    csrf: String,
    outcome: String,
    note: Option<String>,
    call_id: Option<String>,
    /// The appointment's date and time (`datetime-local`, Rome).
    starts_at: Option<String>,
    /// Why the citizen must come.
    reason: Option<String>,
}

/// The status of a page answering an error of the API's rules.
fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Invalid(_) | ApiError::RefusedField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ApiError::Refused(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        // A busy or locked database, a full disk: 503 (Retry-After is added on the way out).
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Why a form that talks to the citizen is refused (the words' key): a wrong CSRF token,
/// or a role that may not write to citizens.
fn refusal(session: &Session, csrf: &str) -> Option<(&'static str, StatusCode)> {
    if !same_token(csrf, &session.csrf_token) {
        Some(("form.expired", StatusCode::FORBIDDEN))
    } else if !session.user.role.can(Permission::SendMessage) {
        crate::guard::permission_refused(&session.user.login, "write to citizens");
        Some(("case.forbidden", StatusCode::FORBIDDEN))
    } else {
        None
    }
}

/// `POST /ufficio/richiamate/{id}`: one click logs the call; back to the queue (303), or
/// the queue again saying why not.
async fn log_call(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<CallbacksQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CallForm>,
) -> Response {
    let session = match reader(&state, &headers, "/ufficio/richiamate").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let fail = |status: StatusCode, message: String| {
        render_callbacks(&state, &session, tr, 1, status, None, Some(message))
    };
    if let Some((key, status)) = refusal(&session, &form.csrf) {
        return fail(status, tr.t(key).to_owned()).await;
    }
    let outcome = form.outcome.trim().to_owned();
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let appointment = if outcome == "appointment" {
        if blank(&form.starts_at) || blank(&form.reason) {
            return fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                tr.t("callbacks.need_when").to_owned(),
            )
            .await;
        }
        Some(AppointmentRequest {
            starts_at: form.starts_at.clone().unwrap_or_default(),
            place: None,
            reason: form.reason.clone().unwrap_or_default(),
            // Agreed on the phone: nothing more to write.
            notify: Some(false),
            channel: None,
        })
    } else {
        None
    };
    let log = CallLog {
        outcome: outcome.clone(),
        note: form.note.clone(),
        call_id: form.call_id.clone(),
        appointment,
    };
    match log_the_call(&state, &session.user.login, id, log)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Redirect::to(&format!("/ufficio/richiamate?esito={outcome}")).into_response(),
        Err(e) => fail(status_of(&e), e.detail_in(tr)).await,
    }
}

/// Query of the counter's day.
#[derive(Debug, Default, Deserialize)]
pub struct DayQuery {
    lang: Option<String>,
    /// `YYYY-MM-DD`; today (Rome) when absent.
    giorno: Option<String>,
    /// `confirm` or `cancel` just done.
    esito: Option<String>,
}

/// An appointment of the day, in words.
struct AppointmentRow {
    id: i64,
    time: String,
    case: String,
    case_status: String,
    citizen: String,
    reason: String,
    place: String,
    status: String,
    /// The case has no flag: nothing stands in the way of the visit.
    ready: bool,
    flags: Vec<String>,
    /// Still to happen: it may be cancelled.
    open: bool,
    /// Not yet confirmed.
    proposed: bool,
    /// How it was confirmed, in words.
    confirmed_via: Option<String>,
}

fn appointment_row(tr: &Tr, a: &AppointmentView) -> AppointmentRow {
    AppointmentRow {
        id: a.id,
        time: chrono::DateTime::parse_from_rfc3339(&a.starts_at)
            .map(|t| t.with_timezone(&ROME).format("%H:%M").to_string())
            .unwrap_or_else(|_| a.starts_at.clone()),
        case: a.case.clone(),
        case_status: tr.name("status", &a.case_status),
        citizen: a.citizen_name.clone().unwrap_or_default(),
        reason: a.reason.clone(),
        place: a.place.clone(),
        status: tr.name("appointment_status", &a.status),
        ready: a.case_flags.is_empty(),
        flags: a.case_flags.iter().map(|f| tr.name("flag", f)).collect(),
        open: matches!(a.status.as_str(), "proposed" | "confirmed"),
        proposed: a.status == "proposed",
        confirmed_via: a.confirmed_via.as_ref().map(|v| tr.name("via", v)),
    }
}

#[derive(Template)]
#[template(path = "office_appointments.html")]
struct AppointmentsPage {
    tr: Tr,
    frame: Frame,
    /// The day shown, `YYYY-MM-DD` (the date field's value).
    day: String,
    /// The day in words, for the caption.
    day_label: String,
    previous: String,
    next: String,
    rows: Vec<AppointmentRow>,
    can_write: bool,
    /// The channels a confirmation may come from: (id, words).
    vias: Vec<(&'static str, String)>,
    notice: Option<String>,
    error: Option<String>,
}

/// The counter's day, with a notice or an error.
async fn render_day(
    state: &AppState,
    session: &Session,
    tr: Tr,
    day: NaiveDate,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let items = match state.store.appointments_on(day).await {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(error = %e, "appointments of the day");
            Vec::new()
        }
    };
    // A read that cannot be audited is not answered.
    if state
        .store
        .record_access(
            &session.user.login,
            "list_appointments",
            &format!("ufficio/appuntamenti?giorno={day}"),
        )
        .await
        .is_err()
    {
        return crate::pages::temporarily_unavailable();
    }
    let around = |d: Option<NaiveDate>| d.unwrap_or(day).format("%Y-%m-%d").to_string();
    let page_ = AppointmentsPage {
        day: day.format("%Y-%m-%d").to_string(),
        day_label: day.format("%d/%m/%Y").to_string(),
        previous: around(day.pred_opt()),
        next: around(day.succ_opt()),
        rows: items.iter().map(|a| appointment_row(&tr, a)).collect(),
        can_write: session.user.role.can(Permission::SendMessage),
        vias: ["phone", "counter", "email"]
            .into_iter()
            .map(|v| (v, tr.name("via", v)))
            .collect(),
        notice,
        error,
        frame: Frame::staff(state, "appointments", session).with_language(&tr),
        tr,
    };
    page(status, &page_)
}

/// The day asked, or today with the words of a wrong date.
fn day_of(state: &AppState, tr: &Tr, giorno: Option<&str>) -> (NaiveDate, Option<String>) {
    match day_or_today(state, giorno) {
        Ok(day) => (day, None),
        Err(_) => (
            day_or_today(state, None).unwrap_or_default(),
            Some(tr.t("appointments.bad_day").to_owned()),
        ),
    }
}

/// `GET /ufficio/appuntamenti?giorno=YYYY-MM-DD`: the counter's day.
async fn appointments(
    State(state): State<AppState>,
    Query(query): Query<DayQuery>,
    headers: HeaderMap,
) -> Response {
    let session = match reader(&state, &headers, "/ufficio/appuntamenti").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let (day, error) = day_of(&state, &tr, query.giorno.as_deref());
    let notice = match query.esito.as_deref() {
        Some("confirm") => Some(tr.t("appointments.confirmed").to_owned()),
        Some("cancel") => Some(tr.t("appointments.cancelled").to_owned()),
        _ => None,
    };
    render_day(&state, &session, tr, day, StatusCode::OK, notice, error).await
}

/// The form of an appointment's buttons.
#[derive(Debug, Deserialize)]
pub struct AppointmentForm {
    csrf: String,
    /// `confirm` or `cancel`.
    action: String,
    /// How the citizen confirmed.
    via: Option<String>,
    /// Why it is cancelled.
    note: Option<String>,
    /// The day the page showed, to go back to.
    giorno: Option<String>,
}

/// `POST /ufficio/appuntamenti/{id}`: confirms or cancels; back to the day (303), or the
/// day again saying why not.
async fn change_appointment(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<DayQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AppointmentForm>,
) -> Response {
    let session = match reader(&state, &headers, "/ufficio/appuntamenti").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let (day, _) = day_of(&state, &tr, form.giorno.as_deref());
    let fail = |status: StatusCode, message: String| {
        render_day(&state, &session, tr, day, status, None, Some(message))
    };
    if let Some((key, status)) = refusal(&session, &form.csrf) {
        return fail(status, tr.t(key).to_owned()).await;
    }
    let done = match form.action.as_str() {
        "confirm" => confirm_appointment(&state, &session.user.login, id, form.via.as_deref())
            .await
            .map_err(ApiError::from),
        "cancel" => cancel_appointment(&state, &session.user.login, id, form.note.as_deref())
            .await
            .map_err(ApiError::from),
        _ => Err(ApiError::field("action", "must be confirm or cancel")),
    };
    match done {
        Ok(_) => Redirect::to(&format!(
            "/ufficio/appuntamenti?giorno={day}&esito={}",
            form.action
        ))
        .into_response(),
        Err(e) => fail(status_of(&e), e.detail_in(tr)).await,
    }
}

/// What the case page's form proposing an appointment offers.
pub(super) struct CaseAppointmentForm {
    /// The earliest time the date-time field offers (`YYYY-MM-DDTHH:MM`, Rome).
    pub(super) min_when: String,
    /// The channels to tell the citizen on: (id, words); the first, empty, is the
    /// citizen's default channel.
    pub(super) channels: Vec<(&'static str, String)>,
}

/// The form proposing an appointment on a case's page: for staff who may write to
/// citizens, on a case still open.
pub(super) fn case_appointment_form(
    state: &AppState,
    tr: &Tr,
    session: &Session,
    case: &sportello_store::cases::CaseView,
) -> Option<CaseAppointmentForm> {
    use sportello_domain::outbound::choice::OutChannel;
    if !session.user.role.can(Permission::SendMessage) || case.summary.status == "closed" {
        return None;
    }
    let min_when = (state.store.clock().now() + Duration::minutes(1))
        .with_timezone(&ROME)
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let channels = std::iter::once(("", tr.t("case.appointment_default_channel").to_owned()))
        .chain(
            OutChannel::ALL
                .into_iter()
                .map(|c| (c.as_str(), tr.name("out_channel", c.as_str()))),
        )
        .collect();
    Some(CaseAppointmentForm { min_when, channels })
}

/// The language of a page's form.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The case page's form proposing an appointment.
#[derive(Debug, Deserialize)]
pub struct CaseAppointmentPost {
    csrf: String,
    /// `datetime-local`, Rome.
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    reason: String,
    /// Empty: the citizen's default channel.
    channel: Option<String>,
}

/// `POST /ufficio/pratiche/{ref}/appuntamento`: proposes an appointment and tells the
/// citizen, as the API does; back to the case page (303), or the page again saying why
/// not.
async fn propose_from_case(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Query(query): Query<LangQuery>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CaseAppointmentPost>,
) -> Response {
    let here = super::case_path(&reference);
    let session = match reader(&state, &headers, &here).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tr = language(query.lang.as_deref(), &headers);
    let fail = async |status: StatusCode, message: String| {
        let mut page = super::case_error(&state, &session, tr, &reference, message).await;
        *page.status_mut() = status;
        page
    };
    if let Some((key, status)) = refusal(&session, &form.csrf) {
        return fail(status, tr.t(key).to_owned()).await;
    }
    let request = AppointmentRequest {
        starts_at: form.starts_at,
        place: None,
        reason: form.reason,
        notify: Some(true),
        channel: form.channel,
    };
    match propose_appointment(&state, &session.user.login, &reference, &request)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Redirect::to(&format!("{here}?esito=appointment")).into_response(),
        Err(e) => fail(status_of(&e), e.detail_in(tr)).await,
    }
}
