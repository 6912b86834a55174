//! Mailbox polling over IMAP and IMAPS (CONTRACT §3 `[[mailbox]]`, §7.1).
//!
//! One poller per configured mailbox, all in parallel. A poller works only while it holds
//! its mailbox's lease in the database, so instances sharing a database never poll the same
//! mailbox at once and one takes over when another dies. Progress is a UID cursor kept with
//! the folder's UIDVALIDITY; a message is fetched without touching its flags, run through
//! the intake pipeline (its own transaction), and only then marked `\Seen` and the cursor
//! moved. A crash anywhere in between makes the message come round again, and the intake's
//! dedupe recognises it: nothing is lost and nothing counted twice. Reading the cursor
//! rather than the `\Seen` flag means a clerk opening a message in a mail client does not
//! hide it from Sportello.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sportello_store::documents::BlobStore;
use sportello_store::mailboxes::MailboxCursor;
use sportello_store::{Store, StoreError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use crate::email::EmailSource;
use crate::pipeline::{Limits, OcrSettings, ingest_arrived_email};

/// Messages whose size is fetched in one command.
const SIZE_CHUNK: usize = 500;
/// Bodies fetched in one command: at most this many messages…
const BODY_CHUNK: usize = 100;
/// …and at most this many bytes (a single larger message is fetched alone).
const BODY_CHUNK_BYTES: u64 = 32 * 1024 * 1024;
/// A message that fails this many times in a row while the database works is skipped.
const MAX_ATTEMPTS: u32 = 3;
/// Connecting and logging in must not hang a poller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a poll stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The configured URL cannot be used.
    #[error("imap_url: {0}")]
    Url(String),
    /// The server cannot be reached or the connection broke.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused a command (login, select…) or answered nonsense.
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    /// The database or document store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another instance holds the mailbox now.
    #[error("the mailbox's lease was lost to another instance")]
    LeaseLost,
}

/// Where a mailbox lives, from `imap://` or `imaps://user:pass@host:port/FOLDER`.
#[derive(Clone)]
pub struct MailboxAccount {
    /// Server name (also the TLS name checked against its certificate).
    pub host: String,
    /// Port (143 or 993 by default).
    pub port: u16,
    /// IMAPS (TLS from the first byte) rather than plain IMAP.
    pub tls: bool,
    /// Login.
    pub user: String,
    password: String,
    /// Folder to read (`INBOX` by default).
    pub folder: String,
}

impl fmt::Debug for MailboxAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl MailboxAccount {
    /// Reads a mailbox URL; user, password and folder may be percent-encoded.
    pub fn parse(url: &str) -> Result<MailboxAccount, ImapError> {
        let parsed = url::Url::parse(url).map_err(|e| ImapError::Url(e.to_string()))?;
        let tls = match parsed.scheme() {
            "imaps" => true,
            "imap" => false,
            other => return Err(ImapError::Url(format!("unknown scheme {other}"))),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ImapError::Url("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| ImapError::Url("bad percent-encoding".into()))
        };
        let user = decode(parsed.username())?;
        if user.is_empty() {
            return Err(ImapError::Url("no user".into()));
        }
        let password = decode(parsed.password().unwrap_or(""))?;
        let folder = decode(parsed.path().trim_start_matches('/'))?;
        Ok(MailboxAccount {
            port: parsed.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            tls,
            user,
            password,
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder
            },
        })
    }

