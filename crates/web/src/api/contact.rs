//! The contact centre's and the counter's endpoints: the call-back queue (calls to make,
//! each logged with its outcome on the case's timeline) and appointments at the counter.
//! Reading needs `ReadCase` (audited: names and numbers are personal data), writing
//! `SendMessage` (it is talking to the citizen); what they do is `sportello_app::contact`'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sportello_app::AppError;
use sportello_app::contact::{self, AppointmentRequest, CallLog};
use sportello_app::validate::{check_reference, parse_number};
use sportello_domain::roles::Permission;
use sportello_store::contact::{AppointmentView, CallTaskView};
use sportello_store::users::AuthUser;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

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

impl From<AppointmentBody> for AppointmentRequest {
    fn from(b: AppointmentBody) -> Self {
        AppointmentRequest {
            starts_at: b.starts_at,
            place: b.place,
            reason: b.reason,
            notify: b.notify,
            channel: b.channel,
        }
    }
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

impl From<LogCallBody> for CallLog {
    fn from(b: LogCallBody) -> Self {
        CallLog {
            outcome: b.outcome,
            note: b.note,
            call_id: b.call_id,
            appointment: b.appointment.map(Into::into),
        }
    }
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

/// An optional JSON body: nothing, only spaces or `null` is the default value.
fn optional_body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // The document says `null` or the object: `null` is the same as no body.
    serde_json::from_slice::<Option<T>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::field("body", e.to_string()))
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
        return Err(AppError::Invalid(errors).into());
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
    request_body = Option<OpenCallbackBody>,
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
    let task =
        contact::open_callback(&state, &reference, body.note.as_deref(), &user.login).await?;
    Ok((StatusCode::CREATED, Json(task)))
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
    let logged = contact::log_call(&state, &user.login, id, body.into()).await?;
    Ok(Json(LoggedCall {
        task: logged.task,
        appointment: logged.appointment,
    }))
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
    let day = contact::day_or_today(&state, query.day.as_deref())?;
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
    let appointment =
        contact::propose_appointment(&state, &user.login, &reference, &body.into()).await?;
    Ok((StatusCode::CREATED, Json(appointment)))
}

/// `POST /api/v1/appointments/{id}/confirm`: the citizen confirmed (again: unchanged);
/// a cancelled or held appointment is 409.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/confirm", tag = "messages",
    request_body = Option<ConfirmBody>,
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
        Ok(contact::confirm_appointment(&state, &user.login, id, body.via.as_deref()).await?)
    })
    .await
}

/// `POST /api/v1/appointments/{id}/cancel`: cancels a proposed or confirmed appointment
/// (again: unchanged); a held one is 409.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "messages",
    request_body = Option<CancelBody>,
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
        Ok(contact::cancel_appointment(&state, &user.login, id, body.note.as_deref()).await?)
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
    fn empty_bodies_are_the_defaults() {
        let body: ConfirmBody = optional_body(&Bytes::from_static(b"  \n")).unwrap();
        assert!(body.via.is_none());
        let body: ConfirmBody = optional_body(&Bytes::from_static(b" null ")).unwrap();
        assert!(body.via.is_none(), "null is no body");
        let body: ConfirmBody =
            optional_body(&Bytes::from_static(b"{\"via\":\"counter\"}")).unwrap();
        assert_eq!(body.via.as_deref(), Some("counter"));
        assert!(optional_body::<ConfirmBody>(&Bytes::from_static(b"{\"x\":1}")).is_err());
        assert!(optional_body::<CancelBody>(&Bytes::from_static(b"{")).is_err());
    }
}
