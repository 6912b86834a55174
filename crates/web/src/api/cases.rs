//! Cases: create, read, list, act.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sportello_app::cases::{self, ActionRequest, CaseRequest, CitizenRequest};
use sportello_app::validate::{check_reference, check_text, parse_number};
use sportello_app::{AppError, FieldError};
use sportello_domain::case::{Channel, Status};
use sportello_domain::roles::Permission;
use sportello_store::cases::{CaseFilter, CaseSummary, CaseView};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// The citizen of a new case.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CitizenBody {
    /// Codice fiscale (16 characters with a valid check character, or 11 digits).
    #[schema(max_length = 32, pattern = r"^([A-Za-z0-9]{16}|[0-9]{11})?$")]
    pub fiscal_code: Option<String>,
    /// Full name (no control characters, no bidirectional controls).
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]*$"
    )]
    pub name: Option<String>,
    /// E-mail.
    #[schema(
        max_length = 254,
        pattern = r"^([^\s<>,;@\u0000-\u001F\u007F-\u009F]+@[^\s<>,;.\u0000-\u001F\u007F-\u009F][^\s<>,;\u0000-\u001F\u007F-\u009F]*\.[^\s<>,;\u0000-\u001F\u007F-\u009F]*)?$"
    )]
    pub email: Option<String>,
    /// PEC address.
    #[schema(
        max_length = 254,
        pattern = r"^([^\s<>,;@\u0000-\u001F\u007F-\u009F]+@[^\s<>,;.\u0000-\u001F\u007F-\u009F][^\s<>,;\u0000-\u001F\u007F-\u009F]*\.[^\s<>,;\u0000-\u001F\u007F-\u009F]*)?$"
    )]
    pub pec: Option<String>,
    /// Telephone.
    #[schema(max_length = 32, pattern = r"^([ +\-./()]*([0-9][ +\-./()]*){5,16})?$")]
    pub phone: Option<String>,
    /// Fax.
    #[schema(max_length = 32, pattern = r"^([ +\-./()]*([0-9][ +\-./()]*){5,16})?$")]
    pub fax: Option<String>,
}

/// Body of `POST /api/v1/cases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCaseBody {
    /// `ztl_permit`, `cude`, `seg` or a configured type.
    #[schema(value_type = crate::vocabulary::CaseTypeId)]
    pub case_type: Option<String>,
    /// Subject (oggetto), up to 300 characters.
    #[schema(value_type = String, min_length = 1, max_length = 300, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub subject: Option<String>,
    /// Description.
    #[schema(
        max_length = 20000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
    /// `web`, `email`, `pec`, `fax`, `phone`, `counter`, `post`, `scan`, `whatsapp`, `telegram`, `sms`.
    #[schema(value_type = crate::vocabulary::ChannelName)]
    pub channel: Option<String>,
    /// The citizen.
    pub citizen: Option<CitizenBody>,
    /// Type-specific fields (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub fields: Option<serde_json::Value>,
}

/// Body of `POST /api/v1/cases/{ref}/actions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// One of the workflow's actions (CONTRACT §7.2).
    #[schema(value_type = crate::vocabulary::ActionName)]
    pub action: Option<String>,
    /// Free note, kept in the journal (required by `withdraw`).
    #[schema(
        max_length = 5000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
    /// `assign`: login of the new assignee.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub user: Option<String>,
    /// `request_integration`: what is missing.
    #[schema(value_type = Option<Vec<crate::vocabulary::TextLines>>)]
    pub missing: Option<Vec<String>>,
    /// `notify_rejection`, `reject`, `confirm`, `annul`: the reasons.
    #[schema(value_type = Option<Vec<crate::vocabulary::TextLines>>)]
    pub reasons: Option<Vec<String>>,
    /// Write to the citizen about it (default `true`): the action's template on the
    /// citizen's default channel, queued with the action; a citizen the office cannot
    /// write to gets a call-back task instead when the case waits on them.
    pub notify: Option<bool>,
    /// The channel to write on instead of the default.
    #[schema(value_type = Option<crate::vocabulary::ChannelName>)]
    pub notify_channel: Option<String>,
    /// The message's language, `it` (default) or `en`.
    #[schema(pattern = r"^(it|en)?$")]
    pub lang: Option<String>,
}

/// Query of `GET /api/v1/cases`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Status.
    #[param(value_type = Option<crate::vocabulary::CaseStatus>)]
    pub status: Option<String>,
    /// Case type.
    #[param(value_type = Option<crate::vocabulary::CaseTypeId>)]
    pub case_type: Option<String>,
    /// Channel.
    #[param(value_type = Option<crate::vocabulary::ChannelName>)]
    pub channel: Option<String>,
    /// Assignee login, or `none`.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub assignee: Option<String>,
    /// Only late cases (`true`).
    #[param(value_type = Option<crate::vocabulary::Flag>)]
    pub overdue: Option<String>,
    /// Only orphan cases (`true`).
    #[param(value_type = Option<crate::vocabulary::Flag>)]
    pub orphan: Option<String>,
    /// Text in reference, subject, citizen name or fiscal code.
    #[param(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub q: Option<String>,
    /// Page from 1.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

/// A page of cases.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    /// The cases of this page.
    pub items: Vec<CaseSummary>,
    /// How many match the filters in all.
    pub total: i64,
}

