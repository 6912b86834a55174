//! The inbound channels' settings: mailboxes read by IMAP, the fax gateway, the webhooks of
//! WhatsApp and Telegram, and the PEC providers' certificates.

use std::path::PathBuf;

use crate::secrets::{Secret, SecretUrl};
use serde::{Deserialize, Serialize};

/// One `[[mailbox]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Name used by `sportello ingest --mailbox`.
    pub name: String,
    /// `email`, `pec` or `fax`.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// `imap://` or `imaps://user:pass@host:port/FOLDER`.
    pub imap_url: Option<SecretUrl>,
    /// Poll interval.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// Case type of new cases from this mailbox.
    #[serde(default = "default_case_type")]
    pub default_case_type: String,
    /// When several instances share the database, the one polling this mailbox renews a
    /// lease of this length; another takes over this long after it dies.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
}

fn default_channel() -> String {
    "email".into()
}

fn default_poll() -> u64 {
    60
}

fn default_lease() -> u64 {
    30
}

pub(crate) fn default_case_type() -> String {
    "ztl_permit".into()
}

/// `[fax]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaxConfig {
    /// Sender addresses of the fax server's fax-to-mail messages.
    pub gateway_senders: Vec<String>,
    /// Regular expressions finding the caller's number in a fax-to-mail subject or text,
    /// tried in order; the first capture group is the number. The defaults cover HylaFAX
    /// `faxrcvd`, Asterisk scripts and the Italian gateways' wording.
    pub caller_patterns: Vec<String>,
}

impl Default for FaxConfig {
    fn default() -> Self {
        FaxConfig {
            gateway_senders: Vec::new(),
            caller_patterns: DEFAULT_FAX_CALLER_PATTERNS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }
}

/// Where fax gateways write the caller's number, most specific first.
pub const DEFAULT_FAX_CALLER_PATTERNS: &[&str] = &[
    r"(?i)fax\s+ricevuto\s+da[:\s]*(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)mittente[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)caller\s*-?\s*id(?:\s*num(?:ber)?)?[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bCIDNumber[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bCallID1?[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bsender[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bfrom[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bnumero[:\s]+(\+?[0-9][0-9 ./-]{4,})",
    r"(?i)\bda[:\s]+(\+?[0-9][0-9 ./-]{4,})",
];

/// `[webhooks]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// WhatsApp Business Cloud API.
    pub whatsapp: WhatsappConfig,
    /// Telegram Bot API.
    pub telegram: TelegramConfig,
}

/// `[webhooks.whatsapp]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsappConfig {
    /// Token echoed in the verification handshake.
    pub verify_token: Option<Secret>,
    /// Key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: Option<Secret>,
}

/// `[webhooks.telegram]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Expected `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: Option<Secret>,
}

/// `[pec]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PecConfig {
    /// PEM bundle of the PEC providers' certificates.
    pub trust_anchors: Option<PathBuf>,
}
