//! The flush pipeline: batches from all partitions in, one durable object per flush out.
//!
//! [`FlushPipeline::submit`] queues a batch (synchronously, never blocking). A single task owns
//! the pending batches, decides when to flush, seals an object, and writes up to
//! `max_in_flight` objects at a time. It group-commits: with no object being written, pending
//! batches are sealed at once, and what arrives during a write rides the next object; the time,
//! byte and batch-count limits (whichever comes first) seal more objects while one is being
//! written, so they bound how long a batch waits and how large an object grows, without making
//! an idle pipeline wait. Outcomes reach
//! the sink strictly in object order, so the broker can advance high watermarks monotonically.

mod batcher;
mod seal;
mod task;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::{ChunkLocation, ObjectId, PartitionKey, StorageError, Store};

/// One record batch handed to the pipeline, already offset-assigned by the broker.
///
/// `data` may be backed by an off-heap arena (`Bytes::from_owner`): the pipeline never copies
/// it and drops it as soon as the object holding it is durable, releasing the arena block.
#[derive(Clone)]
pub struct PendingBatch {
    /// The partition the batch belongs to.
    pub key: PartitionKey,
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// The encoded batch; stored verbatim. Must not be empty.
    pub data: Bytes,
}

impl fmt::Debug for PendingBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can be megabytes; show its size only.
        f.debug_struct("PendingBatch")
            .field("key", &self.key)
            .field("base_offset", &self.base_offset)
            .field("last_offset", &self.last_offset)
            .field("max_timestamp", &self.max_timestamp)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Flush policies and write concurrency.
#[derive(Clone, Debug)]
pub struct FlushConfig {
    /// Group commit: seal pending batches at once whenever no object is being written. Off,
    /// only the three limits below seal objects (kept to measure the difference, and for tests
    /// of the limits themselves).
    pub group_commit: bool,
    /// Time policy: flush at most this long after the first pending batch arrived.
    pub max_delay: Duration,
    /// Byte policy: flush once this many bytes are pending.
    pub max_bytes: usize,
    /// Batch-count policy: flush once this many batches are pending.
    pub max_batches: usize,
    /// Objects written concurrently. More precisely: objects sealed but not yet delivered, so
    /// an object that is durable but held back behind a slower or failing older one still takes
    /// a slot. That bounds both memory and how far past the last acknowledged object a crash
    /// can leave objects behind, which [`crate::Store::recover`] relies on: give it the same
    /// value. Outcomes are delivered in order regardless.
    pub max_in_flight: usize,
    /// First pause before re-writing a failed object; doubles per attempt, capped at 5 s.
    pub retry_backoff: Duration,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            group_commit: true,
            max_delay: Duration::from_millis(5),
            max_bytes: 8 * 1024 * 1024,
            max_batches: 4096,
            max_in_flight: 4,
            retry_backoff: Duration::from_millis(200),
        }
    }
}

/// Outcome delivered to the sink, strictly in object (sequence) order.
#[derive(Clone, Debug)]
pub enum FlushEvent {
    /// The object is durable; the batches' data have been dropped.
    Durable {
        /// The object written.
        object: ObjectId,
        /// One chunk per partition present, in the order written.
        chunks: Vec<ChunkLocation>,
        /// Object size, index and footer included.
        bytes: u64,
        /// From sealing the object to durability, retries included.
        elapsed: Duration,
    },
    /// A write attempt failed after OpenDAL's own retries. The pipeline keeps re-trying this same
    /// object (same sequence number, same content) with backoff and will deliver `Durable`
    /// later; objects after it are not delivered before it.
    ///
    /// A failure of an object that is not the oldest undelivered one is held back and delivered
    /// (its latest attempt only) when that object's turn comes.
    Failed {
        /// The object that failed to write.
        object: ObjectId,
        /// Why.
        error: Arc<StorageError>,
        /// Which attempt failed, from 1.
        attempt: u32,
    },
}

