//! Sportello's configuration (CONTRACT §3).
//!
//! One typed struct, read from `sportello.toml` (optional) and overridden by
//! `SPORTELLO_<SECTION>__<KEY>` environment variables, then validated as a whole so that a
//! bad value stops start-up with a message naming its key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::Provider;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::HolidayCalendar;
use sportello_domain::case::{CaseType, Priority, WorkflowKind};

/// The commented example configuration printed by `sportello config example`.
pub const EXAMPLE: &str = include_str!("../sportello.example.toml");

/// Top-level keys, so that unrelated `SPORTELLO_*` variables (e.g. `SPORTELLO_CONFIG`) are not read as settings.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "public_url",
    "database",
    "documents",
    "policy",
    "mailbox",
    "fax",
    "outbound",
    "webhooks",
    "pec",
    "ocr",
    "calendar",
    "scan",
    "case_type",
    "limits",
    "office",
];

/// A string that may hold credentials: shown with the password hidden.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl SecretUrl {
    /// The full value, credentials included.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// Hides the password of `scheme://user:password@host…` and the values of query
/// parameters that carry credentials (`?apikey=…`, `&token=…`, `sig=…`): gateways put
/// their keys in URLs, and a printed configuration must not hand them out.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Whether a key or query-parameter name usually carries a credential.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "auth",
        "sig",
        "signature",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Replaces credentials inside a serialised configuration: whole values under
/// [`SECRET_KEYS`], passwords and secret query parameters inside URLs.
fn redact_value(value: &mut toml::Value, key: Option<&str>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                redact_value(value, Some(key));
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact_value(item, key);
            }
        }
        toml::Value::String(text) => {
            if key.is_some_and(|k| SECRET_KEYS.contains(&k)) {
                if !text.is_empty() {
                    *text = "***".to_owned();
                }
            } else if text.contains("://") {
                *text = redact_url(text);
            }
        }
        _ => {}
    }
}

/// Configuration keys whose whole value is a credential (the [`Secret`] fields).
const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "bot_token",
    "verify_token",
    "app_secret",
    "secret_token",
];

/// A secret token: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where embedded data lives.
    pub data_dir: PathBuf,
    /// HTTP address.
    pub listen: SocketAddr,
    /// Base for links in messages and QR codes.
    pub public_url: String,
    /// Database.
    pub database: DatabaseConfig,
    /// Document storage.
    pub documents: DocumentsConfig,
    /// ZTL policy.
    pub policy: PolicyConfig,
    /// Mailboxes polled for e-mail, PEC and fax-to-mail.
    pub mailbox: Vec<MailboxConfig>,
    /// Fax gateway.
    pub fax: FaxConfig,
    /// Outbound channels.
    pub outbound: OutboundConfig,
    /// Messaging webhooks.
    pub webhooks: WebhooksConfig,
    /// PEC signature checks.
    pub pec: PecConfig,
    /// OCR of scanned documents.
    pub ocr: OcrConfig,
    /// Working-day calendar.
    pub calendar: CalendarConfig,
    /// Network scanner folder.
    pub scan: ScanConfig,
    /// Extra or overridden case types (the built-in ones exist by default).
    pub case_type: Vec<CaseTypeConfig>,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Who the office is, for letters it signs.
    pub office: OfficeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./sportello-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            database: DatabaseConfig::default(),
            documents: DocumentsConfig::default(),
            policy: PolicyConfig::default(),
            mailbox: Vec::new(),
            fax: FaxConfig::default(),
            outbound: OutboundConfig::default(),
            webhooks: WebhooksConfig::default(),
            pec: PecConfig::default(),
            ocr: OcrConfig::default(),
            calendar: CalendarConfig::default(),
            scan: ScanConfig::default(),
            case_type: Vec::new(),
            limits: LimitsConfig::default(),
            office: OfficeConfig::default(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`; default `sqlite://{data_dir}/sportello.db`.
    pub url: Option<SecretUrl>,
    /// Pool size for PostgreSQL (SQLite uses one writer and a few readers).
    pub max_connections: Option<u32>,
}

