//! The sending worker: takes the queued messages from the database under a lease, sends
//! them through their channel a few at a time, and records each outcome as soon as it is
//! known (sent; retried later with exponential backoff; failed for good). A worker killed
//! mid-way loses nothing: what it had taken comes back when the lease ends, and is sent
//! with the same Message-ID.
//!
//! What a kill can cost is a message sent twice: one the provider took but whose outcome
//! was not yet committed. To keep that window small, a message is taken (leased) only when
//! a slot is free to send it at once, never ahead of time, and each outcome is committed
//! by itself the moment the provider answers, never batched with others.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sportello_config::OfficeConfig;
use sportello_store::Store;
use sportello_store::documents::BlobStore;
use sportello_store::outbound::Claimed;
use tokio::task::JoinSet;

use crate::letter::{PrintedMessage, message_pdf};
use crate::{Attachment, Channel, Envelope, SendError, Transports};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages taken at once at most (the worker takes no more than it has free slots).
    pub batch: i64,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Attempts before a message fails for good.
    pub max_attempts: i64,
    /// First retry delay; doubled at each attempt, at most six hours.
    pub retry_base: Duration,
    /// How long a taken message is the worker's before another may take it. One send is
    /// cut off (and retried later) after half of it, so that a slow send never outlives
    /// its lease and goes out twice.
    pub lease: Duration,
    /// The letterhead of faxed pages.
    pub office: OfficeConfig,
}

impl WorkerSettings {
    /// From the configuration's `[outbound]` (`batch`, `concurrency`, `max_attempts`,
    /// `retry_base_seconds`, `lease_seconds`) and `[office]`.
    pub fn from_config(config: &sportello_config::Config) -> WorkerSettings {
        let o = &config.outbound;
        WorkerSettings {
            batch: i64::from(o.batch.max(1)),
            concurrency: usize::try_from(o.concurrency.max(1)).unwrap_or(8),
            max_attempts: i64::from(o.max_attempts.max(1)),
            retry_base: Duration::seconds(i64::try_from(o.retry_base_seconds.max(1)).unwrap_or(30)),
            lease: Duration::seconds(i64::try_from(o.lease_seconds.max(2)).unwrap_or(60)),
            office: config.office.clone(),
        }
    }

    /// How long one send may take: half the lease.
    fn send_deadline(&self) -> StdDuration {
        (self.lease / 2)
            .to_std()
            .unwrap_or(StdDuration::from_secs(30))
            .max(StdDuration::from_secs(1))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages the provider took.
    pub sent: usize,
    /// Messages to try again later.
    pub retried: usize,
    /// Messages failed for good.
    pub failed: usize,
}

impl Pass {
    /// Messages handled in the pass.
    pub fn total(&self) -> usize {
        self.sent + self.retried + self.failed
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// What became of one message, recorded: reported as it happens, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took it.
    Sent,
    /// It will be tried again later.
    Retried,
    /// It failed for good.
    Failed,
}

/// The worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    blobs: BlobStore,
    transports: Arc<Transports>,
    settings: Arc<WorkerSettings>,
}

impl Worker {
    /// A worker over the store, the documents and the transports.
    pub fn new(
        store: Store,
        blobs: BlobStore,
        transports: Arc<Transports>,
        settings: WorkerSettings,
    ) -> Worker {
        Worker {
            store,
            blobs,
            transports,
            settings: Arc::new(settings),
        }
    }

    /// Takes the due messages that fit the free slots (at most `batch`), sends them and
    /// records every outcome.
    pub async fn pass(&self) -> sportello_store::Result<Pass> {
        let limit = self.slots().min(self.settings.batch);
        let claimed = self
            .store
            .claim_outbound(limit, self.settings.lease)
            .await?;
        let mut tasks = JoinSet::new();
        for message in claimed {
            let worker = self.clone();
            tasks.spawn(async move { worker.handle(message).await });
        }
        let mut pass = Pass::default();
        let mut error = None;
        while let Some(joined) = tasks.join_next().await {
            match flatten(joined) {
                Ok(Some(outcome)) => pass.add(outcome),
                Ok(None) => {}
                Err(e) => error = error.or(Some(e)),
            }
        }
        error.map_or(Ok(pass), Err)
    }

