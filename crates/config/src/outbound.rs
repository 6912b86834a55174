//! The outbound channels' settings: SMTP for e-mail and PEC, the fax and SMS gateways, WhatsApp
//! and Telegram. A channel is usable when its section is complete.

use crate::secrets::{Secret, SecretUrl};
use serde::{Deserialize, Serialize};

/// `[outbound]`: the transports of outbound messages and the queue that feeds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Ordinary e-mail.
    pub email: SmtpConfig,
    /// PEC through the office's provider.
    pub pec: SmtpConfig,
    /// Fax.
    pub fax: OutboundFaxConfig,
    /// SMS gateway.
    pub sms: SmsConfig,
    /// WhatsApp Business Cloud API, for answers to citizens who wrote on WhatsApp.
    pub whatsapp: OutboundWhatsappConfig,
    /// Telegram Bot API, for answers to citizens who wrote to the bot.
    pub telegram: OutboundTelegramConfig,
    /// A message that failed this many times (retryable errors) is given up and flagged.
    pub max_attempts: u32,
    /// First wait before a retry, in seconds; it doubles at each further attempt.
    pub retry_base_seconds: u64,
    /// Queued messages taken at once by one sender pass (the sender takes at most
    /// `concurrency` at a time, right before sending them).
    pub batch: u32,
    /// Whether `serve` runs the sender (the worker that sends queued messages). `false`
    /// when `sportello outbound send --watch` runs on its own, so that it can be stopped,
    /// restarted or scaled without the API.
    pub sender: bool,
    /// Seconds a message taken by a sender stays its own: if the sender dies, another
    /// takes the message again (same Message-ID) after this long. Must well exceed the
    /// time one send can take.
    pub lease_seconds: u64,
    /// Messages a sender has in flight at once.
    pub concurrency: u32,
    /// Days after which an unanswered request for a call-back is reminded to the office.
    pub callback_after_days: u32,
    /// Days before the 30 days to send the documents asked run out at which the citizen
    /// is reminded.
    pub reminder_days_before: u32,
    /// Hours within which a PEC delivery receipt must arrive before the office is warned.
    pub pec_delivery_hours: u32,
    /// Whether new cases get the acknowledgement of receipt (communication of the start of
    /// the procedure, art. 8 L. 241/1990) on the citizen's channel.
    pub acknowledge: bool,
    /// Domain of outbound `Message-ID`s; the domain of `outbound.email.from` when absent.
    pub message_id_domain: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            email: SmtpConfig::default(),
            pec: SmtpConfig::default(),
            fax: OutboundFaxConfig::default(),
            sms: SmsConfig::default(),
            whatsapp: OutboundWhatsappConfig::default(),
            telegram: OutboundTelegramConfig::default(),
            max_attempts: 8,
            retry_base_seconds: 30,
            batch: 64,
            sender: true,
            lease_seconds: 60,
            concurrency: 8,
            callback_after_days: 7,
            reminder_days_before: 5,
            pec_delivery_hours: 24,
            acknowledge: true,
            message_id_domain: None,
        }
    }
}

/// An SMTP route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://[user:pass@]host:port` (plain; STARTTLS with `?starttls=true` or port 587)
    /// or `smtps://user:pass@host:port` (TLS from the first byte).
    pub smtp_url: Option<SecretUrl>,
    /// Sender address, `addr@example.it` or `Name <addr@example.it>`.
    pub from: Option<String>,
}

/// `[outbound.fax]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundFaxConfig {
    /// `mailto:{number}@gateway` template or `spool:DIR`.
    pub gateway: Option<String>,
}

/// The SMS gateway's default request body: JSON with the placeholders filled in.
pub const DEFAULT_SMS_BODY: &str = r#"{"to":"{to}","text":"{text}","id":"{id}"}"#;

/// `[outbound.sms]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// HTTP SMS gateway endpoint.
    pub url: Option<SecretUrl>,
    /// Request body template; `{to}`, `{text}`, `{id}` and `{subject}` are replaced, escaped
    /// for the content type (JSON strings, form encoding, else as is).
    pub body: String,
    /// `Content-Type` of the request.
    pub content_type: String,
    /// Bearer token sent in `Authorization`, when the gateway wants one.
    pub token: Option<Secret>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            url: None,
            body: DEFAULT_SMS_BODY.into(),
            content_type: "application/json".into(),
            token: None,
        }
    }
}

/// `[outbound.whatsapp]`: the Cloud API that sends the answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundWhatsappConfig {
    /// Graph API base, with its version.
    pub base_url: String,
    /// The business phone number's id (not the number itself).
    pub phone_number_id: Option<String>,
    /// System-user access token.
    pub access_token: Option<Secret>,
    /// Pre-approved template sent outside the 24-hour customer-service window; its body
    /// has one parameter, the subject.
    pub template_name: Option<String>,
    /// Language code of that template.
    pub template_language: String,
}

impl Default for OutboundWhatsappConfig {
    fn default() -> Self {
        OutboundWhatsappConfig {
            base_url: "https://graph.facebook.com/v21.0".into(),
            phone_number_id: None,
            access_token: None,
            template_name: None,
            template_language: "it".into(),
        }
    }
}

/// `[outbound.telegram]`: the Bot API that sends the answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundTelegramConfig {
    /// Bot API base.
    pub base_url: String,
    /// The bot's token from BotFather.
    pub bot_token: Option<Secret>,
}

impl Default for OutboundTelegramConfig {
    fn default() -> Self {
        OutboundTelegramConfig {
            base_url: "https://api.telegram.org".into(),
            bot_token: None,
        }
    }
}
