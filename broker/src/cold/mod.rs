//! Catch-up (cold) reads: data no longer in the hot arena, read back from storage.
//!
//! Isolated from the hot path three ways: the reads run on their own runtime ([`ColdRuntime`]),
//! what they bring back lands in the cold cache with its own budget (never the hot arena), and
//! the bytes they have in flight from storage are bounded, so a flood of catch-up readers queues
//! instead of taking the storage bandwidth that flushes need. Optionally the bytes they return
//! are paced ([`ColdPace`], `cold_read_max_mib_per_s`). On object stores a read loads the
//! stored chunks it spans concurrently, not one round trip after another. Each read also plans
//! read-ahead: the next chunks of the partition are loaded into the cold cache before the
//! reader asks.
//!
//! With isolation off (`cold_isolation = false`, for benchmarks only) the same reads run on the
//! network runtime, as in a broker without this separation.

mod pace;
mod runtime;

use std::sync::Arc;

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, ObjectId, PartitionKey, Store};
use futures::StreamExt;
use hotcache::{ColdCache, ColdCacheConfig, ColdCacheStats, ReadAhead, ReadAheadConfig};
use tokio::sync::Semaphore;

pub use pace::ColdPace;
pub use runtime::ColdRuntime;

use crate::config::Config;
use crate::log::cold_read::{self, ColdReadError};
use crate::log::partition::Partition;

/// Most chunks one read starts loading ahead: many tiny chunks (small flushes) would otherwise
/// mean many tiny storage reads in flight for one reader.
const MAX_READ_AHEAD_CHUNKS: usize = 16;

/// Chunks one read loads at once on object stores (`cold_read_concurrent_chunks`). A fetch
/// that spans many small stored chunks (flushes not compacted yet, a few KiB each) would
/// otherwise pay one storage round trip per chunk, one after another: at 20 ms per request,
/// a 1 MiB fetch of 4 KiB chunks took five seconds. On `fs://` a read is a page-cache copy and
/// reads stay one after another.
const CONCURRENT_CHUNKS: usize = 32;

/// A reader's read-ahead window is at most this fraction of the cold cache.
const READERS_PER_BUDGET: u64 = 8;
/// All readers' windows together take at most this fraction of the cold cache: half of its
/// probation queue (itself half the cache), the rest left for ranges loaded on demand.
const READ_AHEAD_SHARE: u64 = 4;

/// Cold-cache key: a stored chunk, by object and position.
type ChunkKey = (ObjectId, u64);

/// Serves catch-up reads. Shared by all connections.
pub struct ColdReader {
    shared: Arc<Shared>,
    /// `None` with isolation off.
    runtime: Option<Arc<ColdRuntime>>,
}

struct Shared {
    store: Store,
    cache: ColdCache<ChunkKey>,
    read_ahead: ReadAhead<PartitionKey>,
    /// Storage bytes in flight, in KiB permits.
    in_flight: Semaphore,
    in_flight_kib: u32,
    /// The rate of returned bytes (`None`: unpaced).
    pace: Option<ColdPace>,
    /// Chunks one read loads at once (1: one after another).
    concurrent_chunks: usize,
}

