//! The permit's endpoints: reading a permit, CUDE temporary plates, renewal, suspension,
//! revocation and reinstatement — each journaled with who and why. Planning and issuing
//! the permit of an approved case is the `issue` action's (`sportello_app::permits`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sportello_app::permits;
use sportello_domain::roles::Permission;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

/// `GET /api/v1/permits/{number}`: a permit with its plates, validity, status and
/// history (every row, with who recorded it and when).
#[utoipa::path(get, path = "/api/v1/permits/{number}", tag = "ztl",
    params(("number" = String, Path, description = "Permit number")),
    security(("bearer" = [])),
    responses((status = 200, body = sportello_store::permits::PermitView), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn permit(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(number): crate::extract::ApiPath<String>,
) -> Result<Json<sportello_store::permits::PermitView>, ApiError> {
    let user = caller.require(Permission::VerifyPermit)?;
    let view = state.store.permit(number.trim()).await?;
    state
        .store
        .record_access(&user.login, "read_permit", &view.number)
        .await?;
    Ok(Json(view))
}

/// Body of `POST /api/v1/permits/{number}/temporary-plates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporaryPlate {
    /// The plate of the vehicle used.
    #[schema(pattern = r"^[ \t.\-]*([A-Za-z0-9][ \t.\-]*){1,12}$")]
    pub plate: String,
    /// Its country; Italy when absent.
    #[schema(pattern = r"^([A-Za-z]{2})?$")]
    pub country: Option<String>,
    /// From (RFC 3339).
    #[schema(format = DateTime)]
    pub from: String,
    /// To (RFC 3339).
    #[schema(format = DateTime)]
    pub to: String,
}

/// `POST /api/v1/permits/{number}/temporary-plates`: a disabled citizen's communication of
/// the vehicle they used (CUDE), within the category's rules; the plate joins the
/// whitelist for that time.
#[utoipa::path(post, path = "/api/v1/permits/{number}/temporary-plates", tag = "ztl",
    params(("number" = String, Path, description = "Permit number")),
    request_body = TemporaryPlate,
    security(("bearer" = [])),
    responses((status = 201, body = sportello_store::permits::PermitView), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn temporary_plate(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(number): crate::extract::ApiPath<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<TemporaryPlate>,
) -> Result<
    (
        axum::http::StatusCode,
        Json<sportello_store::permits::PermitView>,
    ),
    ApiError,
> {
    let user = caller.require(Permission::ActOnCase)?;
    let (plate, during) =
        permits::temporary_plate_of(&body.plate, body.country.as_deref(), &body.from, &body.to)?;
    let view = permits::add_temporary(&state, number.trim(), plate, during, &user.login).await?;
    Ok((axum::http::StatusCode::CREATED, Json(view)))
}

/// Body of `POST /api/v1/permits/{number}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermitStatusChange {
    /// `suspended`, `revoked` or `active` (reinstated after a suspension).
    #[schema(pattern = r"^(active|suspended|revoked)$")]
    pub status: String,
    /// Why: kept in the permit's history.
    #[schema(
        min_length = 1,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub reason: String,
}

/// `POST /api/v1/permits/{number}/status`: suspends, revokes or reinstates a permit, with
/// the reason in its history; the whitelist and the patrols' checks follow at once.
#[utoipa::path(post, path = "/api/v1/permits/{number}/status", tag = "ztl",
    params(("number" = String, Path, description = "Permit number")),
    request_body = PermitStatusChange,
    security(("bearer" = [])),
    responses((status = 200, body = sportello_store::permits::PermitView), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn permit_status(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(number): crate::extract::ApiPath<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<PermitStatusChange>,
) -> Result<Json<sportello_store::permits::PermitView>, ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    let reason: String = body.reason.chars().take(1000).collect();
    let view = state
        .store
        .set_permit_status(number.trim(), body.status.trim(), &reason, &user.login)
        .await?;
    Ok(Json(view))
}

/// Body of `POST /api/v1/permits/{number}/renew`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalRequest {
    /// Where the request came from (default `counter`).
    #[schema(value_type = Option<crate::vocabulary::ChannelName>)]
    pub channel: Option<String>,
    /// What the holder asked, kept as the case description.
    #[schema(
        max_length = 20000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

/// `POST /api/v1/permits/{number}/renew`: opens the renewal case of a permit, prefilled
/// from it — the holder, the category, the plates (temporary ones aside) and the link to
/// the old permit. Its documents are asked again (the category's list); once issued, the
/// new permit starts when the old one ends and the old one's history says so.
#[utoipa::path(post, path = "/api/v1/permits/{number}/renew", tag = "ztl",
    params(("number" = String, Path, description = "Permit number")),
    request_body = RenewalRequest,
    security(("bearer" = [])),
    responses((status = 201, body = sportello_store::cases::CaseView), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(number): crate::extract::ApiPath<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<RenewalRequest>,
) -> Result<(StatusCode, Json<sportello_store::cases::CaseView>), ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    let case =
        permits::open_renewal(&state, &user.login, number.trim(), body.channel, body.note).await?;
    Ok((StatusCode::CREATED, Json(case)))
}
