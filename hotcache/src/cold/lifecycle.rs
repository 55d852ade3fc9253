//! The cold cache's counters, and the eviction hook that feeds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::Lifecycle;

use super::{ColdCacheStats, ColdEntry};

/// Atomic counters behind [`ColdCacheStats`].
#[derive(Default)]
pub(crate) struct ColdCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    miss_bytes: AtomicU64,
    prefetches: AtomicU64,
    prefetch_bytes: AtomicU64,
    prefetch_used_bytes: AtomicU64,
    prefetch_wasted_bytes: AtomicU64,
    evictions: AtomicU64,
}

impl ColdCounters {
    pub(crate) fn hit(&self, entry: &ColdEntry) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if entry.mark_used() {
            self.prefetch_used_bytes
                .fetch_add(entry.bytes.len() as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn miss(&self, bytes: usize) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.miss_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn prefetched(&self, bytes: usize) {
        self.prefetches.fetch_add(1, Ordering::Relaxed);
        self.prefetch_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn evicted(&self, entry: &ColdEntry) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        if entry.is_unused_prefetch() {
            self.prefetch_wasted_bytes
                .fetch_add(entry.bytes.len() as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> ColdCacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ColdCacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            miss_bytes: get(&self.miss_bytes),
            prefetches: get(&self.prefetches),
            prefetch_bytes: get(&self.prefetch_bytes),
            prefetch_used_bytes: get(&self.prefetch_used_bytes),
            prefetch_wasted_bytes: get(&self.prefetch_wasted_bytes),
            evictions: get(&self.evictions),
            held_bytes: 0,
            budget_bytes: 0,
        }
    }
}

/// `quick_cache` lifecycle that counts evictions and wasted prefetches.
#[derive(Clone)]
pub(crate) struct WasteTracker(Arc<ColdCounters>);

impl WasteTracker {
    pub(crate) fn new(counters: Arc<ColdCounters>) -> Self {
        WasteTracker(counters)
    }
}

impl<K> Lifecycle<K, ColdEntry> for WasteTracker {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, entry: ColdEntry) {
        self.0.evicted(&entry);
    }
}
