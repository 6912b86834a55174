//! Cases: create, read, list, act.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sportello_domain::case::{Channel, Reference, Status};
use sportello_domain::fiscal_code::FiscalCode;
use sportello_domain::roles::Permission;
use sportello_domain::workflow::Action;
use sportello_store::cases::{
    CaseFilter, CaseSummary, CaseView, CitizenInput, CitizenView, NewCase,
};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, check_text};

/// The citizen of a new case.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CitizenBody {
    /// Codice fiscale (16 characters with a valid check character, or 11 digits).
    #[schema(max_length = 32, pattern = r"^([A-Za-z0-9]{16}|[0-9]{11})?$")]
    pub fiscal_code: Option<String>,
    /// Full name.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
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

fn clean(
    value: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = value
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())?;
    if v.chars().count() > max {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be at most {max} characters"),
        });
        return None;
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.push(FieldError {
            field: field.into(),
            message: "contains control characters".into(),
        });
        return None;
    }
    Some(v)
}

/// Whether `v` can be an e-mail address (and nothing more: no list, no display name), for
/// the citizen's contacts and the recipients of messages alike.
pub(crate) fn is_email(v: &str) -> bool {
    v.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !v.contains(char::is_whitespace)
            && !v.contains(['<', '>', ',', ';'])
    })
}

/// Whether `v` can be a telephone number: digits with the usual separators, 5 to 16 digits.
pub(crate) fn is_phone(v: &str) -> bool {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    v.chars()
        .all(|c| c.is_ascii_digit() || " +-./()".contains(c))
        && (5..=16).contains(&digits)
}

fn check_email(value: &Option<String>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !is_email(v)
    {
        errors.push(FieldError {
            field: field.into(),
            message: "is not an e-mail address".into(),
        });
    }
}

fn check_phone(value: &Option<String>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !is_phone(v)
    {
        errors.push(FieldError {
            field: field.into(),
            message: "is not a telephone number".into(),
        });
    }
}

