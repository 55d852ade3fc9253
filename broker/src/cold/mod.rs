//! Catch-up (cold) reads: data no longer in the hot arena, read back from storage.
//!
//! Isolated from the hot path three ways: the reads run on their own runtime ([`ColdRuntime`]),
//! what they bring back lands in the cold cache with its own budget (never the hot arena), and
//! the bytes they have in flight from storage are bounded, so a flood of catch-up readers queues
//! instead of taking the storage bandwidth that flushes need. Optionally the bytes they return
//! are paced ([`ColdPace`], `cold_read_max_mib_per_s`). Each read also plans read-ahead: the
//! next chunks of the partition are loaded into the cold cache before the reader asks.
//!
//! With isolation off (`cold_isolation = false`, for benchmarks only) the same reads run on the
//! network runtime, as in a broker without this separation.

mod pace;
mod runtime;

use std::sync::Arc;

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, ObjectId, PartitionKey, Store};
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
    runtime: Option<ColdRuntime>,
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
}

impl ColdReader {
    /// A reader over `store` sized by `config`.
    pub fn new(store: Store, config: &Config) -> std::io::Result<Self> {
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
        let shared = Arc::new(Shared {
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
        let runtime = if config.cold_isolation {
            Some(ColdRuntime::start(
                config.cold_read_threads,
                config.cold_read_nice,
            )?)
        } else {
            None
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
            let mut parts = Vec::new();
            let (mut chunk, mut at, mut taken) = (chunk, offset, 0usize);
            loop {
                let data = shared.load(&chunk).await?;
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
