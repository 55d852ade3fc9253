//! One partition's log: offset assignment, the hot index, and the chunks already in storage.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, FlushPipeline, PartitionKey, PendingBatch, StorageError};
use hotcache::{HotCache, IndexEntry, PartitionIndex, PendingSlice, ReadOutcome};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::record_batch::{assign_offset, BatchHeader};
use crate::producers::{ActiveProducer, ProducerStates, SequenceCheck, SequenceError};

/// Leader epoch written into stored batches and reported in Metadata. A single broker owns every
/// partition, so it never changes; a cluster will take it from the coordination service.
pub const LEADER_EPOCH: i32 = 0;

/// Offsets given to one appended set of batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// Told of every batch the hot index gains and of every move of the watermarks (the one-sided
/// path's published index, which readers use without asking the broker).
pub trait HotIndexListener: Send + Sync {
    /// `entry` was appended to the hot index (it is readable once below the high watermark).
    /// Called under the partition lock, in offset order.
    fn appended(&self, entry: &IndexEntry);
    /// The high watermark or the log start moved (either may be reported late, never
    /// ahead of the log).
    fn watermarks(&self, high_watermark: i64, log_start: i64);
    /// How many of the latest hot batches it wants told when it is installed.
    fn backlog(&self) -> usize;
}

/// A partition of a topic.
pub struct Partition {
    key: PartitionKey,
    state: Mutex<PartitionState>,
    /// Durable end of the log: what consumers may read, and what acks=all waits for.
    high_watermark: watch::Sender<i64>,
    listener: RwLock<Option<Arc<dyn HotIndexListener>>>,
}

struct PartitionState {
    /// Next offset to assign (log end offset, durable or not).
    next_offset: i64,
    log_start: i64,
    hot: PartitionIndex,
    /// Durable runs of batches, in offset order.
    stored: VecDeque<ChunkLocation>,
    /// Idempotent producers' recent batches.
    producers: ProducerStates,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The flush pipeline is closed (shutting down).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An idempotent producer's batch broke the sequence rules.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// `chunks` sorted by offset, without chunks wholly covered by another.
fn in_offset_order(mut chunks: Vec<ChunkLocation>) -> Vec<ChunkLocation> {
    chunks.sort_by_key(|c| (c.base_offset, std::cmp::Reverse(c.last_offset)));
    let mut kept: Vec<ChunkLocation> = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        match kept.last() {
            Some(last) if chunk.last_offset <= last.last_offset => {
                tracing::debug!(?chunk, "stored chunk held by another one; not read");
            }
            Some(last) if chunk.base_offset <= last.last_offset => {
                tracing::warn!(?chunk, ?last, "stored chunks overlap");
                kept.push(chunk);
            }
            _ => kept.push(chunk),
        }
    }
    kept
}

impl Partition {
    /// A partition with the given durable chunks, as recovered from storage. They are put in
    /// offset order here (recovery lists segments and flush objects as it finds them), and a
    /// chunk whose offsets an earlier one already holds is dropped, so every offset is read
    /// from one place and the log end is the highest offset stored.
    pub fn new(key: PartitionKey, chunks: Vec<ChunkLocation>) -> Self {
        let chunks = in_offset_order(chunks);
        let end = chunks.last().map_or(0, |c| c.last_offset + 1);
        let log_start = chunks.first().map_or(0, |c| c.base_offset);
        Self {
            key,
            state: Mutex::new(PartitionState {
                next_offset: end,
                log_start,
                hot: PartitionIndex::new(),
                stored: chunks.into(),
                producers: ProducerStates::default(),
            }),
            high_watermark: watch::Sender::new(end),
            listener: RwLock::new(None),
        }
    }

    /// Installs `new` as the listener, unless there is one already, and tells it the hot
    /// batches held and the watermarks now; later appends and moves follow. Returns whether
    /// it was installed.
    pub fn listen(&self, new: Arc<dyn HotIndexListener>) -> bool {
        let state = self.state.lock();
        let mut listener = self.listener.write();
        if listener.is_some() {
            return false;
        }
        let skip = state.hot.len().saturating_sub(new.backlog());
        for entry in state.hot.entries().skip(skip) {
            new.appended(entry);
        }
        new.watermarks(self.high_watermark(), state.log_start);
        *listener = Some(new);
        true
    }

    /// Tells the listener the watermarks now. The listener lock is not held while the state
    /// lock is taken (`listen` takes them the other way round).
    fn report_watermarks(&self) {
        let listener = self.listener.read().clone();
        if let Some(listener) = listener {
            listener.watermarks(self.high_watermark(), self.log_start());
        }
    }

    /// Storage identity.
    pub fn key(&self) -> PartitionKey {
        self.key
    }

