//! Appending to and replaying the internal partition.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_adapter::Store;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use super::record::{decode_batches, encode_batch, InternalRecord};
use crate::durability::{wait_durable, DurableWait, StorageHealth};
use crate::log::cold_read;
use crate::log::partition::{Appended, Partition};
use crate::log::record_batch::check_batches;
use crate::log::reserve::CacheSpace;

/// Longest wait for an internal record to become durable.
const DURABLE_LIMIT: Duration = Duration::from_secs(30);

/// Why an internal write or replay failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InternalLogError {
    /// The records could not be framed.
    #[error("cannot encode internal records: {0}")]
    Encode(String),
    /// No cache space or the store refused the write.
    #[error("internal log write failed: {0}")]
    Write(String),
    /// Storage did not make the write durable in time.
    #[error("internal log write not durable within {0:?}")]
    TimedOut(Duration),
    /// Stored internal records could not be read back.
    #[error("cannot replay the internal log: {0}")]
    Replay(String),
}

/// The hidden partition holding the broker's own state.
///
/// Appends go through one writer task, so their order in the log is the order of the calls to
/// [`InternalLog::submit`], even when a caller submits under a lock and awaits later.
pub struct InternalLog {
    partition: Arc<Partition>,
    jobs: mpsc::UnboundedSender<Job>,
}

struct Job {
    records: Vec<InternalRecord>,
    done: oneshot::Sender<Result<i64, InternalLogError>>,
}

impl InternalLog {
    /// Wraps the recovered internal partition and starts its writer task.
    pub fn new(
        partition: Arc<Partition>,
        space: CacheSpace,
        health: watch::Receiver<StorageHealth>,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_jobs(partition.clone(), space, health, queue));
        Self { partition, jobs }
    }

    /// Queues `records` as one batch now; the returned future resolves, once the batch is
    /// durable, to the offset of its first record.
    pub fn submit(
        &self,
        records: Vec<InternalRecord>,
    ) -> impl std::future::Future<Output = Result<i64, InternalLogError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.jobs.send(Job { records, done }).is_ok();
        async move {
            if !queued {
                return Err(InternalLogError::Write(
                    "internal log writer stopped".into(),
                ));
            }
            answer.await.unwrap_or_else(|_| {
                Err(InternalLogError::Write(
                    "internal log writer stopped".into(),
                ))
            })
        }
    }

    /// Appends `records` as one batch and returns, once it is durable, the offset of the first.
    pub async fn append(&self, records: &[InternalRecord]) -> Result<i64, InternalLogError> {
        self.submit(records.to_vec()).await
    }

    /// Every record stored so far, in order. Records that do not decode are logged and skipped.
    pub async fn replay(&self, store: &Store) -> Result<Vec<InternalRecord>, InternalLogError> {
        let mut records = Vec::new();
        for chunk in self.partition.stored_chunks() {
            let bytes = cold_read::load_chunk(store, &chunk)
                .await
                .map_err(|e| InternalLogError::Replay(e.to_string()))?;
            for record in decode_batches(bytes).map_err(InternalLogError::Replay)? {
                match record {
                    Ok(record) => records.push(record),
                    Err(error) => tracing::error!(%error, "skipping undecodable internal record"),
                }
            }
        }
        Ok(records)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The writer task: appends jobs one by one, in queue order; durability waits run beside it.
async fn write_jobs(
    partition: Arc<Partition>,
    space: CacheSpace,
    health: watch::Receiver<StorageHealth>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = queue.recv().await {
        match write(&partition, &space, &job.records).await {
            Ok(appended) => {
                let partition = partition.clone();
                let health = health.clone();
                tokio::spawn(async move {
                    let end = appended.last_offset + 1;
                    let result = match wait_durable(&partition, end, health, DURABLE_LIMIT).await {
                        DurableWait::Durable => Ok(appended.base_offset),
                        DurableWait::TimedOut => Err(InternalLogError::TimedOut(DURABLE_LIMIT)),
                        DurableWait::StorageFailed(why) => Err(InternalLogError::Write(why)),
                    };
                    let _ = job.done.send(result);
                });
            }
            Err(error) => {
                let _ = job.done.send(Err(error));
            }
        }
    }
}

/// Frames, copies into the hot cache and appends one job's records.
async fn write(
    partition: &Partition,
    space: &CacheSpace,
    records: &[InternalRecord],
) -> Result<Appended, InternalLogError> {
    let batch = encode_batch(records, now_ms()).map_err(InternalLogError::Encode)?;
    let header = check_batches(&batch)
        .map_err(|e| InternalLogError::Encode(e.to_string()))?
        .remove(0)
        .header;
    let mut slice = space
        .reserve(batch.len())
        .await
        .map_err(|e| InternalLogError::Write(format!("{e:?}")))?;
    slice.copy_from_slice(&batch);
    partition
        .append(vec![(slice, header)], &space.cache, &space.pipeline)
        .map_err(|e| InternalLogError::Write(e.to_string()))
}
