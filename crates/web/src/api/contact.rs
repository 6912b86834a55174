//! The contact centre and the counter (issue #7): citizens without e-mail prefer the
//! phone. The call-back queue (calls to make, each logged with its outcome on the case's
//! timeline) and appointments at the counter (proposed, confirmed, cancelled; the
//! counter's day). Reading needs `ReadCase` (audited: names and numbers are personal
//! data), writing `SendMessage` (it is talking to the citizen).
//!
//! Routes, in `api::routes` (with `pub mod contact;` in `api/mod.rs`):
//!
//! ```text
//! .route("/api/v1/callbacks", get(contact::call_queue))
//! .route("/api/v1/callbacks/{id}", post(contact::log_call))
//! .route("/api/v1/cases/{reference}/callbacks", post(contact::open_callback))
//! .route("/api/v1/appointments", get(contact::appointments_of_day))
//! .route(
//!     "/api/v1/cases/{reference}/appointments",
//!     post(contact::propose_appointment).get(contact::case_appointments),
//! )
//! .route("/api/v1/appointments/{id}/confirm", post(contact::confirm_appointment))
//! .route("/api/v1/appointments/{id}/cancel", post(contact::cancel_appointment))
//! ```
//!
//! and in `openapi.rs`'s `paths(...)`: `contact::call_queue, contact::log_call,
//! contact::open_callback, contact::appointments_of_day, contact::propose_appointment,
//! contact::case_appointments, contact::confirm_appointment, contact::cancel_appointment`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::{ROME, rome_date};
use sportello_domain::outbound::choice::OutChannel;
use sportello_domain::refusal::Refusal;
use sportello_domain::roles::Permission;
use sportello_store::contact::{AppointmentView, CALL_OUTCOMES, CallTaskView};
use sportello_store::users::AuthUser;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::cases::{check_reference, parse_number};
use crate::auth::Caller;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, check_text};

/// The script of a call-back an operator asks for without saying more.
pub const DEFAULT_SCRIPT: &str = "Richiamare il cittadino";

/// Query of `GET /api/v1/callbacks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// Page from 1.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

/// A page of the call-back queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallQueue {
    /// The open tasks of this page, due first.
    pub items: Vec<CallTaskView>,
    /// How many are open in all.
    pub total: i64,
}

/// Body of `POST /api/v1/cases/{ref}/callbacks`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCallbackBody {
    /// What to tell the citizen (the call's script); "Richiamare il cittadino" when absent.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

/// An appointment at the counter to propose.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentBody {
    /// When: RFC 3339 (`2026-12-01T10:30:00+01:00`), or a Rome local time
    /// (`2026-12-01T10:30`, as a form's date-time field sends it).
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: String,
    /// Where; "Sportello, {office}" when absent.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub place: Option<String>,
    /// Why the citizen must come, and what to bring.
    #[serde(default)]
    #[schema(value_type = String, min_length = 1, max_length = 500, pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    pub reason: String,
    /// Tell the citizen of the proposal (default `true`): on `channel`, else on their
    /// default channel, else — when the office can only phone them — with a call-back.
    pub notify: Option<bool>,
    /// How to tell the citizen: `email`, `pec`, `fax`, `sms`, `letter`, `whatsapp`,
    /// `telegram` or `call` (a call-back); their default channel when absent.
    #[schema(pattern = r"^(email|pec|fax|sms|letter|whatsapp|telegram|call)?$")]
    pub channel: Option<String>,
}

/// Body of `POST /api/v1/callbacks/{id}`: a call made.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogCallBody {
    /// `reached`, `not_reached` (the task stays open, due again the next working day at
    /// 9:00) or `appointment`.
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^(reached|not_reached|appointment)$")]
    pub outcome: String,
    /// What was said.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
    /// The telephone system's id of the call.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub call_id: Option<String>,
    /// The appointment agreed (only with outcome `appointment`): proposed with the call,
    /// in one change.
    pub appointment: Option<AppointmentBody>,
}

/// A call logged: the task, and the appointment proposed with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedCall {
    /// The task as it is now.
    #[serde(flatten)]
    pub task: CallTaskView,
    /// The appointment proposed with the call, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment: Option<AppointmentView>,
}

