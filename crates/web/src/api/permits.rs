//! The permit's life in the office: reading a permit, CUDE temporary plates, planning
//! and issuing the permit of an approved case (with its printed PDF), renewal,
//! suspension, revocation and reinstatement — each journaled with who and why.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::DateTime;
use serde::Deserialize;
use sportello_domain::plate::Plate;
use sportello_domain::refusal::Refusal;
use sportello_domain::roles::Permission;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use sportello_store::cases::OutgoingDocument;

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
    let plate = Plate::parse(&body.plate, body.country.as_deref())
        .map_err(|e| ApiError::field("plate", e.to_string()))?;
    let instant = |field: &str, text: &str| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::field(field, "must be an RFC 3339 instant with its offset"))
    };
    let (from, to) = (instant("from", &body.from)?, instant("to", &body.to)?);
    let view = add_temporary(&state, number.trim(), plate, (from, to), &user.login).await?;
    Ok((axum::http::StatusCode::CREATED, Json(view)))
}

/// What issuing a permit case does.
#[derive(Debug)]
pub enum PermitPlan {
    /// A new permit (or a renewal).
    Issue(sportello_store::permits::NewPermit),
    /// New plates on an existing permit (`fields.amends`): a CUDE holder's new car, a
    /// resident's sold one.
    ChangePlates {
        /// The permit changed.
        number: String,
        /// Its plates from now on.
        plates: Vec<Plate>,
    },
    /// The case already has its permit (a retry after an interruption).
    Done(String),
}

/// The permit a ZTL or CUDE case asks for, checked against the policy in force: the
/// category (`fields.category`; `cude` for CUDE cases), the plates (`fields.plates`, at most
/// the category's `max_vehicles`), the documents the category requires
/// (`fields.documents` must name each; not for a change of plates), the holder (the
/// case's citizen, with a fiscal code) and no active permit of the same category for those
/// plates. `None` for other case types, which issue nothing.
pub async fn plan_permit(
    state: &AppState,
    case: &sportello_store::cases::CaseView,
) -> Result<Option<PermitPlan>, ApiError> {
    let case_type = case.summary.case_type.as_str();
    if !matches!(case_type, "ztl_permit" | "cude") {
        return Ok(None);
    }
    if let Some(number) = state
        .store
        .permit_issued_for_case(&case.summary.reference)
        .await?
    {
        return Ok(Some(PermitPlan::Done(number)));
    }
    let fields = &case.fields;
    let amends = fields
        .get("amends")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let amended = match &amends {
        Some(number) => Some(state.store.permit(number).await.map_err(|_| {
            ApiError::Refused(
                Refusal::new("refusal.permit_to_change_unknown").with("number", number),
            )
        })?),
        None => None,
    };
    let category_id = amended
        .as_ref()
        .map(|p| p.category.clone())
        .or_else(|| {
            fields
                .get("category")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .or_else(|| (case_type == "cude").then(|| "cude".to_owned()))
        .ok_or_else(|| ApiError::Refused(Refusal::new("refusal.no_category")))?;
    let category = state.policy.category(&category_id).ok_or_else(|| {
        ApiError::Refused(Refusal::new("refusal.category_unknown").with("category", &category_id))
    })?;
    // Plates as text ("AB123CD", or a list), or as {plate, country} for foreign ones.
    let texts: Vec<(String, Option<String>)> =
        match fields.get("plates").or_else(|| fields.get("plate")) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some((s.clone(), None)),
                    serde_json::Value::Object(o) => Some((
                        o.get("plate")?.as_str()?.to_owned(),
                        o.get("country").and_then(|c| c.as_str()).map(str::to_owned),
                    )),
                    _ => None,
                })
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split([',', ';'])
                .map(|p| (p.trim().to_owned(), None))
                .filter(|(p, _)| !p.is_empty())
                .collect(),
            _ => Vec::new(),
        };
    if texts.is_empty() {
        return Err(ApiError::Refused(Refusal::new("refusal.no_plates")));
    }
    if texts.len() > category.max_vehicles as usize {
        return Err(ApiError::Refused(
            Refusal::new("refusal.too_many_plates")
                .with("count", texts.len())
                .with("category", &category.name)
                .with("max", category.max_vehicles),
        ));
    }
    let mut plates = Vec::with_capacity(texts.len());
    for (text, country) in &texts {
        let plate = Plate::parse(text, country.as_deref()).map_err(|e| {
            ApiError::Refused(
                Refusal::new("refusal.plate_invalid")
                    .with("plate", text)
                    .with("reason", e),
            )
        })?;
        if !plates.contains(&plate) {
            plates.push(plate);
        }
    }
    let given: Vec<&str> = fields
        .get("documents")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = category
        .documents
        .iter()
        .map(String::as_str)
        .filter(|d| amended.is_none() && !given.contains(d))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Refused(
            Refusal::new("refusal.documents_missing")
                .with("category", &category.name)
                .named_list("documents", "document", missing),
        ));
    }
    let holder_fiscal_code = case
        .citizen
        .fiscal_code
        .clone()
        .ok_or_else(|| ApiError::Refused(Refusal::new("refusal.no_holder")))?;
    if let Some(permit) = amended {
        if permit.holder_fiscal_code != holder_fiscal_code {
            return Err(ApiError::Refused(
                Refusal::new("refusal.other_holder").with("number", &permit.number),
            ));
        }
        if !matches!(permit.state.as_str(), "active" | "suspended") {
            return Err(ApiError::Refused(
                Refusal::new("refusal.plates_frozen")
                    .with("number", &permit.number)
                    .named("state", "permit_state", &permit.state),
            ));
        }
        return Ok(Some(PermitPlan::ChangePlates {
            number: permit.number,
            plates,
        }));
    }
    let now = state.store.clock().now();
    // A renewal (fields.renews) continues the old permit: it starts when the old one ends
    // (now, if it has ended already), and the old permit's rows are no clash.
    let mut renews = fields
        .get("renews")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let mut valid_from = now.timestamp_millis();
    if let Some(old) = renews.as_mut() {
        let previous = state.store.permit(old).await.map_err(|_| {
            ApiError::Refused(Refusal::new("refusal.permit_to_renew_unknown").with("number", &*old))
        })?;
        // A former number (the old shape) names the permit by its number from now on.
        old.clone_from(&previous.number);
        if previous.holder_fiscal_code != holder_fiscal_code {
            return Err(ApiError::Refused(
                Refusal::new("refusal.other_holder").with("number", old),
            ));
        }
        if previous.state == "revoked" {
            return Err(ApiError::Refused(
                Refusal::new("refusal.revoked_not_renewed").with("number", old),
            ));
        }
        if let Some(end) = previous
            .plates
            .iter()
            .filter(|r| r.source != "temporary" && r.status == "active")
            .map(|r| r.valid_to)
            .max()
        {
            valid_from = valid_from.max(end);
        }
    }
    let valid_to = valid_from + i64::from(category.validity_days) * 86_400_000;
    if let Some(refusal) = state
        .store
        .plate_clash(
            &plates,
            &category.id,
            (valid_from, valid_to),
            renews.as_deref(),
        )
        .await?
    {
        return Err(ApiError::Refused(refusal));
    }
    Ok(Some(PermitPlan::Issue(
        sportello_store::permits::NewPermit {
            category: category.id.clone(),
            prefix: category.prefix.clone(),
            holder_name: case
                .citizen
                .name
                .clone()
                .unwrap_or_else(|| holder_fiscal_code.clone()),
            holder_fiscal_code,
            plates,
            valid_from,
            valid_to,
            policy_version: state.policy_version,
            renews,
        },
    )))
}