    /// The URL without the password, for logs and message sources.
    pub fn label(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            if self.tls { "imaps" } else { "imap" },
            self.user,
            self.host,
            self.port,
            self.folder
        )
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A connection to the server, plain or TLS.
#[derive(Debug)]
pub enum Connection {
    /// `imap://` (for a server on the same host or network; prefer `imaps://`).
    Plain(TcpStream),
    /// `imaps://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in IMAP session.
pub type Session = async_imap::Session<Connection>;

/// The TLS settings: the system's trust store (which honours `SSL_CERT_FILE`).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(ImapError::Tls(
            "no trusted certificates on this system".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Opens a logged-in session.
pub async fn connect(account: &MailboxAccount) -> Result<Session, ImapError> {
    let work = async {
        let tcp = TcpStream::connect((account.host.as_str(), account.port)).await?;
        tcp.set_nodelay(true)?;
        let stream = if account.tls {
            let name = rustls::pki_types::ServerName::try_from(account.host.clone())
                .map_err(|e| ImapError::Tls(e.to_string()))?;
            Connection::Tls(Box::new(tls_connector()?.connect(name, tcp).await?))
        } else {
            Connection::Plain(tcp)
        };
        let mut client = async_imap::Client::new(stream);
        client.read_response().await?.ok_or_else(|| {
            ImapError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection before greeting",
            ))
        })?;
        client
            .login(&account.user, &account.password)
            .await
            .map_err(|(e, _)| ImapError::Protocol(e))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| {
            ImapError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer from the server",
            ))
        })?
}

/// What a pass over a mailbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    /// Messages run through the pipeline (duplicates included).
    pub ingested: usize,
    /// Messages given up on after repeated failures (left unread on the server).
    pub skipped: usize,
}

/// Polls one configured mailbox.
pub struct MailboxPoller {
    name: String,
    account: MailboxAccount,
    source: EmailSource,
    store: Store,
    blobs: BlobStore,
    ocr: OcrSettings,
    limits: Limits,
    owner: String,
    poll_every: Duration,
    lease_ttl: Duration,
    failures: HashMap<(i64, u32), u32>,
}

impl fmt::Debug for MailboxPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxPoller")
            .field("name", &self.name)
            .field("account", &self.account)
            .field("owner", &self.owner)
            .finish()
    }
}

/// Everything a poller needs besides its mailbox.
#[derive(Clone)]
pub struct PollerContext {
    /// The database.
    pub store: Store,
    /// Where raw messages and attachments go.
    pub blobs: BlobStore,
    /// OCR for faxes.
    pub ocr: OcrSettings,
    /// Attachment limits.
    pub limits: Limits,
    /// This instance's name in the lease table (unique per process).
    pub owner: String,
    /// PEC trust anchors.
    pub pec_trust_anchors: Option<Arc<Vec<u8>>>,
}

impl MailboxPoller {
    /// A poller for every `[[mailbox]]` that has an `imap_url`.
    pub fn from_config(
        config: &sportello_config::Config,
        context: &PollerContext,
    ) -> Result<Vec<MailboxPoller>, ImapError> {
        let mut pollers = Vec::new();
        for mailbox in &config.mailbox {
            let Some(url) = &mailbox.imap_url else {
                continue;
            };
            let account = MailboxAccount::parse(url.expose())
                .map_err(|e| ImapError::Url(format!("mailbox '{}': {e}", mailbox.name)))?;
            let source = EmailSource::from_config(
                config,
                Some(&mailbox.name),
                context.pec_trust_anchors.clone(),
            )
            .map_err(ImapError::Url)?;
            pollers.push(MailboxPoller {
                name: mailbox.name.clone(),
                account,
                source,
                store: context.store.clone(),
                blobs: context.blobs.clone(),
                ocr: context.ocr.clone(),
                limits: context.limits,
                owner: context.owner.clone(),
                poll_every: Duration::from_secs(mailbox.poll_seconds),
                lease_ttl: Duration::from_secs(mailbox.lease_seconds),
                failures: HashMap::new(),
            });
        }
        Ok(pollers)
    }

