//! Inbound channels over HTTP: WhatsApp and Telegram webhooks (authenticated by their
//! signatures, not by tokens), PBX call events and the CTI screen pop (tokens).
//! Authenticity is checked first; then the raw body is stored; then the pipeline runs.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sportello_domain::case::Reference;
use sportello_domain::roles::Permission;
use sportello_intake::{IntakeError, telegram, whatsapp};
use sportello_store::intake::{Inbound, IntakeOutcome};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use sportello_app::caller::{CallerCard, caller_card};
use sportello_app::validate::check_text;

/// What the pipeline did with each message of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundResults {
    /// One outcome per message, in order.
    pub results: Vec<IntakeOutcome>,
}

/// Case type of cases opened from messaging channels.
const MESSAGING_CASE_TYPE: &str = "ztl_permit";

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::NotAuthentic(why) => ApiError::NotAuthentic(why),
            IntakeError::NotConfigured(what) => ApiError::Forbidden(what),
            IntakeError::Malformed(msg) => ApiError::field("body", msg),
        }
    }
}

/// Stores the raw delivery, then runs every message through the pipeline.
async fn store_and_ingest(
    state: &AppState,
    body: Bytes,
    parse: impl FnOnce(&[u8], &str) -> Result<Vec<Inbound>, IntakeError>,
) -> Result<Json<InboundResults>, ApiError> {
    let raw_sha256 = state.blobs.put(body.clone()).await?;
    let messages = parse(&body, &raw_sha256)?;
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let outcome = state.store.ingest(message).await?;
        metrics::counter!("sportello_intake_total", "channel" => outcome.channel.clone(), "outcome" => outcome.outcome.clone())
            .increment(1);
        results.push(outcome);
    }
    Ok(Json(InboundResults { results }))
}

/// `GET /api/v1/inbound/whatsapp`: the subscription handshake.
#[utoipa::path(get, path = "/api/v1/inbound/whatsapp", tag = "inbound",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, description = "The challenge, echoed", body = String), (status = 403, body = Problem)))]
pub async fn whatsapp_handshake(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let configured = state
        .config
        .webhooks
        .whatsapp
        .verify_token
        .as_ref()
        .map(|s| s.expose());
    whatsapp::verify_handshake(
        query.get("hub.mode").map(String::as_str),
        query.get("hub.verify_token").map(String::as_str),
        query.get("hub.challenge").map(String::as_str),
        configured,
    )
    .map_err(|e| match e {
        IntakeError::NotConfigured(what) => ApiError::Forbidden(what),
        _ => ApiError::Forbidden("subscribe with this verify token"),
    })
}

/// `POST /api/v1/inbound/whatsapp`: a notification signed with `X-Hub-Signature-256`.
#[utoipa::path(post, path = "/api/v1/inbound/whatsapp", tag = "inbound",
    request_body(content = Object, description = "WhatsApp Business Cloud API notification"),
    responses((status = 200, body = InboundResults), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn whatsapp_notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<InboundResults>, ApiError> {
    let app_secret = state
        .config
        .webhooks
        .whatsapp
        .app_secret
        .as_ref()
        .map(|s| s.expose());
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    whatsapp::verify_signature(&body, signature, app_secret)?;
    let now = state.store.clock().now();
    store_and_ingest(&state, body, |b, sha| {
        whatsapp::parse_notification(b, sha, MESSAGING_CASE_TYPE, now)
    })
    .await
}

/// `POST /api/v1/inbound/telegram`: an `Update`, checked against the secret token header.
#[utoipa::path(post, path = "/api/v1/inbound/telegram", tag = "inbound",
    request_body(content = Object, description = "Telegram Bot API Update"),
    responses((status = 200, body = InboundResults), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn telegram_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<InboundResults>, ApiError> {
    let configured = state
        .config
        .webhooks
        .telegram
        .secret_token
        .as_ref()
        .map(|s| s.expose());
    let given = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok());
    telegram::verify_secret(given, configured)?;
    let now = state.store.clock().now();
    store_and_ingest(&state, body, |b, sha| {
        telegram::parse_update(b, sha, MESSAGING_CASE_TYPE, now)
    })
    .await
}

/// A call event from the PBX.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallEvent {
    /// The PBX's id of the call.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub call_id: String,
    /// `in` or `out`.
    #[schema(pattern = r"^(in|out)$")]
    pub direction: String,
    /// Calling number.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub from: String,
    /// Called number.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub to: String,
    /// Start (RFC 3339).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// End (RFC 3339).
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// The operator who answered.
    pub operator: Option<String>,
    /// The case it is about, when the operator said so.
    #[schema(pattern = r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{5}[1-9]$")]
    pub case: Option<String>,
    /// The operator's note.
    #[schema(pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$")]
    pub note: Option<String>,
}

