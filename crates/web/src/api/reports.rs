//! `GET /api/v1/reports/throughput` and `GET /api/v1/reports/sla`: the office's
//! measurements over a period (definitions in [`sportello_store::reports`]), as JSON or,
//! with `format=csv|xlsx`, as tables to take into a spreadsheet. Only roles with
//! `ReadReports` (admin, supervisor) may read them: they show every operator's load and,
//! in the SLA lists, cases' subjects, so reading the SLA report is written in the access log.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use sportello_domain::calendar::rome_date;
use sportello_domain::roles::Permission;
use sportello_store::StoreError;
use sportello_store::reports::{GroupBy, Period, SlaReport, ThroughputReport};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::ApiQuery;
use crate::tables::{csv_response, sla_tables, throughput_tables, xlsx_response};

/// Days of the default period: the last 365 days, today included.
pub const DEFAULT_PERIOD_DAYS: i64 = 365;

/// Query of `GET /api/v1/reports/throughput`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThroughputParams {
    /// First day (YYYY-MM-DD, Europe/Rome); default: 364 days before `to`.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub from: Option<String>,
    /// Last day, included; default: today.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub to: Option<String>,
    /// `case_type` (default), `channel` or `month`.
    #[param(pattern = r"^(case_type|channel|month)?$")]
    pub group_by: Option<String>,
    /// `json` (default), `csv` or `xlsx` (every table, one sheet each).
    #[param(pattern = r"^(json|csv|xlsx)?$")]
    pub format: Option<String>,
    /// With `format=csv`, the table: `groups` (default, with the totals as last row),
    /// `weekly`, `backlog` or `operators`.
    #[param(pattern = r"^(groups|weekly|backlog|operators)?$")]
    pub table: Option<String>,
}

/// Query of `GET /api/v1/reports/sla`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaParams {
    /// First day (YYYY-MM-DD, Europe/Rome); default: 364 days before `to`.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub from: Option<String>,
    /// Last day, included; default: today.
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub to: Option<String>,
    /// `json` (default), `csv` or `xlsx`.
    #[param(pattern = r"^(json|csv|xlsx)?$")]
    pub format: Option<String>,
    /// With `format=csv`, the table: `overdue` (default), `orphans` or `summary`.
    #[param(pattern = r"^(overdue|orphans|summary)?$")]
    pub table: Option<String>,
}

/// How a report is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
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

/// The period asked for; without `to` it ends today, without `from` it is the
/// [`DEFAULT_PERIOD_DAYS`] days ending with `to`.
fn period(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
    errors: &mut Vec<FieldError>,
) -> Option<Period> {
    let before = errors.len();
    let from = day(from, "from", errors);
    let to = day(to, "to", errors);
    if errors.len() > before {
        return None;
    }
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - Duration::days(DEFAULT_PERIOD_DAYS - 1));
    match Period::new(from, to) {
        Ok(p) => Some(p),
        Err(StoreError::Invalid { field, message }) => {
            errors.push(FieldError { field, message });
            None
        }
        Err(e) => {
            errors.push(FieldError {
                field: "to".into(),
                message: e.to_string(),
            });
            None
        }
    }
}

fn format(value: Option<&str>, errors: &mut Vec<FieldError>) -> Format {
    match value.map(str::trim).unwrap_or_default() {
        "" | "json" => Format::Json,
        "csv" => Format::Csv,
        "xlsx" => Format::Xlsx,
        _ => {
            errors.push(FieldError {
                field: "format".into(),
                message: "must be json, csv or xlsx".into(),
            });
            Format::Json
        }
    }
}

/// The CSV table asked for: one of `tables` (the first is the default), only with CSV.
fn table<'a>(
    value: Option<&str>,
    format: Format,
    tables: &[&'a str],
    errors: &mut Vec<FieldError>,
) -> &'a str {
    let first = tables.first().copied().unwrap_or_default();
    match value.filter(|v| !v.is_empty()) {
        None => first,
        Some(_) if format != Format::Csv => {
            errors.push(FieldError {
                field: "table".into(),
                message: "only with format=csv (xlsx has every table, json everything)".into(),
            });
            first
        }
        Some(v) => match tables.iter().find(|t| **t == v) {
            Some(t) => t,
            None => {
                errors.push(FieldError {
                    field: "table".into(),
                    message: format!("must be one of {}", tables.join(", ")),
                });
                first
            }
        },
    }
}

