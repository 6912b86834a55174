//! Writing to the citizen on their own channel (CONTRACT §5 `POST /api/v1/cases/{ref}/messages`):
//! the channel chosen from where the case came from and what the office knows of the
//! citizen (the choice explained), the text composed from a template of the occasion in
//! the citizen's language or written by the operator, previewed, then queued — registered
//! outgoing and journaled in one transaction — for the sending worker. A letter is printed
//! at once: the answer is its PDF, with the protocol number.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sportello_app::Lang;
use sportello_app::outbound::{self, ContactPreferences, MessageDraft};
use sportello_app::validate::{check_reference, given};
use sportello_domain::outbound::choice::{ChannelChoice, OutChannel, reason_text};
use sportello_domain::outbound::templates::TemplateKind;
use sportello_domain::roles::Permission;
use sportello_store::outbound::OutboundView;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};

/// Body of `POST /api/v1/cases/{ref}/messages` (and of its preview).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// `email`, `pec`, `fax`, `sms`, `letter`, `whatsapp` or `telegram`; the case's default
    /// channel when absent.
    #[schema(pattern = r"^(email|pec|fax|sms|letter|whatsapp|telegram)?$")]
    pub channel: Option<String>,
    /// Address, number or chat; the citizen's known one for the channel when absent.
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub to: Option<String>,
    /// Subject; the template's (or "Pratica REF") when absent. The case reference is
    /// always in it, so replies come back to the case.
    #[schema(max_length = 300)]
    pub subject: Option<String>,
    /// Text; the template's when absent.
    #[schema(max_length = 100000)]
    pub body: Option<String>,
    /// A template: `acknowledgement`, `integration_request`, `rejection_notice`,
    /// `approval`, `rejection`, `permit_issued`, `reminder`, `appointment`.
    #[schema(
        pattern = r"^(acknowledgement|integration_request|rejection_notice|approval|rejection|permit_issued|reminder|appointment)?$"
    )]
    pub template: Option<String>,
    /// `it` (default) or `en`.
    #[schema(pattern = r"^(it|en)?$")]
    pub lang: Option<String>,
    /// Sending the same key again returns the first message (also the `Idempotency-Key`
    /// header).
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub idempotency_key: Option<String>,
    /// The appointment an `appointment` message is about (set by the office's own code
    /// when it proposes one; otherwise the case's next appointment).
    #[serde(skip)]
    #[schema(ignore)]
    pub appointment: Option<i64>,
}

impl From<MessageBody> for MessageDraft {
    fn from(b: MessageBody) -> Self {
        MessageDraft {
            channel: b.channel,
            to: b.to,
            subject: b.subject,
            body: b.body,
            template: b.template,
            lang: b.lang,
            idempotency_key: b.idempotency_key,
            appointment: b.appointment,
        }
    }
}

/// The answer to a message sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMessage {
    /// The message's RFC 5322 Message-ID (without angle brackets): what replies name in
    /// `In-Reply-To` and PEC receipts in `X-Riferimento-Message-ID`.
    pub message_id: String,
    /// The message's number in the office (`/api/v1/outbound/{id}/pdf`, the case's
    /// `outbound` list).
    pub id: i64,
    /// `queued`, `sent`, `accepted`, `delivered`, `failed` or `printed`.
    pub status: String,
    /// Channel used.
    pub channel: String,
    /// Recipient.
    pub to: String,
    /// Protocol number (outgoing).
    pub protocol: Option<String>,
    /// The PDF of a letter or fax (`GET` it to print).
    pub pdf: Option<String>,
    /// Said when the message cannot leave yet (its channel is not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A preview: what would be sent, where, and why that channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
    /// The channels, the default and why.
    pub choice: ChoiceJson,
}

/// The channel choice, in words.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChoiceJson {
    /// The default channel.
    pub default: String,
    /// Why it is the default.
    pub reason: String,
    /// Every channel with its address, whether it can be used now and why.
    pub options: Vec<OptionJson>,
}

/// One channel of the choice.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptionJson {
    /// Channel.
    pub channel: String,
    /// The citizen's address for it.
    pub to: Option<String>,
    /// Whether it can be used (an address is known and the office has it configured).
    pub available: bool,
    /// Why (or why not).
    pub reason: String,
}