/// Where a call was logged.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogged {
    /// The case whose timeline has the call (the given one, else the caller's latest open case).
    pub case: Option<String>,
}

/// `POST /api/v1/inbound/phone`: logs a call on the timeline.
#[utoipa::path(post, path = "/api/v1/inbound/phone", tag = "inbound", request_body = CallEvent,
    security(("bearer" = [])),
    responses((status = 201, body = CallLogged), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn phone_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(event): ApiJson<CallEvent>,
) -> Result<(StatusCode, Json<CallLogged>), ApiError> {
    let user = caller.require(Permission::PostInbound)?;
    let mut errors = Vec::new();
    if !matches!(event.direction.as_str(), "in" | "out") {
        errors.push(crate::error::FieldError {
            field: "direction".into(),
            message: "must be in or out".into(),
        });
    }
    for (field, value) in [
        ("call_id", Some(&event.call_id)),
        ("from", Some(&event.from)),
        ("to", Some(&event.to)),
        ("note", event.note.as_ref()),
    ] {
        if let Some(v) = value
            && let Err(e) =
                check_text(field, v, field == "note").map_err(crate::error::FieldError::from)
        {
            errors.push(e);
        }
    }
    for (field, value) in [
        ("started_at", Some(&event.started_at)),
        ("ended_at", event.ended_at.as_ref()),
    ] {
        if let Some(v) = value
            && chrono::DateTime::parse_from_rfc3339(v).is_err()
        {
            errors.push(crate::error::FieldError {
                field: field.into(),
                message: "must be an RFC 3339 instant with offset".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let case = match &event.case {
        Some(reference) if Reference::parse(reference).is_some() => Some(reference.clone()),
        Some(_) => return Err(ApiError::field("case", "is not a case reference")),
        None => {
            let number = if event.direction == "in" {
                &event.from
            } else {
                &event.to
            };
            state
                .store
                .lookup_caller(number)
                .await?
                .and_then(|(_, cases)| cases.into_iter().next())
        }
    };
    if let Some(reference) = &case {
        let detail = serde_json::to_value(&event).map_err(|e| ApiError::Internal(e.to_string()))?;
        state
            .store
            .record_call(reference, &user.login, &detail)
            .await?;
    }
    metrics::counter!("sportello_intake_total", "channel" => "phone", "outcome" => if case.is_some() { "logged" } else { "unmatched" })
        .increment(1);
    Ok((StatusCode::CREATED, Json(CallLogged { case })))
}

/// Query of the CTI look-up.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// The calling number, as the PBX gives it.
    #[param(
        required = true,
        pattern = r"^[^0-9\u0000-\u001F\u007F-\u009F]*([0-9][^0-9\u0000-\u001F\u007F-\u009F]*){6,}$"
    )]
    pub number: Option<String>,
}

/// `GET /api/v1/cti/lookup?number=`: who is calling, and their open cases.
#[utoipa::path(get, path = "/api/v1/cti/lookup", tag = "inbound", params(LookupQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CallerCard), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn cti_lookup(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<LookupQuery>,
) -> Result<Json<CallerCard>, ApiError> {
    let user = caller.require(Permission::LookupCaller)?;
    let number = query.number.unwrap_or_default();
    caller_card(&state, &user.login, &number)
        .await
        .map_err(ApiError::from)?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no citizen with that number".into()))
}

/// Query of the MTA pipe endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// The configured `[[mailbox]]` the message counts as coming from.
    #[param(value_type = Option<crate::vocabulary::MailboxName>)]
    pub mailbox: Option<String>,
}

/// `POST /api/v1/inbound/email`: one raw RFC 5322 message, as an MTA pipe delivers it.
#[utoipa::path(post, path = "/api/v1/inbound/email", tag = "inbound", params(EmailQuery),
    request_body(content = String, content_type = "message/rfc822", description = "The raw message"),
    security(("bearer" = [])),
    responses((status = 200, body = IntakeOutcome), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn email_pipe(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<EmailQuery>,
    body: Bytes,
) -> Result<Json<IntakeOutcome>, ApiError> {
    caller.require(Permission::PostInbound)?;
    if body.is_empty() {
        return Err(ApiError::field("body", "the message is empty"));
    }
    let src = sportello_intake::email::EmailSource::from_config(
        &state.config,
        query
            .mailbox
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty()),
        state.pec_trust_anchors.clone(),
    )
    .map_err(|e| ApiError::field("mailbox", e))?;
    let limits = sportello_intake::pipeline::Limits::from_config(&state.config);
    let outcome = sportello_intake::pipeline::ingest_email(
        &state.store,
        &state.blobs,
        body,
        "mta",
        &src,
        &state.ocr,
        limits,
    )
    .await?;
    metrics::counter!("sportello_intake_total", "channel" => outcome.channel.clone(), "outcome" => outcome.outcome.clone())
        .increment(1);
    Ok(Json(outcome))
}