    /// Sends until nothing is due; returns the sum.
    pub async fn drain(&self) -> sportello_store::Result<Pass> {
        self.drain_with(|_| {}, std::future::pending()).await
    }

    /// Sends until nothing is due, `concurrency` messages in flight: each time a slot
    /// frees, the next due message is taken (leased) and sent at once, and its outcome is
    /// committed by itself as soon as it is known. `on_outcome` hears of each one as it is
    /// recorded. When `stop` completes (a signal), or the database fails, nothing more is
    /// taken: the messages in flight are finished and recorded, then the sum (or the
    /// error) is returned.
    pub async fn drain_with(
        &self,
        mut on_outcome: impl FnMut(Outcome),
        stop: impl Future<Output = ()>,
    ) -> sportello_store::Result<Pass> {
        let slots = usize::try_from(self.slots()).unwrap_or(1);
        let mut tasks = JoinSet::new();
        let mut total = Pass::default();
        let mut error = None;
        let mut taking = true;
        let mut stop = std::pin::pin!(stop);
        loop {
            if taking && tasks.len() < slots {
                let free = i64::try_from(slots - tasks.len()).unwrap_or(1);
                let want = free.min(self.settings.batch);
                match self.store.claim_outbound(want, self.settings.lease).await {
                    Ok(claimed) => {
                        // Fewer than asked for: nothing more is due for now.
                        taking = i64::try_from(claimed.len()).unwrap_or(0) == want;
                        for message in claimed {
                            let worker = self.clone();
                            tasks.spawn(async move { worker.handle(message).await });
                        }
                        continue;
                    }
                    Err(e) => {
                        error = Some(e);
                        taking = false;
                    }
                }
            }
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                () = &mut stop, if taking => {
                    taking = false;
                    continue;
                }
            };
            let Some(joined) = joined else {
                break;
            };
            match flatten(joined) {
                Ok(Some(outcome)) => {
                    total.add(outcome);
                    on_outcome(outcome);
                }
                Ok(None) => {}
                Err(e) => {
                    error = error.or(Some(e));
                    taking = false;
                }
            }
        }
        error.map_or(Ok(total), Err)
    }

