//! The cold cache: data read back from storage for catch-up readers, with its own byte budget.
//!
//! It is separate from the hot arena on purpose: a consumer replaying old data fills this cache,
//! never the hot one, so it cannot evict the tail that producers and tailing consumers use. The
//! eviction policy is S3-FIFO (from `quick_cache`): an entry read once goes through a small
//! probation queue, so one long scan cannot flush entries that are read again. Concurrent misses
//! of one key are merged into one load. Entries loaded ahead of a reader ([`ColdCache::prefetch`])
//! are counted as used when a reader asks for them, or as wasted when evicted unread, which is
//! what [`ReadAhead`] adapts to.

mod lifecycle;
mod readahead;

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use lifecycle::{ColdCounters, WasteTracker};
pub use readahead::{ReadAhead, ReadAheadConfig};

/// Sizes of the cold cache.
#[derive(Clone, Debug)]
pub struct ColdCacheConfig {
    /// Bytes the cache may hold.
    pub budget_bytes: u64,
    /// The largest entry expected (entries above a shard's share of the budget are not kept).
    pub largest_entry: u64,
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColdCacheStats {
    /// Reads answered from the cache (a read that joined a load in progress counts here too).
    pub hits: u64,
    /// Reads that had to load from storage.
    pub misses: u64,
    /// Bytes loaded from storage on demand.
    pub miss_bytes: u64,
    /// Entries loaded ahead of a reader.
    pub prefetches: u64,
    /// Bytes loaded ahead of a reader.
    pub prefetch_bytes: u64,
    /// Bytes loaded ahead and later read.
    pub prefetch_used_bytes: u64,
    /// Bytes loaded ahead and evicted unread.
    pub prefetch_wasted_bytes: u64,
    /// Entries evicted.
    pub evictions: u64,
    /// Bytes held now.
    pub held_bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
}

/// One cached range: its bytes, and for a prefetched entry whether a reader has used it yet.
#[derive(Clone)]
pub(crate) struct ColdEntry {
    bytes: Bytes,
    /// `Some` for prefetched entries: set once a reader asked for it.
    used: Option<Arc<AtomicBool>>,
}

#[derive(Clone)]
struct ByteWeighter;

impl<K> Weighter<K, ColdEntry> for ByteWeighter {
    fn weight(&self, _key: &K, entry: &ColdEntry) -> u64 {
        // Zero-weight entries would never be evicted: count empty ranges as one byte.
        (entry.bytes.len() as u64).max(1)
    }
}

/// A byte-budgeted, scan-resistant cache of ranges read from storage. Cheap to share (`Arc`).
pub struct ColdCache<K> {
    cache: Cache<K, ColdEntry, ByteWeighter, DefaultHashBuilder, WasteTracker>,
    counters: Arc<ColdCounters>,
    budget: u64,
}

impl<K: Eq + Hash + Clone> ColdCache<K> {
    /// An empty cache of `config.budget_bytes`.
    pub fn new(config: &ColdCacheConfig) -> Self {
        let budget = config.budget_bytes.max(1);
        // Each shard gets an equal share of the budget and refuses entries above it: keep a
        // shard's share at least four of the largest entries.
        let largest = config.largest_entry.max(1);
        let shards = (budget / largest.saturating_mul(4)).clamp(1, 16) as usize;
        let estimated_items = (budget / (largest / 4).max(4096)).max(16) as usize;
        let options = OptionsBuilder::new()
            .weight_capacity(budget)
            // Half the budget for the probation queue (S3-FIFO's "small" queue; quick_cache
            // gives it 3% by default): prefetched ranges wait there for their reader, so it must
            // hold the readers' read-ahead windows. A range read again is promoted to the main
            // queue; one read once (a scan) leaves from probation without touching the main one.
            .hot_allocation(0.5)
            .estimated_items_capacity(estimated_items)
            .shards(shards)
            .build()
            .expect("weight capacity and item estimate are set");
        let counters = Arc::new(ColdCounters::default());
        let cache = Cache::with_options(
            options,
            ByteWeighter,
            DefaultHashBuilder::default(),
            WasteTracker::new(counters.clone()),
        );
        ColdCache {
            cache,
            counters,
            budget,
        }
    }

    /// The bytes for `key`: from the cache, or from `load` (run only if no other reader is
    /// loading the same key already; those wait for it instead). A failed load is not cached.
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<Bytes, E>
    where
        F: Future<Output = Result<Bytes, E>>,
    {
        match self.cache.get_value_or_guard_async(key).await {
            Ok(entry) => {
                self.counters.hit(&entry);
                Ok(entry.bytes)
            }
            Err(guard) => {
                let bytes = load.await?;
                self.counters.miss(bytes.len());
                let _ = guard.insert(ColdEntry {
                    bytes: bytes.clone(),
                    used: None,
                });
                Ok(bytes)
            }
        }
    }

    /// Loads `key` ahead of a reader, unless it is cached or being loaded already. Returns
    /// whether it loaded anything.
    pub async fn prefetch<E, F>(&self, key: &K, load: F) -> Result<bool, E>
    where
        F: Future<Output = Result<Bytes, E>>,
    {
        if self.cache.contains_key(key) {
            return Ok(false);
        }
        // A zero timeout: if someone else is loading this key, leave it to them.
        let guard = match self
            .cache
            .get_value_or_guard(key, Some(std::time::Duration::ZERO))
        {
            quick_cache::sync::GuardResult::Guard(guard) => guard,
            _ => return Ok(false),
        };
        let bytes = load.await?;
        self.counters.prefetched(bytes.len());
        let _ = guard.insert(ColdEntry {
            bytes,
            used: Some(Arc::new(AtomicBool::new(false))),
        });
        Ok(true)
    }

    /// Whether `key` is cached (without counting a hit).
    pub fn contains(&self, key: &K) -> bool {
        self.cache.contains_key(key)
    }

    /// Counters since start, and the bytes held now.
    pub fn stats(&self) -> ColdCacheStats {
        ColdCacheStats {
            held_bytes: self.cache.weight(),
            budget_bytes: self.budget,
            ..self.counters.snapshot()
        }
    }
}

impl ColdEntry {
    /// Marks a prefetched entry as used; true the first time.
    fn mark_used(&self) -> bool {
        self.used
            .as_ref()
            .is_some_and(|used| !used.swap(true, Ordering::Relaxed))
    }

    /// A prefetched entry nobody read.
    fn is_unused_prefetch(&self) -> bool {
        self.used
            .as_ref()
            .is_some_and(|used| !used.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests;
