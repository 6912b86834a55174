//! Writing to the citizen on their own channel: the channel chosen from where the case
//! came from and what the office knows of the citizen (the choice explained), the text
//! composed from a template of the occasion in the citizen's language or written by the
//! operator, previewed, then queued — registered outgoing and journaled in one
//! transaction — for the sending worker; the notices the workflow's actions cause.

use bytes::Bytes;
use chrono::{Duration, NaiveDate};
use sha2::Digest;
use sportello_domain::calendar::rome_date;
use sportello_domain::case::Channel;
use sportello_domain::outbound::choice::{ChannelChoice, Contacts, OutChannel, choose};
use sportello_domain::outbound::templates::{TemplateContext, TemplateKind, render};
use sportello_domain::workflow::{INTEGRATION_DAYS, NOTICE_DAYS};
use sportello_store::cases::CaseView;
use sportello_store::outbound::{NewOutbound, OutboundView};

use crate::validate::{check_reference, given, is_email, is_phone};
use crate::{App, AppError, Lang};

/// A message to write, as the operator (or the office's own code) asks it.
#[derive(Debug, Clone, Default)]
pub struct MessageDraft {
    /// `email`, `pec`, `fax`, `sms`, `letter`, `whatsapp` or `telegram`; the case's default
    /// channel when absent.
    pub channel: Option<String>,
    /// Address, number or chat; the citizen's known one for the channel when absent.
    pub to: Option<String>,
    /// Subject; the template's (or "Pratica REF") when absent. The case reference is
    /// always in it, so replies come back to the case.
    pub subject: Option<String>,
    /// Text; the template's when absent.
    pub body: Option<String>,
    /// A template of the occasion (`acknowledgement`, `integration_request`, …).
    pub template: Option<String>,
    /// `it` (default) or `en`.
    pub lang: Option<String>,
    /// Writing the same key again returns the first message.
    pub idempotency_key: Option<String>,
    /// The appointment an `appointment` message is about (otherwise the case's next one).
    pub appointment: Option<i64>,
}

/// How the case's citizen can be reached, read once per request: their contacts, the
/// channel choice within what the office has configured, and their thread of messages
/// (for the reply headers).
pub struct Reach {
    /// What is known of the citizen's contacts.
    pub contacts: Contacts,
    /// The channels, the proposed one and why.
    pub choice: ChannelChoice,
    /// The citizen's messages on the case, address and preferred channel.
    pub facts: sportello_store::outbound::ContactFacts,
}

/// The [`Reach`] of a case's citizen.
pub async fn reach(app: &App, case: &CaseView) -> Result<Reach, AppError> {
    let facts = app.store.contact_facts(&case.summary.reference).await?;
    let now = app.store.clock().now();
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
        whatsapp_template_configured: app.config.outbound.whatsapp.template_name.is_some(),
        preferred: facts
            .preferred_channel
            .as_deref()
            .and_then(OutChannel::parse),
    };
    let channel: Channel = case.summary.channel.parse().unwrap_or(Channel::Web);
    let choice = choose(channel, &contacts).within(|c| channel_configured(app, c));
    Ok(Reach {
        contacts,
        choice,
        facts,
    })
}

/// Whether the office can send on `channel` (a letter is printed, a call is made by hand).
pub fn channel_configured(app: &App, channel: OutChannel) -> bool {
    use sportello_outbound::Channel as C;
    match channel {
        OutChannel::Letter | OutChannel::Call => true,
        OutChannel::Email => app.transports.is_configured(C::Email),
        OutChannel::Pec => app.transports.is_configured(C::Pec),
        OutChannel::Fax => app.transports.is_configured(C::Fax),
        OutChannel::Sms => app.transports.is_configured(C::Sms),
        OutChannel::Whatsapp => app.transports.is_configured(C::Whatsapp),
        OutChannel::Telegram => app.transports.is_configured(C::Telegram),
    }
}