/// The choice in `tr`'s language.
pub fn choice_json(choice: &ChannelChoice, lang: &str) -> ChoiceJson {
    ChoiceJson {
        default: choice.default.as_str().to_owned(),
        reason: reason_text(choice.reason, lang).to_owned(),
        options: choice
            .options
            .iter()
            .map(|o| OptionJson {
                channel: o.channel.as_str().to_owned(),
                to: o.to.clone(),
                available: o.available,
                reason: reason_text(o.reason, lang).to_owned(),
            })
            .collect(),
    }
}

fn sent_json(view: &OutboundView) -> SentMessage {
    SentMessage {
        message_id: view.message_id.clone(),
        id: view.id,
        status: view.status.clone(),
        channel: view.channel.clone(),
        to: view.recipient.clone(),
        protocol: view.protocol.clone(),
        pdf: matches!(view.channel.as_str(), "letter" | "fax")
            .then(|| format!("/api/v1/outbound/{}/pdf", view.id)),
        warning: None,
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("application/pdf"))
}

/// `POST /api/v1/cases/{ref}/messages`: writes to the citizen; `{message_id, status}`
/// (a letter answers with its printable PDF unless JSON is asked with `Accept`).
#[utoipa::path(post, path = "/api/v1/cases/{reference}/messages", tag = "messages",
    params(("reference" = String, Path, description = "Case reference")),
    request_body = MessageBody, security(("bearer" = [])),
    responses((status = 201, body = SentMessage), (status = 200, body = SentMessage, description = "the same idempotency key again"),
              (status = 409, body = Problem, description = "The citizen cannot be reached on that channel: no address is known"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(reference): ApiPath<String>,
    ApiJson(mut body): ApiJson<MessageBody>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    check_reference(&reference)?;
    if body.idempotency_key.is_none() {
        body.idempotency_key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
    }
    let sent = outbound::send(&state, &reference, body.into(), &user.login).await?;
    let (view, created) = (sent.message, sent.created);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if view.channel == "letter" && !wants_json(&headers) {
        let pdf = outbound::message_pdf(&state, &view, sent.citizen_name.as_deref());
        let mut response = (status, pdf).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/pdf"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "inline; filename=\"lettera-{}-{}.pdf\"",
            view.case, view.id
        )) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        // The JSON answer's fields, for a client that takes the PDF.
        if let Ok(v) = header::HeaderValue::from_str(&view.message_id) {
            h.insert("x-message-id", v);
        }
        if let Ok(v) = header::HeaderValue::from_str(&view.status) {
            h.insert("x-message-status", v);
        }
        return Ok(response);
    }
    let mut answer = sent_json(&view);
    if let Some(channel) = OutChannel::parse(&view.channel)
        && !outbound::channel_configured(&state, channel)
        && view.status == "queued"
    {
        answer.warning = Some(format!(
            "the {0} channel is not configured (outbound.{0}): the message waits in the queue until it is",
            view.channel
        ));
    }
    Ok((status, Json(answer)).into_response())
}

/// `POST /api/v1/cases/{ref}/messages/preview`: what would be sent, to whom and why that
/// channel; nothing is stored.
#[utoipa::path(post, path = "/api/v1/cases/{reference}/messages/preview", tag = "messages",
    params(("reference" = String, Path, description = "Case reference")),
    request_body = MessageBody, security(("bearer" = [])),
    responses((status = 200, body = Preview), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn preview_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Json<Preview>, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    check_reference(&reference)?;
    let case = state.store.get_case(&reference).await?;
    let lang = body
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(Lang::It);
    // The API answers a name it does not know as the send would (the page offers only
    // known ones).
    if let Some(name) = given(&body.channel)
        && OutChannel::parse(&name).is_none_or(|c| c == OutChannel::Call)
    {
        return Err(ApiError::field(
            "channel",
            "one of email, pec, fax, sms, letter, whatsapp, telegram",
        ));
    }
    if let Some(name) = given(&body.template)
        && TemplateKind::parse(&name).is_none()
    {
        return Err(ApiError::field(
            "template",
            format!("unknown template {name:?}"),
        ));
    }
    let reach = outbound::reach(&state, &case).await?;
    let text = outbound::preview(&state, &case, &reach, &body.into(), lang).await?;
    let preview = Preview {
        channel: text.channel,
        to: text.to,
        subject: text.subject,
        body: text.body,
        choice: choice_json(&reach.choice, lang.code()),
    };
    state
        .store
        .record_access(&user.login, "read_contacts", &reference)
        .await?;
    Ok(Json(preview))
}

