//! E-mail and PEC over SMTP: one pooled lettre transport per route (`outbound.email`,
//! `outbound.pec`), also carrying faxes sent by e-mail.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sportello_config::{ConfigError, SmtpConfig};

use crate::{Attachment, Envelope, SendError, Sent, bare_id};

/// One SMTP command (connect, greeting, each command, the data) gives up after this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections kept open per route at most (and so messages in flight per route).
const POOL_SIZE: u32 = 10;
/// An idle pooled connection is closed after this long (servers drop them around 5 min).
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The configuration keys of one route, for errors that name them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmtpKeys {
    url: &'static str,
    from: &'static str,
}

/// `[outbound.email]`.
pub(crate) const EMAIL_KEYS: SmtpKeys = SmtpKeys {
    url: "outbound.email.smtp_url",
    from: "outbound.email.from",
};
/// `[outbound.pec]`.
pub(crate) const PEC_KEYS: SmtpKeys = SmtpKeys {
    url: "outbound.pec.smtp_url",
    from: "outbound.pec.from",
};

/// A configured SMTP route; the connection pool is made on first use (it needs the Tokio
/// runtime) and then kept.
#[derive(Clone)]
pub(crate) struct SmtpRoute {
    inner: Arc<RouteInner>,
}

struct RouteInner {
    from: Mailbox,
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain text: a relay on the same host or network.
    Plain,
    /// STARTTLS, required (never falls back to plain text).
    StartTls,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// TLS from the first byte (`smtps://`, port 465).
    Wrapper,
}

/// What an `smtp_url` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
}

impl SmtpRoute {
    /// The route, `Err(key)` naming what is missing when it is not configured, or a
    /// configuration error when a value cannot work.
    pub(crate) fn from_config(
        config: &SmtpConfig,
        keys: SmtpKeys,
    ) -> Result<Result<SmtpRoute, &'static str>, ConfigError> {
        let Some(url) = &config.smtp_url else {
            return Ok(Err(keys.url));
        };
        let Some(from) = &config.from else {
            return Ok(Err(keys.from));
        };
        let bad = |key: &str, message: String| ConfigError {
            key: key.to_owned(),
            message,
        };
        let endpoint = parse_url(url.expose()).map_err(|m| bad(keys.url, m))?;
        let from: Mailbox = from
            .trim()
            .parse()
            .map_err(|e| bad(keys.from, format!("not an e-mail address: {e}")))?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|e| bad(keys.url, format!("cannot set up TLS: {e}")))
        };
        let security = match endpoint.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls(&endpoint.host)?),
            Security::Opportunistic => Tls::Opportunistic(tls(&endpoint.host)?),
            Security::Wrapper => Tls::Wrapper(tls(&endpoint.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
            .port(endpoint.port)
            .tls(security)
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_SIZE)
                    .idle_timeout(POOL_IDLE),
            );
        if let Some((user, password)) = endpoint.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Ok(SmtpRoute {
            inner: Arc::new(RouteInner {
                from,
                builder,
                transport: OnceLock::new(),
            }),
        }))
    }

    /// Sends `envelope` to `to` (the envelope's recipient, or the fax gateway's address)
    /// with `attachments`, dated `date`.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        to: &str,
        attachments: impl Iterator<Item = &Attachment>,
        date: SystemTime,
    ) -> Result<Sent, SendError> {
        let message = build_message(&self.inner.from, to, envelope, attachments, date)?;
        let transport = self
            .inner
            .transport
            .get_or_init(|| self.inner.builder.clone().build());
        transport.send(message).await.map_err(classify)?;
        Ok(Sent { provider_ref: None })
    }
}

/// The RFC 5322 message: threading headers, text/plain UTF-8 body, attachments as
/// multipart/mixed. No `Auto-Submitted`: citizens must be able to answer.
fn build_message<'a>(
    from: &Mailbox,
    to: &str,
    envelope: &Envelope,
    attachments: impl Iterator<Item = &'a Attachment>,
    date: SystemTime,
) -> Result<Message, SendError> {
    let to: Mailbox = to
        .trim()
        .parse()
        .map_err(|e| SendError::Permanent(format!("not an e-mail address {to:?}: {e}")))?;
    let message_id = bare_id(&envelope.message_id);
    if message_id.is_empty() || !message_id.contains('@') {
        return Err(SendError::Permanent(format!(
            "message id {message_id:?} is not id@domain"
        )));
    }
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&envelope.subject))
        .date(date)
        .message_id(Some(format!("<{message_id}>")));
    let in_reply_to = envelope
        .in_reply_to
        .as_deref()
        .map(bare_id)
        .filter(|id| !id.is_empty());
    if let Some(id) = in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    // References: the thread, ending with the message answered (RFC 5322 §3.6.4).
    let mut references: Vec<&str> = envelope
        .references
        .iter()
        .map(|r| bare_id(r))
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(id) = in_reply_to
        && !references.contains(&id)
    {
        references.push(id);
    }
    if !references.is_empty() {
        let value: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(value.join(" "));
    }
    let text = SinglePart::plain(envelope.body.clone());
    let mut parts = attachments.peekable();
    let built = if parts.peek().is_none() {
        builder.singlepart(text)
    } else {
        let mut mixed = MultiPart::mixed().singlepart(text);
        for a in parts {
            let content_type = ContentType::parse(a.media_type.trim())
                .or_else(|_| ContentType::parse("application/octet-stream"))
                .map_err(|e| SendError::Permanent(format!("content type: {e}")))?;
            mixed = mixed.singlepart(
                lettre::message::Attachment::new(one_line(&a.filename))
                    .body(a.bytes.clone(), content_type),
            );
        }
        builder.multipart(mixed)
    };
    built.map_err(|e| SendError::Permanent(format!("cannot build the e-mail: {e}")))
}

