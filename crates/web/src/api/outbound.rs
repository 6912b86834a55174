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
use bytes::Bytes;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sportello_domain::calendar::rome_date;
use sportello_domain::case::Channel;
use sportello_domain::outbound::choice::{
    ChannelChoice, Contacts, OutChannel, choose, reason_text,
};
use sportello_domain::outbound::templates::{TemplateContext, TemplateKind, render};
use sportello_domain::roles::Permission;
use sportello_store::cases::CaseView;
use sportello_store::outbound::{NewOutbound, OutboundView};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::cases::check_reference;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::i18n::{Lang, Tr};

/// Days the citizen has to send what an integration request asks for.
pub const INTEGRATION_DAYS: i64 = 30;
/// Days the citizen has to answer an art. 10-bis notice.
pub const NOTICE_DAYS: i64 = 10;

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

/// How the case's citizen can be reached, read once per request: their contacts, the
/// channel choice within what the office has configured, and their thread of messages
/// (for the reply headers).
pub(crate) struct Reach {
    /// What is known of the citizen's contacts.
    pub contacts: Contacts,
    /// The channels, the proposed one and why.
    pub choice: ChannelChoice,
    /// The citizen's messages on the case, address and preferred channel.
    pub facts: sportello_store::outbound::ContactFacts,
}