    /// Runs until `stop` turns true: sends what is due, then, when nothing was, sleeps
    /// until `wakeup` is notified (a message was queued) or `idle` has passed (retries
    /// coming due). At the stop nothing more is taken and the messages in flight are
    /// finished and recorded, so a clean shutdown sends nothing twice.
    pub async fn run(
        self,
        wakeup: Arc<tokio::sync::Notify>,
        idle: StdDuration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut stopped = stop.clone();
        let stopping = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let mut stopping = std::pin::pin!(stopping);
        loop {
            let stop_now = async { (&mut stopping).await };
            match self.drain_with(|_| {}, stop_now).await {
                Ok(pass) if pass.total() > 0 && !*stop.borrow() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbound pass failed"),
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                () = wakeup.notified() => {}
                () = tokio::time::sleep(idle) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Messages in flight at once.
    fn slots(&self) -> i64 {
        i64::try_from(self.settings.concurrency.max(1)).unwrap_or(8)
    }

    /// Sends one taken message (within half its lease) and commits the outcome at once.
    async fn handle(&self, message: Claimed) -> sportello_store::Result<Outcome> {
        let deadline = self.settings.send_deadline();
        let result = match tokio::time::timeout(deadline, self.send(&message)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Retryable(format!(
                "no answer within {} s",
                deadline.as_secs()
            ))),
        };
        match result {
            Ok(sent) => {
                // From here until the commit, a kill means the message goes out twice.
                let accepted = std::time::Instant::now();
                if let Err(e) = self
                    .store
                    .outbound_sent(message.id, message.attempts, sent.provider_ref.as_deref())
                    .await
                {
                    // Sent but not recorded: it goes again when the lease ends.
                    tracing::error!(id = message.id, error = %e, "message sent but not recorded");
                    return Err(e);
                }
                tracing::debug!(
                    id = message.id,
                    unrecorded_us =
                        u64::try_from(accepted.elapsed().as_micros()).unwrap_or(u64::MAX),
                    "message sent and recorded"
                );
                Ok(Outcome::Sent)
            }
            Err(error) => {
                let retry_at = self.retry_at(&message, &error);
                tracing::warn!(
                    id = message.id,
                    channel = %message.channel,
                    attempt = message.attempts,
                    retry = retry_at.is_some(),
                    %error,
                    "message not sent"
                );
                self.store
                    .outbound_failed(message.id, message.attempts, &error.to_string(), retry_at)
                    .await?;
                Ok(if retry_at.is_some() {
                    Outcome::Retried
                } else {
                    Outcome::Failed
                })
            }
        }
    }

    /// When to try again, or `None` to give up: permanent errors give up at once; others,
    /// and a channel this sender has not configured (another sender, or this one once
    /// configured, may send it), after `max_attempts`.
    fn retry_at(&self, message: &Claimed, error: &SendError) -> Option<DateTime<Utc>> {
        match error {
            SendError::Retryable(_) | SendError::NotConfigured(_)
                if message.attempts < self.settings.max_attempts =>
            {
                let exponent =
                    u32::try_from(message.attempts.saturating_sub(1).min(16)).unwrap_or(16);
                let delay = self
                    .settings
                    .retry_base
                    .checked_mul(2_i32.saturating_pow(exponent))
                    .unwrap_or(Duration::hours(6))
                    .min(Duration::hours(6));
                Some(self.store.clock().now() + delay)
            }
            _ => None,
        }
    }

    async fn send(&self, message: &Claimed) -> Result<crate::Sent, SendError> {
        let channel = match message.channel.as_str() {
            "email" => Channel::Email,
            "pec" => Channel::Pec,
            "fax" => Channel::Fax,
            "sms" => Channel::Sms,
            "whatsapp" => Channel::Whatsapp,
            "telegram" => Channel::Telegram,
            other => {
                return Err(SendError::Permanent(format!(
                    "channel {other:?} is not sent by the worker"
                )));
            }
        };
        let mut attachments = Vec::with_capacity(message.attachments.len() + 1);
        for (sha256, filename, media_type) in &message.attachments {
            let bytes = self
                .blobs
                .get(sha256)
                .await
                .map_err(|e| SendError::Retryable(format!("document {filename}: {e}")))?;
            attachments.push(Attachment {
                filename: filename.clone(),
                media_type: media_type.clone(),
                bytes: bytes.to_vec(),
            });
        }
        if channel == Channel::Fax {
            // A fax is the letter, printed: the protocol number on the page.
            let recipient = crate::letter::recipient_lines("fax", None, &message.recipient);
            let date = crate::letter::printed_date(&message.queued_at);
            let pdf = message_pdf(
                &self.settings.office,
                &PrintedMessage {
                    reference: &message.case,
                    recipient: &recipient,
                    protocol: message.protocol.as_deref(),
                    date: &date,
                    subject: &message.subject,
                    body: &message.body,
                },
            );
            attachments.insert(
                0,
                Attachment {
                    filename: format!("{}.pdf", message.case),
                    media_type: "application/pdf".into(),
                    bytes: pdf,
                },
            );
        }
        let envelope = Envelope {
            channel,
            to: message.recipient.clone(),
            subject: message.subject.clone(),
            body: message.body.clone(),
            message_id: message.message_id.clone(),
            in_reply_to: message.in_reply_to.clone(),
            references: message.references.clone(),
            attachments,
            whatsapp_template: message.whatsapp_template,
        };
        self.transports.send(&envelope).await
    }
}

/// A finished task's outcome: `None` for a task cancelled (the runtime shutting down);
/// a task's panic goes on in the caller, as if the send had been awaited there.
fn flatten(
    joined: Result<sportello_store::Result<Outcome>, tokio::task::JoinError>,
) -> sportello_store::Result<Option<Outcome>> {
    match joined {
        Ok(result) => result.map(Some),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(None),
    }
}