/// Counters for metrics, since the pipeline started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Objects made durable.
    pub objects_written: u64,
    /// Bytes of those objects, index and footer included.
    pub bytes_written: u64,
    /// Batches in those objects.
    pub batches_written: u64,
    /// Failed write attempts.
    pub failures: u64,
}

/// Shared atomic counters behind [`FlushStats`].
#[derive(Debug, Default)]
struct Counters {
    objects_written: AtomicU64,
    bytes_written: AtomicU64,
    batches_written: AtomicU64,
    failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FlushStats {
        FlushStats {
            objects_written: self.objects_written.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            batches_written: self.batches_written.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// Messages from handles to the pipeline task.
enum Command {
    Batch(PendingBatch),
    FlushNow,
    Shutdown,
    Abandon,
}

/// Handle to the flush pipeline (cheap to clone).
///
/// Aggregates batches from all partitions and writes one object per flush, fired by whichever
/// policy limit comes first. When every handle is dropped without [`FlushPipeline::shutdown`],
/// the task still flushes what it holds and then stops.
#[derive(Clone)]
pub struct FlushPipeline {
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    /// Becomes `true` (or closes, if the task died) when the task has finished.
    finished: watch::Receiver<bool>,
}

impl FlushPipeline {
    /// Spawns the pipeline task on the current tokio runtime; objects are numbered from
    /// `first_object` (usually [`crate::Recovered::next_object`]).
    ///
    /// `sink` is called from the pipeline task, in object order; it must be quick (the broker
    /// updates watermarks and wakes waiters there).
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn start(
        store: Store,
        config: FlushConfig,
        first_object: ObjectId,
        sink: impl FnMut(FlushEvent) + Send + 'static,
    ) -> FlushPipeline {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (finished_tx, finished) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let task = task::Task::new(store, config, first_object, sink, counters.clone());
        tokio::spawn(async move {
            task.run(receiver).await;
            // Receivers may all be gone already; nobody to tell then.
            let _ = finished_tx.send(true);
        });
        FlushPipeline {
            commands,
            counters,
            finished,
        }
    }

    /// Queues a batch for the next flush object. Synchronous and non-blocking: batches of one
    /// partition are written in the order they are submitted.
    ///
    /// Errors: [`StorageError::Closed`] after shutdown; [`StorageError::InvalidArgument`] for
    /// an empty batch or one whose `base_offset > last_offset`.
    pub fn submit(&self, batch: PendingBatch) -> Result<(), StorageError> {
        if batch.data.is_empty() || batch.base_offset > batch.last_offset {
            return Err(StorageError::InvalidArgument(format!(
                "unusable batch for {:?}: {} bytes, offsets {}..={}",
                batch.key,
                batch.data.len(),
                batch.base_offset,
                batch.last_offset
            )));
        }
        self.commands
            .send(Command::Batch(batch))
            .map_err(|_| StorageError::Closed)
    }

    /// Asks for a flush now of whatever is pending, without waiting for a policy limit.
    pub fn flush_now(&self) {
        // After shutdown there is nothing pending to flush.
        let _ = self.commands.send(Command::FlushNow);
    }

    /// Flushes everything pending, waits until every object is durable and delivered to the
    /// sink, and stops the pipeline. Later [`FlushPipeline::submit`]s fail with
    /// [`StorageError::Closed`]. Safe to call more than once, from several handles.
    ///
    /// Failed writes are retried as always, so this waits as long as storage stays broken;
    /// wrap it in a timeout if that matters.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let mut finished = self.finished.clone();
        // An error means the task is gone (it panicked in the sink): nothing left to wait for.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Stops the pipeline at once, giving up whatever is pending or being written (nothing of
    /// it is reported): for a writer that was fenced, whose writes would only be refused, and
    /// whose data the next writer recovers from storage as far as it became durable.
    pub async fn abandon(&self) {
        let _ = self.commands.send(Command::Abandon);
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Counters for metrics.
    pub fn stats(&self) -> FlushStats {
        self.counters.snapshot()
    }
}

impl fmt::Debug for FlushPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushPipeline")
            .field("stats", &self.stats())
            .field("closed", &self.commands.is_closed())
            .finish()
    }
}
