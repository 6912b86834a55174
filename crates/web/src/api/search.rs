//! `GET /api/v1/search`: cases, documents (with the text read by OCR) and messages,
//! ranked, with highlighted snippets. Only people who may read case files may search; the
//! document hits are left out for roles that may not read documents; every search is
//! written in the access log, since its results show personal data.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::rome_start_of_day;
use sportello_domain::case::Status;
use sportello_domain::roles::Permission;
use sportello_store::search::{SearchHit, SearchQuery};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use sportello_app::validate::{check_text, parse_number};
use sportello_app::{AppError, FieldError};

/// Query of `GET /api/v1/search`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The words to find (all of them; the last one may be unfinished).
    #[param(
        required = true,
        min_length = 1,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub q: Option<String>,
    /// Only cases of this type.
    #[param(value_type = Option<crate::vocabulary::CaseTypeId>)]
    pub case_type: Option<String>,
    /// Only cases in this status.
    #[param(value_type = Option<crate::vocabulary::CaseStatus>)]
    pub status: Option<String>,
    /// Only cases received on or after this day (YYYY-MM-DD, Europe/Rome).
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub from: Option<String>,
    /// Only cases received on or before this day (YYYY-MM-DD, Europe/Rome).
    #[param(value_type = Option<crate::vocabulary::OptionalDate>)]
    pub to: Option<String>,
    /// Page from 1.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub page: Option<String>,
    /// Page size (default 20, at most 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
}

/// A page of results, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The results.
    pub items: Vec<SearchHit>,
    /// This page.
    pub page: u32,
    /// Its size.
    pub per_page: u32,
}

fn day(value: &Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let v = value.as_deref().filter(|v| !v.is_empty())?;
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

/// `GET /api/v1/search?q=`: ranked cases, documents and messages with snippets (HTML-
/// escaped, the words found in `<mark>`).
#[utoipa::path(get, path = "/api/v1/search", tag = "cases", params(SearchParams),
    security(("bearer" = [])),
    responses((status = 200, body = SearchResults), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let include_documents = user.role.can(Permission::ReadDocument);
    let mut errors = Vec::new();
    let q = params
        .q
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if q.is_empty() {
        errors.push(FieldError {
            field: "q".into(),
            message: "say what to look for".into(),
        });
    } else if let Err(e) = check_text("q", &q, false) {
        errors.push(e);
    }
    let q: String = q.chars().take(200).collect();
    let status = params
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| {
            s.parse::<Status>()
                .map_err(|e| {
                    errors.push(FieldError {
                        field: "status".into(),
                        message: e.to_string(),
                    })
                })
                .ok()
        });
    let case_type = params
        .case_type
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(t) = &case_type
        && state.store.case_type(t).is_none()
    {
        errors.push(FieldError {
            field: "case_type".into(),
            message: format!(
                "unknown case type '{}'",
                t.chars().take(40).collect::<String>()
            ),
        });
    }
    let from = day(&params.from, "from", &mut errors);
    let to = day(&params.to, "to", &mut errors);
    let page = parse_number(params.page, "page", 1, 1_000, &mut errors);
    let per_page = parse_number(params.per_page, "per_page", 20, 100, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors).into());
    }
    let query = SearchQuery {
        q: q.clone(),
        case_type,
        status: status.map(|s| s.as_str().to_owned()),
        from: from.map(rome_start_of_day),
        to: to.and_then(|d| d.succ_opt()).map(rome_start_of_day),
        include_documents,
        limit: per_page,
        offset: (page - 1) * per_page,
    };
    let items = state.store.search(&query).await?;
    state
        .store
        .record_access(&user.login, "search", &format!("search?q={q}"))
        .await?;
    Ok(Json(SearchResults {
        items,
        page,
        per_page,
    }))
}