/// `[documents]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// `file://DIR` or `s3://bucket/prefix`; default `file://{data_dir}/documents`.
    pub url: Option<String>,
    /// S3 endpoint (MinIO, Garage, Ceph…); credentials from the standard `AWS_*` variables.
    pub endpoint: Option<String>,
    /// S3 region (default from `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            url: None,
            endpoint: None,
            region: None,
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// ZTL policy file (CONTRACT §6.1); the built-in example when absent.
    pub file: Option<PathBuf>,
}

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
fn default_case_type() -> String {
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

/// `[ocr]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    /// OCR program.
    pub command: String,
    /// Tesseract languages.
    pub languages: String,
    /// OCR runs at most this many at once (0: one per processor core), so a burst of
    /// faxes never starves the other channels.
    pub workers: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            command: "tesseract".into(),
            languages: "ita+eng".into(),
            workers: 0,
        }
    }
}

/// `[calendar]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// Extra local holidays as `MM-DD`, e.g. the patron saint's day `"06-29"`.
    pub extra_holidays: Vec<String>,
}

/// `[scan]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Folder a network scanner writes PDF/TIFF batches into. Each batch, once complete,
    /// is split at its cover sheets and moved to `processed/` inside this folder.
    pub watch_dir: Option<PathBuf>,
    /// Case type of the new case opened for pages without a cover sheet (flagged
    /// `unsorted_scan` for triage).
    pub default_case_type: String,
    /// How often the folder is looked at, in seconds.
    pub poll_seconds: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            watch_dir: None,
            default_case_type: default_case_type(),
            poll_seconds: 2,
        }
    }
}

/// `[office]`: the names printed on the letters the office signs (annulment requests to
/// the police, letters to citizens).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeConfig {
    /// The administration, first line of the letterhead.
    pub authority: String,
    /// The office, second line of the letterhead and signature.
    pub name: String,
    /// Recipient of annulment requests: the municipal police command.
    pub police: String,
    /// The police command's PEC address: annulment requests are sent there through
    /// `outbound.pec`. With neither this nor `police_email`, a request is flagged to be
    /// delivered by hand.
    pub police_pec: Option<String>,
    /// The police command's ordinary e-mail address, used when it has no PEC address
    /// (through `outbound.email`).
    pub police_email: Option<String>,
}

impl OfficeConfig {
    /// The police command's configured addresses (PEC first), trimmed: where annulment
    /// requests go, and the senders whose answers intake links by protocol number.
    pub fn police_addresses(&self) -> Vec<String> {
        [&self.police_pec, &self.police_email]
            .into_iter()
            .flatten()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect()
    }
}

impl Default for OfficeConfig {
    fn default() -> Self {
        OfficeConfig {
            authority: "Comune".into(),
            name: "Ufficio Permessi ZTL".into(),
            police: "Comando di Polizia Locale".into(),
            police_pec: None,
            police_email: None,
        }
    }
}

/// `[limits]`: guards against abuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Largest page size of list endpoints.
    pub max_per_page: u32,
    /// Failed API authentications allowed per client address and minute before 429.
    pub auth_failures_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_json_bytes: 1024 * 1024,
            max_per_page: 200,
            auth_failures_per_minute: 30,
        }
    }
}

/// One `[[case_type]]`: adds a case type or overrides a built-in one with the same `id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTypeConfig {
    /// Identifier, e.g. `passo_carrabile`.
    pub id: String,
    /// Reference prefix, 2–5 capitals.
    pub prefix: String,
    /// Display name.
    pub name: String,
    /// Legal term in calendar days.
    #[serde(default = "default_term")]
    pub term_days: u32,
    /// Service standard in calendar days.
    #[serde(default = "default_service")]
    pub service_days: u32,
    /// `low`, `normal`, `high`, `urgent`.
    #[serde(default = "default_priority")]
    pub priority: String,
    /// `permit` or `report`.
    #[serde(default = "default_workflow")]
    pub workflow: String,
}

fn default_term() -> u32 {
    30
}
fn default_service() -> u32 {
    15
}
fn default_priority() -> String {
    "normal".into()
}
fn default_workflow() -> String {
    "permit".into()
}

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `database.url`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Where to read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE` or `SPORTELLO_CONFIG`; must exist when given.
    pub file: Option<PathBuf>,
    /// `--data DIR`, overriding `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Environment variables to read (normally the process environment).
    pub env: Vec<(String, String)>,
}

impl Config {
    /// The effective configuration as TOML (what `config check` prints): every key with
    /// its value after the file and the environment, credentials replaced by `***`.
    pub fn effective_toml(&self) -> Result<String, ConfigError> {
        let mut value = toml::Value::try_from(self)
            .map_err(|e| ConfigError::new("(configuration)", e.to_string()))?;
        redact_value(&mut value, None);
        toml::to_string_pretty(&value)
            .map_err(|e| ConfigError::new("(configuration)", e.to_string()))
    }