/// Query of `GET /api/v1/appointments`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// The day, `YYYY-MM-DD` (Rome); today when absent.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub day: Option<String>,
}

/// Body of `POST /api/v1/appointments/{id}/confirm` (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// How the citizen confirmed: `phone` (default), `counter`, `email`, `pec`, `sms`…
    #[schema(max_length = 30, pattern = r"^[a-z_]*$")]
    pub via: Option<String>,
}

/// Body of `POST /api/v1/appointments/{id}/cancel` (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

/// An optional JSON body: nothing (or only spaces) is the default value.
fn optional_body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::field("body", e.to_string()))
}

/// A trimmed optional text checked for length and control characters; `None` when blank.
fn text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(FieldError {
            field: field.to_owned(),
            message: format!("must be at most {max} characters"),
        });
        return None;
    }
    if let Err(e) = check_text(field, value, multiline) {
        errors.push(e);
        return None;
    }
    Some(value.to_owned())
}

/// One optional text of a request, checked as [`text`]: a 422 when it is wrong.
fn only_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, ApiError> {
    let mut errors = Vec::new();
    let value = text(field, value, max, multiline, &mut errors);
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// An instant given as RFC 3339, or as a Rome local date and time (`YYYY-MM-DDTHH:MM`,
/// seconds optional, `T` or a space).
pub fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required: a date and time such as 2026-12-01T10:30:00+01:00".into());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
    .ok_or_else(|| {
        format!(
            "'{}' is not a date and time: use RFC 3339, e.g. 2026-12-01T10:30:00+01:00",
            value.chars().take(40).collect::<String>()
        )
    })?;
    local
        .and_local_timezone(ROME)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "that time does not exist in Rome (the clocks moved)".into())
}

/// An appointment's values, checked: (when, where, why).
fn appointment_values(
    state: &AppState,
    prefix: &str,
    body: &AppointmentBody,
    errors: &mut Vec<FieldError>,
) -> Option<(DateTime<Utc>, String, String)> {
    let field = |name: &str| format!("{prefix}{name}");
    let now = state.store.clock().now();
    let starts_at = match parse_instant(&body.starts_at) {
        Ok(t) if t <= now => {
            errors.push(FieldError {
                field: field("starts_at"),
                message: "is in the past: an appointment must be later than now".into(),
            });
            None
        }
        Ok(t) => Some(t),
        Err(message) => {
            errors.push(FieldError {
                field: field("starts_at"),
                message,
            });
            None
        }
    };
    let reason = text(&field("reason"), Some(&body.reason), 500, true, errors);
    if body.reason.trim().is_empty() {
        errors.push(FieldError {
            field: field("reason"),
            message: "is required: say why the citizen must come and what to bring".into(),
        });
    }
    let place = match text(&field("place"), body.place.as_deref(), 200, false, errors) {
        Some(place) => place,
        None => default_place(state),
    };
    Some((starts_at?, place, reason?))
}

/// The counter, as the office's name says it.
pub fn default_place(state: &AppState) -> String {
    let office = state.config.office.name.trim();
    if office.is_empty() {
        "Sportello".to_owned()
    } else {
        format!("Sportello, {office}")
    }
}