/// A header value on one line (no header injection through a subject or file name).
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// SMTP outcome → retry or not. Refused credentials (530/534/535/538) are a configuration
/// problem, not the message's: retried, so fixing the password lets the queue drain.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let status = e.status().map(|c| c.to_string());
    let text = e.to_string();
    if let Some(code) = status.as_deref()
        && matches!(code, "530" | "534" | "535" | "538")
    {
        tracing::warn!(code, "the SMTP server refused the credentials");
        return SendError::Retryable(format!("SMTP authentication refused: {text}"));
    }
    if e.is_permanent() {
        SendError::Permanent(format!("SMTP: {text}"))
    } else if e.is_client() {
        // Lettre refused to send (e.g. non-ASCII address without SMTPUTF8): never works.
        SendError::Permanent(format!("SMTP: {text}"))
    } else {
        // 4xx, connection refused or broken, timeout, TLS, bad answer.
        SendError::Retryable(format!("SMTP: {text}"))
    }
}

/// Reads `smtp://[user:pass@]host[:port][?starttls=true|opportunistic]` or
/// `smtps://[user:pass@]host[:port]`.
fn parse_url(raw: &str) -> Result<Endpoint, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let starttls = url
        .query_pairs()
        .find(|(k, _)| k == "starttls")
        .map(|(_, v)| v.to_ascii_lowercase());
    let (port, security) = match url.scheme() {
        "smtps" => (url.port().unwrap_or(465), Security::Wrapper),
        "smtp" => {
            let port = url.port().unwrap_or(25);
            let security = match starttls.as_deref() {
                Some("true" | "yes" | "1" | "required") => Security::StartTls,
                Some("opportunistic") => Security::Opportunistic,
                Some("false" | "no" | "0") => Security::Plain,
                Some(other) => {
                    return Err(format!(
                        "starttls={other}: use true, opportunistic or false"
                    ));
                }
                None if port == 587 => Security::StartTls,
                None => Security::Plain,
            };
            (port, security)
        }
        other => return Err(format!("scheme {other}: use smtp:// or smtps://")),
    };
    let credentials = if url.username().is_empty() {
        None
    } else {
        Some((
            percent_decode(url.username())?,
            percent_decode(url.password().unwrap_or_default())?,
        ))
    };
    Ok(Endpoint {
        host,
        port,
        security,
        credentials,
    })
}

/// `%XX` decoding of a URL's user or password.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad %-escape in the credentials")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "credentials are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    #[test]
    fn urls_choose_the_security() {
        let e = parse_url("smtp://relay.local:2525").unwrap();
        assert_eq!(
            (e.port, e.security, e.credentials),
            (2525, Security::Plain, None)
        );
        let e = parse_url("smtp://u%40x:p%3Aw@mail.example.it:587").unwrap();
        assert_eq!(e.security, Security::StartTls);
        assert_eq!(e.credentials, Some(("u@x".to_owned(), "p:w".to_owned())));
        let e = parse_url("smtp://mail.example.it:25?starttls=true").unwrap();
        assert_eq!(e.security, Security::StartTls);
        let e = parse_url("smtps://u:p@smtps.pec.example.it").unwrap();
        assert_eq!((e.port, e.security), (465, Security::Wrapper));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://x?starttls=maybe").is_err());
    }

    #[test]
    fn bad_config_names_its_key() {
        let config = SmtpConfig {
            smtp_url: Some(sportello_config::SecretUrl("smtp://localhost:25".into())),
            from: Some("not an address".into()),
        };
        let err = SmtpRoute::from_config(&config, PEC_KEYS).err().unwrap();
        assert_eq!(err.key, "outbound.pec.from");
        let config = SmtpConfig {
            smtp_url: Some(sportello_config::SecretUrl("smtp://localhost:25".into())),
            from: None,
        };
        assert!(matches!(
            SmtpRoute::from_config(&config, EMAIL_KEYS),
            Ok(Err("outbound.email.from"))
        ));
    }

    #[test]
    fn the_message_threads_and_stays_on_one_line() {
        let envelope = Envelope {
            channel: Channel::Email,
            to: "cittadino@example.it".into(),
            subject: "Pratica ZTL-2026-1\r\nBcc: evil@example.it".into(),
            body: "Gentile cittadino, è tutto a posto.".into(),
            message_id: "out-1.ab@sportello.example.it".into(),
            in_reply_to: Some("<q1@example.it>".into()),
            references: vec!["q0@example.it".into()],
            attachments: Vec::new(),
            whatsapp_template: false,
        };
        let from: Mailbox = "Ufficio <permessi@comune.example.it>".parse().unwrap();
        let m = build_message(
            &from,
            &envelope.to,
            &envelope,
            [].iter(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <out-1.ab@sportello.example.it>"),
            "{raw}"
        );
        assert!(raw.contains("In-Reply-To: <q1@example.it>"), "{raw}");
        assert!(
            raw.contains("References: <q0@example.it> <q1@example.it>"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(!raw.contains("Auto-Submitted"), "{raw}");
        let bad = Envelope {
            to: "nobody".into(),
            ..envelope
        };
        assert!(matches!(
            build_message(&from, &bad.to, &bad, [].iter(), SystemTime::UNIX_EPOCH),
            Err(SendError::Permanent(_))
        ));
    }
}