    /// Reads and validates the configuration.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &sources.file {
            if !file.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env_toml = env_as_toml(&sources.env)?;
        figment = figment.merge(Toml::string(&env_toml));
        if let Some(dir) = &sources.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        let config: Config = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                "(file)".to_owned()
            } else {
                e.path.join(".")
            };
            ConfigError::new(key, e.kind.to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        let docs = self.documents_url();
        if !(docs.starts_with("file://") || docs.starts_with("s3://")) {
            return Err(ConfigError::new(
                "documents.url",
                "must start with file:// or s3://",
            ));
        }
        if docs.starts_with("s3://")
            && docs
                .trim_start_matches("s3://")
                .split('/')
                .next()
                .is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "documents.url",
                "s3:// needs a bucket name: s3://bucket/prefix",
            ));
        }
        if self.documents.max_upload_bytes == 0 {
            return Err(ConfigError::new(
                "documents.max_upload_bytes",
                "must be greater than 0",
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "public_url",
                "must start with http:// or https://",
            ));
        }
        HolidayCalendar::from_month_days(&self.calendar.extra_holidays)
            .map_err(|e| ConfigError::new("calendar.extra_holidays", e.to_string()))?;
        let types = self.case_types()?;
        for (i, mailbox) in self.mailbox.iter().enumerate() {
            let key = |k: &str| format!("mailbox[{i}].{k}");
            if mailbox.name.trim().is_empty() {
                return Err(ConfigError::new(key("name"), "must not be empty"));
            }
            if !["email", "pec", "fax"].contains(&mailbox.channel.as_str()) {
                return Err(ConfigError::new(
                    key("channel"),
                    "must be email, pec or fax",
                ));
            }
            if let Some(url) = &mailbox.imap_url
                && !(url.0.starts_with("imap://") || url.0.starts_with("imaps://"))
            {
                return Err(ConfigError::new(
                    key("imap_url"),
                    "must start with imap:// or imaps://",
                ));
            }
            if let Some(url) = &mailbox.imap_url {
                match url::Url::parse(&url.0) {
                    Ok(u)
                        if u.host_str().is_some_and(|h| !h.is_empty())
                            && !u.username().is_empty() => {}
                    _ => {
                        return Err(ConfigError::new(
                            key("imap_url"),
                            "must look like imaps://user:password@host:port/FOLDER",
                        ));
                    }
                }
            }
            if mailbox.poll_seconds == 0 {
                return Err(ConfigError::new(key("poll_seconds"), "must be at least 1"));
            }
            if mailbox.lease_seconds < 3 {
                return Err(ConfigError::new(key("lease_seconds"), "must be at least 3"));
            }
            if self.mailbox[..i].iter().any(|m| m.name == mailbox.name) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("'{}' names two mailboxes", mailbox.name),
                ));
            }
            if !types.iter().any(|t| t.id == mailbox.default_case_type) {
                return Err(ConfigError::new(
                    key("default_case_type"),
                    format!("unknown case type '{}'", mailbox.default_case_type),
                ));
            }
        }
        if !types.iter().any(|t| t.id == self.scan.default_case_type) {
            return Err(ConfigError::new(
                "scan.default_case_type",
                format!("unknown case type '{}'", self.scan.default_case_type),
            ));
        }
        if self.scan.poll_seconds == 0 || self.scan.poll_seconds > 3600 {
            return Err(ConfigError::new(
                "scan.poll_seconds",
                "must be from 1 to 3600",
            ));
        }
        for (i, pattern) in self.fax.caller_patterns.iter().enumerate() {
            match regex::Regex::new(pattern) {
                Ok(re) if re.captures_len() >= 2 => {}
                Ok(_) => {
                    return Err(ConfigError::new(
                        format!("fax.caller_patterns[{i}]"),
                        "needs a capture group around the number, e.g. Fax da: (\\d+)",
                    ));
                }
                Err(e) => {
                    return Err(ConfigError::new(
                        format!("fax.caller_patterns[{i}]"),
                        format!("not a regular expression: {e}"),
                    ));
                }
            }
        }
        self.validate_outbound()?;
        for (key, address) in [
            ("office.police_pec", &self.office.police_pec),
            ("office.police_email", &self.office.police_email),
        ] {
            if let Some(address) = address
                && !is_bare_address(address)
            {
                return Err(ConfigError::new(
                    key,
                    "must be an e-mail address, e.g. polizia.locale@pec.comune.example.it",
                ));
            }
        }
        if self.limits.max_per_page == 0 {
            return Err(ConfigError::new(
                "limits.max_per_page",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Checks `[outbound]`: URL schemes, the fax gateway form and the queue's numbers.
    fn validate_outbound(&self) -> Result<(), ConfigError> {
        let o = &self.outbound;
        for (name, route) in [("email", &o.email), ("pec", &o.pec)] {
            if let Some(url) = &route.smtp_url {
                let ok = url::Url::parse(url.expose()).is_ok_and(|u| {
                    matches!(u.scheme(), "smtp" | "smtps")
                        && u.host_str().is_some_and(|h| !h.is_empty())
                });
                if !ok {
                    return Err(ConfigError::new(
                        format!("outbound.{name}.smtp_url"),
                        "must look like smtp://host:port or smtps://user:password@host:port",
                    ));
                }
            }
            if let Some(from) = &route.from
                && !from.contains('@')
            {
                return Err(ConfigError::new(
                    format!("outbound.{name}.from"),
                    "must be an e-mail address",
                ));
            }
        }
        if let Some(gateway) = &o.fax.gateway {
            let ok = match (
                gateway.strip_prefix("mailto:"),
                gateway.strip_prefix("spool:"),
            ) {
                (Some(template), _) => {
                    template.contains('@')
                        && (template.contains("{number}") || template.contains("{digits}"))
                }
                (_, Some(dir)) => !dir.trim().is_empty(),
                _ => false,
            };
            if !ok {
                return Err(ConfigError::new(
                    "outbound.fax.gateway",
                    "must be mailto:{number}@gateway (or {digits}) or spool:DIR",
                ));
            }
        }
        let http = |key: &str, value: &str| {
            if url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                Ok(())
            } else {
                Err(ConfigError::new(key, "must be an http:// or https:// URL"))
            }
        };
        if let Some(url) = &o.sms.url {
            http("outbound.sms.url", url.expose())?;
        }
        if o.sms.body.trim().is_empty() {
            return Err(ConfigError::new("outbound.sms.body", "must not be empty"));
        }
        if o.sms.content_type.trim().is_empty() {
            return Err(ConfigError::new(
                "outbound.sms.content_type",
                "must not be empty",
            ));
        }
        http("outbound.whatsapp.base_url", &o.whatsapp.base_url)?;
        http("outbound.telegram.base_url", &o.telegram.base_url)?;
        if o.whatsapp.template_language.trim().is_empty() {
            return Err(ConfigError::new(
                "outbound.whatsapp.template_language",
                "must not be empty",
            ));
        }
        if o.max_attempts == 0 {
            return Err(ConfigError::new(
                "outbound.max_attempts",
                "must be at least 1",
            ));
        }
        if o.retry_base_seconds == 0 {
            return Err(ConfigError::new(
                "outbound.retry_base_seconds",
                "must be at least 1",
            ));
        }
        if o.batch == 0 {
            return Err(ConfigError::new("outbound.batch", "must be at least 1"));
        }
        if o.lease_seconds < 2 {
            return Err(ConfigError::new(
                "outbound.lease_seconds",
                "must be at least 2",
            ));
        }
        if o.concurrency == 0 || o.concurrency > 256 {
            return Err(ConfigError::new(
                "outbound.concurrency",
                "must be between 1 and 256",
            ));
        }
        if let Some(domain) = &o.message_id_domain
            && (domain.is_empty()
                || domain
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '@' | '<' | '>')))
        {
            return Err(ConfigError::new(
                "outbound.message_id_domain",
                "must be a domain name, e.g. sportello.comune.example.it",
            ));
        }
        Ok(())
    }

    /// The database URL, defaulting to the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.0.clone(),
            None => format!("sqlite://{}", self.data_dir.join("sportello.db").display()),
        }
    }

    /// The document store URL, defaulting to a folder under `data_dir`.
    pub fn documents_url(&self) -> String {
        match &self.documents.url {
            Some(url) => url.clone(),
            None => format!(
                "file://{}",
                absolute(&self.data_dir.join("documents")).display()
            ),
        }
    }

    /// Built-in case types with the configured ones added or overriding by `id`.
    pub fn case_types(&self) -> Result<Vec<CaseType>, ConfigError> {
        let mut types = CaseType::builtin();
        for (i, ct) in self.case_type.iter().enumerate() {
            let key = |k: &str| format!("case_type[{i}].{k}");
            if ct.id.is_empty()
                || !ct
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConfigError::new(
                    key("id"),
                    "use lower-case letters, digits and _",
                ));
            }
            if !CaseType::valid_prefix(&ct.prefix) {
                return Err(ConfigError::new(
                    key("prefix"),
                    "must be 2 to 5 capital letters",
                ));
            }
            if ct.term_days == 0 || ct.term_days > 180 {
                return Err(ConfigError::new(
                    key("term_days"),
                    "must be between 1 and 180 (L. 241/1990 art. 2)",
                ));
            }
            let priority: Priority =
                ct.priority
                    .parse()
                    .map_err(|e: sportello_domain::case::UnknownValue| {
                        ConfigError::new(key("priority"), e.to_string())
                    })?;
            let workflow = match ct.workflow.as_str() {
                "permit" => WorkflowKind::Permit,
                "report" => WorkflowKind::Report,
                _ => {
                    return Err(ConfigError::new(
                        key("workflow"),
                        "must be permit or report",
                    ));
                }
            };
            let def = CaseType {
                id: ct.id.clone(),
                prefix: ct.prefix.clone(),
                name: ct.name.clone(),
                term_days: ct.term_days,
                service_days: ct.service_days,
                priority,
                workflow,
            };
            match types.iter_mut().find(|t| t.id == def.id) {
                Some(existing) => *existing = def,
                None => types.push(def),
            }
        }
        for (i, a) in types.iter().enumerate() {
            if types[..i].iter().any(|b| b.prefix == a.prefix) {
                return Err(ConfigError::new(
                    "case_type",
                    format!("prefix {} is used by two case types", a.prefix),
                ));
            }
        }
        Ok(types)
    }

    /// The holiday calendar (validated at load).
    pub fn holiday_calendar(&self) -> HolidayCalendar {
        HolidayCalendar::from_month_days(&self.calendar.extra_holidays).unwrap_or_default()
    }
}