/// Logs a call for `user` (the pages' buttons use it too): the outcome, and with
/// `appointment` the appointment proposed in the same change.
pub(crate) async fn log_call_as(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    body: LogCallBody,
) -> Result<LoggedCall, ApiError> {
    let mut errors = Vec::new();
    let outcome = body.outcome.trim();
    if !CALL_OUTCOMES.contains(&outcome) {
        errors.push(FieldError {
            field: "outcome".into(),
            message: "must be reached, not_reached or appointment".into(),
        });
    }
    let note = text("note", body.note.as_deref(), 2000, true, &mut errors);
    let call_id = text("call_id", body.call_id.as_deref(), 200, false, &mut errors);
    let appointment = match &body.appointment {
        Some(_) if outcome != "appointment" => {
            errors.push(FieldError {
                field: "appointment".into(),
                message: "comes only with outcome 'appointment'".into(),
            });
            None
        }
        Some(a) if a.channel.as_deref().is_some_and(|c| !c.trim().is_empty()) => {
            errors.push(FieldError {
                field: "appointment.channel".into(),
                message: "an appointment agreed on the phone is not written to the citizen".into(),
            });
            None
        }
        Some(a) => appointment_values(state, "appointment.", a, &mut errors),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let (task, appointment) = match appointment {
        Some((starts_at, place, reason)) => {
            let (task, appointment) = state
                .store
                .log_call_with_appointment(
                    id,
                    note.as_deref(),
                    call_id.as_deref(),
                    starts_at,
                    &place,
                    &reason,
                    &user.login,
                )
                .await?;
            (task, Some(appointment))
        }
        None => (
            state
                .store
                .log_call(
                    id,
                    outcome,
                    note.as_deref(),
                    call_id.as_deref(),
                    &user.login,
                )
                .await?,
            None,
        ),
    };
    Ok(LoggedCall { task, appointment })
}

/// Confirms an appointment for `user` (the pages use it too).
pub(crate) async fn confirm_as(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    via: Option<&str>,
) -> Result<AppointmentView, ApiError> {
    let via = via
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("phone");
    if via.len() > 30 || !via.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::field(
            "via",
            "must be a channel name such as phone, counter or email",
        ));
    }
    Ok(state
        .store
        .confirm_appointment(id, via, &user.login)
        .await?)
}

/// Cancels an appointment for `user` (the pages use it too).
pub(crate) async fn cancel_as(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    note: Option<&str>,
) -> Result<AppointmentView, ApiError> {
    let note = only_text("note", note, 2000, true)?;
    Ok(state
        .store
        .cancel_appointment(id, note.as_deref(), &user.login)
        .await?)
}

/// A `YYYY-MM-DD` day, or today in Rome when absent.
pub(crate) fn day_or_today(state: &AppState, day: Option<&str>) -> Result<NaiveDate, ApiError> {
    match day.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(rome_date(state.store.clock().now())),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::field("day", "must be a date as YYYY-MM-DD")),
    }
}

/// `GET /api/v1/callbacks`: the open call tasks, due first; the read is audited.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "messages", params(QueueQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CallQueue), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn call_queue(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<CallQueue>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let mut errors = Vec::new();
    let page = parse_number(query.page, "page", 1, 1_000_000, &mut errors);
    let per_page = parse_number(
        query.per_page,
        "per_page",
        50,
        state.config.limits.max_per_page,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let (items, total) = state
        .store
        .call_queue(
            i64::from(per_page),
            i64::from(page - 1) * i64::from(per_page),
        )
        .await?;
    state
        .store
        .record_access(&user.login, "list_callbacks", "callbacks")
        .await?;
    Ok(Json(CallQueue { items, total }))
}

/// `POST /api/v1/cases/{ref}/callbacks`: an operator asks for the citizen to be called;
/// 409 when the case already has a call to make.
#[utoipa::path(post, path = "/api/v1/cases/{reference}/callbacks", tag = "messages",
    request_body = OpenCallbackBody,
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 201, body = CallTaskView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn open_callback(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CallTaskView>), ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    check_reference(&reference)?;
    let body: OpenCallbackBody = optional_body(&body)?;
    let note = only_text("note", body.note.as_deref(), 2000, true)?;
    let script = note.as_deref().unwrap_or(DEFAULT_SCRIPT);
    match state
        .store
        .open_call_task(&reference, "operator", None, script, &user.login)
        .await?
    {
        Some(task) => Ok((StatusCode::CREATED, Json(task))),
        None => Err(ApiError::Refused(
            Refusal::new("refusal.call_open").with("case", &reference),
        )),
    }
}

/// `POST /api/v1/callbacks/{id}`: a call made, with its outcome; with `appointment` the
/// appointment agreed is proposed in the same change.
#[utoipa::path(post, path = "/api/v1/callbacks/{id}", tag = "messages", request_body = LogCallBody,
    params(("id" = i64, Path, description = "Call task id")),
    security(("bearer" = [])),
    responses((status = 200, body = LoggedCall), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn log_call(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<LogCallBody>,
) -> Result<Json<LoggedCall>, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    Ok(Json(log_call_as(&state, user, id, body).await?))
}

