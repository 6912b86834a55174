//! The audit trails for the people who answer for them (CONTRACT §8.6): the security log
//! and who read a case. Both are for supervisors and administrators only.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::{rome_date, rome_start_of_day};
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_store::cases::rome_rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::ApiQuery;

/// Days shown by default: the last 30, today included.
const DEFAULT_DAYS: i64 = 30;
/// The most entries one answer carries; narrow the period for more.
const MAX_ITEMS: u32 = 10_000;

/// Query of `GET /api/v1/audit/security`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecurityQuery {
    /// First day (YYYY-MM-DD, Europe/Rome); default: 29 days before `to`.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub from: Option<String>,
    /// Last day, included; default: today.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub to: Option<String>,
}

/// One security event.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventView {
    /// When (RFC 3339, Rome offset).
    pub at: String,
    /// What happened: `sign_in_failed`, `sign_in_throttled`, `signed_in`, `token_invalid`,
    /// `csrf_refused`, `permission_refused`, `user_added`, `user_disabled`, `user_enabled`,
    /// `password_reset`, `password_changed`, `second_factor_changed`, `token_created`,
    /// `token_revoked`, `rate_limited`.
    pub kind: String,
    /// The login concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The client's address, or `cli`.
    pub address: String,
    /// A short explanation (never a secret).
    pub detail: String,
}

/// Answer of `GET /api/v1/audit/security`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvents {
    /// The events, oldest first (at most 10,000: narrow the period for more).
    pub items: Vec<SecurityEventView>,
}

/// Query of `GET /api/v1/audit/reads`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadsQuery {
    /// The case reference, e.g. `ZTL-2026-000123`.
    pub reference: String,
}

/// One read of a case's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseReadView {
    /// When (RFC 3339, Rome offset).
    pub at: String,
    /// Login of the reader.
    pub actor: String,
    /// What was done (`read_case`, `read_document`, `read_messages`…).
    pub action: String,
    /// What was read: the case reference or one of its documents' ids.
    pub target: String,
}

/// Answer of `GET /api/v1/audit/reads`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseReads {
    /// The case.
    pub reference: String,
    /// Who read it and when, oldest first.
    pub items: Vec<CaseReadView>,
}

fn day(value: Option<&str>, field: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let v = value.filter(|v| !v.is_empty())?;
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                message: "must be a day as YYYY-MM-DD".into(),
            });
            None
        }
    }
}

/// `GET /api/v1/audit/security?from=&to=`: the security log of the period (days in
/// Europe/Rome, both included; the last 30 days by default; empty when `from` is after `to`).
#[utoipa::path(get, path = "/api/v1/audit/security", tag = "system", params(SecurityQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SecurityEvents), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn security_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SecurityQuery>,
) -> Result<Json<SecurityEvents>, ApiError> {
    caller.require(Permission::ReadReports)?;
    let mut errors = Vec::new();
    let from = day(query.from.as_deref(), "from", &mut errors);
    let to = day(query.to.as_deref(), "to", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let to = to.unwrap_or_else(|| rome_date(state.store.clock().now()));
    let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    // A period that ends before it begins holds nothing (not an error: each bound alone is valid).
    if from > to {
        return Ok(Json(SecurityEvents { items: Vec::new() }));
    }
    let end = to
        .succ_opt()
        .ok_or_else(|| ApiError::field("to", "is out of range"))?;
    let events = state
        .store
        .security_events(rome_start_of_day(from), rome_start_of_day(end), MAX_ITEMS)
        .await?;
    let items = events
        .into_iter()
        .map(|e| SecurityEventView {
            at: rome_rfc3339(e.at),
            kind: e.kind.as_str().to_owned(),
            login: e.login,
            address: e.address,
            detail: e.detail,
        })
        .collect();
    Ok(Json(SecurityEvents { items }))
}

/// `GET /api/v1/audit/reads?reference=`: who read the case, its messages or its documents,
/// and when.
#[utoipa::path(get, path = "/api/v1/audit/reads", tag = "system", params(ReadsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CaseReads), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn case_reads(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReadsQuery>,
) -> Result<Json<CaseReads>, ApiError> {
    caller.require(Permission::ReadReports)?;
    // As for a case's own paths, what cannot be a reference names no case: 404.
    if Reference::parse(&query.reference).is_none() {
        return Err(ApiError::NotFound(format!(
            "'{}' is not a case reference (e.g. ZTL-2026-000123)",
            query.reference.chars().take(40).collect::<String>()
        )));
    }
    let reads = state
        .store
        .reads_of_case(&query.reference, i64::from(MAX_ITEMS))
        .await?;
    let items = reads
        .into_iter()
        .map(|r| CaseReadView {
            at: rome_rfc3339(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
        })
        .collect();
    Ok(Json(CaseReads {
        reference: query.reference,
        items,
    }))
}