    /// Durable end offset.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// First offset still held.
    pub fn log_start(&self) -> i64 {
        self.state.lock().log_start
    }

    /// Watches the high watermark (long-poll fetches and acks=all producers wait on it).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Gives offsets to batches already copied into the hot cache, publishes them in the hot
    /// index and hands them to the flush pipeline, all under the partition lock so that offsets,
    /// index order, producer sequences and submission order agree. A retried batch of an
    /// idempotent producer is not appended again: the offsets it got the first time are returned.
    pub fn append(
        &self,
        batches: Vec<(PendingSlice, BatchHeader)>,
        cache: &HotCache,
        pipeline: &FlushPipeline,
    ) -> Result<Appended, AppendError> {
        let mut state = self.state.lock();
        let mut first_offset = None;
        let mut last_offset = state.next_offset - 1;
        for (mut pending, header) in batches {
            match state.producers.check(&header)? {
                SequenceCheck::Duplicate {
                    base_offset,
                    last_offset: last,
                } => {
                    first_offset.get_or_insert(base_offset);
                    last_offset = last;
                    continue;
                }
                SequenceCheck::Append => {}
            }
            let batch_base = state.next_offset;
            let batch_last = batch_base + i64::from(header.last_offset_delta);
            assign_offset(&mut pending, batch_base, LEADER_EPOCH);
            let slice = pending.freeze();
            let entry = IndexEntry {
                base_offset: batch_base,
                last_offset: batch_last,
                max_timestamp: header.max_timestamp,
                at: slice.handle(),
            };
            state.hot.push(entry);
            if let Some(listener) = self.listener.read().as_ref() {
                listener.appended(&entry);
            }
            state.producers.record(&header, batch_base);
            // Offsets are taken even if the pipeline refuses (it only does so at shutdown), so
            // that the hot index and the log end stay consistent.
            state.next_offset = batch_last + 1;
            first_offset.get_or_insert(batch_base);
            last_offset = batch_last;
            pipeline.submit(PendingBatch {
                key: self.key,
                base_offset: batch_base,
                last_offset: batch_last,
                max_timestamp: header.max_timestamp,
                data: Bytes::from_owner(slice),
            })?;
        }
        state.hot.prune(cache);
        Ok(Appended {
            base_offset: first_offset.unwrap_or(last_offset + 1),
            last_offset,
        })
    }