/// The occasion's facts a template may say, from the case (and, for a message caused by
/// an action, what that action says: the missing documents, the reasons).
pub async fn template_context(
    app: &App,
    case: &CaseView,
    lang: Lang,
    missing: Option<&[String]>,
    reasons: Option<&[String]>,
) -> TemplateContext {
    let name = |group: &str, id: &str| app.names.name(lang, group, id);
    let today = rome_date(app.store.clock().now());
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
                    .filter_map(|v| v.as_str().map(|s| name("document", s)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let integration = last_action("request_integration");
    let notice = last_action("notify_rejection");
    let missing = match missing {
        Some(m) => m.iter().map(|s| name("document", s)).collect(),
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
    let permit = app
        .store
        .permit_issued_for_case(&case.summary.reference)
        .await
        .ok()
        .flatten();
    let permit_valid_to = match &permit {
        Some(number) => app.store.permit(number).await.ok().and_then(|p| {
            p.plates
                .iter()
                .map(|r| r.valid_to)
                .max()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| rome_date(t) - Duration::days(1))
        }),
        None => None,
    };
    let appointment = match app
        .store
        .next_appointment_of_case(&case.summary.reference)
        .await
    {
        Ok(Some((at, place))) => Some(appointment_words(at, &place, lang)),
        _ => None,
    };
    let office = &app.config.office;
    TemplateContext {
        reference: case.summary.reference.clone(),
        case_type: case.summary.case_type.clone(),
        case_type_name: name("case_type", &case.summary.case_type),
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
fn message_id_domain(app: &App) -> String {
    let out = &app.config.outbound;
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
pub fn new_message_id(app: &App, reference: &str) -> String {
    format!(
        "sportello.{}.{:016x}@{}",
        reference.to_ascii_lowercase(),
        rand::random::<u64>(),
        message_id_domain(app)
    )
}

/// Composes a message: the channel (asked, or the default), its recipient, the text from
/// the template or the operator, the threading headers; stores the text as sent (its hash
/// is registered). `missing`/`reasons` come from the action that causes the message.
pub async fn compose(
    app: &App,
    case: &CaseView,
    reach: &Reach,
    body: &MessageDraft,
    missing: Option<&[String]>,
    reasons: Option<&[String]>,
) -> Result<NewOutbound, AppError> {
    let choice = &reach.choice;
    let channel = match body
        .channel
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(name) => match OutChannel::parse(name) {
            Some(OutChannel::Call) | None => {
                return Err(AppError::field(
                    "channel",
                    "one of email, pec, fax, sms, letter, whatsapp, telegram",
                ));
            }
            Some(c) => c,
        },
        None => choice.default,
    };
    // What the case's citizen can be reached by is the case's app, not the request's
    // shape: a 409, like any other "not possible now".
    if channel == OutChannel::Call {
        return Err(AppError::Conflict(
            "the citizen has no channel the office can write to: call them back (the call-back queue)"
                .into(),
        ));
    }
    // A channel not configured yet still takes the message: it waits in the queue (the
    // API says so) until the channel is configured or its attempts run out.
    let to = given(&body.to)
        .or_else(|| choice.option(channel).and_then(|o| o.to.clone()))
        .ok_or_else(|| {
            AppError::Conflict(format!(
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
                .ok_or_else(|| AppError::field("template", format!("unknown template {name:?}")))?;
            let mut ctx = template_context(app, case, lang, missing, reasons).await;
            if let Some(id) = body.appointment
                && let Ok(a) = app.store.appointment(id).await
                && let Ok(at) = chrono::DateTime::parse_from_rfc3339(&a.starts_at)
            {
                ctx.appointment = Some(appointment_words(at.to_utc(), &a.place, lang));
            }
            let link = private_link(app, &reference).await;
            ctx.status_link = Some(link).filter(|l| !l.is_empty());
            Some(
                render(kind, lang.code(), channel.length(), &ctx)
                    .map_err(|e| AppError::field("template", e.to_string()))?,
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
        .ok_or_else(|| AppError::field("body", "write the text, or choose a template"))?;
    if text.len() > 100_000 {
        return Err(AppError::field("body", "longer than 100,000 characters"));
    }
    // One chat message, never a split one (a retry of a split message would repeat its
    // first parts): subject and text within the apps' 4,096 characters.
    if matches!(channel, OutChannel::Whatsapp | OutChannel::Telegram)
        && text.encode_utf16().count() + 300 > 4096
    {
        return Err(AppError::field(
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
    let message_id = new_message_id(app, &reference);
    let whatsapp_template = channel == OutChannel::Whatsapp && !reach.contacts.whatsapp_window_open;
    let canonical = format!(
        "Channel: {}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{message_id}>\n\n{text}",
        channel.as_str()
    );
    let content_sha256 = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    app.blobs
        .put(Bytes::from(canonical))
        .await
        .map_err(|e| AppError::Internal(format!("message text not stored: {e}")))?;
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
fn check_recipient(channel: OutChannel, to: &str) -> Result<(), AppError> {
    let bad = |why: &str| Err(AppError::field("to", why.to_owned()));
    if to.chars().any(|c| c.is_control() && c != '\n') || to.len() > 500 {
        return bad("contains control characters or is too long");
    }
    match channel {
        OutChannel::Email | OutChannel::Pec if !is_email(to) => bad("not an e-mail address"),
        OutChannel::Sms | OutChannel::Whatsapp | OutChannel::Fax if !is_phone(to) => {
            bad("not a telephone number")
        }
        _ => Ok(()),
    }
}

/// The PDF of a letter or fax message.
/// `citizen` is the name printed above a letter's address.
pub fn message_pdf(app: &App, view: &OutboundView, citizen: Option<&str>) -> Vec<u8> {
    let recipient =
        sportello_outbound::letter::recipient_lines(&view.channel, citizen, &view.recipient);
    sportello_outbound::letter::message_pdf(
        &app.config.office,
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

/// What a message would say, where; nothing is stored.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text.
    pub body: String,
}

/// A preview without storing anything (the page and the API share it).
pub async fn preview(
    app: &App,
    case: &CaseView,
    reach: &Reach,
    body: &MessageDraft,
    lang: Lang,
) -> Result<Preview, AppError> {
    let choice = &reach.choice;
    let channel = body
        .channel
        .as_deref()
        .and_then(OutChannel::parse)
        .unwrap_or(choice.default);
    let rendered = match body.template.as_deref().and_then(TemplateKind::parse) {
        Some(kind) => {
            let mut ctx = template_context(app, case, lang, None, None).await;
            // The private link is made when the message is sent, not for a preview.
            ctx.status_link = Some(format!(
                "{}/stato/…",
                app.config.public_url.trim_end_matches('/')
            ));
            Some(
                render(kind, lang.code(), channel.length(), &ctx)
                    .map_err(|e| AppError::field("template", e.to_string()))?,
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
    })
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
pub async fn notice_of_action(
    app: &App,
    reference: &str,
    action: &sportello_domain::workflow::Action,
    channel: Option<&str>,
    lang: Option<&str>,
) -> Result<Notice, AppError> {
    use sportello_domain::workflow::Action;
    let case = app.store.get_case(reference).await?;
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
    let body = MessageDraft {
        channel: channel.map(str::to_owned),
        template: Some(kind.as_str().to_owned()),
        lang: lang.map(str::to_owned),
        ..MessageDraft::default()
    };
    let reach = reach(app, &case).await?;
    // A channel the operator asked for is used, or refused with the reason (compose).
    if channel.is_none() && !reach.choice.can_write() {
        if waits && let Some(phone) = case.citizen.phone.clone() {
            let ctx = template_context(app, &case, Lang::It, missing, reasons).await;
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
    match compose(app, &case, &reach, &body, missing, reasons).await {
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
            tracing::warn!(%reference, error = %e, "no message for the action");
            Ok(Notice::default())
        }
    }
}

/// What an operator reads before calling a citizen: the case, why, and the list.
pub fn call_script(reference: &str, headline: &str, items: &[String]) -> String {
    let mut script = format!("Pratica {reference}: {headline}");
    for item in items {
        script.push_str("\n- ");
        script.push_str(item);
    }
    script
}

/// What [`write_occasion`] did.
pub enum Written {
    /// The message is queued (or was, under the same key).
    Queued,
    /// The office cannot write to the citizen: nothing queued; the case, for what comes
    /// instead.
    Unreachable(Box<CaseView>),
}

/// Writes `kind`'s template to the case's citizen on `channel` (used or refused with the
/// reason, as [`compose`] does), else on the default channel, once per `key`.
pub async fn write_occasion(
    app: &App,
    reference: &str,
    kind: TemplateKind,
    key: &str,
    actor: &str,
    appointment: Option<i64>,
    channel: Option<OutChannel>,
) -> Result<Written, AppError> {
    let case = app.store.get_case(reference).await?;
    let reach = reach(app, &case).await?;
    if channel.is_none() && !reach.choice.can_write() {
        return Ok(Written::Unreachable(Box::new(case)));
    }
    let body = MessageDraft {
        channel: channel.map(|c| c.as_str().to_owned()),
        template: Some(kind.as_str().to_owned()),
        idempotency_key: Some(key.to_owned()),
        appointment,
        ..MessageDraft::default()
    };
    let message = compose(app, &case, &reach, &body, None, None).await?;
    app.store.queue_message(reference, &message, actor).await?;
    app.outbound_wakeup.notify_one();
    Ok(Written::Queued)
}

/// How the citizen wants to be reached, as given.
#[derive(Debug, Clone, Default)]
pub struct ContactPreferences {
    /// The citizen's postal address (for letters), one line per line.
    pub address: Option<String>,
    /// The channel the citizen prefers: `email`, `pec`, `fax`, `sms`, `whatsapp`,
    /// `telegram`, `letter` or `call`.
    pub preferred_channel: Option<String>,
}

/// Records how the citizen wants to be reached (the page and the API share it).
pub async fn set_contact(
    app: &App,
    reference: &str,
    body: &ContactPreferences,
    actor: &str,
) -> Result<(), AppError> {
    let address = body
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if let Some(a) = address
        && (a.len() > 500 || a.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(AppError::field(
            "address",
            "at most 500 printable characters",
        ));
    }
    let preferred = match body.preferred_channel.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(OutChannel::parse(name).ok_or_else(|| {
            AppError::field(
                "preferred_channel",
                "one of email, pec, fax, sms, whatsapp, telegram, letter, call",
            )
        })?),
    };
    if address.is_none() && preferred.is_none() {
        return Err(AppError::field(
            "address",
            "give an address or a preferred channel",
        ));
    }
    app.store
        .set_contact_preferences(reference, address, preferred.map(OutChannel::as_str), actor)
        .await?;
    Ok(())
}

/// The citizen's private link to the case's status page (empty when it cannot be made:
/// the message goes without it).
pub async fn private_link(app: &App, reference: &str) -> String {
    match app.store.create_case_link(reference).await {
        Ok(token) => format!(
            "{}/stato/{token}",
            app.config.public_url.trim_end_matches('/')
        ),
        Err(e) => {
            tracing::warn!(error = %e, %reference, "no private link");
            String::new()
        }
    }
}

/// A message queued: the message, whether it is new (not the same key again), and the
/// citizen's name (printed above a letter's address).
#[derive(Debug)]
pub struct Sent {
    /// The message as queued (or as first queued under the same key).
    pub message: OutboundView,
    /// Whether this call queued it.
    pub created: bool,
    /// The case's citizen's name.
    pub citizen_name: Option<String>,
}

/// Writes to the case's citizen for `actor`: composed as [`compose`] does, queued
/// (registered outgoing and journaled) and the sending worker woken. A draft's key is the
/// caller's: it is scoped to the case so two cases cannot collide; without one each call
/// is a new message.
pub async fn send(
    app: &App,
    reference: &str,
    mut draft: MessageDraft,
    actor: &str,
) -> Result<Sent, AppError> {
    check_reference(reference)?;
    if let Some(key) = &draft.idempotency_key
        && (key.chars().count() > 200 || key.chars().any(char::is_control))
    {
        return Err(AppError::field(
            "idempotency_key",
            "at most 200 printable characters",
        ));
    }
    draft.idempotency_key = draft
        .idempotency_key
        .take()
        .map(|k| format!("api:{reference}:{k}"))
        .or_else(|| Some(format!("api:{reference}:{:032x}", rand::random::<u128>())));
    let case = app.store.get_case(reference).await?;
    let reach = reach(app, &case).await?;
    let (message, created) = queue(app, &case, &reach, &draft, actor).await?;
    Ok(Sent {
        message,
        created,
        citizen_name: case.citizen.name,
    })
}

/// Composes the draft for the case's citizen (see [`compose`]), queues it for `actor` and
/// wakes the sending worker; the message, and whether this call queued it (not the same
/// key again).
pub async fn queue(
    app: &App,
    case: &CaseView,
    reach: &Reach,
    draft: &MessageDraft,
    actor: &str,
) -> Result<(OutboundView, bool), AppError> {
    let new = compose(app, case, reach, draft, None, None).await?;
    let queued = app
        .store
        .queue_message(&case.summary.reference, &new, actor)
        .await?;
    app.wake_outbound();
    Ok(queued)
}

/// The reprint of a letter or fax message for `actor` (a read: audited); a message of
/// another channel has no PDF.
pub async fn printed_message(app: &App, id: i64, actor: &str) -> Result<Vec<u8>, AppError> {
    let view = app.store.outbound_message(id).await?;
    if !matches!(view.channel.as_str(), "letter" | "fax") {
        return Err(AppError::NotFound(format!(
            "message {id} is a {} message: it has no PDF",
            view.channel
        )));
    }
    app.store
        .record_access(actor, "read_outbound", &view.case)
        .await?;
    // A reprint: the citizen's name above a letter's address.
    let name = match view.channel.as_str() {
        "letter" => app.store.get_case(&view.case).await?.citizen.name,
        _ => None,
    };
    Ok(message_pdf(app, &view, name.as_deref()))
}
