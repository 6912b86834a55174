//! The outbound half of every channel: how a message already composed, queued and
//! registered reaches the citizen (SMTP for e-mail and PEC, the fax gateway, the SMS
//! gateway, WhatsApp Cloud API, Telegram Bot API).
//!
//! [`Transports`] is built once from `[outbound]` and shared; [`Transports::send`] delivers
//! one [`Envelope`] through its channel and says whether it went ([`Sent`]), may go later
//! ([`SendError::Retryable`]), will never go as it is ([`SendError::Permanent`]) or has
//! nowhere to go ([`SendError::NotConfigured`]). Retrying, backing off and recording the
//! outcome are the caller's (the outbound queue's) business.
//!
//! Secrets (SMTP passwords, tokens, the Telegram token inside the Bot API's URL) never
//! appear in errors, logs or `Debug` output.

mod fax;
mod http;
pub mod letter;
mod smtp;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sportello_config::{ConfigError, OutboundConfig};
use sportello_domain::clock::{SharedClock, SystemClock};

/// One message ready to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The channel it goes through.
    pub channel: Channel,
    /// E-mail/PEC address, E.164 phone number, fax number or Telegram chat id.
    pub to: String,
    /// Subject (e-mail, PEC, fax cover), first paragraph on Telegram and WhatsApp, the
    /// parameter of the WhatsApp template.
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// RFC 5322 Message-ID without angle brackets; also the idempotency key of the HTTP
    /// channels and the name of a spooled fax job.
    pub message_id: String,
    /// The citizen's Message-ID this answers (no angle brackets), so replies thread.
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs (no angle brackets).
    pub references: Vec<String>,
    /// Files sent along (the letter's PDF for a fax).
    pub attachments: Vec<Attachment>,
    /// Send the configured pre-approved WhatsApp template instead of free text: the only
    /// thing WhatsApp allows outside the 24-hour customer-service window.
    pub whatsapp_template: bool,
}