impl CreateCaseBody {
    /// Checks every field and builds the case to open (422 naming each bad field): the
    /// API's, the portal's and the demo's way to open a case.
    pub fn validate(self, state: &AppState, actor: &str) -> Result<NewCase, ApiError> {
        let mut errors = Vec::new();
        let case_type = clean(self.case_type, "case_type", 64, &mut errors);
        match &case_type {
            None => errors.push(FieldError {
                field: "case_type".into(),
                message: "is required".into(),
            }),
            Some(t) if state.store.case_type(t).is_none() => {
                let known: Vec<&str> = state
                    .store
                    .settings()
                    .case_types
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect();
                errors.push(FieldError {
                    field: "case_type".into(),
                    message: format!("unknown case type '{t}' (known: {})", known.join(", ")),
                });
            }
            _ => {}
        }
        let subject = clean(self.subject, "subject", 300, &mut errors);
        if subject.is_none() && !errors.iter().any(|e| e.field == "subject") {
            errors.push(FieldError {
                field: "subject".into(),
                message: "is required".into(),
            });
        }
        let description =
            clean(self.description, "description", 20_000, &mut errors).unwrap_or_default();
        let channel = match clean(self.channel, "channel", 32, &mut errors) {
            None => {
                errors.push(FieldError {
                    field: "channel".into(),
                    message: "is required".into(),
                });
                None
            }
            Some(c) => match c.parse::<Channel>() {
                Ok(ch) => Some(ch),
                Err(e) => {
                    errors.push(FieldError {
                        field: "channel".into(),
                        message: e.to_string(),
                    });
                    None
                }
            },
        };
        let citizen = self.citizen.unwrap_or_default();
        let fiscal_code = match clean(citizen.fiscal_code, "citizen.fiscal_code", 32, &mut errors) {
            None => None,
            Some(code) => match FiscalCode::parse(&code) {
                Ok(fc) => Some(fc),
                Err(e) => {
                    errors.push(FieldError {
                        field: "citizen.fiscal_code".into(),
                        message: e.to_string(),
                    });
                    None
                }
            },
        };
        let name = clean(citizen.name, "citizen.name", 200, &mut errors);
        let email = clean(citizen.email, "citizen.email", 254, &mut errors);
        let pec = clean(citizen.pec, "citizen.pec", 254, &mut errors);
        let phone = clean(citizen.phone, "citizen.phone", 32, &mut errors);
        let fax = clean(citizen.fax, "citizen.fax", 32, &mut errors);
        check_email(&email, "citizen.email", &mut errors);
        check_email(&pec, "citizen.pec", &mut errors);
        check_phone(&phone, "citizen.phone", &mut errors);
        check_phone(&fax, "citizen.fax", &mut errors);
        let fields = match self.fields {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) if map.len() <= 100 => map,
            Some(serde_json::Value::Object(_)) => {
                errors.push(FieldError {
                    field: "fields".into(),
                    message: "at most 100 fields".into(),
                });
                serde_json::Map::new()
            }
            Some(_) => {
                errors.push(FieldError {
                    field: "fields".into(),
                    message: "must be a JSON object".into(),
                });
                serde_json::Map::new()
            }
        };
        // A permit request takes the legal term and service standard of the category it
        // asks for (a CUDE request: the CUDE category's short one).
        let mut terms = None;
        if let Some(t) = case_type.as_deref()
            && matches!(t, "ztl_permit" | "cude")
        {
            let asked = fields
                .get("category")
                .and_then(|c| c.as_str())
                .or((t == "cude").then_some("cude"));
            match asked.map(|id| (id, state.policy.category(id))) {
                Some((_, Some(category))) => {
                    terms = Some(sportello_store::cases::CaseTerms {
                        term_days: category.term_days,
                        service_days: category.service_days,
                    })
                }
                Some((id, None)) if fields.contains_key("category") => errors.push(FieldError {
                    field: "fields.category".into(),
                    message: format!(
                        "'{}' is not a category of the policy in force",
                        id.chars().take(40).collect::<String>()
                    ),
                }),
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let (Some(case_type), Some(subject), Some(channel)) = (case_type, subject, channel) else {
            return Err(ApiError::field("body", "incomplete request"));
        };
        Ok(NewCase {
            case_type,
            subject,
            description,
            channel,
            citizen: CitizenInput {
                fiscal_code,
                name,
                email,
                pec,
                phone,
                fax,
            },
            fields,
            flags: vec![],
            actor: actor.to_owned(),
            document_sha256: None,
            registered_as: None,
            terms,
        })
    }
}

pub(crate) fn check_reference(reference: &str) -> Result<(), ApiError> {
    if Reference::parse(reference).is_some() {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "'{}' is not a case reference (e.g. ZTL-2026-000123)",
            reference.chars().take(40).collect::<String>()
        )))
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
    let new = body.validate(&state, &user.login)?;
    let given = new.citizen.clone();
    let mut case = state.store.create_case(new).await?;
    if !user.role.can(Permission::ReadCase) {
        // A caller that may not read case files (e.g. the web-form backend) gets back only
        // what it sent, never contacts already on record for that fiscal code.
        case.citizen = CitizenView {
            fiscal_code: given.fiscal_code.map(|f| f.as_str().to_owned()),
            name: given.name,
            email: given.email,
            pec: given.pec,
            phone: given.phone,
            fax: given.fax,
        };
    }
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

