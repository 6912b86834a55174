//! E-mail and PEC over SMTP: one small pool of reused connections per route
//! (`outbound.email`, `outbound.pec`), also carrying faxes sent by e-mail.
//!
//! The pool is ours rather than lettre's: lettre's pooled transport opens its sockets
//! without `TCP_NODELAY`, writes the final `.` of DATA as a small packet of its own and so
//! waits for the server's delayed ACK (about 40 ms a message, capping a connection near
//! 25 messages/s), and it sends a NOOP before every message. Here every socket (plain,
//! STARTTLS and `smtps://`) is opened by us with `TCP_NODELAY`, handed to lettre's SMTP
//! client, and kept for the next message; a connection found dead when reused is replaced
//! before anything of the message was sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use lettre::Message;
use lettre::address::Envelope as SmtpEnvelope;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use sportello_config::{ConfigError, SmtpConfig};
use tokio::net::TcpStream;

use crate::{Attachment, Envelope, SendError, Sent, bare_id};

/// One SMTP step (connecting with greeting, TLS and login; each command; the message
/// with its answer) gives up after this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open per route at most (and so messages in flight per route).
const POOL_SIZE: usize = 10;
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

/// A configured SMTP route and its pool of connections (opened on first use, then kept).
#[derive(Clone)]
pub(crate) struct SmtpRoute {
    inner: Arc<RouteInner>,
}

struct RouteInner {
    from: Mailbox,
    host: String,
    port: u16,
    security: Security,
    /// Present unless the route is plain text.
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    /// The EHLO name: this host's name (lettre's default), computed once.
    hello: ClientId,
    /// Connections waiting for the next message, the most recently used last.
    idle: Mutex<Vec<Parked>>,
    /// One permit per connection the route may have open.
    slots: tokio::sync::Semaphore,
}

/// An idle connection and since when it is idle.
struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
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