/// `user@domain` and nothing else (no name, no brackets, no spaces).
fn is_bare_address(address: &str) -> bool {
    let address = address.trim();
    address.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !address
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
            && !domain.contains('@')
    })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p))
        .unwrap_or_else(|_| p.to_owned())
}

/// Turns `SPORTELLO_SECTION__KEY=value` variables into a TOML document. Values are parsed
/// as TOML when they are valid TOML values (numbers, booleans, arrays), else taken as strings.
fn env_as_toml(env: &[(String, String)]) -> Result<String, ConfigError> {
    let mut lines = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("SPORTELLO_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) || !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
            continue;
        }
        if path.len() == 1 && matches!(path[0].as_str(), "database" | "documents") {
            continue;
        }
        let literal = if Toml::string(&format!("v = {value}")).data().is_ok() {
            value.clone()
        } else {
            format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
        };
        let key = path
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".");
        lines.push(format!("{key} = {literal}"));
    }
    let doc = lines.join("\n");
    Toml::string(&doc).data().map_err(|e| {
        ConfigError::new(
            "environment",
            format!("SPORTELLO_* variables do not form a valid configuration: {e}"),
        )
    })?;
    Ok(doc)
}

/// The process environment, for [`Sources::env`].
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("SPORTELLO_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sportello.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&Sources {
            file: Some(path),
            data_dir: None,
            env,
        })
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://./sportello-data/sportello.db");
        assert!(
            c.documents_url().starts_with("file:///")
                && c.documents_url().ends_with("sportello-data/documents")
        );
        assert_eq!(c.ocr.languages, "ita+eng");
        assert_eq!(c.documents.max_upload_bytes, 50 * 1024 * 1024);
        assert_eq!(c.case_types().unwrap().len(), 3);
    }

    #[test]
    fn example_is_valid_and_complete() {
        let c = load(EXAMPLE, &[]).unwrap();
        assert_eq!(c.mailbox.len(), 1);
        assert_eq!(c.calendar.extra_holidays, vec!["06-29".to_string()]);
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "[database]\nurl = \"sqlite:///tmp/a.db\"\n",
            &[
                (
                    "SPORTELLO_DATABASE__URL",
                    "postgres://u:secret@localhost/db",
                ),
                ("SPORTELLO_LISTEN", "0.0.0.0:9000"),
                ("SPORTELLO_CONFIG", "/ignored.toml"),
                ("SPORTELLO_REQUIRE_SERVICES", "1"),
                ("SPORTELLO_CALENDAR__EXTRA_HOLIDAYS", "[\"06-29\"]"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_url(), "postgres://u:secret@localhost/db");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.calendar.extra_holidays, vec!["06-29".to_string()]);
        assert!(
            !format!("{c:?}").contains("u:secret@"),
            "password leaked in Debug"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str)] = &[
            ("listen = \"nowhere\"", "listen"),
            ("[database]\nurl = \"mysql://x\"", "database.url"),
            ("[documents]\nurl = \"ftp://x\"", "documents.url"),
            (
                "[calendar]\nextra_holidays = [\"13-40\"]",
                "calendar.extra_holidays",
            ),
            ("bogus = 1", "bogus"),
            (
                "[[case_type]]\nid = \"x\"\nprefix = \"toolong\"\nname = \"X\"",
                "case_type[0].prefix",
            ),
            (
                "[[mailbox]]\nname = \"m\"\nchannel = \"sms\"",
                "mailbox[0].channel",
            ),
            (
                "[[mailbox]]\nname = \"m\"\ndefault_case_type = \"nope\"",
                "mailbox[0].default_case_type",
            ),
            (
                "[[mailbox]]\nname = \"m\"\n[[mailbox]]\nname = \"m\"",
                "mailbox[1].name",
            ),
            (
                "[[mailbox]]\nname = \"m\"\nimap_url = \"imaps://no-user.example.it/INBOX\"",
                "mailbox[0].imap_url",
            ),
            (
                "[[mailbox]]\nname = \"m\"\nlease_seconds = 1",
                "mailbox[0].lease_seconds",
            ),
            (
                "[fax]\ncaller_patterns = [\"(unclosed\"]",
                "fax.caller_patterns[0]",
            ),
            (
                "[fax]\ncaller_patterns = [\"Fax da: \\\\d+\"]",
                "fax.caller_patterns[0]",
            ),
            (
                "[outbound.email]\nsmtp_url = \"http://mail.example.it\"",
                "outbound.email.smtp_url",
            ),
            ("[outbound.pec]\nfrom = \"nobody\"", "outbound.pec.from"),
            (
                "[outbound.fax]\ngateway = \"ftp://fax\"",
                "outbound.fax.gateway",
            ),
            (
                "[outbound.sms]\nurl = \"sms.example.it\"",
                "outbound.sms.url",
            ),
            (
                "[outbound.whatsapp]\nbase_url = \"graph\"",
                "outbound.whatsapp.base_url",
            ),
            (
                "[outbound.telegram]\nbase_url = \"\"",
                "outbound.telegram.base_url",
            ),
            ("[outbound]\nmax_attempts = 0", "outbound.max_attempts"),
            ("[outbound]\nbatch = 0", "outbound.batch"),
            ("[outbound]\nlease_seconds = 1", "outbound.lease_seconds"),
            ("[outbound]\nconcurrency = 0", "outbound.concurrency"),
            (
                "[outbound]\nmessage_id_domain = \"a@b\"",
                "outbound.message_id_domain",
            ),
            ("[outbound.telegram]\nbogus = 1", "bogus"),
            ("[office]\npolice_pec = \"polizia\"", "office.police_pec"),
            (
                "[office]\npolice_email = \"Vigili <v@comune.it>\"",
                "office.police_email",
            ),
        ];
        for (toml, key) in cases {
            let err = load(toml, &[]).unwrap_err();
            assert!(
                err.key == *key || err.to_string().contains(key),
                "{toml}: got {err}"
            );
        }
    }

    #[test]
    fn outbound_defaults_and_secrets() {
        let c = load("", &[]).unwrap();
        let o = &c.outbound;
        assert_eq!((o.max_attempts, o.retry_base_seconds, o.batch), (8, 30, 64));
        assert_eq!((o.sender, o.lease_seconds, o.concurrency), (true, 60, 8));
        assert_eq!(
            (
                o.callback_after_days,
                o.reminder_days_before,
                o.pec_delivery_hours
            ),
            (7, 5, 24)
        );
        assert_eq!(o.message_id_domain, None);
        assert_eq!(o.sms.body, DEFAULT_SMS_BODY);
        assert_eq!(o.sms.content_type, "application/json");
        assert_eq!(o.whatsapp.base_url, "https://graph.facebook.com/v21.0");
        assert_eq!(o.whatsapp.template_language, "it");
        assert_eq!(o.telegram.base_url, "https://api.telegram.org");

        let c = load(
            "[outbound.email]\nsmtp_url = \"smtps://u:mailpw@smtp.example.it:465\"\n\
             from = \"permessi@comune.example.it\"\n\
             [outbound.sms]\nurl = \"https://sms.example.it/send\"\ntoken = \"smstoken\"\n\
             [outbound.whatsapp]\nphone_number_id = \"1234\"\naccess_token = \"watoken\"\n\
             template_name = \"risposta\"\n\
             [outbound.fax]\ngateway = \"spool:/var/spool/fax\"\n",
            &[
                ("SPORTELLO_OUTBOUND__TELEGRAM__BOT_TOKEN", "123:tgtoken"),
                ("SPORTELLO_OUTBOUND__MAX_ATTEMPTS", "3"),
                ("SPORTELLO_OUTBOUND__SENDER", "false"),
                ("SPORTELLO_OUTBOUND__LEASE_SECONDS", "5"),
                (
                    "SPORTELLO_OUTBOUND__MESSAGE_ID_DOMAIN",
                    "sportello.comune.example.it",
                ),
            ],
        )
        .unwrap();
        let o = &c.outbound;
        assert_eq!(o.max_attempts, 3);
        assert_eq!((o.sender, o.lease_seconds), (false, 5));
        assert_eq!(
            o.telegram.bot_token.as_ref().map(Secret::expose),
            Some("123:tgtoken")
        );
        assert_eq!(o.whatsapp.template_name.as_deref(), Some("risposta"));
        assert_eq!(
            o.message_id_domain.as_deref(),
            Some("sportello.comune.example.it")
        );
        let printed = format!("{c:?}");
        for secret in ["mailpw", "smstoken", "watoken", "tgtoken"] {
            assert!(!printed.contains(secret), "{secret} leaked in Debug");
        }
    }

    #[test]
    fn the_police_have_no_address_unless_configured() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.office.police_pec, None);
        assert_eq!(c.office.police_email, None);
        assert!(c.office.police_addresses().is_empty());
        let c = load(
            "[office]\npolice_email = \"verbali@comune.example.it\"\n",
            &[(
                "SPORTELLO_OFFICE__POLICE_PEC",
                "polizia.locale@pec.comune.example.it",
            )],
        )
        .unwrap();
        assert_eq!(
            c.office.police_addresses(),
            [
                "polizia.locale@pec.comune.example.it",
                "verbali@comune.example.it"
            ]
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = Config::load(&Sources {
            file: Some("/no/such/file.toml".into()),
            ..Sources::default()
        })
        .unwrap_err();
        assert_eq!(err.key, "--config");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(
            redact_url("https://sms.example.it/send?apikey=k3y&to={to}&Token=t0k"),
            "https://sms.example.it/send?apikey=***&to={to}&Token=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?sslmode=require&password=x"),
            "postgres://u:***@h/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn effective_configuration_is_toml_without_secrets() {
        let c = load(
            "public_url = \"https://permessi.comune.example.it\"\n\
             [database]\nurl = \"postgres://sportello:dbpass@db/sportello\"\n\
             [outbound.sms]\nurl = \"https://sms.example.it/send?apikey=smskey\"\ntoken = \"smstoken\"\n\
             [outbound.telegram]\nbot_token = \"tgtoken\"\n\
             [[mailbox]]\nname = \"pec\"\nimap_url = \"imaps://u:imappass@imap.example.it/INBOX\"",
            &[],
        )
        .unwrap();
        let printed = c.effective_toml().unwrap();
        for secret in ["dbpass", "smskey", "smstoken", "tgtoken", "imappass"] {
            assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
        }
        let parsed: toml::Value = toml::from_str(&printed).expect("valid TOML");
        assert_eq!(
            parsed["public_url"].as_str(),
            Some("https://permessi.comune.example.it")
        );
        assert_eq!(
            parsed["database"]["url"].as_str(),
            Some("postgres://sportello:***@db/sportello")
        );
        assert_eq!(parsed["outbound"]["sms"]["token"].as_str(), Some("***"));
        assert_eq!(parsed["mailbox"][0]["name"].as_str(), Some("pec"));
        assert!(!printed.contains("Config {"), "not a debug dump");
    }
}
