//! The endpoints of the remedy of errors: a contested transit or fine opens an SEG case,
//! and its evidence is read on one screen. What they do, and the annulment request the
//! `annul` action produces, is `sportello_app::remedy`'s.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sportello_app::remedy;
use sportello_domain::roles::Permission;
use sportello_store::permits::PermitView;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::cases::CitizenBody;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};

/// One contested passage, as the gate system recorded it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContestedTransit {
    /// The gate system's transit id.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub transit_id: String,
    /// The gate.
    #[schema(value_type = crate::vocabulary::GateId)]
    pub gate: String,
    /// RFC 3339 with offset.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Body of `POST /api/v1/transits/contest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContestBody {
    /// The plate fined.
    #[schema(pattern = r"^[ \t.\-]*([A-Za-z0-9][ \t.\-]*){1,12}$")]
    pub plate: String,
    /// Its country (default `IT`).
    #[schema(pattern = r"^([A-Za-z]{2})?$")]
    pub country: Option<String>,
    /// The passages contested (1 to 200).
    #[schema(min_items = 1, max_items = 200)]
    pub transits: Vec<ContestedTransit>,
    /// The fine (verbale) number, when there is one.
    #[schema(max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub fine: Option<String>,
    /// The permit the citizen says covered the passage.
    #[schema(max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub permit: Option<String>,
    /// What the citizen or the patrol says.
    #[schema(
        max_length = 20000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
    /// Where the report came from (default `web`; the police use `counter` or `pec`).
    #[schema(value_type = Option<crate::vocabulary::ChannelName>)]
    pub channel: Option<String>,
    /// The citizen, when known.
    pub citizen: Option<CitizenBody>,
}

/// What the reporter gets back: enough to follow the case, nothing of the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContestReceipt {
    /// The SEG case opened.
    pub reference: String,
    /// Its protocol number.
    pub protocol: Option<String>,
    /// Its legal due date.
    pub due_at: String,
}

/// `POST /api/v1/transits/contest`: opens an SEG case for contested transits or a fine,
/// from the portal's backend, the police or an operator. The transits are checked for
/// form (known gate, instant with offset) so the evidence can judge them.
#[utoipa::path(post, path = "/api/v1/transits/contest", tag = "ztl", request_body = ContestBody,
    security(("bearer" = [])),
    responses((status = 201, body = ContestReceipt), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn contest(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ContestBody>,
) -> Result<(StatusCode, Json<ContestReceipt>), ApiError> {
    let user = caller.require(Permission::ContestTransit)?;
    let case = remedy::contest(&state, body.into(), &user.login).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContestReceipt {
            reference: case.summary.reference,
            protocol: case.summary.protocol,
            due_at: case.summary.due_at,
        }),
    ))
}

/// One contested passage, judged again with everything the office knows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitEvidence {
    /// The transit id, as the gate system gave it.
    pub transit_id: String,
    /// The gate.
    pub gate: String,
    /// Its zone, when the gate is known.
    pub zone: Option<String>,
    /// The instant, as given.
    pub timestamp: String,
    /// Whether the zone was enforced at that time.
    pub zone_active: bool,
    /// The verdict today: `permit` (covered), `zone_not_active`, a violation reason, or
    /// `unreadable` when the transit cannot be judged.
    pub verdict: String,
    /// The permit that covered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
}

/// What a contested-fine (SEG) case needs on one screen.
#[derive(Debug, Serialize, ToSchema)]
pub struct Evidence {
    /// The plate, normalised.
    pub plate: String,
    /// Its country.
    pub country: String,
    /// Each contested transit, judged under the policy in force.
    pub transits: Vec<TransitEvidence>,
    /// Every permit that ever named the plate (temporary plates included), with its rows
    /// and history.
    pub permits: Vec<PermitView>,
    /// The policy version the verdicts were computed under.
    pub policy_version: Option<i64>,
}

impl From<remedy::Evidence> for Evidence {
    fn from(e: remedy::Evidence) -> Self {
        Evidence {
            plate: e.plate,
            country: e.country,
            transits: e
                .transits
                .into_iter()
                .map(|t| TransitEvidence {
                    transit_id: t.transit_id,
                    gate: t.gate,
                    zone: t.zone,
                    timestamp: t.timestamp,
                    zone_active: t.zone_active,
                    verdict: t.verdict,
                    permit: t.permit,
                })
                .collect(),
            permits: e.permits,
            policy_version: e.policy_version,
        }
    }
}

impl From<ContestBody> for remedy::Contest {
    fn from(b: ContestBody) -> Self {
        remedy::Contest {
            plate: b.plate,
            country: b.country,
            transits: b
                .transits
                .into_iter()
                .map(|t| remedy::ContestedTransit {
                    transit_id: t.transit_id,
                    gate: t.gate,
                    timestamp: t.timestamp,
                })
                .collect(),
            fine: b.fine,
            permit: b.permit,
            note: b.note,
            channel: b.channel,
            citizen: b.citizen.map(Into::into),
        }
    }
}

/// `GET /api/v1/cases/{ref}/evidence`: for a contested transit or fine (fields `plate`,
/// `country`, `transits: [{transit_id, gate, timestamp}]`), the verdict on each passage
/// today and every permit and temporary plate of that plate with its history — the
/// evidence to confirm or annul in one screen.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/evidence", tag = "ztl",
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, body = Evidence), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn evidence(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<Evidence>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let evidence = remedy::evidence(&state, &reference, &user.login).await?;
    Ok(Json(evidence.into()))
}