/// `GET /api/v1/appointments?day=`: the counter's day (Rome; today by default), by time,
/// with each case's status and flags; the read is audited.
#[utoipa::path(get, path = "/api/v1/appointments", tag = "messages", params(DayQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<AppointmentView>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn appointments_of_day(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DayQuery>,
) -> Result<Json<Vec<AppointmentView>>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let day = day_or_today(&state, query.day.as_deref())?;
    let items = state.store.appointments_on(day).await?;
    state
        .store
        .record_access(
            &user.login,
            "list_appointments",
            &format!("appointments?day={day}"),
        )
        .await?;
    Ok(Json(items))
}

/// `GET /api/v1/cases/{ref}/appointments`: the case's appointments, by time; the read is
/// audited.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/appointments", tag = "messages",
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<AppointmentView>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn case_appointments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<Vec<AppointmentView>>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    check_reference(&reference)?;
    let items = state.store.appointments_of_case(&reference).await?;
    if items.is_empty() {
        // An unknown case is a 404, not an empty list.
        state.store.get_case(&reference).await?;
    }
    state
        .store
        .record_access(&user.login, "read_appointments", &reference)
        .await?;
    Ok(Json(items))
}

/// `POST /api/v1/cases/{ref}/appointments`: proposes an appointment at the counter and
/// tells the citizen (see [`AppointmentBody::notify`]).
#[utoipa::path(post, path = "/api/v1/cases/{reference}/appointments", tag = "messages",
    request_body = AppointmentBody,
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 201, body = AppointmentView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn propose_appointment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    ApiJson(body): ApiJson<AppointmentBody>,
) -> Result<(StatusCode, Json<AppointmentView>), ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    let appointment = propose_as(&state, user, &reference, &body).await?;
    Ok((StatusCode::CREATED, Json(appointment)))
}

/// Proposes an appointment for `user` (the case page's form uses it too) and tells the
/// citizen: everything is checked first — the time, the reason and, when one is asked,
/// that the citizen has an address for the channel — so that a refusal proposes nothing.
pub(crate) async fn propose_as(
    state: &AppState,
    user: &AuthUser,
    reference: &str,
    body: &AppointmentBody,
) -> Result<AppointmentView, ApiError> {
    check_reference(reference)?;
    let mut errors = Vec::new();
    let values = appointment_values(state, "", body, &mut errors);
    let notify = body.notify.unwrap_or(true);
    let channel = match body.channel.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) if !notify => {
            errors.push(FieldError {
                field: "channel".into(),
                message: "comes only when the citizen is told (notify)".into(),
            });
            None
        }
        Some(name) => match OutChannel::parse(name) {
            Some(channel) => Some(channel),
            None => {
                errors.push(FieldError {
                    field: "channel".into(),
                    message: "one of email, pec, fax, sms, letter, whatsapp, telegram, call".into(),
                });
                None
            }
        },
    };
    let Some((starts_at, place, reason)) = values.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    if let Some(channel) = channel {
        let case = state.store.get_case(reference).await?;
        let reach = crate::api::outbound::reach(state, &case).await?;
        if reach.choice.option(channel).is_none_or(|o| o.to.is_none()) {
            return Err(ApiError::field(
                "channel",
                format!("no {} address is known for this citizen", channel.as_str()),
            ));
        }
    }
    let appointment = state
        .store
        .propose_appointment(reference, starts_at, &place, &reason, &user.login)
        .await?;
    // The appointment stands: a message that cannot be written is logged, not an error
    // (a retry would propose a second appointment).
    if notify && let Err(e) = tell_citizen(state, user, &appointment, channel).await {
        tracing::warn!(%reference, error = %e.detail(), "appointment not told to the citizen");
    }
    Ok(appointment)
}