/// Carries out a planned permit — its rows first (idempotent per case, so a retry after
/// an interruption finds them) — and prints it: the PDF with the QR code of its
/// verification page, returned to be attached and registered outgoing together with the
/// case's change of status.
pub async fn carry_out(
    state: &AppState,
    reference: &str,
    plan: &PermitPlan,
    actor: &str,
) -> Result<OutgoingDocument, ApiError> {
    let number = match plan {
        PermitPlan::Issue(permit) => {
            state
                .store
                .issue_permit(reference, permit, actor)
                .await?
                .number
        }
        PermitPlan::ChangePlates { number, plates } => {
            state
                .store
                .change_permit_plates(number, plates, reference, actor, state.policy_version)
                .await?;
            number.clone()
        }
        PermitPlan::Done(number) => number.clone(),
    };
    let view = state.store.permit(&number).await?;
    let pdf = printed_permit(state, &view);
    let size = pdf.len() as u64;
    let sha256 = state.blobs.put(Bytes::from(pdf)).await?;
    Ok(OutgoingDocument {
        sha256,
        size,
        filename: format!("permesso-{number}.pdf"),
        media_type: "application/pdf".into(),
        register: Some((view.holder_name.clone(), format!("Permesso ZTL {number}"))),
    })
}

/// The printed permit: its current plates (the rows of its latest period, temporary
/// plates aside), zones by name, validity in the office's time zone, and the QR code.
fn printed_permit(state: &AppState, view: &sportello_store::permits::PermitView) -> Vec<u8> {
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&state.policy.timezone)
                    .format("%d/%m/%Y %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let category = state.policy.category(&view.category);
    let zones = category.map_or_else(String::new, |c| {
        c.zones
            .iter()
            .map(|z| {
                if z == "*" {
                    "tutte le zone".to_owned()
                } else {
                    state
                        .policy
                        .zones
                        .iter()
                        .find(|k| &k.id == z)
                        .map_or_else(|| z.clone(), |k| k.name.clone())
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let lasting: Vec<&sportello_store::permits::PermitPlate> = view
        .plates
        .iter()
        .filter(|r| r.source != "temporary")
        .collect();
    let end = lasting.iter().map(|r| r.valid_to).max().unwrap_or_default();
    let current: Vec<&&sportello_store::permits::PermitPlate> =
        lasting.iter().filter(|r| r.valid_to == end).collect();
    let start = current
        .iter()
        .map(|r| r.valid_from)
        .min()
        .unwrap_or_default();
    let mut plates: Vec<String> = Vec::new();
    for r in &current {
        if !plates.contains(&r.plate) {
            plates.push(r.plate.clone());
        }
    }
    let verify_url = format!(
        "{}/permits/v/{}",
        state.config.public_url.trim_end_matches('/'),
        view.verify_token.as_deref().unwrap_or_default()
    );
    sportello_paper::permit_pdf(&sportello_paper::PrintedPermit {
        number: &view.number,
        category: category.map_or(view.category.as_str(), |c| c.name.as_str()),
        holder: &view.holder_name,
        plates: &plates,
        zones: &zones,
        valid_from: &day(start),
        valid_to: &day(end),
        verify_url: &verify_url,
    })
}

/// Body of `POST /api/v1/permits/{number}/status`.
#[derive(Debug, Deserialize, ToSchema)]
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
    let case = open_renewal(&state, &user.login, number.trim(), body.channel, body.note).await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// Opens the renewal case of a permit, prefilled from it (the API's and the permits
/// page's renewal).
pub(crate) async fn open_renewal(
    state: &AppState,
    actor: &str,
    number: &str,
    channel: Option<String>,
    note: Option<String>,
) -> Result<sportello_store::cases::CaseView, ApiError> {
    let permit = state.store.permit(number).await?;
    if permit.state == "revoked" {
        return Err(ApiError::Refused(
            Refusal::new("refusal.revoked_not_renewed").with("number", &permit.number),
        ));
    }
    let category = state.policy.category(&permit.category).ok_or_else(|| {
        ApiError::Refused(
            Refusal::new("refusal.category_unknown").with("category", &permit.category),
        )
    })?;
    // The plates of the latest period (a plate replaced earlier is not renewed).
    let lasting = permit.plates.iter().filter(|r| r.source != "temporary");
    let last_end = lasting
        .clone()
        .map(|r| r.valid_to)
        .max()
        .unwrap_or_default();
    let mut plates: Vec<serde_json::Value> = Vec::new();
    for row in lasting.filter(|r| r.valid_to == last_end) {
        let plate = serde_json::json!({"plate": row.plate, "country": row.country});
        if !plates.contains(&plate) {
            plates.push(plate);
        }
    }
    let case_type = if category.person_bound {
        "cude"
    } else {
        "ztl_permit"
    };
    let request = crate::api::cases::CreateCaseBody {
        case_type: Some(case_type.into()),
        subject: Some(format!(
            "Rinnovo del permesso {} ({})",
            permit.number, category.name
        )),
        description: note,
        channel: channel.or_else(|| Some("counter".into())),
        citizen: Some(crate::api::cases::CitizenBody {
            fiscal_code: Some(permit.holder_fiscal_code.clone()),
            name: Some(permit.holder_name.clone()),
            ..Default::default()
        }),
        fields: Some(serde_json::json!({
            "category": category.id, "plates": plates, "renews": permit.number, "documents": [],
        })),
    };
    let case = state
        .store
        .create_case(request.validate(state, actor)?)
        .await?;
    Ok(case)
}

/// Adds a temporary plate to a person-bound permit for `from_ms..to_ms` under the policy
/// in force (the API's, the permit page's and the portal's way in).
pub(crate) async fn add_temporary(
    state: &AppState,
    number: &str,
    plate: Plate,
    (from_ms, to_ms): (i64, i64),
    actor: &str,
) -> Result<sportello_store::permits::PermitView, sportello_store::StoreError> {
    state
        .store
        .add_temporary_plate(
            &state.policy,
            number,
            &sportello_store::permits::TemporaryPlate {
                plate,
                from_ms,
                to_ms,
            },
            state.policy_version,
            actor,
        )
        .await
}
