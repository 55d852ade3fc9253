//! The published partition index (layout and checks: `rdma::published`): per subscribed
//! partition, its watermarks and a ring of its latest hot batches, in one read-only shared
//! region, so that a one-sided reader tails and locates batches with READ alone.
//!
//! A partition gets a slot on the first `Subscribe` for it and keeps it while it exists; its
//! listener (see [`HotIndexListener`]) publishes each batch appended to the hot index and
//! each move of the watermarks: a few word stores on the produce path, no work per read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dfs_adapter::PartitionKey;
use hotcache::{AtomicSlots, HotCacheError, IndexEntry};
use parking_lot::Mutex;
use rdma::control::BatchLocation;
use rdma::published::{self, IndexLayout, HEAD, HIGH_WATERMARK, INCARNATION, LOG_START};

use crate::log::partition::{HotIndexListener, Partition};

/// Where a batch of the hot index is in the cache region.
pub fn location(entry: &IndexEntry) -> BatchLocation {
    BatchLocation {
        position: entry.at.arena_offset() as u64,
        len: entry.at.len() as u32,
        block: entry.at.block(),
        generation: entry.at.generation(),
        base_offset: entry.base_offset,
        last_offset: entry.last_offset,
    }
}

/// The index region and which partition holds which slot.
pub struct PublishedIndex {
    words: AtomicSlots,
    layout: IndexLayout,
    slots: u32,
    state: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    by_partition: HashMap<PartitionKey, (u32, u64)>,
    free: Vec<u32>,
    next: u32,
    incarnations: u64,
}

impl PublishedIndex {
    /// An index of `slots` partitions with `entries` batches each.
    pub fn new(slots: u32, entries: u64) -> Result<Arc<Self>, HotCacheError> {
        let layout = IndexLayout { entries };
        let words = (u64::from(slots) * layout.slot_bytes() / 8) as usize;
        Ok(Arc::new(PublishedIndex {
            words: AtomicSlots::new_read_only_shared(words)?,
            layout,
            slots,
            state: Mutex::new(IndexState::default()),
        }))
    }

    /// The shared words (the region clients READ).
    pub fn words(&self) -> &AtomicSlots {
        &self.words
    }

    /// The region's layout.
    pub fn layout(&self) -> IndexLayout {
        self.layout
    }

    /// The slot of `partition` and its incarnation, given (and filled with the partition's
    /// hot batches) on the first call.
    pub fn subscribe(self: &Arc<Self>, partition: &Partition) -> Result<(u32, u64), String> {
        let key = partition.key();
        let slot = match self.allocate(key)? {
            Allocated::Held(held) => return Ok(held),
            Allocated::New(slot) => slot,
        };
        let given = (slot.slot, slot.incarnation);
        if partition.listen(Arc::new(slot)) {
            Ok(given)
        } else {
            // Never expected: a partition listens to its one slot, given once (above).
            Err("the partition already publishes elsewhere".to_string())
        }
    }

    /// The partition's slot if it has one, else a new one: looked up and taken under one
    /// lock, so that two sessions subscribing at once share it.
    fn allocate(self: &Arc<Self>, key: PartitionKey) -> Result<Allocated, String> {
        let mut state = self.state.lock();
        if let Some(&held) = state.by_partition.get(&key) {
            return Ok(Allocated::Held(held));
        }
        let slot = match state.free.pop() {
            Some(slot) => slot,
            None if state.next < self.slots => {
                state.next += 1;
                state.next - 1
            }
            None => return Err("the published index is full (rdma_index_partitions)".into()),
        };
        state.incarnations += 1;
        let incarnation = state.incarnations;
        state.by_partition.insert(key, (slot, incarnation));
        for word in [HIGH_WATERMARK, LOG_START, HEAD] {
            self.header(slot, word).store(0, Ordering::Release);
        }
        self.header(slot, INCARNATION)
            .store(incarnation, Ordering::Release);
        Ok(Allocated::New(PublishedSlot {
            index: self.clone(),
            key,
            slot,
            incarnation,
            next_seq: AtomicU64::new(0),
        }))
    }

    fn word_at(&self, byte_offset: u64) -> &AtomicU64 {
        // Offsets come from the layout of a slot below `slots`, inside the region.
        self.words
            .get((byte_offset / 8) as usize)
            .expect("index word within the region")
    }

    fn header(&self, slot: u32, word: usize) -> &AtomicU64 {
        self.word_at(self.layout.header_word(slot, word))
    }
}

/// What [`PublishedIndex::allocate`] found.
enum Allocated {
    /// The partition's slot and incarnation, given before.
    Held((u32, u64)),
    /// A slot for it, to install as its listener.
    New(PublishedSlot),
}

/// A partition's slot: publishes what its partition appends.
struct PublishedSlot {
    index: Arc<PublishedIndex>,
    key: PartitionKey,
    slot: u32,
    incarnation: u64,
    next_seq: AtomicU64,
}

impl HotIndexListener for PublishedSlot {
    fn appended(&self, entry: &IndexEntry) {
        // Called under the partition lock: one publisher per slot.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let words = published::encode_entry(self.slot, self.incarnation, seq, &location(entry));
        let at = self.index.layout.entry_offset(self.slot, seq);
        // The publication number last (and cleared first), so that a reader sees either the
        // old entry, a mix its checksum refuses, or this one.
        self.index.word_at(at).store(0, Ordering::Release);
        for (i, word) in words.iter().enumerate().skip(1) {
            self.index
                .word_at(at + i as u64 * 8)
                .store(*word, Ordering::Release);
        }
        self.index.word_at(at).store(words[0], Ordering::Release);
        self.index
            .header(self.slot, HEAD)
            .store(seq + 1, Ordering::Release);
    }

    fn watermarks(&self, high_watermark: i64, log_start: i64) {
        // Reported from several threads: the words only move forward.
        let forward = |word: usize, value: i64| {
            self.index
                .header(self.slot, word)
                .fetch_max(value.max(0) as u64, Ordering::AcqRel);
        };
        forward(LOG_START, log_start);
        forward(HIGH_WATERMARK, high_watermark);
    }

    fn backlog(&self) -> usize {
        usize::try_from(self.index.layout.entries).unwrap_or(usize::MAX)
    }
}

impl Drop for PublishedSlot {
    fn drop(&mut self) {
        // The partition is gone (its topic deleted): the slot goes back, its entries are
        // refused by any old reader from now on (the next holder has another incarnation).
        self.index
            .header(self.slot, INCARNATION)
            .store(0, Ordering::Release);
        let mut state = self.index.state.lock();
        if state.by_partition.get(&self.key) == Some(&(self.slot, self.incarnation)) {
            state.by_partition.remove(&self.key);
        }
        state.free.push(self.slot);
    }
}