/// `GET /api/v1/reports/throughput`: per group the cases received, closed and open, the
/// lead times (median and p90, gross and net of suspensions), the time to first answer and
/// the terms met; and for the whole office the weekly opened/closed/work in progress, the
/// backlog by age, and the orphans and each operator's load now.
#[utoipa::path(get, path = "/api/v1/reports/throughput", tag = "reports", params(ThroughputParams),
    security(("bearer" = [])),
    responses((status = 200, body = ThroughputReport,
               description = "JSON; with format=csv one table (text/csv), with format=xlsx every table (one sheet each)"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn throughput(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ThroughputParams>,
) -> Result<Response, ApiError> {
    caller.require(Permission::ReadReports)?;
    let today = rome_date(state.store.clock().now());
    let mut errors = Vec::new();
    let period = period(
        params.from.as_deref(),
        params.to.as_deref(),
        today,
        &mut errors,
    );
    let group_by = match params
        .group_by
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        None => GroupBy::CaseType,
        Some(g) => GroupBy::parse(g).unwrap_or_else(|| {
            errors.push(FieldError {
                field: "group_by".into(),
                message: "must be case_type, channel or month".into(),
            });
            GroupBy::CaseType
        }),
    };
    let format = format(params.format.as_deref(), &mut errors);
    let table = table(
        params.table.as_deref(),
        format,
        &["groups", "weekly", "backlog", "operators"],
        &mut errors,
    );
    let Some(period) = period.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let report = state.store.throughput_report(period, group_by).await?;
    let name = format!(
        "throughput-{}-{}-{}",
        group_by.as_str(),
        report.from,
        report.to
    );
    match format {
        Format::Json => Ok(Json(report).into_response()),
        Format::Csv => {
            let tables = throughput_tables(&report);
            let chosen = tables
                .into_iter()
                .find(|t| t.name == table)
                .ok_or_else(|| ApiError::Internal(format!("no table {table}")))?;
            csv_response(&chosen, &format!("{name}-{table}"))
        }
        Format::Xlsx => xlsx_response(&throughput_tables(&report), &name),
    }
}

/// `GET /api/v1/reports/sla`: the share of the cases closed in the period that met the
/// legal term and the service standard, and the cases late or orphan now.
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "reports", params(SlaParams),
    security(("bearer" = [])),
    responses((status = 200, body = SlaReport,
               description = "JSON; with format=csv one table (text/csv), with format=xlsx every table (one sheet each)"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn sla(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<SlaParams>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::ReadReports)?;
    let today = rome_date(state.store.clock().now());
    let mut errors = Vec::new();
    let period = period(
        params.from.as_deref(),
        params.to.as_deref(),
        today,
        &mut errors,
    );
    let format = format(params.format.as_deref(), &mut errors);
    let table = table(
        params.table.as_deref(),
        format,
        &["overdue", "orphans", "summary"],
        &mut errors,
    );
    let Some(period) = period.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let report = state.store.sla_report(period).await?;
    state
        .store
        .record_access(
            &user.login,
            "read_report",
            &format!("reports/sla?from={}&to={}", report.from, report.to),
        )
        .await?;
    let name = format!("sla-{}-{}", report.from, report.to);
    match format {
        Format::Json => Ok(Json(report).into_response()),
        Format::Csv => {
            let tables = sla_tables(&report);
            let chosen = tables
                .into_iter()
                .find(|t| t.name == table)
                .ok_or_else(|| ApiError::Internal(format!("no table {table}")))?;
            csv_response(&chosen, &format!("{name}-{table}"))
        }
        Format::Xlsx => xlsx_response(&sla_tables(&report), &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_default_to_the_last_365_days() {
        let today = d(2026, 11, 29);
        let mut errors = Vec::new();
        let p = period(None, None, today, &mut errors).unwrap();
        assert_eq!((p.from(), p.to()), (d(2025, 11, 30), today));
        let p = period(None, Some("2026-06-30"), today, &mut errors).unwrap();
        assert_eq!(p.from(), d(2025, 7, 1));
        let p = period(Some("2026-01-01"), None, today, &mut errors).unwrap();
        assert_eq!((p.from(), p.to()), (d(2026, 1, 1), today));
        assert!(errors.is_empty());
        assert!(period(Some("2026-13-01"), Some("x"), today, &mut errors).is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["from", "to"]);
        errors.clear();
        assert!(period(Some("2026-02-01"), Some("2026-01-01"), today, &mut errors).is_none());
        assert_eq!(errors[0].field, "to");
    }

    #[test]
    fn tables_and_formats() {
        let mut errors = Vec::new();
        assert_eq!(format(Some("xlsx"), &mut errors), Format::Xlsx);
        assert_eq!(table(None, Format::Csv, &["a", "b"], &mut errors), "a");
        assert_eq!(table(Some("b"), Format::Csv, &["a", "b"], &mut errors), "b");
        assert!(errors.is_empty());
        format(Some("pdf"), &mut errors);
        table(Some("c"), Format::Csv, &["a", "b"], &mut errors);
        table(Some("b"), Format::Json, &["a", "b"], &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["format", "table", "table"]);
    }
}
