//! Secrets in the configuration: passwords and tokens never printed, URLs shown with their
//! credentials and secret query parameters hidden, so `config check` and the logs can show the
//! configuration in full.

use std::fmt;

use serde::{Deserialize, Serialize};

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
pub(crate) fn redact_value(value: &mut toml::Value, key: Option<&str>) {
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
