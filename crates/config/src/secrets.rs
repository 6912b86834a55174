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

/// Hides the password of `scheme://user:password@host…` and the values of query (and
/// fragment) parameters that carry credentials (`?apikey=…`, `&token=…`, `sig=…`,
/// `#access_token=…`): gateways put their keys in URLs, and a printed configuration must
/// not hand them out. Only the authority's userinfo counts (an `@` in the path is left as
/// it is), and parameter names are compared after percent-decoding (`api%5Fkey`).
pub fn redact_url(url: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_pairs(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&redact_pairs(fragment));
    }
    out
}

/// `name=value` pairs separated by `&` (or `;`), the secret ones' values replaced by `***`.
fn redact_pairs(pairs: &str) -> String {
    let mut out = String::with_capacity(pairs.len());
    let mut rest = pairs;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (pair, tail) = rest.split_at(end);
        match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_name(&percent_decoded(name)) => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
        let mut chars = tail.chars();
        match chars.next() {
            Some(separator) => {
                out.push(separator);
                rest = chars.as_str();
            }
            None => break,
        }
    }
    out
}

/// A query parameter's name with `%XX` escapes and `+` decoded (invalid escapes kept).
fn percent_decoded(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one hexadecimal digit.
fn hex(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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
        "hmac",
        "jwt",
        "bearer",
        "session",
        "private",
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
    "password",
    "api_key",
    "apikey",
    "client_secret",
    "private_key",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_parameters_are_hidden_whatever_their_spelling() {
        for (url, shown) in [
            (
                "https://sms.example.it/send?to={to}&apikey=k3y",
                "https://sms.example.it/send?to={to}&apikey=***",
            ),
            (
                "https://sms.example.it/send?API_KEY=k3y&text={text}",
                "https://sms.example.it/send?API_KEY=***&text={text}",
            ),
            (
                "https://gw.example.it/s?access_token=a&sig=b;signature=c&user=u",
                "https://gw.example.it/s?access_token=***&sig=***;signature=***&user=u",
            ),
            (
                "https://gw.example.it/s?api%5Fkey=k3y&pass=p&secret=s",
                "https://gw.example.it/s?api%5Fkey=***&pass=***&secret=***",
            ),
            (
                "https://gw.example.it/cb#access_token=t0k&state=1",
                "https://gw.example.it/cb#access_token=***&state=1",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn only_the_authority_holds_credentials() {
        assert_eq!(
            redact_url("imaps://u%40x:p4ss@imap.example.it:993/INBOX"),
            "imaps://u%40x:***@imap.example.it:993/INBOX"
        );
        // An `@` in the path is not a password's end.
        assert_eq!(
            redact_url("https://host.example.it:8443/mail/a@b"),
            "https://host.example.it:8443/mail/a@b"
        );
        assert_eq!(
            redact_url("https://u:pw@host.example.it/a@b?x=1"),
            "https://u:***@host.example.it/a@b?x=1"
        );
        // Parameters that carry nothing secret, and empty values, stay as they are.
        assert_eq!(
            redact_url("https://h.example.it/p?to=1&token=&flag"),
            "https://h.example.it/p?to=1&token=&flag"
        );
    }

    #[test]
    fn decoding_never_breaks_on_odd_escapes() {
        assert_eq!(percent_decoded("api%5fkey"), "api_key");
        assert_eq!(percent_decoded("a%zz%"), "a%zz%");
        assert_eq!(percent_decoded("è%e"), "è%e");
    }

    #[test]
    fn whole_secret_values_are_hidden() {
        let mut value: toml::Value = toml::from_str(
            "[sms]\napi_key = \"k\"\npassword = \"p\"\nurl = \"https://x.example.it/?Token=t\"\n",
        )
        .unwrap();
        redact_value(&mut value, None);
        let printed = toml::to_string(&value).unwrap();
        for secret in ["\"k\"", "\"p\"", "Token=t"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
}
