//! Per-partition index from offsets to batches in the arena.

use std::collections::VecDeque;

use crate::cache::HotCache;
use crate::slice::{HotSlice, SliceRef};

/// One batch of one partition, as the index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// First offset in the batch.
    pub base_offset: i64,
    /// Last offset in the batch.
    pub last_offset: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Where its bytes are.
    pub at: SliceRef,
}

/// What a read found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Pinned batches, the first one holding the requested offset, in offset order.
    Hit(Vec<HotSlice>),
    /// The offset is not (or no longer) in the hot cache: read it from storage.
    Miss,
}

/// The hot batches of one partition, in offset order.
///
/// Entries are appended as batches are produced. Blocks are evicted oldest first, so stale entries
/// gather at the front, where [`PartitionIndex::prune`] drops them; an entry made stale out of
/// order (a pinned older block outlived it) reads as a miss.
#[derive(Debug, Default)]
pub struct PartitionIndex {
    entries: VecDeque<IndexEntry>,
}

impl PartitionIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next batch. Offsets must follow the previous entry's.
    pub fn push(&mut self, entry: IndexEntry) {
        debug_assert!(self
            .entries
            .back()
            .is_none_or(|last| last.last_offset < entry.base_offset));
        self.entries.push_back(entry);
    }

    /// Drops entries at the front whose blocks were reused.
    pub fn prune(&mut self, cache: &HotCache) {
        while self.entries.front().is_some_and(|e| !cache.is_live(&e.at)) {
            self.entries.pop_front();
        }
    }

    /// Drops every entry that ends before `offset` (retention, log truncation).
    pub fn truncate_before(&mut self, offset: i64) {
        while self.entries.front().is_some_and(|e| e.last_offset < offset) {
            self.entries.pop_front();
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The batches held, in offset order.
    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.iter()
    }

    /// First offset held, after pruning.
    pub fn first_offset(&self) -> Option<i64> {
        self.entries.front().map(|e| e.base_offset)
    }

    /// Number of batches indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no batch is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first batch whose largest timestamp is at least `timestamp`.
    pub fn find_by_timestamp(&self, timestamp: i64) -> Option<IndexEntry> {
        self.entries
            .iter()
            .find(|e| e.max_timestamp >= timestamp)
            .copied()
    }

    /// Where the batches from the one holding `offset` are, without pinning them (for a
    /// one-sided reader, who detects reuse by the block generation): the same selection as
    /// [`PartitionIndex::read`]; `None` if the offset is not hot.
    pub fn locate(
        &self,
        cache: &HotCache,
        offset: i64,
        end_offset: i64,
        max_bytes: usize,
    ) -> Option<Vec<IndexEntry>> {
        let start = self.entries.partition_point(|e| e.last_offset < offset);
        let first = self.entries.get(start)?;
        if first.base_offset > offset {
            return None;
        }
        let mut found = Vec::new();
        let mut total = 0usize;
        for entry in self.entries.range(start..) {
            if entry.base_offset >= end_offset
                || (!found.is_empty() && total + entry.at.len() > max_bytes)
                || !cache.is_live(&entry.at)
            {
                break;
            }
            total += entry.at.len();
            found.push(*entry);
        }
        (!found.is_empty()).then_some(found)
    }

    /// Batches from the one holding `offset`, stopping before `end_offset` and once `max_bytes`
    /// are gathered (the first batch is returned whatever its size, as Kafka does).
    pub fn read(
        &self,
        cache: &HotCache,
        offset: i64,
        end_offset: i64,
        max_bytes: usize,
    ) -> ReadOutcome {
        let start = self.entries.partition_point(|e| e.last_offset < offset);
        let Some(first) = self.entries.get(start) else {
            return ReadOutcome::Miss;
        };
        if first.base_offset > offset {
            return ReadOutcome::Miss;
        }
        let mut slices = Vec::new();
        let mut total = 0usize;
        for entry in self.entries.range(start..) {
            if entry.base_offset >= end_offset {
                break;
            }
            if !slices.is_empty() && total + entry.at.len() > max_bytes {
                break;
            }
            let Some(slice) = cache.pin(&entry.at) else {
                break;
            };
            total += slice.len();
            slices.push(slice);
        }
        if slices.is_empty() {
            ReadOutcome::Miss
        } else {
            ReadOutcome::Hit(slices)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HotCacheConfig;

    fn cache(blocks: usize) -> HotCache {
        HotCache::new(HotCacheConfig {
            capacity: blocks * 4096,
            block_size: 4096,
        })
        .unwrap()
    }

    /// Appends a batch of `count` offsets filled with `fill` and indexes it.
    fn add(cache: &HotCache, index: &mut PartitionIndex, base: i64, count: i64, len: usize) {
        let slice = cache.append(&vec![base as u8; len]).unwrap();
        index.push(IndexEntry {
            base_offset: base,
            last_offset: base + count - 1,
            max_timestamp: base * 10,
            at: slice.handle(),
        });
    }

    fn offsets(outcome: ReadOutcome) -> Vec<u8> {
        match outcome {
            ReadOutcome::Hit(slices) => slices.iter().map(|s| s[0]).collect(),
            ReadOutcome::Miss => vec![],
        }
    }

    #[test]
    fn reads_start_at_the_batch_holding_the_offset() {
        let cache = cache(4);
        let mut index = PartitionIndex::new();
        add(&cache, &mut index, 0, 5, 100);
        add(&cache, &mut index, 5, 5, 100);
        add(&cache, &mut index, 10, 5, 100);
        assert_eq!(offsets(index.read(&cache, 7, 15, 1 << 20)), vec![5, 10]);
        assert_eq!(offsets(index.read(&cache, 0, 10, 1 << 20)), vec![0, 5]);
        assert_eq!(offsets(index.read(&cache, 0, 15, 150)), vec![0]);
        assert_eq!(
            offsets(index.read(&cache, 0, 15, 10)),
            vec![0],
            "one batch at least"
        );
        assert!(matches!(index.read(&cache, 15, 20, 100), ReadOutcome::Miss));
    }

    #[test]
    fn evicted_batches_miss_and_are_pruned() {
        let cache = cache(2);
        let mut index = PartitionIndex::new();
        add(&cache, &mut index, 0, 1, 4000);
        add(&cache, &mut index, 1, 1, 4000);
        add(&cache, &mut index, 2, 1, 4000); // reuses block 0
        assert!(matches!(
            index.read(&cache, 0, 3, 1 << 20),
            ReadOutcome::Miss
        ));
        assert_eq!(offsets(index.read(&cache, 1, 3, 1 << 20)), vec![1, 2]);
        index.prune(&cache);
        assert_eq!(index.first_offset(), Some(1));
    }

    #[test]
    fn timestamps_find_the_first_batch_at_or_after() {
        let cache = cache(2);
        let mut index = PartitionIndex::new();
        add(&cache, &mut index, 0, 5, 10);
        add(&cache, &mut index, 5, 5, 10);
        assert_eq!(index.find_by_timestamp(1).unwrap().base_offset, 5);
        assert_eq!(index.find_by_timestamp(0).unwrap().base_offset, 0);
        assert!(index.find_by_timestamp(51).is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::HotCacheConfig;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sizes and however eviction falls, a read never returns bytes other than
        /// the ones written for those offsets.
        #[test]
        fn reads_never_return_bytes_from_a_reused_block(sizes in prop::collection::vec(1usize..4096, 1..200), hold in any::<u8>()) {
            let cache = HotCache::new(HotCacheConfig { capacity: 4 * 4096, block_size: 4096 }).unwrap();
            let mut index = PartitionIndex::new();
            let mut held = Vec::new();
            let mut next = 0i64;
            for len in sizes {
                let tag = (next % 251) as u8;
                let Ok(slice) = cache.append(&vec![tag; len]) else {
                    held.clear();
                    continue;
                };
                index.push(IndexEntry { base_offset: next, last_offset: next, max_timestamp: 0, at: slice.handle() });
                if next % 7 == i64::from(hold % 7) { held.push(slice); }
                if held.len() > 2 { held.remove(0); }
                next += 1;
                let probe = (next * 31 + i64::from(hold)) % next;
                if let ReadOutcome::Hit(slices) = index.read(&cache, probe, next, 1 << 20) {
                    for (k, s) in slices.iter().enumerate() {
                        let expect = ((probe as usize + k) % 251) as u8;
                        prop_assert!(s.iter().all(|&b| b == expect));
                    }
                }
            }
        }
    }
}
