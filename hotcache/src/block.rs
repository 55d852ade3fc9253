//! Per-block metadata: the pin count and the generation number.
//!
//! The protocol that keeps a reused block from being read as if it still held its old data:
//! - a reader (or the flush pipeline) pins with `fetch_add(1)` and then checks the generation;
//! - eviction claims an unpinned block by swapping the pin count from 0 to [`EVICTING`], bumps the
//!   generation, and clears the flag when it hands the block out again.
//!
//! A pin that races with eviction either sees the flag or sees the new generation, and backs off.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// High bit of the pin count: set while the block is being evicted.
const EVICTING: usize = 1 << (usize::BITS - 1);

pub(crate) struct BlockMeta {
    pins: AtomicUsize,
    generation: AtomicU64,
}

impl BlockMeta {
    pub(crate) fn new() -> Self {
        Self {
            pins: AtomicUsize::new(0),
            generation: AtomicU64::new(1),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Pins the block if it still holds `generation`.
    pub(crate) fn try_pin(&self, generation: u64) -> bool {
        let prev = self.pins.fetch_add(1, Ordering::AcqRel);
        if prev & EVICTING != 0 || self.generation() != generation {
            self.pins.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Adds a pin for a holder that already has one (cloning a slice).
    pub(crate) fn add_pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops one pin; returns true when it was the last one.
    pub(crate) fn unpin(&self) -> bool {
        self.pins.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Claims the block for reuse if nothing pins it, moving it to a new generation.
    pub(crate) fn try_evict(&self) -> bool {
        if self
            .pins
            .compare_exchange(0, EVICTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Pins taken while the flag was set back off by themselves (they decrement), so only the
        // flag is cleared: storing 0 would lose their pending decrements.
        self.pins.fetch_and(!EVICTING, Ordering::AcqRel);
        true
    }

    pub(crate) fn pins(&self) -> usize {
        self.pins.load(Ordering::Acquire) & !EVICTING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_blocks_cannot_be_evicted() {
        let b = BlockMeta::new();
        assert!(b.try_pin(1));
        assert!(!b.try_evict());
        assert!(b.unpin());
        assert!(b.try_evict());
        assert_eq!(b.generation(), 2);
    }

    #[test]
    fn a_stale_generation_cannot_be_pinned() {
        let b = BlockMeta::new();
        assert!(b.try_evict());
        assert!(!b.try_pin(1));
        assert_eq!(b.pins(), 0);
        assert!(b.try_pin(2));
    }

    #[test]
    fn racing_pins_and_evictions_never_pin_a_reused_block() {
        use std::sync::Arc;
        let b = Arc::new(BlockMeta::new());
        let evictor = {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut evictions = 0;
                for _ in 0..20_000 {
                    if b.try_evict() {
                        evictions += 1;
                    }
                }
                evictions
            })
        };
        for _ in 0..20_000 {
            let generation = b.generation();
            if b.try_pin(generation) {
                // While pinned, the generation cannot move.
                assert_eq!(b.generation(), generation);
                b.unpin();
            }
        }
        evictor.join().unwrap();
        assert_eq!(b.pins(), 0);
    }
}
