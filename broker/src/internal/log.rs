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
/// [`InternalLog::submit`], even when a caller submits under a lock and awaits later. Their
/// effects (see [`InternalLog::submit_then`]) run in that same order once durable, so the state
/// a running broker holds is the state a replay of the log rebuilds.
pub struct InternalLog {
    partition: Arc<Partition>,
    jobs: mpsc::UnboundedSender<Job>,
}

/// What to do with the in-memory state once a write is durable, given the offset of its first
/// record. Runs on the completion task, in log order: keep it short and never block.
pub type Effect = Box<dyn FnOnce(i64) + Send + 'static>;

struct Job {
    records: Vec<InternalRecord>,
    effect: Option<Effect>,
    done: oneshot::Sender<Result<i64, InternalLogError>>,
}

/// A written job waiting for durability, in log order.
struct Written {
    durable: tokio::task::JoinHandle<Result<i64, InternalLogError>>,
    effect: Option<Effect>,
    done: oneshot::Sender<Result<i64, InternalLogError>>,
}

/// One record of the internal log with its offset.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedRecord {
    /// Offset in the internal partition.
    pub offset: i64,
    /// The record.
    pub record: InternalRecord,
}

impl InternalLog {
    /// Wraps the recovered internal partition and starts its writer task.
    pub fn new(
        partition: Arc<Partition>,
        space: CacheSpace,
        health: watch::Receiver<StorageHealth>,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let (written, completions) = mpsc::unbounded_channel();
        tokio::spawn(write_jobs(partition.clone(), space, health, queue, written));
        tokio::spawn(complete_in_order(completions));
        Self { partition, jobs }
    }

    /// Queues `records` as one batch now; the returned future resolves, once the batch is
    /// durable, to the offset of its first record.
    pub fn submit(
        &self,
        records: Vec<InternalRecord>,
    ) -> impl std::future::Future<Output = Result<i64, InternalLogError>> + Send + 'static {
        self.enqueue(records, None)
    }

    /// Like [`InternalLog::submit`], and once the batch is durable runs `effect` with the
    /// offset of its first record, after the effects of every batch queued before it and before
    /// the returned future resolves. A write that fails runs no effect.
    pub fn submit_then(
        &self,
        records: Vec<InternalRecord>,
        effect: impl FnOnce(i64) + Send + 'static,
    ) -> impl std::future::Future<Output = Result<i64, InternalLogError>> + Send + 'static {
        self.enqueue(records, Some(Box::new(effect)))
    }

    fn enqueue(
        &self,
        records: Vec<InternalRecord>,
        effect: Option<Effect>,
    ) -> impl std::future::Future<Output = Result<i64, InternalLogError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self
            .jobs
            .send(Job {
                records,
                effect,
                done,
            })
            .is_ok();
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

    /// Every record stored so far, in offset order, each once (a record that two stored
    /// chunks both hold is taken from the first). Records that do not decode are logged and
    /// skipped.
    pub async fn replay(&self, store: &Store) -> Result<Vec<LoggedRecord>, InternalLogError> {
        let mut records = Vec::new();
        let mut next = i64::MIN;
        for chunk in self.partition.stored_chunks() {
            let bytes = cold_read::load_chunk(store, &chunk)
                .await
                .map_err(|e| InternalLogError::Replay(e.to_string()))?;
            for (offset, record) in decode_batches(bytes).map_err(InternalLogError::Replay)? {
                if offset < next {
                    continue;
                }
                next = offset + 1;
                match record {
                    Ok(record) => records.push(LoggedRecord { offset, record }),
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

/// The writer task: appends jobs one by one, in queue order; durability waits run beside it,
/// and their outcomes go to the completion task in the same order.
async fn write_jobs(
    partition: Arc<Partition>,
    space: CacheSpace,
    health: watch::Receiver<StorageHealth>,
    mut queue: mpsc::UnboundedReceiver<Job>,
    written: mpsc::UnboundedSender<Written>,
) {
    while let Some(job) = queue.recv().await {
        let durable = match write(&partition, &space, &job.records).await {
            Ok(appended) => {
                let partition = partition.clone();
                let health = health.clone();
                tokio::spawn(async move {
                    let end = appended.last_offset + 1;
                    match wait_durable(&partition, end, health, DURABLE_LIMIT).await {
                        DurableWait::Durable => Ok(appended.base_offset),
                        DurableWait::TimedOut => Err(InternalLogError::TimedOut(DURABLE_LIMIT)),
                        DurableWait::StorageFailed(why) => Err(InternalLogError::Write(why)),
                    }
                })
            }
            Err(error) => tokio::spawn(async move { Err(error) }),
        };
        let _ = written.send(Written {
            durable,
            effect: job.effect,
            done: job.done,
        });
    }
}

/// Runs effects and answers callers in log order. Durability is reached in log order anyway
/// (the high watermark only grows), so waiting in order delays no one.
async fn complete_in_order(mut completions: mpsc::UnboundedReceiver<Written>) {
    while let Some(Written {
        durable,
        effect,
        done,
    }) = completions.recv().await
    {
        let result = durable.await.unwrap_or_else(|error| {
            Err(InternalLogError::Write(format!(
                "durability wait failed: {error}"
            )))
        });
        if let (Ok(offset), Some(effect)) = (&result, effect) {
            effect(*offset);
        }
        let _ = done.send(result);
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
