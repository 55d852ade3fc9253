//! Appending to and replaying the internal partition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dfs_adapter::{Catalog, Store};
use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use super::internal_key;
use super::record::{decode_batches, encode_batch, InternalRecord};
use super::snapshot::{reconstruct, LiveState};
use crate::durability::{wait_durable, DurableWait, StorageHealth};
use crate::log::cold_read;
use crate::log::partition::{Appended, Partition};
use crate::log::record_batch::check_batches;
use crate::log::reserve::CacheSpace;

/// Longest wait for an internal record to become durable.
const DURABLE_LIMIT: Duration = Duration::from_secs(30);

/// Records per batch of a snapshot block (a block restates every live entry, which may be
/// millions; batches stay small enough for the hot cache and the flush size).
const SNAPSHOT_BATCH_RECORDS: usize = 2_000;

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
    shared: Arc<Shared>,
}

/// What the writer task and the rest of the log share.
#[derive(Default)]
struct Shared {
    /// The state a replay would rebuild from what has been appended.
    live: Mutex<LiveState>,
    stats: Stats,
}

/// Counts of the internal log's own work, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records applied by the last replay (at start).
    pub replayed: AtomicU64,
    /// Snapshot blocks written (durable or not).
    pub snapshots: AtomicU64,
    /// Records restated by those blocks.
    pub snapshot_records: AtomicU64,
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
    /// Wraps the recovered internal partition and starts its writer task; the log start
    /// moves through `catalog` once a snapshot makes what lies below it unneeded.
    pub fn new(
        partition: Arc<Partition>,
        space: CacheSpace,
        health: watch::Receiver<StorageHealth>,
        catalog: Arc<Catalog>,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let (written, completions) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            partition: partition.clone(),
            space,
            health,
            catalog,
            shared: shared.clone(),
        };
        tokio::spawn(writer.run(queue, written));
        tokio::spawn(complete_in_order(completions));
        Self {
            partition,
            jobs,
            shared,
        }
    }

    /// The first offset the log still holds.
    pub fn log_start(&self) -> i64 {
        self.partition.log_start()
    }

    /// Counts of replayed records and snapshots written.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
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

    /// The records that rebuild the state stored so far, in the order to apply them: the last
    /// complete snapshot's, then every record after it (see `snapshot`). Records that do not
    /// decode are logged and skipped. Call once, before the first write.
    pub async fn replay(&self, store: &Store) -> Result<Vec<LoggedRecord>, InternalLogError> {
        let stored = self.read_stored(store).await?;
        let read = stored.len();
        let rebuilt = reconstruct(stored);
        if rebuilt.snapshot_start.is_none() && self.partition.log_start() > 0 {
            // Only a complete snapshot moves the log start: one must have been read.
            tracing::error!(
                log_start = self.partition.log_start(),
                "the internal log's snapshot is missing or damaged: committed offsets, groups \
                 and producer ids from before it are lost"
            );
        }
        let mut live = self.shared.live.lock();
        for logged in &rebuilt.records {
            live.apply(logged.offset, &logged.record);
        }
        live.set_count(rebuilt.after_snapshot as u64);
        drop(live);
        self.shared
            .stats
            .replayed
            .store(rebuilt.records.len() as u64, Ordering::Relaxed);
        tracing::info!(
            read,
            applied = rebuilt.records.len(),
            snapshot = ?rebuilt.snapshot_start,
            "internal log replayed"
        );
        Ok(rebuilt.records)
    }

    /// Every record stored so far, in offset order, each once (a record that two stored
    /// chunks both hold is taken from the first).
    async fn read_stored(&self, store: &Store) -> Result<Vec<LoggedRecord>, InternalLogError> {
        use futures::StreamExt;
        let mut records = Vec::new();
        let mut next = i64::MIN;
        // A few reads in flight, results in order: on an object store each chunk is a round
        // trip, and a shard's new leader serves nothing until its groups' state is back.
        let mut loads = futures::stream::iter(self.partition.stored_chunks())
            .map(|chunk| async move { cold_read::load_chunk(store, &chunk).await })
            .buffered(REPLAY_READS);
        while let Some(loaded) = loads.next().await {
            let bytes = loaded.map_err(|e| InternalLogError::Replay(e.to_string()))?;
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

/// Chunks of the internal log read at once during its replay.
const REPLAY_READS: usize = 16;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The writer task's parts.
struct Writer {
    partition: Arc<Partition>,
    space: CacheSpace,
    health: watch::Receiver<StorageHealth>,
    catalog: Arc<Catalog>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Appends jobs one by one, in queue order; durability waits run beside it, and their
    /// outcomes go to the completion task in the same order. Between two jobs it writes a
    /// snapshot when one is due, so a snapshot never splits a job.
    async fn run(
        self,
        mut queue: mpsc::UnboundedReceiver<Job>,
        written: mpsc::UnboundedSender<Written>,
    ) {
        while let Some(job) = queue.recv().await {
            let mut snapshot_at = None;
            let durable = match write(&self.partition, &self.space, &job.records).await {
                Ok(appended) => {
                    let mut live = self.shared.live.lock();
                    for (offset, record) in (appended.base_offset..).zip(&job.records) {
                        live.apply(offset, record);
                    }
                    let end = appended.last_offset + 1;
                    snapshot_at = live.snapshot_due().then_some(end);
                    drop(live);
                    let wait = self.wait_durable(end);
                    tokio::spawn(async move { wait.await.map(|()| appended.base_offset) })
                }
                Err(error) => tokio::spawn(async move { Err(error) }),
            };
            let _ = written.send(Written {
                durable,
                effect: job.effect,
                done: job.done,
            });
            if let Some(start) = snapshot_at {
                self.snapshot(start).await;
            }
        }
    }

    /// Waits until every record below `end` is durable.
    fn wait_durable(
        &self,
        end: i64,
    ) -> impl std::future::Future<Output = Result<(), InternalLogError>> + Send + 'static {
        let (partition, health) = (self.partition.clone(), self.health.clone());
        async move {
            match wait_durable(&partition, end, health, DURABLE_LIMIT).await {
                DurableWait::Durable => Ok(()),
                DurableWait::TimedOut => Err(InternalLogError::TimedOut(DURABLE_LIMIT)),
                DurableWait::StorageFailed(why) => Err(InternalLogError::Write(why)),
            }
        }
    }

    /// Appends the live state as a snapshot block starting at `start` (the next offset), and
    /// once it is durable moves the log start up to it in the background.
    async fn snapshot(&self, start: i64) {
        let block = {
            let mut live = self.shared.live.lock();
            live.set_count(0);
            live.snapshot_block(start)
        };
        let restated = block.len() - 2;
        let mut end = start;
        for batch in block.chunks(SNAPSHOT_BATCH_RECORDS) {
            match write(&self.partition, &self.space, batch).await {
                Ok(appended) if appended.base_offset == end => end = appended.last_offset + 1,
                Ok(appended) => {
                    // Cannot happen while this task is the only writer; a block with a gap
                    // is never used by a replay, so just do not truncate for it.
                    tracing::error!(
                        expected = end,
                        got = appended.base_offset,
                        "internal log snapshot not contiguous; log start kept"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "internal log snapshot not written; retried later");
                    return;
                }
            }
        }
        let stats = &self.shared.stats;
        stats.snapshots.fetch_add(1, Ordering::Relaxed);
        stats
            .snapshot_records
            .fetch_add(restated as u64, Ordering::Relaxed);
        let durable = self.wait_durable(end);
        let (partition, catalog) = (self.partition.clone(), self.catalog.clone());
        tokio::spawn(async move {
            if let Err(error) = durable.await {
                tracing::warn!(%error, "internal log snapshot not durable; log start kept");
                return;
            }
            match catalog.truncate(internal_key(), start).await {
                Ok(()) => {
                    partition.truncate(start);
                    tracing::info!(log_start = start, restated, "internal log snapshot written");
                }
                Err(error) => {
                    tracing::warn!(%error, "internal log start not moved; retried at the next snapshot");
                }
            }
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