    /// Remembers that these batches were refused for a passing reason before being appended,
    /// so that idempotent producers' batches pipelined behind them are refused until they come
    /// back (see [`ProducerStates::refuse`]).
    pub fn refuse<'a>(&self, headers: impl IntoIterator<Item = &'a BatchHeader>) {
        let mut state = self.state.lock();
        for header in headers {
            state.producers.refuse(header);
        }
    }

    /// The idempotent producers this partition remembers (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.state.lock().producers.active()
    }

    /// Installs producer state rebuilt from storage (at start, before any append).
    pub fn restore_producers(&self, producers: ProducerStates) {
        self.state.lock().producers = producers;
    }

    /// Records that a chunk of this partition is durable and moves the high watermark.
    pub fn on_durable(&self, chunk: ChunkLocation) {
        let end = chunk.last_offset + 1;
        self.state.lock().stored.push_back(chunk);
        self.high_watermark.send_if_modified(|hw| {
            let advanced = end > *hw;
            if advanced {
                *hw = end;
            }
            advanced
        });
        self.report_watermarks();
    }

    /// Moves the log start to `offset` (never backwards), forgetting stored chunks wholly below
    /// it (retention, DeleteRecords, or a log start recorded in the manifest at recovery). On a
    /// log with nothing left it also moves the log end there, so offsets are never reused.
    pub fn truncate(&self, offset: i64) {
        let mut state = self.state.lock();
        if offset <= state.log_start {
            return;
        }
        state.log_start = offset;
        while state.stored.front().is_some_and(|c| c.last_offset < offset) {
            state.stored.pop_front();
        }
        state.next_offset = state.next_offset.max(offset);
        drop(state);
        self.high_watermark.send_if_modified(|hw| {
            let moved = *hw < offset;
            if moved {
                *hw = offset;
            }
            moved
        });
        self.report_watermarks();
    }

    /// Replaces the stored chunks in the offset range that `chunks` (a compacted segment's, in
    /// offset order) cover by them. Chunks wholly below the log start are left out.
    pub fn replace_stored(&self, chunks: &[ChunkLocation]) {
        let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
            return;
        };
        let (base, end) = (first.base_offset, last.last_offset);
        let mut state = self.state.lock();
        let log_start = state.log_start;
        let at = state.stored.partition_point(|c| c.last_offset < base);
        let mut upto = at;
        while state.stored.get(upto).is_some_and(|c| c.last_offset <= end) {
            upto += 1;
        }
        state.stored.drain(at..upto);
        for (i, chunk) in chunks
            .iter()
            .filter(|c| c.last_offset >= log_start)
            .enumerate()
        {
            state.stored.insert(at + i, chunk.clone());
        }
    }

    /// Bytes of record data stored for this partition.
    pub fn stored_bytes(&self) -> u64 {
        self.state.lock().stored.iter().map(|c| c.len).sum()
    }

    /// Durable batches from the hot cache, starting at the one holding `offset`.
    pub fn read_hot(&self, cache: &HotCache, offset: i64, max_bytes: usize) -> ReadOutcome {
        let end = self.high_watermark();
        self.state.lock().hot.read(cache, offset, end, max_bytes)
    }

    /// Where the durable hot batches from the one holding `offset` are in the arena, without
    /// pinning them (for one-sided readers); `None` if `offset` is not hot.
    pub fn locate_hot(
        &self,
        cache: &HotCache,
        offset: i64,
        max_bytes: usize,
    ) -> Option<Vec<IndexEntry>> {
        let end = self.high_watermark();
        self.state.lock().hot.locate(cache, offset, end, max_bytes)
    }

    /// The stored chunk holding `offset`.
    pub fn stored_chunk(&self, offset: i64) -> Option<ChunkLocation> {
        let state = self.state.lock();
        let at = state.stored.partition_point(|c| c.last_offset < offset);
        state
            .stored
            .get(at)
            .filter(|c| c.base_offset <= offset)
            .cloned()
    }

    /// The stored chunks after the one ending at `last_offset`, in offset order, as many as fit
    /// in `max_bytes` together: what to read ahead. None when the next chunk alone is larger (a
    /// reader whose share of the cold cache is smaller than a chunk does not read ahead: what
    /// it loaded would be evicted before it got there).
    pub fn stored_chunks_after(&self, last_offset: i64, max_bytes: u64) -> Vec<ChunkLocation> {
        let state = self.state.lock();
        let at = state
            .stored
            .partition_point(|c| c.last_offset <= last_offset);
        let mut total = 0u64;
        let mut next = Vec::new();
        for chunk in state.stored.iter().skip(at) {
            if total + chunk.len > max_bytes {
                break;
            }
            total += chunk.len;
            next.push(chunk.clone());
        }
        next
    }

    /// Every durable chunk, in offset order.
    pub fn stored_chunks(&self) -> Vec<ChunkLocation> {
        self.state.lock().stored.iter().cloned().collect()
    }

    /// The first stored chunk holding a timestamp at or after `timestamp`.
    pub fn stored_chunk_by_timestamp(&self, timestamp: i64) -> Option<ChunkLocation> {
        let state = self.state.lock();
        state
            .stored
            .iter()
            .find(|c| c.max_timestamp >= timestamp)
            .cloned()
    }

    /// The stored chunk holding the largest timestamp (the earliest such chunk).
    pub fn stored_chunk_with_max_timestamp(&self) -> Option<ChunkLocation> {
        let state = self.state.lock();
        state
            .stored
            .iter()
            .reduce(|best, c| {
                if c.max_timestamp > best.max_timestamp {
                    c
                } else {
                    best
                }
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use dfs_adapter::ObjectId;
    use uuid::Uuid;

    use super::*;

    fn chunk(object: u64, base_offset: i64, last_offset: i64) -> ChunkLocation {
        ChunkLocation {
            key: PartitionKey {
                topic_id: Uuid::nil(),
                partition: 0,
            },
            object: ObjectId(object),
            position: 0,
            len: 1,
            base_offset,
            last_offset,
            max_timestamp: 0,
            batches: 1,
        }
    }

    #[test]
    fn recovered_chunks_are_put_in_offset_order_without_copies() {
        // As recovery may list them: a later segment first, then an older one, then flush
        // objects, one of them a copy of data a segment holds.
        let partition = Partition::new(
            PartitionKey {
                topic_id: Uuid::nil(),
                partition: 0,
            },
            vec![
                chunk(7, 100, 199),
                chunk(3, 0, 99),
                chunk(9, 150, 160),
                chunk(10, 200, 249),
            ],
        );
        let offsets: Vec<(i64, i64)> = partition
            .stored_chunks()
            .iter()
            .map(|c| (c.base_offset, c.last_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 99), (100, 199), (200, 249)]);
        assert_eq!(partition.high_watermark(), 250);
        assert_eq!(partition.stored_chunk(120).unwrap().object, ObjectId(7));
    }
}
