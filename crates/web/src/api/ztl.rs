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
use sportello_domain::ztl::transits::{Judgement, PermitIndex, judge};
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
    #[param(required = true, pattern = r"^[ \t.\-]*([A-Za-z0-9][ \t.\-]*){1,12}$")]
    pub plate: Option<String>,
    /// Country code; Italy when absent.
    #[param(pattern = r"^([A-Za-z]{2})?$")]
    pub country: Option<String>,
    /// The gate (or the patrol's spot, as a gate id) deciding the zone.
    #[param(required = true, value_type = crate::vocabulary::GateId)]
    pub gate: Option<String>,
    /// The instant (RFC 3339); now when absent.
    #[param(format = DateTime)]
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
    /// The policy version the answer was decided under.
    pub policy_version: Option<i64>,
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
    let at = match query.at.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| ApiError::field("at", "must be an RFC 3339 instant with its offset"))?
            .with_timezone(&chrono::Utc),
        None => state.store.clock().now(),
    };
    let rows = state
        .store
        .permit_rows_of(&plate.number, &plate.country)
        .await?;
    let index = PermitIndex::new(&policy, rows);
    let (authorized, reason, permit) = match judge(&policy, &index, &plate, zone, &at) {
        Judgement::ZoneNotActive => (true, "zone_not_active", None),
        Judgement::Authorised(permit) => (true, "permit", Some(permit.to_owned())),
        Judgement::Violation(reason) => (false, reason.as_str(), None),
    };
    let answer = Verification {
        authorized,
        reason: reason.to_owned(),
        permit,
        plate: plate.number.clone(),
        country: plate.country.clone(),
        zone: zone.id.clone(),
        policy_version: state.policy_version,
    };
    Ok(Json(answer))
}

/// Query of `GET /api/v1/whitelist`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhitelistQuery {
    /// The instant (RFC 3339, or a date meaning its local midnight); now when absent.
    #[param(value_type = Option<crate::vocabulary::InstantOrDate>)]
    pub at: Option<String>,
    /// `csv` (default) or `json`.
    #[param(pattern = r"^(csv|json)?$")]
    pub format: Option<String>,
    /// Only what changed since this instant (`added` / `removed` rows).
    #[param(value_type = Option<crate::vocabulary::InstantOrDate>)]
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
    let at_ms = match query.at.as_deref().filter(|s| !s.is_empty()) {
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
    let user = caller.require(Permission::CheckTransits)?;
    let (summary, out) = sportello_app::ztl::run_check(&state, &user.login, body).await?;
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

/// `GET /permits/v/{token}`: the public page behind a permit's QR code: valid or not
/// valid now, and the plates — nothing else about the holder.
pub async fn public_verification(
    State(state): State<AppState>,
    crate::extract::ApiPath(token): crate::extract::ApiPath<String>,
) -> Response {
    let found = if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        state.store.permit_by_token(&token).await.ok().flatten()
    } else {
        None
    };
    let (status, body) = match found {
        Some(sportello_store::permits::PublicPermit {
            number,
            aliases,
            valid,
            plates,
        }) => {
            let verdict = if valid {
                "<p class=\"esito valido\"><strong>VALIDO</strong> in questo momento</p>"
            } else {
                "<p class=\"esito non-valido\"><strong>NON VALIDO</strong> in questo momento</p>"
            };
            let plates = if plates.is_empty() {
                String::new()
            } else {
                format!("<p>Targhe: {}</p>", crate::charts::escape(&plates.join(", ")))
            };
            // A copy printed before the permit was renumbered carries its former number.
            let former = if aliases.is_empty() {
                String::new()
            } else {
                format!(
                    "<p>Numero precedente: {}</p>",
                    crate::charts::escape(&aliases.join(", "))
                )
            };
            (
                axum::http::StatusCode::OK,
                format!(
                    "<h1>Permesso ZTL {}</h1>{former}{verdict}{plates}",
                    crate::charts::escape(&number)
                ),
            )
        }
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "<h1>Permesso non trovato</h1><p>Il codice non corrisponde ad alcun permesso rilasciato.</p>".to_owned(),
        ),
    };
    let page = format!(
        "<!doctype html><html lang=\"it\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Verifica permesso ZTL</title></head><body><main>{body}</main></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        page,
    )
        .into_response()
}

/// `GET /api/v1/transits/checks`: the gate files checked (newest first, at most 200):
/// when, by whom, under which policy version, with what outcome.
#[utoipa::path(get, path = "/api/v1/transits/checks", tag = "ztl",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<sportello_store::transits::TransitCheckView>), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub async fn checks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<sportello_store::transits::TransitCheckView>>, ApiError> {
    caller.require(Permission::CheckTransits)?;
    Ok(Json(state.store.transit_checks(200).await?))
}
