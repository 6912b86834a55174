//! Sportello's configuration (CONTRACT §3).
//!
//! One typed struct, read from `sportello.toml` (optional) and overridden by
//! `SPORTELLO_<SECTION>__<KEY>` environment variables, then validated as a whole so that a
//! bad value stops start-up with a message naming its key.

mod channels;
mod duties;
mod load;
mod metrics;
mod network;
mod office;
mod outbound;
mod retention;
mod secrets;
mod security;
mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use channels::{
    DEFAULT_FAX_CALLER_PATTERNS, FaxConfig, MailboxConfig, PecConfig, TelegramConfig,
    WebhooksConfig, WhatsappConfig,
};
pub use duties::DutiesConfig;
pub use load::{Sources, process_env};
pub use metrics::MetricsConfig;
pub use network::TrustedProxies;
pub use office::{CalendarConfig, CaseTypeConfig, LimitsConfig, OfficeConfig};
pub use outbound::{
    DEFAULT_SMS_BODY, OutboundConfig, OutboundFaxConfig, OutboundTelegramConfig,
    OutboundWhatsappConfig, SmsConfig, SmtpConfig,
};
pub use retention::RetentionConfig;
pub use secrets::{Secret, SecretUrl, redact_url};
pub use security::SecurityConfig;
pub use storage::{DatabaseConfig, DocumentsConfig, OcrConfig, PolicyConfig, ScanConfig};

/// The commented example configuration printed by `sportello config example`.
pub const EXAMPLE: &str = include_str!("../sportello.example.toml");

/// Top-level keys, so that unrelated `SPORTELLO_*` variables (e.g. `SPORTELLO_CONFIG`) are not read as settings.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
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
    "security",
    "office",
    "retention",
    "trusted_proxies",
    "metrics",
    "duties",
];

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
    /// Reverse proxies whose `X-Forwarded-For` is believed (IPs or CIDR networks).
    pub trusted_proxies: Vec<String>,
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
    /// Sessions and second factor.
    pub security: SecurityConfig,
    /// How long closed cases keep their documents and personal data.
    pub retention: RetentionConfig,
    /// Who may read `/metrics`.
    pub metrics: MetricsConfig,
    /// Background ticks and the leases of duties (several instances).
    pub duties: DutiesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./sportello-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
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
            security: SecurityConfig::default(),
            retention: RetentionConfig::default(),
            metrics: MetricsConfig::default(),
            duties: DutiesConfig::default(),
        }
    }
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
                "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]",
                "trusted_proxies[1]",
            ),
            ("[limits]\nanonymous_writes = 0", "limits.anonymous_writes"),
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