    /// The mailbox's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls for ever: waits for the lease, then polls every `poll_seconds` while holding
    /// it, reconnecting with exponential back-off after any failure.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            match self
                .store
                .acquire_mailbox_lease(&self.name, &self.owner, self.lease_ttl)
                .await
            {
                Ok(true) => {
                    tracing::info!(mailbox = %self.name, account = %self.account.label(), "polling this mailbox");
                    let lease = LeaseKeeper::start(
                        self.store.clone(),
                        self.name.clone(),
                        self.owner.clone(),
                        self.lease_ttl,
                    );
                    let error = self.hold(&lease, &mut backoff).await;
                    drop(lease);
                    match error {
                        ImapError::LeaseLost => {
                            tracing::warn!(mailbox = %self.name, "another instance took over this mailbox");
                        }
                        e => {
                            let wait = backoff.next();
                            tracing::warn!(mailbox = %self.name, error = %e, retry_in = ?wait, "mailbox poll failed");
                            let _ = self
                                .store
                                .record_mailbox_error(&self.name, &e.to_string())
                                .await;
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                Ok(false) => {
                    // Someone else polls it; check again well within a lease's length.
                    tokio::time::sleep((self.lease_ttl / 3).min(self.poll_every)).await;
                }
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(mailbox = %self.name, error = %e, retry_in = ?wait, "cannot reach the database for the mailbox lease");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Connects and polls until something fails or the lease is lost; returns why.
    async fn hold(&mut self, lease: &LeaseKeeper, backoff: &mut Backoff) -> ImapError {
        let mut session = match connect(&self.account).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        loop {
            if let Err(e) = self.poll(&mut session, lease).await {
                let _ = session.logout().await;
                return e;
            }
            backoff.reset();
            tokio::select! {
                _ = tokio::time::sleep(self.poll_every) => {}
                _ = lease.until_lost() => {
                    let _ = session.logout().await;
                    return ImapError::LeaseLost;
                }
            }
        }
    }

    /// One pass: every message after the cursor, in UID order.
    async fn poll(
        &mut self,
        session: &mut Session,
        lease: &LeaseKeeper,
    ) -> Result<PollReport, ImapError> {
        let selected = session.select(&self.account.folder).await?;
        let uidvalidity = i64::from(selected.uid_validity.unwrap_or(0));
        let cursor = self.store.mailbox_cursor(&self.name).await?;
        if cursor.uidvalidity.is_some_and(|v| v != uidvalidity) {
            tracing::warn!(mailbox = %self.name, old = ?cursor.uidvalidity, new = uidvalidity,
                "UIDVALIDITY changed: the folder is read again from the start (already seen messages are recognised)");
        }
        let from = cursor.next_uid(uidvalidity);
        let mut uids: Vec<u32> = if selected.exists == 0 {
            Vec::new()
        } else {
            session
                .uid_search(format!("UID {from}:*"))
                .await?
                .into_iter()
                .filter(|&uid| i64::from(uid) >= from)
                .collect()
        };
        uids.sort_unstable();
        let mut report = PollReport::default();
        let mut done = from - 1;
        for size_chunk in uids.chunks(SIZE_CHUNK) {
            let sizes = fetch_sizes(session, size_chunk).await?;
            for batch in body_batches(size_chunk, &sizes) {
                let bodies = fetch_bodies(session, &batch).await?;
                let mut committed = Vec::with_capacity(batch.len());
                let mut failure = None;
                for uid in batch {
                    if lease.is_lost() {
                        failure = Some(ImapError::LeaseLost);
                        break;
                    }
                    // A message expunged since the search is simply gone.
                    let Some((raw, arrived_at)) = bodies.get(&uid) else {
                        done = i64::from(uid);
                        continue;
                    };
                    match self
                        .ingest(uidvalidity, uid, raw.clone(), *arrived_at)
                        .await
                    {
                        Ok(()) => {
                            committed.push(uid);
                            report.ingested += 1;
                            done = i64::from(uid);
                        }
                        Err(e) => {
                            if self.give_up_on(uidvalidity, uid, &e).await {
                                report.skipped += 1;
                                done = i64::from(uid);
                                continue;
                            }
                            failure = Some(e);
                            break;
                        }
                    }
                }
                // Whatever got committed is marked and recorded, even when the batch stopped.
                if !committed.is_empty() {
                    mark_seen(session, &committed).await?;
                }
                self.record_progress(uidvalidity, done).await?;
                if let Some(e) = failure {
                    return Err(e);
                }
            }
        }
        if uids.is_empty() {
            self.record_progress(uidvalidity, done).await?;
        }
        if report.ingested > 0 {
            tracing::info!(mailbox = %self.name, ingested = report.ingested, skipped = report.skipped, "mailbox polled");
        }
        Ok(report)
    }

    /// Moves the cursor (fenced by the lease).
    async fn record_progress(&self, uidvalidity: i64, last_uid: i64) -> Result<(), ImapError> {
        let cursor = MailboxCursor {
            uidvalidity: Some(uidvalidity),
            last_uid,
        };
        if self
            .store
            .advance_mailbox(&self.name, &self.owner, cursor)
            .await?
        {
            Ok(())
        } else {
            Err(ImapError::LeaseLost)
        }
    }

    async fn ingest(
        &self,
        uidvalidity: i64,
        uid: u32,
        raw: Bytes,
        arrived_at: Option<DateTime<Utc>>,
    ) -> Result<(), ImapError> {
        let source = format!(
            "{};UIDVALIDITY={uidvalidity}/;UID={uid}",
            self.account.label()
        );
        let outcome = ingest_arrived_email(
            &self.store,
            &self.blobs,
            raw,
            &source,
            arrived_at,
            &self.source,
            &self.ocr,
            self.limits,
        )
        .await?;
        metrics::counter!("sportello_intake_total", "channel" => outcome.channel.clone(), "outcome" => outcome.outcome.clone())
            .increment(1);
        tracing::info!(mailbox = %self.name, uid, outcome = %outcome.outcome, case = ?outcome.case, protocol = ?outcome.protocol, flags = ?outcome.flags, "message");
        Ok(())
    }

    /// Counts a failure of one message; `true` when it should be skipped so that it does
    /// not block the mailbox: it failed repeatedly while the database answers, so the
    /// fault is in the message, not in the installation. It stays unread on the server.
    async fn give_up_on(&mut self, uidvalidity: i64, uid: u32, error: &ImapError) -> bool {
        let attempts = self.failures.entry((uidvalidity, uid)).or_insert(0);
        *attempts += 1;
        if *attempts < MAX_ATTEMPTS || !self.store.ping().await {
            return false;
        }
        self.failures.remove(&(uidvalidity, uid));
        let note = format!(
            "message UID {uid} skipped after {MAX_ATTEMPTS} failures (left unread on the server): {error}"
        );
        tracing::error!(mailbox = %self.name, uid, error = %error, "message skipped after repeated failures");
        metrics::counter!("sportello_intake_total", "channel" => self.source.channel.as_str().to_owned(), "outcome" => "skipped")
            .increment(1);
        let _ = self.store.record_mailbox_error(&self.name, &note).await;
        true
    }
}

/// `UID FETCH … RFC822.SIZE`.
async fn fetch_sizes(session: &mut Session, uids: &[u32]) -> Result<HashMap<u32, u64>, ImapError> {
    let stream = session
        .uid_fetch(uid_set(uids), "(UID RFC822.SIZE)")
        .await?;
    let fetches: Vec<_> = stream.try_collect().await?;
    Ok(fetches
        .iter()
        .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
        .collect())
}

/// Groups UIDs so that one fetch brings at most [`BODY_CHUNK`] messages and
/// [`BODY_CHUNK_BYTES`] bytes (a larger message alone).
fn body_batches(uids: &[u32], sizes: &HashMap<u32, u64>) -> Vec<Vec<u32>> {
    let mut batches: Vec<Vec<u32>> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for &uid in uids {
        let size = sizes.get(&uid).copied().unwrap_or(0);
        if !current.is_empty() && (current.len() >= BODY_CHUNK || bytes + size > BODY_CHUNK_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(uid);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// `UID FETCH … (INTERNALDATE BODY.PEEK[])`: the raw messages, flags untouched, with
/// when our IMAP server received each one (its `INTERNALDATE`, the message's delivery to
/// the office when nothing more trustworthy says otherwise; `None` if unreadable).
async fn fetch_bodies(
    session: &mut Session,
    uids: &[u32],
) -> Result<HashMap<u32, (Bytes, Option<DateTime<Utc>>)>, ImapError> {
    let mut stream = session
        .uid_fetch(uid_set(uids), "(UID INTERNALDATE BODY.PEEK[])")
        .await?;
    let mut bodies = HashMap::with_capacity(uids.len());
    while let Some(fetch) = stream.try_next().await? {
        if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
            let arrived_at = fetch.internal_date().map(|d| d.with_timezone(&Utc));
            bodies.insert(uid, (Bytes::copy_from_slice(body), arrived_at));
        }
    }
    Ok(bodies)
}

/// `UID STORE … +FLAGS.SILENT (\Seen)` once the messages' effects are committed.
async fn mark_seen(session: &mut Session, uids: &[u32]) -> Result<(), ImapError> {
    let stream = session
        .uid_store(uid_set(uids), "+FLAGS.SILENT (\\Seen)")
        .await?;
    let _: Vec<_> = stream.try_collect().await?;
    Ok(())
}

/// `1,2,3,7` as `1:3,7`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            end = uids[i + 1];
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Renews a mailbox lease in the background (every third of its length) and reports when
/// it could not be renewed, so a long OCR never lets a lease lapse unnoticed.
struct LeaseKeeper {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    fn start(store: Store, mailbox: String, owner: String, ttl: Duration) -> LeaseKeeper {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store.acquire_mailbox_lease(&mailbox, &owner, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tx.send(true);
                        return;
                    }
                    // The database may come back before the lease lapses; the fenced
                    // cursor update catches the case where it does not.
                    Err(e) => {
                        tracing::warn!(mailbox = %mailbox, error = %e, "cannot renew the mailbox lease")
                    }
                }
            }
        });
        LeaseKeeper { lost: rx, task }
    }
}

impl LeaseKeeper {
    fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    async fn until_lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Exponential back-off with jitter, from one second to five minutes.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    fn next(&mut self) -> Duration {
        let base = Duration::from_secs(1u64 << self.attempt.min(9)).min(MAX_BACKOFF);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
        base + Duration::from_millis(jitter)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_are_read_with_defaults_and_decoding() {
        let a = MailboxAccount::parse(
            "imaps://protocollo%40comune.it:p%40ss@imap.pec.it/Posta%20in%20arrivo",
        )
        .unwrap();
        assert_eq!(
            (
                a.host.as_str(),
                a.port,
                a.tls,
                a.user.as_str(),
                a.folder.as_str()
            ),
            (
                "imap.pec.it",
                993,
                true,
                "protocollo@comune.it",
                "Posta in arrivo"
            )
        );
        assert_eq!(a.password, "p@ss");
        assert!(
            !format!("{a:?}").contains("p@ss"),
            "the password stays out of logs"
        );
        let b = MailboxAccount::parse("imap://u:p@127.0.0.1:1143").unwrap();
        assert_eq!((b.port, b.tls, b.folder.as_str()), (1143, false, "INBOX"));
        for bad in [
            "http://u:p@h/",
            "imap://h/INBOX",
            "imap://u:p@/x",
            "imap://u:%zz@h/",
        ] {
            assert!(MailboxAccount::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn body_batches_bound_count_and_bytes() {
        let uids: Vec<u32> = (1..=250).collect();
        let sizes: HashMap<u32, u64> = uids.iter().map(|&u| (u, 1000)).collect();
        let batches = body_batches(&uids, &sizes);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let mut sizes = sizes;
        sizes.insert(2, 40 * 1024 * 1024);
        let batches = body_batches(&uids[..4], &sizes);
        assert_eq!(batches, vec![vec![1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1250));
        for _ in 0..20 {
            b.next();
        }
        let capped = b.next();
        assert!(capped >= MAX_BACKOFF && capped <= MAX_BACKOFF + MAX_BACKOFF / 4);
        b.reset();
        assert!(b.next() < Duration::from_secs(2));
    }
}