/// Tells the citizen of a proposed appointment like every other message: on `channel`
/// when asked, else on their default channel; a citizen the office can only phone (or
/// `channel` `call`) gets a call-back whose script says when, where and why.
async fn tell_citizen(
    state: &AppState,
    user: &AuthUser,
    appointment: &AppointmentView,
    channel: Option<OutChannel>,
) -> Result<(), ApiError> {
    use crate::api::outbound::{Written, write_occasion};
    use sportello_domain::outbound::templates::TemplateKind;
    let reference = appointment.case.as_str();
    let (phone, reason) = match channel {
        Some(OutChannel::Call) => {
            let case = state.store.get_case(reference).await?;
            (case.citizen.phone, "operator")
        }
        _ => {
            let written = write_occasion(
                state,
                reference,
                TemplateKind::Appointment,
                &format!("appointment:{}", appointment.id),
                &user.login,
                Some(appointment.id),
                channel,
            )
            .await?;
            match written {
                Written::Queued => return Ok(()),
                Written::Unreachable(case) => (case.citizen.phone, "no_digital_contact"),
            }
        }
    };
    let Some(phone) = phone.filter(|p| !p.trim().is_empty()) else {
        tracing::info!(%reference, "the citizen has no channel and no telephone: the appointment is not told");
        return Ok(());
    };
    let when = DateTime::parse_from_rfc3339(&appointment.starts_at)
        .map(|t| {
            t.with_timezone(&ROME)
                .format("%d/%m/%Y, ore %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| appointment.starts_at.clone());
    let script = format!(
        "Pratica {reference}: comunicare l'appuntamento allo sportello del {when}, {}.\nMotivo: {}",
        appointment.place, appointment.reason
    );
    let opened = state
        .store
        .open_call_task(reference, reason, Some(&phone), &script, &user.login)
        .await?;
    if opened.is_none() {
        tracing::info!(%reference, "a call-back is already open: the appointment is told with it");
    }
    Ok(())
}

/// `POST /api/v1/appointments/{id}/confirm`: the citizen confirmed (again: unchanged);
/// a cancelled or held appointment is 409.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/confirm", tag = "messages",
    request_body = ConfirmBody,
    params(("id" = i64, Path, description = "Appointment id")),
    security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn confirm_appointment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> Result<Json<AppointmentView>, ApiError> {
    change_appointment(&caller, &body, async |user, body: ConfirmBody| {
        confirm_as(&state, user, id, body.via.as_deref()).await
    })
    .await
}

/// `POST /api/v1/appointments/{id}/cancel`: cancels a proposed or confirmed appointment
/// (again: unchanged); a held one is 409.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "messages",
    request_body = CancelBody,
    params(("id" = i64, Path, description = "Appointment id")),
    security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn cancel_appointment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> Result<Json<AppointmentView>, ApiError> {
    change_appointment(&caller, &body, async |user, body: CancelBody| {
        cancel_as(&state, user, id, body.note.as_deref()).await
    })
    .await
}

/// What the confirm and cancel routes share: the caller must write to citizens, the body
/// may be empty; `change` does the rest.
async fn change_appointment<B: DeserializeOwned + Default>(
    caller: &Caller,
    body: &Bytes,
    change: impl AsyncFnOnce(&AuthUser, B) -> Result<AppointmentView, ApiError>,
) -> Result<Json<AppointmentView>, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    let body = optional_body(body)?;
    Ok(Json(change(user, body).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_as_rfc3339_or_rome_local_time() {
        let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_instant("2026-12-01T10:30:00+01:00"),
            Ok(utc("2026-12-01T09:30:00Z"))
        );
        assert_eq!(
            parse_instant(" 2026-12-01T10:30 "),
            Ok(utc("2026-12-01T09:30:00Z"))
        );
        assert_eq!(
            parse_instant("2026-07-01 10:30:15"),
            Ok(utc("2026-07-01T08:30:15Z")),
            "summer time"
        );
        assert!(parse_instant("").is_err());
        assert!(parse_instant("domani alle 10").is_err());
        assert!(parse_instant("2026-13-01T10:30").is_err());
        // 02:30 on the last Sunday of March does not exist in Rome.
        assert!(parse_instant("2026-03-29T02:30").is_err());
    }

    #[test]
    fn empty_bodies_are_the_defaults() {
        let body: ConfirmBody = optional_body(&Bytes::from_static(b"  \n")).unwrap();
        assert!(body.via.is_none());
        let body: ConfirmBody =
            optional_body(&Bytes::from_static(b"{\"via\":\"counter\"}")).unwrap();
        assert_eq!(body.via.as_deref(), Some("counter"));
        assert!(optional_body::<ConfirmBody>(&Bytes::from_static(b"{\"x\":1}")).is_err());
        assert!(optional_body::<CancelBody>(&Bytes::from_static(b"{")).is_err());
    }
}