/// Why one SMTP attempt failed.
#[derive(Debug)]
enum Failure {
    /// The server's answer, or lettre's own refusal (`is_client`), or a broken stream.
    Smtp(lettre::transport::smtp::Error),
    /// The TCP connection could not be opened.
    Connect(std::io::Error),
    /// A step took longer than [`SMTP_TIMEOUT`]; names the step.
    Timeout(&'static str),
    /// The message needs an extension the server lacks (8BITMIME, SMTPUTF8).
    Unsupported(&'static str),
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Failure {
        Failure::Smtp(e)
    }
}

impl Failure {
    /// Whether the server answered (the connection is still in step and can be reset
    /// and reused).
    fn server_answered(&self) -> bool {
        matches!(self, Failure::Smtp(e) if e.status().is_some())
    }

    /// Whether a kept connection failing this way at `MAIL FROM` may just have been
    /// closed by the server while idle (an error without a permanent refusal).
    fn may_be_stale(&self) -> bool {
        match self {
            Failure::Smtp(e) => !e.is_permanent(),
            Failure::Timeout(_) => true,
            Failure::Connect(_) | Failure::Unsupported(_) => false,
        }
    }
}

/// Where in the transaction an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// At `MAIL FROM`: nothing of the message has been taken yet.
    Mail,
    /// Later (recipients, DATA, the message itself).
    Later,
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
        let tls = match endpoint.security {
            Security::Plain => None,
            _ => Some(
                TlsParameters::new(endpoint.host.clone())
                    .map_err(|e| bad(keys.url, format!("cannot set up TLS: {e}")))?,
            ),
        };
        Ok(Ok(SmtpRoute {
            inner: Arc::new(RouteInner {
                from,
                host: endpoint.host,
                port: endpoint.port,
                security: endpoint.security,
                tls,
                credentials: endpoint
                    .credentials
                    .map(|(user, password)| Credentials::new(user, password)),
                hello: ClientId::default(),
                idle: Mutex::new(Vec::new()),
                slots: tokio::sync::Semaphore::new(POOL_SIZE),
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
        let smtp_envelope = message.envelope().clone();
        let raw = message.formatted();
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Retryable("SMTP route closed".into()))?;
        loop {
            let (mut conn, reused) = match self.take_idle() {
                Some(conn) => (conn, true),
                None => (self.connect().await.map_err(classify)?, false),
            };
            match transact(&mut conn, &smtp_envelope, &raw).await {
                Ok(()) => {
                    self.park(conn);
                    return Ok(Sent { provider_ref: None });
                }
                // A kept connection the server has meanwhile closed (or is closing, 421):
                // nothing of the message was taken, so another connection may try.
                Err((Stage::Mail, failure)) if reused && failure.may_be_stale() => {
                    tracing::debug!(error = ?failure, "pooled SMTP connection unusable; replacing it");
                }
                Err((_, failure)) => {
                    if matches!(failure, Failure::Unsupported(_)) {
                        // Refused before any command: the connection is untouched.
                        self.park(conn);
                    } else if failure.server_answered() {
                        // The server is fine, the transaction is not: reset and keep.
                        if let Ok(Ok(_)) =
                            tokio::time::timeout(SMTP_TIMEOUT, conn.command(Rset)).await
                        {
                            self.park(conn);
                        }
                    }
                    return Err(classify(failure));
                }
            }
        }
    }

    /// The most recently used idle connection, closing those idle for too long.
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(parked) = idle.pop() {
            if parked.since.elapsed() < POOL_IDLE {
                return Some(parked.conn);
            }
            // The older ones sit below it: all of them are stale.
            idle.clear();
        }
        None
    }

    /// Keeps `conn` for the next message.
    fn park(&self, conn: AsyncSmtpConnection) {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Parked {
                conn,
                since: Instant::now(),
            });
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured, greeting, EHLO,
    /// STARTTLS, login.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let inner = &*self.inner;
        let work = async {
            let tcp = TcpStream::connect((inner.host.as_str(), inner.port))
                .await
                .map_err(Failure::Connect)?;
            tcp.set_nodelay(true).map_err(Failure::Connect)?;
            let mut conn = match (inner.security, &inner.tls) {
                (Security::Wrapper, Some(tls)) => {
                    let stream = TlsOverNodelay::handshake(tcp, tls.clone()).await?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &inner.hello)
                        .await?
                }
                _ => {
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &inner.hello).await?
                }
            };
            match (inner.security, &inner.tls) {
                (Security::StartTls, Some(tls)) => {
                    conn.starttls(tls.clone(), &inner.hello).await?;
                }
                (Security::Opportunistic, Some(tls)) if conn.can_starttls() => {
                    conn.starttls(tls.clone(), &inner.hello).await?;
                }
                _ => {}
            }
            if let Some(credentials) = &inner.credentials {
                conn.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok(conn)
        };
        tokio::time::timeout(SMTP_TIMEOUT, work)
            .await
            .map_err(|_| Failure::Timeout("connecting"))?
    }
}

/// One message over an open connection: MAIL FROM, RCPT TO, DATA, the message.
async fn transact(
    conn: &mut AsyncSmtpConnection,
    envelope: &SmtpEnvelope,
    raw: &[u8],
) -> Result<(), (Stage, Failure)> {
    async fn step<T>(
        stage: Stage,
        what: &'static str,
        f: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, (Stage, Failure)> {
        match tokio::time::timeout(SMTP_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err((stage, Failure::Smtp(e))),
            Err(_) => Err((stage, Failure::Timeout(what))),
        }
    }
    let mut options = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err((
                Stage::Mail,
                Failure::Unsupported("the address is not ASCII and the server lacks SMTPUTF8"),
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err((
                Stage::Mail,
                Failure::Unsupported("the message is not ASCII and the server lacks 8BITMIME"),
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    step(
        Stage::Mail,
        "MAIL FROM",
        conn.command(Mail::new(envelope.from().cloned(), options)),
    )
    .await?;
    for to in envelope.to() {
        step(
            Stage::Later,
            "RCPT TO",
            conn.command(Rcpt::new(to.clone(), Vec::new())),
        )
        .await?;
    }
    step(Stage::Later, "DATA", conn.command(Data)).await?;
    step(Stage::Later, "the message", conn.message(raw)).await?;
    Ok(())
}

/// TLS from the first byte over a socket we opened (so with `TCP_NODELAY`), for
/// `smtps://`. lettre's `AsyncSmtpConnection` only takes a ready stream whose first bytes
/// are the greeting, so the handshake is done here with lettre's own rustls stream (the
/// same roots, provider and checks as its transport), seen through the tokio I/O traits.
#[derive(Debug)]
#[allow(deprecated)] // `AsyncNetworkStream` is public but "not meant to be": it is the only way to reuse lettre's TLS set-up.
struct TlsOverNodelay(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl TlsOverNodelay {
    /// The TLS handshake over `tcp`, checking the server's name and certificate.
    async fn handshake(tcp: TcpStream, tls: TlsParameters) -> Result<TlsOverNodelay, Failure> {
        let mut stream =
            lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(tls).await?;
        Ok(TlsOverNodelay(stream))
    }
}

impl tokio::io::AsyncRead for TlsOverNodelay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsOverNodelay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        futures::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for TlsOverNodelay {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
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
fn classify(failure: Failure) -> SendError {
    let e = match failure {
        Failure::Smtp(e) => e,
        Failure::Connect(e) => return SendError::Retryable(format!("SMTP: cannot connect: {e}")),
        Failure::Timeout(step) => {
            return SendError::Retryable(format!(
                "SMTP: no answer within {} s ({step})",
                SMTP_TIMEOUT.as_secs()
            ));
        }
        Failure::Unsupported(what) => return SendError::Permanent(format!("SMTP: {what}")),
    };
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
        // Lettre refused to send (e.g. STARTTLS required and not offered): never works.
        SendError::Permanent(format!("SMTP: {text}"))
    } else {
        // 4xx, connection broken, TLS, bad answer.
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