/// A file sent with a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Name shown to the recipient.
    pub filename: String,
    /// MIME type, e.g. `application/pdf`.
    pub media_type: String,
    /// Content.
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// Whether this is a PDF (by type or, failing that, by name): what a fax can carry.
    pub fn is_pdf(&self) -> bool {
        self.media_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/pdf"))
            || self.filename.to_ascii_lowercase().ends_with(".pdf")
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("media_type", &self.media_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The channels a message can leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Ordinary e-mail (`outbound.email`).
    Email,
    /// Certified e-mail (`outbound.pec`).
    Pec,
    /// Fax (`outbound.fax.gateway`).
    Fax,
    /// SMS (`outbound.sms`).
    Sms,
    /// WhatsApp Business (`outbound.whatsapp`).
    Whatsapp,
    /// Telegram bot (`outbound.telegram`).
    Telegram,
}

impl Channel {
    /// Every channel, for listing what is configured.
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Pec,
        Channel::Fax,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Telegram,
    ];

    /// The lower-case name used in the configuration and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Pec => "pec",
            Channel::Fax => "fax",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Telegram => "telegram",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name that is not one of [`Channel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel '{0}'")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}

/// What the provider said when it took the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the message, to match delivery reports and replies: WhatsApp
    /// `wamid`, `telegram:{chat_id}:{message_id}`, the SMS gateway's id, the fax spool
    /// job's name. `None` for SMTP, whose tracking key is the Message-ID.
    pub provider_ref: Option<String>,
}

/// Why a message did not go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, 4xx SMTP transient, HTTP
    /// 429/5xx, credentials refused).
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// Will never work as is (5xx SMTP permanent, HTTP 4xx other than 429, bad address).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The channel is not configured; names the missing configuration key.
    #[error("channel not configured: set `{0}`")]
    NotConfigured(&'static str),
}

impl SendError {
    /// Whether the queue should try again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }
}

/// HTTP requests give up after this long (connection and answer together).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every channel's transport, built once from the configuration and shared (cloning is
/// cheap: the SMTP connection pools and the HTTP client are shared, not copied).
#[derive(Clone)]
pub struct Transports {
    email: Result<smtp::SmtpRoute, &'static str>,
    pec: Result<smtp::SmtpRoute, &'static str>,
    fax: Result<fax::FaxGateway, &'static str>,
    sms: Result<Arc<http::SmsRoute>, &'static str>,
    whatsapp: Result<Arc<http::WhatsappRoute>, &'static str>,
    telegram: Result<Arc<http::TelegramRoute>, &'static str>,
    http: reqwest::Client,
    clock: SharedClock,
}

impl Transports {
    /// Builds every configured channel's transport. A channel left out of the
    /// configuration is not an error (sending through it is
    /// [`SendError::NotConfigured`]); a value that cannot work (an unparsable SMTP URL or
    /// sender, an unknown fax gateway form) is. SMTP connections are opened on first use
    /// and then kept in a pool per route. The `Date` of e-mails comes from the system
    /// clock unless [`Transports::with_clock`] says otherwise.
    pub fn from_config(config: &OutboundConfig) -> Result<Transports, ConfigError> {
        let email = smtp::SmtpRoute::from_config(&config.email, smtp::EMAIL_KEYS)?;
        let pec = smtp::SmtpRoute::from_config(&config.pec, smtp::PEC_KEYS)?;
        let fax = fax::FaxGateway::from_config(config.fax.gateway.as_deref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(HTTP_TIMEOUT)
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sportello/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError {
                key: "outbound".into(),
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Transports {
            email,
            pec,
            fax,
            sms: http::SmsRoute::from_config(&config.sms).map(Arc::new),
            whatsapp: http::WhatsappRoute::from_config(&config.whatsapp).map(Arc::new),
            telegram: http::TelegramRoute::from_config(&config.telegram).map(Arc::new),
            http,
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads "now" (the e-mails' `Date`) from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Transports {
        self.clock = clock;
        self
    }

    /// Whether messages can be sent through `channel` (a fax by e-mail also needs the
    /// e-mail route).
    pub fn is_configured(&self, channel: Channel) -> bool {
        self.missing_key(channel).is_none()
    }

    /// The configuration key that `channel` lacks, if any.
    pub fn missing_key(&self, channel: Channel) -> Option<&'static str> {
        match channel {
            Channel::Email => self.email.as_ref().err().copied(),
            Channel::Pec => self.pec.as_ref().err().copied(),
            Channel::Fax => match &self.fax {
                Err(key) => Some(key),
                Ok(fax::FaxGateway::Mailto(_)) => self.email.as_ref().err().copied(),
                Ok(fax::FaxGateway::Spool(_)) => None,
            },
            Channel::Sms => self.sms.as_ref().err().copied(),
            Channel::Whatsapp => self.whatsapp.as_ref().err().copied(),
            Channel::Telegram => self.telegram.as_ref().err().copied(),
        }
    }

    /// Delivers one message through its channel and reports what the provider said.
    /// Safe to call again for the same message after a retryable failure: HTTP channels
    /// carry the Message-ID as idempotency key and a spooled fax job is written once.
    pub async fn send(&self, envelope: &Envelope) -> Result<Sent, SendError> {
        let result = match envelope.channel {
            Channel::Email | Channel::Pec => {
                let route = match envelope.channel {
                    Channel::Pec => &self.pec,
                    _ => &self.email,
                };
                let route = route.as_ref().map_err(|k| SendError::NotConfigured(k))?;
                route
                    .send(
                        envelope,
                        &envelope.to,
                        envelope.attachments.iter(),
                        self.now(),
                    )
                    .await
            }
            Channel::Fax => {
                let gateway = self.fax.as_ref().map_err(|k| SendError::NotConfigured(k))?;
                gateway
                    .send(envelope, self.email.as_ref(), self.now())
                    .await
            }
            Channel::Sms => {
                let route = self.sms.as_ref().map_err(|k| SendError::NotConfigured(k))?;
                route.send(&self.http, envelope).await
            }
            Channel::Whatsapp => {
                let route = self
                    .whatsapp
                    .as_ref()
                    .map_err(|k| SendError::NotConfigured(k))?;
                route.send(&self.http, envelope).await
            }
            Channel::Telegram => {
                let route = self
                    .telegram
                    .as_ref()
                    .map_err(|k| SendError::NotConfigured(k))?;
                route.send(&self.http, envelope).await
            }
        };
        match &result {
            Ok(sent) => tracing::debug!(
                channel = %envelope.channel,
                message_id = %envelope.message_id,
                provider_ref = ?sent.provider_ref,
                "outbound message sent"
            ),
            Err(e) => tracing::debug!(
                channel = %envelope.channel,
                message_id = %envelope.message_id,
                error = %e,
                "outbound message not sent"
            ),
        }
        result
    }

    fn now(&self) -> std::time::SystemTime {
        self.clock.now().into()
    }
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let configured: Vec<&str> = Channel::ALL
            .into_iter()
            .filter(|c| self.is_configured(*c))
            .map(Channel::as_str)
            .collect();
        f.debug_struct("Transports")
            .field("configured", &configured)
            .finish_non_exhaustive()
    }
}

/// `id` without the angle brackets a caller may have left on it.
fn bare_id(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id)
}

/// Subject and body as one text, for channels without a subject line.
fn subject_and_body(envelope: &Envelope) -> String {
    let subject = envelope.subject.trim();
    if subject.is_empty() {
        envelope.body.clone()
    } else if envelope.body.trim().is_empty() {
        subject.to_owned()
    } else {
        format!("{subject}\n\n{}", envelope.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("carrier-pigeon".parse::<Channel>().is_err());
    }

    #[test]
    fn ids_lose_their_brackets() {
        assert_eq!(bare_id("<a@b>"), "a@b");
        assert_eq!(bare_id(" a@b "), "a@b");
    }

    #[test]
    fn nothing_configured_means_not_configured() {
        let t = Transports::from_config(&OutboundConfig::default()).unwrap();
        for c in Channel::ALL {
            assert!(!t.is_configured(c), "{c}");
        }
        assert_eq!(
            t.missing_key(Channel::Telegram),
            Some("outbound.telegram.bot_token")
        );
        assert_eq!(
            t.missing_key(Channel::Email),
            Some("outbound.email.smtp_url")
        );
        assert!(!format!("{t:?}").contains("email"));
    }

    #[test]
    fn attachment_debug_hides_the_bytes() {
        let a = Attachment {
            filename: "lettera.pdf".into(),
            media_type: "application/pdf".into(),
            bytes: vec![0; 1000],
        };
        assert!(a.is_pdf());
        assert!(format!("{a:?}").contains("1000"));
    }
}