/// The [`Reach`] of a case's citizen.
pub(crate) async fn reach(state: &AppState, case: &CaseView) -> Result<Reach, ApiError> {
    let facts = state.store.contact_facts(&case.summary.reference).await?;
    let now = state.store.clock().now();
    let field = |key: &str| {
        case.fields
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let telegram_chat = facts.thread.iter().rev().find_map(|(channel, id, _)| {
        (channel == "telegram")
            .then(|| id.split(':').nth(1).map(str::to_owned))
            .flatten()
    });
    let whatsapp_window_open = facts
        .thread
        .iter()
        .any(|(channel, _, at)| channel == "whatsapp" && now - *at < Duration::hours(24));
    let contacts = Contacts {
        email: case.citizen.email.clone(),
        pec: case.citizen.pec.clone(),
        mobile: case.citizen.phone.clone(),
        fax: case.citizen.fax.clone(),
        postal_address: facts.address.clone().or_else(|| field("address")),
        telegram_chat,
        whatsapp_window_open,
        whatsapp_template_configured: state.config.outbound.whatsapp.template_name.is_some(),
        preferred: facts
            .preferred_channel
            .as_deref()
            .and_then(OutChannel::parse),
    };
    let channel: Channel = case.summary.channel.parse().unwrap_or(Channel::Web);
    let choice = choose(channel, &contacts).within(|c| channel_configured(state, c));
    Ok(Reach {
        contacts,
        choice,
        facts,
    })
}

/// Whether the office can send on `channel` (a letter is printed, a call is made by hand).
pub(crate) fn channel_configured(state: &AppState, channel: OutChannel) -> bool {
    use sportello_outbound::Channel as C;
    match channel {
        OutChannel::Letter | OutChannel::Call => true,
        OutChannel::Email => state.transports.is_configured(C::Email),
        OutChannel::Pec => state.transports.is_configured(C::Pec),
        OutChannel::Fax => state.transports.is_configured(C::Fax),
        OutChannel::Sms => state.transports.is_configured(C::Sms),
        OutChannel::Whatsapp => state.transports.is_configured(C::Whatsapp),
        OutChannel::Telegram => state.transports.is_configured(C::Telegram),
    }
}

/// The choice in `tr`'s language.
pub(crate) fn choice_json(choice: &ChannelChoice, lang: &str) -> ChoiceJson {
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

/// The occasion's facts a template may say, from the case (and, for a message caused by
/// an action, what that action says: the missing documents, the reasons).
pub(crate) async fn template_context(
    state: &AppState,
    case: &CaseView,
    lang: Lang,
    missing: Option<&[String]>,
    reasons: Option<&[String]>,
) -> TemplateContext {
    let tr = Tr { lang };
    let today = rome_date(state.store.clock().now());
    let date = |rfc: &str| {
        chrono::DateTime::parse_from_rfc3339(rfc)
            .ok()
            .map(|t| t.date_naive())
    };
    // The last journal entry of an action, for what it said and when.
    let last_action = |name: &str| {
        case.timeline.iter().rev().find(|e| {
            e.kind == "action" && e.detail.get("action").and_then(|a| a.as_str()) == Some(name)
        })
    };
    let list = |entry: Option<&sportello_store::cases::EventView>, key: &str| -> Vec<String> {
        entry
            .and_then(|e| e.detail.get(key))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(|s| tr.name("document", s)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let integration = last_action("request_integration");
    let notice = last_action("notify_rejection");
    let missing = match missing {
        Some(m) => m.iter().map(|s| tr.name("document", s)).collect(),
        None => list(integration, "missing"),
    };
    let reasons = match reasons {
        Some(r) => r.to_vec(),
        None => list(last_action("reject").or(notice), "reasons"),
    };
    let answer_by = match case.summary.status.as_str() {
        _ if !missing.is_empty() && integration.is_none() => {
            Some(today + Duration::days(INTEGRATION_DAYS))
        }
        "waiting_citizen" => integration
            .and_then(|e| date(&e.at))
            .map(|d| d + Duration::days(INTEGRATION_DAYS)),
        "rejection_notice" => notice
            .and_then(|e| date(&e.at))
            .map(|d| d + Duration::days(NOTICE_DAYS)),
        _ if !reasons.is_empty() => Some(today + Duration::days(NOTICE_DAYS)),
        _ => None,
    };
    let permit = state
        .store
        .permit_issued_for_case(&case.summary.reference)
        .await
        .ok()
        .flatten();
    let permit_valid_to = match &permit {
        Some(number) => state.store.permit(number).await.ok().and_then(|p| {
            p.plates
                .iter()
                .map(|r| r.valid_to)
                .max()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| rome_date(t) - Duration::days(1))
        }),
        None => None,
    };
    let appointment = match state
        .store
        .next_appointment_of_case(&case.summary.reference)
        .await
    {
        Ok(Some((at, place))) => Some(appointment_words(at, &place, lang)),
        _ => None,
    };
    let office = &state.config.office;
    TemplateContext {
        reference: case.summary.reference.clone(),
        case_type: case.summary.case_type.clone(),
        case_type_name: tr.name("case_type", &case.summary.case_type),
        citizen_name: case.citizen.name.clone(),
        office_name: format!("{} – {}", office.name, office.authority),
        received_on: date(&case.summary.received_at).unwrap_or(today),
        due_on: date(&case.summary.due_at).or_else(|| {
            NaiveDate::parse_from_str(case.summary.due_at.get(..10).unwrap_or(""), "%Y-%m-%d").ok()
        }),
        term_days: Some(case.summary.sla.term_days),
        missing,
        reasons,
        answer_by,
        permit_number: permit,
        permit_valid_to,
        appointment,
        status_link: None,
        protocol: case.summary.protocol.clone(),
    }
}

/// When and where an appointment is, as a message says it.
fn appointment_words(at: chrono::DateTime<chrono::Utc>, place: &str, lang: Lang) -> String {
    let local = at.with_timezone(&chrono_tz::Europe::Rome);
    let (day, time) = (local.format("%d/%m/%Y"), local.format("%H:%M"));
    match lang {
        Lang::It => format!("{day}, ore {time}, {place}"),
        Lang::En => format!("{day} at {time}, {place}"),
    }
}

/// The domain used in our Message-IDs: `outbound.message_id_domain`, else the domain of
/// the e-mail sender address.
fn message_id_domain(state: &AppState) -> String {
    let out = &state.config.outbound;
    out.message_id_domain
        .clone()
        .or_else(|| {
            out.email
                .from
                .as_deref()
                .or(out.pec.from.as_deref())
                .and_then(|f| f.rsplit('@').next())
                .map(|d| d.trim_end_matches('>').to_owned())
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "sportello.invalid".into())
}

/// A new Message-ID for a message of `reference`.
pub(crate) fn new_message_id(state: &AppState, reference: &str) -> String {
    format!(
        "sportello.{}.{:016x}@{}",
        reference.to_ascii_lowercase(),
        rand::random::<u64>(),
        message_id_domain(state)
    )
}

/// Composes a message: the channel (asked, or the default), its recipient, the text from
/// the template or the operator, the threading headers; stores the text as sent (its hash
/// is registered). `missing`/`reasons` come from the action that causes the message.
pub(crate) async fn compose(
    state: &AppState,
    case: &CaseView,
    reach: &Reach,
    body: &MessageBody,
    missing: Option<&[String]>,
    reasons: Option<&[String]>,
) -> Result<NewOutbound, ApiError> {
    let choice = &reach.choice;
    let channel = match body
        .channel
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(name) => match OutChannel::parse(name) {
            Some(OutChannel::Call) | None => {
                return Err(ApiError::field(
                    "channel",
                    "one of email, pec, fax, sms, letter, whatsapp, telegram",
                ));
            }
            Some(c) => c,
        },
        None => choice.default,
    };
    // What the case's citizen can be reached by is the case's state, not the request's
    // shape: a 409, like any other "not possible now".
    if channel == OutChannel::Call {
        return Err(ApiError::Conflict(
            "the citizen has no channel the office can write to: call them back (the call-back queue)"
                .into(),
        ));
    }
    // A channel not configured yet still takes the message: it waits in the queue (the
    // API says so) until the channel is configured or its attempts run out.
    let to = given(&body.to)
        .or_else(|| choice.option(channel).and_then(|o| o.to.clone()))
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "no {} address is known for this citizen: give one in 'to'",
                channel.as_str()
            ))
        })?;
    check_recipient(channel, &to)?;
    let lang = body
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(Lang::It);
    let reference = case.summary.reference.clone();
    let rendered = match body
        .template
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(name) => {
            let kind = TemplateKind::parse(name)
                .ok_or_else(|| ApiError::field("template", format!("unknown template {name:?}")))?;
            let mut ctx = template_context(state, case, lang, missing, reasons).await;
            if let Some(id) = body.appointment
                && let Ok(a) = state.store.appointment(id).await
                && let Ok(at) = chrono::DateTime::parse_from_rfc3339(&a.starts_at)
            {
                ctx.appointment = Some(appointment_words(at.to_utc(), &a.place, lang));
            }
            let link = crate::pages::portal::private_link(state, &reference).await;
            ctx.status_link = Some(link).filter(|l| !l.is_empty());
            Some(
                render(kind, lang.code(), channel.length(), &ctx)
                    .map_err(|e| ApiError::field("template", e.to_string()))?,
            )
        }
        None => None,
    };
    let text = body
        .body
        .as_deref()
        .filter(|b| !b.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| rendered.as_ref().map(|r| r.body.clone()))
        .ok_or_else(|| ApiError::field("body", "write the text, or choose a template"))?;
    if text.len() > 100_000 {
        return Err(ApiError::field("body", "longer than 100,000 characters"));
    }
    // One chat message, never a split one (a retry of a split message would repeat its
    // first parts): subject and text within the apps' 4,096 characters.
    if matches!(channel, OutChannel::Whatsapp | OutChannel::Telegram)
        && text.encode_utf16().count() + 300 > 4096
    {
        return Err(ApiError::field(
            "body",
            "too long for one WhatsApp or Telegram message (about 3,800 characters): shorten it, or write by e-mail or letter",
        ));
    }
    let mut subject = body
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| rendered.as_ref().map(|r| r.subject.clone()))
        .unwrap_or_else(|| format!("Pratica {reference}"));
    if !subject.contains(&reference) {
        subject = format!("[{reference}] {subject}");
    }
    let subject: String = subject
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    // Threading: the citizen's last message on this channel's kind.
    let thread: Vec<String> = reach
        .facts
        .thread
        .iter()
        .filter(|(c, _, _)| matches!(c.as_str(), "email" | "pec" | "fax"))
        .map(|(_, id, _)| id.clone())
        .collect();
    let message_id = new_message_id(state, &reference);
    let whatsapp_template = channel == OutChannel::Whatsapp && !reach.contacts.whatsapp_window_open;
    let canonical = format!(
        "Channel: {}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{message_id}>\n\n{text}",
        channel.as_str()
    );
    let content_sha256 = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    state
        .blobs
        .put(Bytes::from(canonical))
        .await
        .map_err(|e| ApiError::Internal(format!("message text not stored: {e}")))?;
    let new = NewOutbound {
        channel: channel.as_str().to_owned(),
        recipient: to,
        subject,
        body: text,
        template: body.template.clone().filter(|t| !t.trim().is_empty()),
        lang: lang.code().to_owned(),
        idempotency_key: body.idempotency_key.clone().unwrap_or_default(),
        message_id,
        in_reply_to: thread.last().cloned(),
        references: thread,
        attachments: Vec::new(),
        with_outgoing_documents: false,
        whatsapp_template,
        content_sha256,
        printed: channel == OutChannel::Letter,
        protocol_in_subject: false,
        flag: None,
    };
    Ok(new)
}

