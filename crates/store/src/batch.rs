//! Group commit for case creation: concurrent requests are gathered by one task and
//! written in a shared transaction, so the per-transaction cost (locks, WAL frames,
//! commit) is paid once per batch instead of once per case. If a batch fails, each of
//! its cases is retried alone, so one bad request never takes others down with it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::cases::{CaseView, NewCase};
use crate::{Result, Store, StoreError};

/// Most cases written in one transaction.
const MAX_BATCH: usize = 64;

struct Job {
    new: NewCase,
    reply: oneshot::Sender<Result<CaseView>>,
}

/// Handle to the creating task.
pub(crate) struct CreateBatcher {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for CreateBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreateBatcher")
    }
}

impl CreateBatcher {
    pub(crate) async fn create(&self, new: NewCase) -> Result<CaseView> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { new, reply })
            .await
            .map_err(|_| StoreError::Corrupt("the case writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the case writer dropped a request".into()))?
    }
}

impl Store {
    /// Starts the group-commit writer for case creation (the server does; the CLI need not).
    pub fn with_write_batching(mut self) -> Store {
        let (jobs, mut queue) = mpsc::channel::<Job>(1024);
        let writer = self.clone(); // without a batcher: writes directly
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                writer.write_batch(batch).await;
            }
        });
        self.batcher = Some(Arc::new(CreateBatcher { jobs }));
        self
    }

    async fn write_batch(&self, batch: Vec<Job>) {
        if batch.len() == 1 {
            for job in batch {
                let result = self.create_one(job.new).await;
                let _ = job.reply.send(result);
            }
            return;
        }
        let cases: Vec<NewCase> = batch.iter().map(|j| j.new.clone()).collect();
        match self.create_cases_in_one_transaction(cases).await {
            Ok(views) => {
                for (job, view) in batch.into_iter().zip(views) {
                    let _ = job.reply.send(Ok(view));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, cases = batch.len(), "a batch of case creations failed; retrying one by one");
                for job in batch {
                    let result = self.create_one(job.new).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    pub(crate) async fn create_one(&self, new: NewCase) -> Result<CaseView> {
        let mut created = self.create_cases_in_one_transaction(vec![new]).await?;
        created
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no case created".into()))
    }
}
