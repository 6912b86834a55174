//! The sending worker: takes the queued messages from the database under a lease, sends
//! them through their channel a few at a time, and records each outcome as soon as it is
//! known (sent; retried later with exponential backoff; failed for good). A worker killed
//! mid-way loses nothing: what it had taken comes back when the lease ends, and is sent
//! with the same Message-ID.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use sportello_config::OfficeConfig;
use sportello_store::Store;
use sportello_store::documents::BlobStore;
use sportello_store::outbound::Claimed;

use crate::letter::{PrintedMessage, message_pdf};
use crate::{Attachment, Channel, Envelope, SendError, Transports};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages taken at once.
    pub batch: i64,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Attempts before a message fails for good.
    pub max_attempts: i64,
    /// First retry delay; doubled at each attempt, at most six hours.
    pub retry_base: Duration,
    /// How long a taken message is the worker's before another may take it.
    pub lease: Duration,
    /// The letterhead of faxed pages.
    pub office: OfficeConfig,
}

impl WorkerSettings {
    /// From the configuration's `[outbound]` and `[office]`.
    pub fn from_config(config: &sportello_config::Config) -> WorkerSettings {
        WorkerSettings {
            batch: i64::from(config.outbound.batch.max(1)),
            concurrency: 8,
            max_attempts: i64::from(config.outbound.max_attempts.max(1)),
            retry_base: Duration::seconds(
                i64::try_from(config.outbound.retry_base_seconds.max(1)).unwrap_or(30),
            ),
            lease: Duration::minutes(5),
            office: config.office.clone(),
        }
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
}

/// The worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    blobs: BlobStore,
    transports: Arc<Transports>,
    settings: WorkerSettings,
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
            settings,
        }
    }

    /// Takes one batch of due messages and sends it; records every outcome.
    pub async fn pass(&self) -> sportello_store::Result<Pass> {
        let claimed = self
            .store
            .claim_outbound(self.settings.batch, self.settings.lease)
            .await?;
        let mut pass = Pass::default();
        let mut outcomes = futures::stream::iter(claimed)
            .map(|message| async move {
                let result = self.send(&message).await;
                (message, result)
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        while let Some((message, result)) = outcomes.next().await {
            match result {
                Ok(sent) => {
                    self.store
                        .outbound_sent(message.id, sent.provider_ref.as_deref())
                        .await?;
                    pass.sent += 1;
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
                        .outbound_failed(message.id, &error.to_string(), retry_at)
                        .await?;
                    if retry_at.is_some() {
                        pass.retried += 1;
                    } else {
                        pass.failed += 1;
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Sends until nothing is due; returns the passes' sum.
    pub async fn drain(&self) -> sportello_store::Result<Pass> {
        let mut total = Pass::default();
        loop {
            let pass = self.pass().await?;
            if pass.total() == 0 {
                return Ok(total);
            }
            total.sent += pass.sent;
            total.retried += pass.retried;
            total.failed += pass.failed;
        }
    }

    /// Runs for ever: a pass, then, when nothing was due, a sleep until `wakeup` is
    /// notified (a message was queued) or `idle` has passed (retries coming due).
    pub async fn run(self, wakeup: Arc<tokio::sync::Notify>, idle: StdDuration) {
        loop {
            match self.pass().await {
                Ok(pass) if pass.total() > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbound pass failed"),
            }
            tokio::select! {
                () = wakeup.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// When to try again, or `None` to give up: permanent errors and missing
    /// configuration give up at once, others after `max_attempts`.
    fn retry_at(&self, message: &Claimed, error: &SendError) -> Option<DateTime<Utc>> {
        match error {
            SendError::Retryable(_) if message.attempts < self.settings.max_attempts => {
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
            let view = self
                .store
                .outbound_message(message.id)
                .await
                .map_err(|e| SendError::Retryable(e.to_string()))?;
            let recipient = vec![format!("Fax {}", message.recipient)];
            let date = crate::letter::printed_date(&view.created_at);
            let pdf = message_pdf(
                &self.settings.office,
                &PrintedMessage {
                    reference: &message.case,
                    recipient: &recipient,
                    protocol: view.protocol.as_deref(),
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