/// A recipient that cannot be one: clear words rather than a failed send later.
fn check_recipient(channel: OutChannel, to: &str) -> Result<(), ApiError> {
    let bad = |why: &str| Err(ApiError::field("to", why.to_owned()));
    if to.chars().any(|c| c.is_control() && c != '\n') || to.len() > 500 {
        return bad("contains control characters or is too long");
    }
    use crate::api::cases::{is_email, is_phone};
    match channel {
        OutChannel::Email | OutChannel::Pec if !is_email(to) => bad("not an e-mail address"),
        OutChannel::Sms | OutChannel::Whatsapp | OutChannel::Fax if !is_phone(to) => {
            bad("not a telephone number")
        }
        _ => Ok(()),
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

/// The PDF of a letter or fax message.
/// `citizen` is the name printed above a letter's address.
pub(crate) fn message_pdf(state: &AppState, view: &OutboundView, citizen: Option<&str>) -> Vec<u8> {
    let recipient =
        sportello_outbound::letter::recipient_lines(&view.channel, citizen, &view.recipient);
    sportello_outbound::letter::message_pdf(
        &state.config.office,
        &sportello_outbound::letter::PrintedMessage {
            reference: &view.case,
            recipient: &recipient,
            protocol: view.protocol.as_deref(),
            date: &sportello_outbound::letter::printed_date(&view.created_at),
            subject: &view.subject,
            body: &view.body,
        },
    )
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
    if let Some(key) = &body.idempotency_key
        && (key.chars().count() > 200 || key.chars().any(char::is_control))
    {
        return Err(ApiError::field(
            "idempotency_key",
            "at most 200 printable characters",
        ));
    }
    // The caller's key is theirs: scoped to the case so two cases cannot collide.
    body.idempotency_key = body
        .idempotency_key
        .take()
        .map(|k| format!("api:{reference}:{k}"))
        .or_else(|| Some(format!("api:{reference}:{:032x}", rand::random::<u128>())));
    let case = state.store.get_case(&reference).await?;
    let reach = reach(&state, &case).await?;
    let new = compose(&state, &case, &reach, &body, None, None).await?;
    let (view, created) = state
        .store
        .queue_message(&reference, &new, &user.login)
        .await?;
    state.outbound_wakeup.notify_one();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if view.channel == "letter" && !wants_json(&headers) {
        let pdf = message_pdf(&state, &view, case.citizen.name.as_deref());
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
        && !channel_configured(&state, channel)
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
    let reach = reach(&state, &case).await?;
    let preview = preview_of(&state, &case, &reach, &body, lang).await?;
    state
        .store
        .record_access(&user.login, "read_contacts", &reference)
        .await?;
    Ok(Json(preview))
}

/// A preview without storing anything (the page and the API share it).
pub(crate) async fn preview_of(
    state: &AppState,
    case: &CaseView,
    reach: &Reach,
    body: &MessageBody,
    lang: Lang,
) -> Result<Preview, ApiError> {
    let choice = &reach.choice;
    let channel = body
        .channel
        .as_deref()
        .and_then(OutChannel::parse)
        .unwrap_or(choice.default);
    let rendered = match body.template.as_deref().and_then(TemplateKind::parse) {
        Some(kind) => {
            let mut ctx = template_context(state, case, lang, None, None).await;
            // The private link is made when the message is sent, not for a preview.
            ctx.status_link = Some(format!(
                "{}/stato/…",
                state.config.public_url.trim_end_matches('/')
            ));
            Some(
                render(kind, lang.code(), channel.length(), &ctx)
                    .map_err(|e| ApiError::field("template", e.to_string()))?,
            )
        }
        None => None,
    };
    let (template_subject, template_body) = rendered.map(|r| (r.subject, r.body)).unzip();
    Ok(Preview {
        channel: channel.as_str().to_owned(),
        to: given(&body.to)
            .or_else(|| choice.option(channel).and_then(|o| o.to.clone()))
            .unwrap_or_default(),
        subject: given(&body.subject)
            .or(template_subject)
            .unwrap_or_else(|| format!("Pratica {}", case.summary.reference)),
        body: given(&body.body).or(template_body).unwrap_or_default(),
        choice: choice_json(choice, lang.code()),
    })
}

/// A field the caller filled in (trimmed), `None` when absent or blank.
pub(crate) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
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
    let choice = reach(&state, &case).await?.choice;
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
    let view = state.store.outbound_message(id).await?;
    if !matches!(view.channel.as_str(), "letter" | "fax") {
        return Err(ApiError::NotFound(format!(
            "message {id} is a {} message: it has no PDF",
            view.channel
        )));
    }
    state
        .store
        .record_access(&user.login, "read_outbound", &view.case)
        .await?;
    // A reprint: the citizen's name above a letter's address.
    let name = match view.channel.as_str() {
        "letter" => state.store.get_case(&view.case).await?.citizen.name,
        _ => None,
    };
    let pdf = message_pdf(&state, &view, name.as_deref());
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// What an action says to the citizen: the messages to queue with it, or a call to make.
#[derive(Debug, Default)]
pub struct Notice {
    /// Messages queued in the action's transaction.
    pub messages: Vec<NewOutbound>,
    /// `(phone, script)` when the citizen can only be called.
    pub call: Option<(String, String)>,
}

/// The message an action causes: its template on the citizen's default channel (or the
/// one asked). Nothing when the action tells the citizen nothing, or the channel is not
/// configured; a call-back when the case waits on a citizen the office can only call.
pub(crate) async fn notice_of_action(
    state: &AppState,
    reference: &str,
    action: &sportello_domain::workflow::Action,
    channel: Option<&str>,
    lang: Option<&str>,
) -> Result<Notice, ApiError> {
    use sportello_domain::workflow::Action;
    let case = state.store.get_case(reference).await?;
    let permit_type = matches!(case.summary.case_type.as_str(), "ztl_permit" | "cude");
    let (kind, missing, reasons, waits) = match action {
        Action::RequestIntegration { missing } => (
            TemplateKind::IntegrationRequest,
            Some(missing.as_slice()),
            None,
            true,
        ),
        Action::NotifyRejection { reasons } => (
            TemplateKind::RejectionNotice,
            None,
            Some(reasons.as_slice()),
            true,
        ),
        Action::Reject { reasons } | Action::Confirm { reasons } => (
            TemplateKind::Rejection,
            None,
            Some(reasons.as_slice()),
            false,
        ),
        Action::Approve if !permit_type => (TemplateKind::Approval, None, None, false),
        Action::Annul { .. } => (TemplateKind::Approval, None, None, false),
        Action::Issue if permit_type && case.summary.status == "approved" => {
            (TemplateKind::PermitIssued, None, None, false)
        }
        _ => return Ok(Notice::default()),
    };
    let body = MessageBody {
        channel: channel.map(str::to_owned),
        template: Some(kind.as_str().to_owned()),
        lang: lang.map(str::to_owned),
        ..MessageBody::default()
    };
    let reach = reach(state, &case).await?;
    // A channel the operator asked for is used, or refused with the reason (compose).
    if channel.is_none() && !reach.choice.can_write() {
        if waits && let Some(phone) = case.citizen.phone.clone() {
            let ctx = template_context(state, &case, Lang::It, missing, reasons).await;
            let what = if ctx.missing.is_empty() {
                ctx.reasons
            } else {
                ctx.missing
            };
            let headline = match kind {
                TemplateKind::IntegrationRequest => "mancano documenti",
                _ => "preavviso di rigetto (art. 10-bis), 10 giorni per le osservazioni",
            };
            return Ok(Notice {
                messages: Vec::new(),
                call: Some((phone, call_script(reference, headline, &what))),
            });
        }
        return Ok(Notice::default());
    }
    match compose(state, &case, &reach, &body, missing, reasons).await {
        Ok(mut message) => {
            message.with_outgoing_documents = kind == TemplateKind::PermitIssued;
            Ok(Notice {
                messages: vec![message],
                call: None,
            })
        }
        // The operator asked for that channel: say why it cannot be used.
        Err(e) if channel.is_some() => Err(e),
        Err(e) => {
            tracing::warn!(%reference, error = %e.detail(), "no message for the action");
            Ok(Notice::default())
        }
    }
}

/// What an operator reads before calling a citizen: the case, why, and the list.
fn call_script(reference: &str, headline: &str, items: &[String]) -> String {
    let mut script = format!("Pratica {reference}: {headline}");
    for item in items {
        script.push_str("\n- ");
        script.push_str(item);
    }
    script
}

/// The contact centre's minute: PEC messages without a delivery receipt in time are
/// flagged; reminders go out before the integration deadline; cases whose citizen has not
/// answered for `outbound.callback_after_days` become call-back tasks.
pub async fn contact_tick(state: &AppState) {
    let out = &state.config.outbound;
    if out.acknowledge {
        acknowledge_new_cases(state).await;
    }
    match state
        .store
        .flag_undelivered_pec(i64::from(out.pec_delivery_hours))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(messages = n, "PEC messages without a delivery receipt"),
        Err(e) => tracing::warn!(error = %e, "PEC delivery check failed"),
    }
    let today = rome_date(state.store.clock().now());
    let started_by = today - Duration::days(INTEGRATION_DAYS - i64::from(out.reminder_days_before));
    match state.store.cases_due_for_reminder(started_by).await {
        Ok(due) => {
            for (reference, day) in due {
                if let Err(e) = send_reminder(state, &reference, &day).await {
                    tracing::warn!(%reference, error = %e.detail(), "reminder not queued");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reminders not checked"),
    }
    match state
        .store
        .cases_without_answer(i64::from(out.callback_after_days))
        .await
    {
        Ok(cases) => {
            for (reference, phone, missing) in cases {
                let script = call_script(&reference, "nessuna risposta dal cittadino.", &missing);
                if let Err(e) = state
                    .store
                    .open_call_task(&reference, "no_answer", Some(&phone), &script, "system")
                    .await
                {
                    tracing::warn!(%reference, error = %e, "call-back task not opened");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "unanswered cases not checked"),
    }
}

/// The acknowledgement of receipt (art. 8 L. 241/1990: the reference, the office, the
/// legal term) for the cases of the last day, on each citizen's default channel, once
/// (`ack:{reference}`). Nothing happens while the office has no channel to write on; a
/// citizen the office cannot write to is journaled once (`acknowledgement_skipped`).
async fn acknowledge_new_cases(state: &AppState) {
    use sportello_outbound::Channel as C;
    let any = [C::Email, C::Pec, C::Fax, C::Sms, C::Whatsapp, C::Telegram]
        .into_iter()
        .any(|c| state.transports.is_configured(c));
    if !any {
        return;
    }
    let since = state.store.clock().now() - Duration::days(1);
    let cases = match state.store.cases_to_acknowledge(since, 200).await {
        Ok(cases) => cases,
        Err(e) => {
            tracing::warn!(error = %e, "cases to acknowledge not read");
            return;
        }
    };
    for reference in cases {
        let result = match write_occasion(
            state,
            &reference,
            TemplateKind::Acknowledgement,
            &format!("ack:{reference}"),
            "system",
            None,
            None,
        )
        .await
        {
            Ok(Written::Queued) => Ok(()),
            Ok(Written::Unreachable(_)) => state
                .store
                .acknowledgement_skipped(&reference, "no channel the office can write to")
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%reference, error = %e.detail(), "acknowledgement not queued");
        }
    }
}

/// Queues the reminder of an integration request on the citizen's default channel, once
/// per request (`reminder:{reference}:{day}`); a citizen the office cannot write to gets
/// a call instead (and the case leaves the reminders' list while the call is open).
async fn send_reminder(state: &AppState, reference: &str, day: &str) -> Result<(), ApiError> {
    let written = write_occasion(
        state,
        reference,
        TemplateKind::Reminder,
        &format!("reminder:{reference}:{day}"),
        "system",
        None,
        None,
    )
    .await?;
    if let Written::Unreachable(case) = written
        && let Some(phone) = case.citizen.phone.as_deref()
    {
        let ctx = template_context(state, &case, Lang::It, None, None).await;
        let headline = "promemoria, il termine per le integrazioni è vicino.";
        let script = call_script(reference, headline, &ctx.missing);
        state
            .store
            .open_call_task(
                reference,
                "no_digital_contact",
                Some(phone),
                &script,
                "system",
            )
            .await?;
    }
    Ok(())
}

/// What [`write_occasion`] did.
pub(crate) enum Written {
    /// The message is queued (or was, under the same key).
    Queued,
    /// The office cannot write to the citizen: nothing queued; the case, for what comes
    /// instead.
    Unreachable(Box<CaseView>),
}

/// Writes `kind`'s template to the case's citizen on `channel` (used or refused with the
/// reason, as [`compose`] does), else on the default channel, once per `key`.
pub(crate) async fn write_occasion(
    state: &AppState,
    reference: &str,
    kind: TemplateKind,
    key: &str,
    actor: &str,
    appointment: Option<i64>,
    channel: Option<OutChannel>,
) -> Result<Written, ApiError> {
    let case = state.store.get_case(reference).await?;
    let reach = reach(state, &case).await?;
    if channel.is_none() && !reach.choice.can_write() {
        return Ok(Written::Unreachable(Box::new(case)));
    }
    let body = MessageBody {
        channel: channel.map(|c| c.as_str().to_owned()),
        template: Some(kind.as_str().to_owned()),
        idempotency_key: Some(key.to_owned()),
        appointment,
        ..MessageBody::default()
    };
    let message = compose(state, &case, &reach, &body, None, None).await?;
    state
        .store
        .queue_message(reference, &message, actor)
        .await?;
    state.outbound_wakeup.notify_one();
    Ok(Written::Queued)
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

/// Records how the citizen wants to be reached (the page and the API share it).
pub(crate) async fn set_contact(
    state: &AppState,
    reference: &str,
    body: &ContactBody,
    actor: &str,
) -> Result<(), ApiError> {
    let address = body
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if let Some(a) = address
        && (a.len() > 500 || a.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(ApiError::field(
            "address",
            "at most 500 printable characters",
        ));
    }
    let preferred = match body.preferred_channel.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(OutChannel::parse(name).ok_or_else(|| {
            ApiError::field(
                "preferred_channel",
                "one of email, pec, fax, sms, whatsapp, telegram, letter, call",
            )
        })?),
    };
    if address.is_none() && preferred.is_none() {
        return Err(ApiError::field(
            "address",
            "give an address or a preferred channel",
        ));
    }
    state
        .store
        .set_contact_preferences(reference, address, preferred.map(OutChannel::as_str), actor)
        .await?;
    Ok(())
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
    set_contact(&state, &reference, &body, &user.login).await?;
    let case = state.store.get_case(&reference).await?;
    let choice = reach(&state, &case).await?.choice;
    state
        .store
        .record_access(&user.login, "read_contacts", &reference)
        .await?;
    Ok(Json(choice_json(&choice, "it")))
}