/// `GET /api/v1/cases/{ref}/outbound`: the messages sent to the case's citizen with their
/// delivery state.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/outbound", tag = "messages",
    params(("reference" = String, Path, description = "Case reference")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<OutboundView>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn case_outbound(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<Vec<OutboundView>>, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    check_reference(&reference)?;
    state.store.get_case(&reference).await?;
    let messages = state.store.outbound_of_case(&reference).await?;
    state
        .store
        .record_access(&user.login, "read_outbound", &reference)
        .await?;
    Ok(Json(messages))
}

/// `GET /api/v1/cases/{ref}/channels`: how the citizen can be reached, the default and why.
#[utoipa::path(get, path = "/api/v1/cases/{reference}/channels", tag = "messages",
    params(("reference" = String, Path, description = "Case reference"),
           ("lang" = Option<String>, Query, description = "it or en")),
    security(("bearer" = [])),
    responses((status = 200, body = ChoiceJson), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn case_channels(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    axum::extract::Query(query): axum::extract::Query<LangQuery>,
) -> Result<Json<ChoiceJson>, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    check_reference(&reference)?;
    let case = state.store.get_case(&reference).await?;
    let choice = outbound::reach(&state, &case).await?.choice;
    state
        .store
        .record_access(&user.login, "read_contacts", &reference)
        .await?;
    let lang = query
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(Lang::It);
    Ok(Json(choice_json(&choice, lang.code())))
}

/// `?lang=`.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    /// `it` or `en`.
    pub lang: Option<String>,
}

/// `GET /api/v1/outbound/{id}/pdf`: the printable PDF of a letter or fax.
#[utoipa::path(get, path = "/api/v1/outbound/{id}/pdf", tag = "messages",
    params(("id" = i64, Path, description = "Message id")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn outbound_pdf(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let user = caller.require(Permission::ReadCase)?;
    let pdf = outbound::printed_message(&state, id, &user.login).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// Body of `PUT /api/v1/cases/{ref}/contact`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The citizen's postal address (for letters), one line per line.
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub address: Option<String>,
    /// The channel the citizen prefers: `email`, `pec`, `fax`, `sms`, `whatsapp`,
    /// `telegram`, `letter` or `call`.
    #[schema(pattern = r"^(email|pec|fax|sms|whatsapp|telegram|letter|call)?$")]
    pub preferred_channel: Option<String>,
}

impl From<ContactBody> for ContactPreferences {
    fn from(b: ContactBody) -> Self {
        ContactPreferences {
            address: b.address,
            preferred_channel: b.preferred_channel,
        }
    }
}

/// `PUT /api/v1/cases/{ref}/contact`: the citizen's postal address and preferred channel;
/// answers with the channel choice as it is now.
#[utoipa::path(put, path = "/api/v1/cases/{reference}/contact", tag = "messages",
    params(("reference" = String, Path, description = "Case reference")),
    request_body = ContactBody, security(("bearer" = [])),
    responses((status = 409, body = Problem, description = "The case has no citizen"), (status = 200, body = ChoiceJson), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(reference): ApiPath<String>,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<Json<ChoiceJson>, ApiError> {
    let user = caller.require(Permission::SendMessage)?;
    check_reference(&reference)?;
    outbound::set_contact(&state, &reference, &body.into(), &user.login).await?;
    let case = state.store.get_case(&reference).await?;
    let choice = outbound::reach(&state, &case).await?.choice;
    state
        .store
        .record_access(&user.login, "read_contacts", &reference)
        .await?;
    Ok(Json(choice_json(&choice, "it")))
}
