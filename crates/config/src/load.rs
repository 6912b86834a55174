//! Reading the configuration: the TOML file and the `SPORTELLO_<SECTION>__<KEY>` variables merged by
//! figment, then validated as a whole so that each bad value is named by its key; and the effective
//! configuration printed back as TOML with its secrets hidden.

use std::path::{Path, PathBuf};

use crate::secrets::redact_value;
use crate::{Config, ConfigError, TOP_LEVEL_KEYS};
use figment::Figment;
use figment::Provider;
use figment::providers::{Format, Serialized, Toml};
use sportello_domain::calendar::HolidayCalendar;
use sportello_domain::case::{CaseType, Priority, WorkflowKind};

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

/// `user@domain` and nothing else (no name, no brackets, no spaces).
pub(crate) fn is_bare_address(address: &str) -> bool {
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

pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_owned();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p))
        .unwrap_or_else(|_| p.to_owned())
}

/// Turns `SPORTELLO_SECTION__KEY=value` variables into a TOML document. Values are parsed
/// as TOML when they are valid TOML values (numbers, booleans, arrays), else taken as strings.
pub(crate) fn env_as_toml(env: &[(String, String)]) -> Result<String, ConfigError> {
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
        let type_ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
        self.retention.periods(&type_ids)?;
        self.duties.validate()?;
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
        self.trusted_proxies()?;
        self.limits.validate_guard()?;
        if self.limits.max_per_page == 0 {
            return Err(ConfigError::new(
                "limits.max_per_page",
                "must be at least 1",
            ));
        }
        self.security.validate()?;
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