impl From<CitizenBody> for CitizenRequest {
    fn from(b: CitizenBody) -> Self {
        CitizenRequest {
            fiscal_code: b.fiscal_code,
            name: b.name,
            email: b.email,
            pec: b.pec,
            phone: b.phone,
            fax: b.fax,
        }
    }
}

impl From<CreateCaseBody> for CaseRequest {
    fn from(b: CreateCaseBody) -> Self {
        CaseRequest {
            case_type: b.case_type,
            subject: b.subject,
            description: b.description,
            channel: b.channel,
            citizen: b.citizen.map(CitizenRequest::from),
            fields: b.fields,
        }
    }
}

impl From<ActionBody> for ActionRequest {
    fn from(b: ActionBody) -> Self {
        ActionRequest {
            action: b.action,
            note: b.note,
            user: b.user,
            missing: b.missing,
            reasons: b.reasons,
            notify: b.notify,
            notify_channel: b.notify_channel,
            lang: b.lang,
        }
    }
}

/// `POST /api/v1/cases`: opens a case, registered in the protocol.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", request_body = CreateCaseBody,
    security(("bearer" = [])),
    responses((status = 201, description = "The new case", body = CaseView),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_case(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCaseBody>,
) -> Result<(StatusCode, Json<CaseView>), ApiError> {
    let user = caller.require(Permission::CreateCase)?;
    let case = cases::create(
        &state,
        body.into(),
        &user.login,
        user.role.can(Permission::ReadCase),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// `GET /api/v1/cases/{ref}`: the whole case; the read is audited.
#[utoipa::path(get, path = "/api/v1/cases/{reference}", tag = "cases",
    params(("reference" = String, Path, description = "Case reference, e.g. ZTL-2026-000123")),
    security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_case(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<CaseView>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    check_reference(&reference)?;
    let case = state.store.get_case(&reference).await?;
    state
        .store
        .record_access(&user.login, "read_case", &reference)
        .await?;
    Ok(Json(case))
}

fn parse_bool(value: Option<String>, field: &str, errors: &mut Vec<FieldError>) -> bool {
    match value.as_deref().map(str::trim) {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            errors.push(FieldError {
                field: field.into(),
                message: "must be true or false".into(),
            });
            false
        }
    }
}

/// `GET /api/v1/cases`: a filtered page of cases, newest first.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CaseList), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_cases(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<CaseList>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let mut errors = Vec::new();
    let status = match query
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => s
            .parse::<Status>()
            .map_err(|e| {
                errors.push(FieldError {
                    field: "status".into(),
                    message: e.to_string(),
                })
            })
            .ok(),
    };
    let channel = match query
        .channel
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => s
            .parse::<Channel>()
            .map_err(|e| {
                errors.push(FieldError {
                    field: "channel".into(),
                    message: e.to_string(),
                })
            })
            .ok(),
    };
    for (field, value) in [
        ("q", &query.q),
        ("assignee", &query.assignee),
        ("case_type", &query.case_type),
    ] {
        if let Some(v) = value
            && let Err(e) = check_text(field, v, false)
        {
            errors.push(e);
        }
    }
    let case_type = query
        .case_type
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(t) = &case_type
        && state.store.case_type(t).is_none()
    {
        errors.push(FieldError {
            field: "case_type".into(),
            message: format!("unknown case type '{t}'"),
        });
    }
    let filter = CaseFilter {
        status,
        case_type,
        channel,
        assignee: query
            .assignee
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        overdue: parse_bool(query.overdue, "overdue", &mut errors),
        orphan: parse_bool(query.orphan, "orphan", &mut errors),
        q: query.q.map(|s| s.chars().take(200).collect()),
        page: parse_number(query.page, "page", 1, 1_000_000, &mut errors),
        per_page: parse_number(
            query.per_page,
            "per_page",
            50,
            state.config.limits.max_per_page,
            &mut errors,
        ),
        ..CaseFilter::default()
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors).into());
    }
    let (items, total) = state.store.list_cases(&filter).await?;
    let target: String = format!("cases?{}", raw.unwrap_or_default())
        .chars()
        .take(300)
        .collect();
    state
        .store
        .record_access(&user.login, "list_cases", &target)
        .await?;
    Ok(Json(CaseList { items, total }))
}

/// `POST /api/v1/cases/{ref}/actions`: applies a workflow action (409 when not allowed now).
#[utoipa::path(post, path = "/api/v1/cases/{reference}/actions", tag = "cases", request_body = ActionBody,
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, description = "The case after the action", body = CaseView),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn act_on_case(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<CaseView>, ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    let case = cases::perform_action(&state, &user.login, &reference, body.into()).await?;
    Ok(Json(case))
}

/// `PATCH /api/v1/cases/{ref}/fields`: changes the case's type-specific fields with a
/// JSON merge patch (`null` removes a key) — the documents received, a corrected plate,
/// the category asked — each change journaled with its old and new value.
#[utoipa::path(patch, path = "/api/v1/cases/{reference}/fields", tag = "cases",
    params(("reference" = String, Path, description = "Case reference")),
    request_body(content = Object, description = "Merge patch of the fields"),
    security(("bearer" = [])),
    responses((status = 200, description = "The case after the change", body = CaseView),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_fields(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<CaseView>, ApiError> {
    let user = caller.require(Permission::ActOnCase)?;
    let case = cases::patch_fields(&state, &reference, patch, &user.login).await?;
    Ok(Json(case))
}