pub(crate) fn parse_number(
    value: Option<String>,
    field: &str,
    default: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> u32 {
    match value.as_deref().map(str::trim) {
        None | Some("") => default,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.push(FieldError {
                    field: field.into(),
                    message: format!("must be a whole number from 1 to {max}"),
                });
                default
            }
        },
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
        return Err(ApiError::Invalid(errors));
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

impl ActionBody {
    fn into_action(self) -> Result<(Action, Option<String>), ApiError> {
        let mut errors = Vec::new();
        for (field, value, multiline) in [
            ("action", &self.action, false),
            ("user", &self.user, false),
            ("note", &self.note, true),
        ] {
            if let Some(v) = value
                && let Err(e) = check_text(field, v, multiline)
            {
                errors.push(e);
            }
        }
        for (field, list) in [("missing", &self.missing), ("reasons", &self.reasons)] {
            for (i, v) in list.iter().flatten().enumerate() {
                if let Err(e) = check_text(&format!("{field}[{i}]"), v, true) {
                    errors.push(e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let name = self.action.map(|a| a.trim().to_owned()).unwrap_or_default();
        let list = |v: Option<Vec<String>>| v.unwrap_or_default();
        let action = match name.as_str() {
            "assign" => Action::Assign {
                user: self.user.unwrap_or_default(),
            },
            "start_review" => Action::StartReview,
            "request_integration" => Action::RequestIntegration {
                missing: list(self.missing),
            },
            "integration_received" => Action::IntegrationReceived,
            "notify_rejection" => Action::NotifyRejection {
                reasons: list(self.reasons),
            },
            "observations_received" => Action::ObservationsReceived,
            "approve" => Action::Approve,
            "reject" => Action::Reject {
                reasons: list(self.reasons),
            },
            "issue" => Action::Issue,
            "close" => Action::Close,
            "withdraw" => Action::Withdraw,
            "reopen" => Action::Reopen,
            "confirm" => Action::Confirm {
                reasons: list(self.reasons),
            },
            "annul" => Action::Annul {
                reasons: list(self.reasons),
            },
            "" => return Err(ApiError::field("action", "is required")),
            other => {
                return Err(ApiError::field(
                    "action",
                    format!(
                        "unknown action '{}' (allowed: {})",
                        other.chars().take(40).collect::<String>(),
                        Action::NAMES.join(", ")
                    ),
                ));
            }
        };
        if self.note.as_ref().is_some_and(|n| n.chars().count() > 5000) {
            return Err(ApiError::field("note", "must be at most 5000 characters"));
        }
        Ok((action, self.note))
    }
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
    perform_action(&state, user, &reference, body)
        .await
        .map(Json)
}

/// Applies a workflow action for `user` (already allowed to act), with what the action
/// produces: the API and the back-office buttons share it.
pub async fn perform_action(
    state: &AppState,
    user: &sportello_store::users::AuthUser,
    reference: &str,
    body: ActionBody,
) -> Result<CaseView, ApiError> {
    check_reference(reference)?;
    let notify = body.notify.unwrap_or(true);
    let notify_channel = body.notify_channel.clone();
    let lang = body.lang.clone();
    let (action, note) = body.into_action()?;
    // Issuing a ZTL or CUDE case creates its permit (or changes the plates of the one it
    // amends): checked against the policy before the case changes state, so a refused
    // permit leaves the case as it was; the printed permit is attached and registered
    // with the change of status. (Only from `approved`: from anywhere else the workflow's
    // own refusal is the answer.)
    // Annulling a contested fine produces the annulment request for the police: its
    // documents are prepared first and registered with the decision, atomically, and
    // the message taking them to the police is queued in the same transaction.
    let mut to_police = Vec::new();
    let outgoing = match &action {
        sportello_domain::workflow::Action::Issue => {
            let case = state.store.get_case(reference).await?;
            match case.summary.status.as_str() {
                "approved" => match crate::api::permits::plan_permit(state, &case).await? {
                    Some(plan) => vec![
                        crate::api::permits::carry_out(state, reference, &plan, &user.login)
                            .await?,
                    ],
                    None => Vec::new(),
                },
                _ => Vec::new(),
            }
        }
        sportello_domain::workflow::Action::Annul { reasons }
            if reasons.iter().any(|r| !r.trim().is_empty()) =>
        {
            let case = state.store.get_case(reference).await?;
            let is_report = state
                .store
                .case_type(&case.summary.case_type)
                .is_some_and(|t| t.workflow == sportello_domain::case::WorkflowKind::Report);
            if is_report && case.summary.status == "in_review" {
                let request = crate::api::remedy::annulment_request(state, &case, reasons).await?;
                to_police.push(request.to_police);
                request.documents
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let notice = if notify {
        crate::api::outbound::notice_of_action(
            state,
            reference,
            &action,
            notify_channel.as_deref(),
            lang.as_deref(),
        )
        .await?
    } else {
        crate::api::outbound::Notice::default()
    };
    let mut messages = notice.messages;
    messages.extend(to_police);
    let (case, queued) = state
        .store
        .apply_action_writing(
            reference,
            &action,
            note.as_deref(),
            &user.login,
            &outgoing,
            &messages,
        )
        .await?;
    if !queued.is_empty() {
        state.outbound_wakeup.notify_one();
    }
    if let Some((phone, script)) = notice.call {
        // Nobody to write to: the case waits on a citizen reached only by phone. The action
        // stands whatever happens here (the minute's check of unanswered cases opens the
        // call later if this one is lost).
        match state
            .store
            .open_call_task(
                reference,
                "no_digital_contact",
                Some(&phone),
                &script,
                &user.login,
            )
            .await
        {
            Ok(_) => return Ok(state.store.get_case(reference).await.unwrap_or(case)),
            Err(e) => tracing::warn!(%reference, error = %e, "call-back task not opened"),
        }
    }
    Ok(case)
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
    check_reference(&reference)?;
    let serde_json::Value::Object(patch) = patch else {
        return Err(ApiError::field("fields", "must be a JSON object"));
    };
    if patch.len() > 50 {
        return Err(ApiError::field("fields", "at most 50 fields at once"));
    }
    let mut errors = Vec::new();
    for key in patch.keys() {
        if key.is_empty()
            || key.len() > 64
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            errors.push(FieldError {
                field: format!("fields.{}", key.chars().take(64).collect::<String>()),
                message: "a field name is 1-64 letters, digits, '_' or '-'".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let case = state
        .store
        .update_case_fields(&reference, &patch, &user.login)
        .await?;
    Ok(Json(case))
}
