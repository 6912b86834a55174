//! The police's endpoints (CONTRACT §5): a patrol's plate check, the gate cameras'
//! whitelist, and the reconciliation of a gate file against the permit register.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use sportello_domain::plate::Plate;
use sportello_domain::roles::Permission;
use sportello_domain::ztl::permits::register_instant;
use sportello_domain::ztl::policy::any_window;
use sportello_domain::ztl::transits::{Passage, PermitIndex, authorise, check_transits};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// Query of `GET /api/v1/permits/verify`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// The plate as read (any spacing or case).
    pub plate: Option<String>,
    /// Country code; Italy when absent.
    pub country: Option<String>,
    /// The gate (or the patrol's spot, as a gate id) deciding the zone.
    pub gate: Option<String>,
    /// The instant (RFC 3339); now when absent.
    pub at: Option<String>,
}

/// A patrol's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Whether the vehicle may be there at that instant.
    pub authorized: bool,
    /// `permit`, `zone_not_active`, or why not (`outside_window`, `not_valid_at_time`,
    /// `wrong_zone`, `suspended_or_revoked`, `no_permit`).
    pub reason: String,
    /// The permit that authorises it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
    /// The normalised plate.
    pub plate: String,
    /// Its country.
    pub country: String,
    /// The zone of the gate.
    pub zone: String,
}

/// `GET /api/v1/permits/verify?plate=&country=&gate=&at=`: whether a plate may pass.
#[utoipa::path(get, path = "/api/v1/permits/verify", tag = "ztl", params(VerifyQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Verification), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    caller.require(Permission::VerifyPermit)?;
    let policy = Arc::clone(&state.policy);
    let plate = Plate::parse(
        query.plate.as_deref().unwrap_or_default(),
        query.country.as_deref(),
    )
    .map_err(|e| ApiError::field("plate", e.to_string()))?;
    let gate = query.gate.as_deref().unwrap_or_default().trim();
    let zone = policy
        .zone_of_gate(gate)
        .ok_or_else(|| ApiError::field("gate", format!("unknown gate {gate:?}")))?;
    let at_ms = match query.at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| ApiError::field("at", "must be an RFC 3339 instant with its offset"))?
            .timestamp_millis(),
        None => state.store.clock().now().timestamp_millis(),
    };
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .ok_or_else(|| ApiError::field("at", "out of range"))?;
    let (weekday, minute) = policy.local(&at);
    let mut answer = Verification {
        authorized: true,
        reason: "zone_not_active".into(),
        permit: None,
        plate: plate.number.clone(),
        country: plate.country.clone(),
        zone: zone.id.clone(),
    };
    if any_window(&zone.active, weekday, minute) {
        let rows = state
            .store
            .permit_rows_of(&plate.number, &plate.country)
            .await?;
        let index = PermitIndex::new(&policy, rows);
        let passage = Passage {
            plate: &plate.number,
            country: &plate.country,
            zone: &zone.id,
            at_ms,
            weekday,
            minute,
        };
        match authorise(&policy, &index, &passage) {
            Ok(permit) => {
                answer.reason = "permit".into();
                answer.permit = Some(permit.to_owned());
            }
            Err(reason) => {
                answer.authorized = false;
                answer.reason = reason.as_str().to_owned();
            }
        }
    }
    Ok(Json(answer))
}

/// Query of `GET /api/v1/whitelist`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhitelistQuery {
    /// The instant (RFC 3339, or a date meaning its local midnight); now when absent.
    pub at: Option<String>,
    /// `csv` (default) or `json`.
    pub format: Option<String>,
    /// Only what changed since this instant (`added` / `removed` rows).
    pub since: Option<String>,
}

/// `GET /api/v1/whitelist?at=&format=csv|json`: the plates allowed at an instant
/// (CONTRACT §6.3).
#[utoipa::path(get, path = "/api/v1/whitelist", tag = "ztl", params(WhitelistQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "CSV or JSON as CONTRACT §6.3"), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn whitelist(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<WhitelistQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::ReadWhitelist)?;
    let json = match query.format.as_deref().map(str::trim) {
        None | Some("") | Some("csv") => false,
        Some("json") => true,
        Some(_) => return Err(ApiError::field("format", "must be csv or json")),
    };
    let at_ms = match query.at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => {
            register_instant(&state.policy, text, false).map_err(|e| ApiError::field("at", e))?
        }
        None => state.store.clock().now().timestamp_millis(),
    };
    let rows = match query
        .since
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(text) => {
            let since_ms = register_instant(&state.policy, text, false)
                .map_err(|e| ApiError::field("since", e))?;
            state.store.whitelist_delta(since_ms, at_ms).await?
        }
        None => state.store.whitelist_at(at_ms).await?,
    };
    let mut body = Vec::new();
    sportello_store::permits::write_whitelist(
        &state.policy,
        &rows,
        json,
        query.since.is_some(),
        &mut body,
    )
    .map_err(|e| ApiError::Internal(format!("whitelist: {e}")))?;
    let media = if json {
        "application/json"
    } else {
        "text/csv; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, media)], body).into_response())
}

/// `POST /api/v1/transits/check`: a gate file (CSV, CONTRACT §6.4) in, the violations
/// (§6.5) out; a file with malformed rows is refused with their line numbers (422), never
/// half-checked.
#[utoipa::path(post, path = "/api/v1/transits/check", tag = "ztl",
    request_body(content = String, content_type = "text/csv"),
    security(("bearer" = [])),
    responses((status = 200, description = "Violations, CSV as CONTRACT §6.5"), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::CheckTransits)?;
    let rows = state.store.permit_rows().await?;
    let policy = Arc::clone(&state.policy);
    let result = tokio::task::spawn_blocking(move || {
        let index = PermitIndex::new(&policy, rows);
        let mut out = Vec::new();
        check_transits(&policy, &index, body.as_ref(), &mut out, |_| {}).map(|s| (s, out))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("transit check: {e}")))?;
    let (summary, out) = result.map_err(|e| ApiError::field("body", e.to_string()))?;
    if summary.rejected_count > 0 {
        return Err(ApiError::Invalid(
            summary
                .rejected
                .iter()
                .map(|r| crate::error::FieldError {
                    field: format!("line {}", r.line),
                    message: r.reason.clone(),
                })
                .collect(),
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
}

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
pub struct TemporaryPlate {
    /// The plate of the vehicle used.
    pub plate: String,
    /// Its country; Italy when absent.
    pub country: Option<String>,
    /// From (RFC 3339).
    pub from: String,
    /// To (RFC 3339).
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
    let plate = Plate::parse(&body.plate, body.country.as_deref())
        .map_err(|e| ApiError::field("plate", e.to_string()))?;
    let instant = |field: &str, text: &str| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::field(field, "must be an RFC 3339 instant with its offset"))
    };
    let (from, to) = (instant("from", &body.from)?, instant("to", &body.to)?);
    let view = state
        .store
        .add_temporary_plate(
            &state.policy,
            number.trim(),
            &sportello_store::permits::TemporaryPlate {
                plate,
                from_ms: from,
                to_ms: to,
            },
            state.policy_version,
            &user.login,
        )
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(view)))
}