impl ColdReader {
    /// A reader over `store` sized by `config`, on `runtime` if given (a cluster's shards
    /// share their process's), else on a runtime of its own (with `cold_isolation`).
    pub fn new(
        store: Store,
        config: &Config,
        runtime: Option<Arc<ColdRuntime>>,
    ) -> std::io::Result<Self> {
        let in_flight_kib = u32::try_from(config.cold_read_in_flight_mib.saturating_mul(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        // Several readers' windows must fit in the cold cache at once, or what one reader loads
        // ahead evicts what another loaded before it reads it.
        let read_ahead_mib =
            config
                .read_ahead_max_mib
                .unwrap_or(if store.is_local() { 0 } else { 16 });
        let read_ahead_max =
            mib(read_ahead_mib).min(mib(config.cold_cache_mib) / READERS_PER_BUDGET);
        let concurrent_chunks = config
            .cold_read_concurrent_chunks
            .unwrap_or(if store.is_local() {
                1
            } else {
                CONCURRENT_CHUNKS
            });
        let shared = Arc::new(Shared {
            concurrent_chunks,
            store,
            cache: ColdCache::new(&ColdCacheConfig {
                budget_bytes: mib(config.cold_cache_mib),
                // A flush chunk holds at most one flush's worth of one partition; compaction
                // merges chunks up to the segment chunk size.
                largest_entry: (config.flush_max_bytes as u64)
                    .max((config.segment_chunk_kib as u64) << 10),
            }),
            read_ahead: ReadAhead::new(ReadAheadConfig {
                initial_bytes: (1 << 20u64).min(read_ahead_max),
                max_bytes: read_ahead_max,
                total_bytes: (mib(config.cold_cache_mib) / READ_AHEAD_SHARE).max(1),
                ..ReadAheadConfig::default()
            }),
            in_flight: Semaphore::new(in_flight_kib as usize),
            in_flight_kib,
            pace: ColdPace::new(config.cold_read_max_mib_per_s),
        });
        let runtime = match runtime {
            _ if !config.cold_isolation => None,
            Some(runtime) => Some(runtime),
            None => Some(Arc::new(ColdRuntime::start(
                config.cold_read_threads,
                config.cold_read_nice,
            )?)),
        };
        Ok(ColdReader { shared, runtime })
    }

    /// Batches of `partition` from the one holding `offset` (in stored `chunk`), up to
    /// `max_bytes` (at least one batch), continuing into the following stored chunks while the
    /// limit allows: a catch-up consumer gets full fetches, however small the flushes were.
    pub async fn read(
        &self,
        partition: &Arc<Partition>,
        chunk: ChunkLocation,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, ColdReadError> {
        let shared = self.shared.clone();
        let partition = partition.clone();
        let work = async move {
            // The chunks this read will want, loaded up to `concurrent_chunks` at once and taken
            // in order; past the plan (or if compaction moved the chunks meanwhile), one by one.
            let following = if shared.concurrent_chunks > 1 {
                partition.stored_chunks_after(chunk.last_offset, max_bytes as u64)
            } else {
                Vec::new()
            };
            let loads = std::iter::once(chunk.clone())
                .chain(following)
                .map(|planned| {
                    let shared = shared.clone();
                    async move {
                        let data = shared.load(&planned).await;
                        (planned, data)
                    }
                });
            let mut planned =
                Some(futures::stream::iter(loads).buffered(shared.concurrent_chunks.max(1)));
            let mut parts = Vec::new();
            let (mut chunk, mut at, mut taken) = (chunk, offset, 0usize);
            loop {
                let next_planned = match planned.as_mut() {
                    Some(stream) => stream.next().await,
                    None => None,
                };
                let data = match planned_for(next_planned, &chunk) {
                    Some(data) => data?,
                    None => {
                        planned = None;
                        shared.load(&chunk).await?
                    }
                };
                let first = parts.is_empty();
                let (bytes, next) =
                    cold_read::batches_from(&chunk, &data, at, max_bytes - taken, first)?;
                taken += bytes.len();
                if !bytes.is_empty() {
                    parts.push(bytes);
                }
                // Stop at the limit, or where the stored log ends or continues elsewhere.
                let following = (next > at && taken < max_bytes)
                    .then(|| partition.stored_chunk(next))
                    .flatten()
                    .filter(|c| c.base_offset == next);
                at = next;
                match following {
                    Some(c) => chunk = c,
                    None => break,
                }
            }
            // Loads planned and not needed (the limit came first) are dropped unfinished.
            drop(planned);
            shared.read_ahead_after(&partition, &chunk, offset, at);
            let bytes = join(parts);
            if let Some(pace) = &shared.pace {
                pace.take(bytes.len()).await;
            }
            Ok(bytes)
        };
        match &self.runtime {
            Some(runtime) => match runtime.handle().spawn(work).await {
                Ok(result) => result,
                // Only at shutdown (the runtime going away) or if the read panicked.
                Err(join) => Err(ColdReadError::Aborted(join.to_string())),
            },
            None => work.await,
        }
    }

    /// Whether reads load several stored chunks at once (object stores).
    pub fn loads_concurrently(&self) -> bool {
        self.shared.concurrent_chunks > 1
    }

    /// Starts loading what a read of `partition` from `offset` (in stored `chunk`) of up to
    /// `max_bytes` will want, without waiting: a fetch of several partitions that miss the hot
    /// cache loads them all at once, then reads them in order (as Kafka's response budget
    /// requires) from the cold cache or from loads already under way.
    pub fn preload(&self, partition: &Arc<Partition>, chunk: ChunkLocation, max_bytes: usize) {
        if !self.loads_concurrently() {
            return;
        }
        let shared = self.shared.clone();
        let partition = partition.clone();
        let work = async move {
            shared.load_concurrently(&partition, &chunk, max_bytes);
            if let Err(error) = shared.load(&chunk).await {
                tracing::debug!(%error, object = %chunk.object, "preload failed");
            }
        };
        match &self.runtime {
            Some(runtime) => drop(runtime.handle().spawn(work)),
            None => drop(tokio::spawn(work)),
        }
    }

    /// Runs background storage work (compaction) where cold reads run: on the cold runtime's
    /// niced threads, or inline with isolation off. `None` if the work was aborted (shutdown).
    pub async fn run_background<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        match &self.runtime {
            Some(runtime) => runtime.handle().spawn(work).await.ok(),
            None => Some(work.await),
        }
    }

    /// The cold cache's counters.
    pub fn stats(&self) -> ColdCacheStats {
        self.shared.cache.stats()
    }

    /// Time cold reads have waited for `cold_read_max_mib_per_s`, in total.
    pub fn paced(&self) -> std::time::Duration {
        self.shared
            .pace
            .as_ref()
            .map_or(std::time::Duration::ZERO, ColdPace::waited)
    }
}

impl Shared {
    /// A chunk from the cold cache, or from storage (once, however many readers want it).
    async fn load(&self, chunk: &ChunkLocation) -> Result<Bytes, ColdReadError> {
        let key = (chunk.object, chunk.position);
        self.cache.get_or_load(&key, self.load_bounded(chunk)).await
    }

    /// Reads and checks a chunk from storage within the in-flight byte bound.
    async fn load_bounded(&self, chunk: &ChunkLocation) -> Result<Bytes, ColdReadError> {
        let kib = u32::try_from(chunk.len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.in_flight_kib);
        let _permit = self
            .in_flight
            .acquire_many(kib)
            .await
            .map_err(|_| ColdReadError::Aborted("cold reader closed".into()))?;
        cold_read::load_chunk(&self.store, chunk).await
    }

    /// Starts loading, all at once, the chunks after `chunk` that a read of up to `max_bytes`
    /// will want (within the in-flight bound); the read, which takes them in order, then finds
    /// each in the cache or joins its load.
    fn load_concurrently(
        self: &Arc<Self>,
        partition: &Partition,
        chunk: &ChunkLocation,
        max_bytes: usize,
    ) {
        if self.concurrent_chunks <= 1 {
            return;
        }
        let wanted = partition.stored_chunks_after(chunk.last_offset, max_bytes as u64);
        for next in wanted.into_iter().take(self.concurrent_chunks) {
            let key = (next.object, next.position);
            if self.cache.contains(&key) {
                continue;
            }
            let shared = self.clone();
            tokio::spawn(async move {
                let load = shared.load_bounded(&next);
                if let Err(error) = shared.cache.get_or_load(&key, load).await {
                    tracing::debug!(%error, object = %next.object, "concurrent chunk load failed");
                }
            });
        }
    }

    /// Plans read-ahead after a read of `offset..next_offset` and starts loading what it asks
    /// for, on the runtime this runs on; failures are only logged (the reader will ask again).
    fn read_ahead_after(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        chunk: &ChunkLocation,
        offset: i64,
        next_offset: i64,
    ) {
        let wasted = self.cache.stats().prefetch_wasted_bytes;
        let window = self
            .read_ahead
            .on_read(partition.key(), offset, next_offset, wasted);
        if window == 0 {
            return;
        }
        let ahead = partition.stored_chunks_after(chunk.last_offset, window);
        for next in ahead.into_iter().take(MAX_READ_AHEAD_CHUNKS) {
            let key = (next.object, next.position);
            if self.cache.contains(&key) {
                continue;
            }
            let shared = self.clone();
            tokio::spawn(async move {
                if let Err(error) = shared
                    .cache
                    .prefetch(&key, shared.load_bounded(&next))
                    .await
                {
                    tracing::debug!(%error, object = %next.object, "read-ahead failed");
                }
            });
        }
    }
}

/// The data of the next planned load if it is `wanted`'s; `None` when the plan is used up or
/// no longer matches the stored chunks (compaction replaced them meanwhile): the caller then
/// loads `wanted` itself and leaves the plan.
fn planned_for<T>(planned: Option<(ChunkLocation, T)>, wanted: &ChunkLocation) -> Option<T> {
    match planned {
        Some((loaded, data)) if loaded == *wanted => Some(data),
        _ => None,
    }
}

/// One part is returned as it is (a slice of the cached chunk); several are copied into one.
fn join(mut parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let mut out = bytes::BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in &parts {
        out.extend_from_slice(part);
    }
    out.freeze()
}

fn mib(value: usize) -> u64 {
    (value as u64).saturating_mul(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(object: u64, base_offset: i64) -> ChunkLocation {
        ChunkLocation {
            key: PartitionKey {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
            },
            object: ObjectId(object),
            position: 0,
            len: 10,
            base_offset,
            last_offset: base_offset + 4,
            max_timestamp: 0,
            batches: 1,
        }
    }

    #[test]
    fn a_planned_load_is_used_only_for_the_chunk_it_loaded() {
        let wanted = chunk(1, 5);
        assert_eq!(
            planned_for(Some((wanted.clone(), "data")), &wanted),
            Some("data")
        );
        assert_eq!(planned_for::<&str>(None, &wanted), None, "plan used up");
        // Compaction moved offsets 5.. into a segment after the plan was made: same offsets,
        // another object: the planned bytes are not those of the chunk now wanted.
        let moved = ChunkLocation {
            object: ObjectId::segment(1),
            ..wanted.clone()
        };
        assert_eq!(planned_for(Some((wanted.clone(), "data")), &moved), None);
        assert_eq!(planned_for(Some((chunk(1, 0), "data")), &wanted), None);
    }
}
