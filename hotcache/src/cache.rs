//! The block allocator: a FIFO of blocks over one arena.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::arena::{Arena, Sharing};
use crate::block::BlockMeta;
use crate::error::HotCacheError;
use crate::slice::{HotSlice, PendingSlice, SliceRef};
use crate::slots::AtomicSlots;

/// Sizes of the hot cache.
#[derive(Clone, Debug)]
pub struct HotCacheConfig {
    /// Total arena size in bytes (rounded down to whole blocks).
    pub capacity: usize,
    /// Block size in bytes; also the largest batch the cache accepts.
    pub block_size: usize,
}

impl Default for HotCacheConfig {
    fn default() -> Self {
        Self {
            capacity: 512 << 20,
            block_size: 4 << 20,
        }
    }
}

/// Point-in-time counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HotCacheStats {
    /// Blocks in the arena.
    pub blocks: usize,
    /// Blocks never used or evicted and not yet reused.
    pub free_blocks: usize,
    /// Blocks holding at least one pinned slice.
    pub pinned_blocks: usize,
    /// Batches appended since start.
    pub appends: u64,
    /// Bytes appended since start.
    pub appended_bytes: u64,
    /// Blocks evicted for reuse since start.
    pub evictions: u64,
    /// Appends refused because every block was pinned.
    pub full_rejections: u64,
}

type SpaceListener = Arc<dyn Fn() + Send + Sync>;

/// The off-heap hot cache. Cheap to clone.
#[derive(Clone)]
pub struct HotCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) arena: Arena,
    pub(crate) blocks: Vec<BlockMeta>,
    /// Each block's generation, mirrored into shared memory for one-sided readers: bumped when
    /// the block is claimed for reuse, before any new byte is written into it, so a reader that
    /// copied a batch and then finds the generation unchanged knows the copy is whole
    /// (a seqlock).
    generations: AtomicSlots,
    block_size: usize,
    alloc: Mutex<AllocState>,
    listener: RwLock<Option<SpaceListener>>,
    appends: AtomicU64,
    appended_bytes: AtomicU64,
    evictions: AtomicU64,
    full_rejections: AtomicU64,
}

struct AllocState {
    /// The block being filled and the first free byte in it.
    active: Option<(u32, usize)>,
    /// Sealed blocks, oldest first.
    sealed: VecDeque<u32>,
    /// Blocks that hold nothing.
    free: Vec<u32>,
}

impl HotCache {
    /// Creates the arena: one shared-memory file mapped once.
    pub fn new(config: HotCacheConfig) -> Result<Self, HotCacheError> {
        if config.block_size < 4096 {
            return Err(HotCacheError::Config(format!(
                "block size {} is below 4096 bytes",
                config.block_size
            )));
        }
        let blocks = config.capacity / config.block_size;
        if blocks < 2 {
            return Err(HotCacheError::Config(format!(
                "capacity {} holds fewer than two blocks of {} bytes",
                config.capacity, config.block_size
            )));
        }
        if blocks > u32::MAX as usize {
            return Err(HotCacheError::Config(format!(
                "{blocks} blocks is too many"
            )));
        }
        let arena = Arena::new(blocks * config.block_size, Sharing::ReadOnly)?;
        let blocks_meta: Vec<BlockMeta> = (0..blocks).map(|_| BlockMeta::new()).collect();
        let generations = AtomicSlots::new_read_only_shared(blocks)?;
        for (i, meta) in blocks_meta.iter().enumerate() {
            if let Some(word) = generations.get(i) {
                word.store(meta.generation(), Ordering::Release);
            }
        }
        let inner = Inner {
            arena,
            blocks: blocks_meta,
            generations,
            block_size: config.block_size,
            alloc: Mutex::new(AllocState {
                active: None,
                sealed: VecDeque::with_capacity(blocks),
                free: (0..blocks as u32).rev().collect(),
            }),
            listener: RwLock::new(None),
            appends: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            full_rejections: AtomicU64::new(0),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The shared table of block generations (one `u64` per block, block order), for
    /// registration with a one-sided transport beside [`HotCache::memfd`].
    pub fn generations_memfd(&self) -> BorrowedFd<'_> {
        self.inner.generations.memfd()
    }

    /// Whether the arena and the generation table are sealed so that no other process can
    /// write or resize them, whatever descriptor it holds (see [`HotCache::memfd`]); false on
    /// kernels before 5.1, where they must not be handed to untrusted processes.
    pub fn write_sealed(&self) -> bool {
        self.inner.arena.write_sealed() && self.inner.generations.write_sealed()
    }

    /// Number of blocks (entries of the generation table).
    pub fn block_count(&self) -> usize {
        self.inner.blocks.len()
    }

    /// Block size: the largest batch that fits.
    pub fn block_size(&self) -> usize {
        self.inner.block_size
    }

    /// Arena size in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.arena.len()
    }

    /// The memory file behind the arena, for registration with an RDMA provider. Other
    /// processes can only read it, through any descriptor, if [`HotCache::write_sealed`].
    pub fn memfd(&self) -> BorrowedFd<'_> {
        self.inner.arena.fd()
    }

    /// Registers a callback run whenever a block loses its last pin (space may be free again).
    pub fn set_space_listener(&self, listener: impl Fn() + Send + Sync + 'static) {
        *self.inner.listener.write() = Some(Arc::new(listener));
    }

    /// Copies `data` into the arena.
    pub fn append(&self, data: &[u8]) -> Result<HotSlice, HotCacheError> {
        let mut pending = self.reserve(data.len())?;
        pending.copy_from_slice(data);
        Ok(pending.freeze())
    }

    /// Reserves `len` bytes for the caller alone; fill them, then [`PendingSlice::freeze`] them
    /// to share them. Fails with [`HotCacheError::Full`] when every block is pinned.
    pub fn reserve(&self, len: usize) -> Result<PendingSlice, HotCacheError> {
        let inner = &self.inner;
        if len > inner.block_size {
            return Err(HotCacheError::TooLarge {
                len,
                block_size: inner.block_size,
            });
        }
        let at = inner.reserve(len)?;
        inner.appends.fetch_add(1, Ordering::Relaxed);
        inner
            .appended_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(PendingSlice::new(HotSlice {
            inner: inner.clone(),
            at,
        }))
    }

    /// Pins the bytes at `at` if its block has not been reused since.
    pub fn pin(&self, at: &SliceRef) -> Option<HotSlice> {
        let block = self.inner.blocks.get(at.block as usize)?;
        if !block.try_pin(at.generation) {
            return None;
        }
        Some(HotSlice {
            inner: self.inner.clone(),
            at: *at,
        })
    }

    /// True while the block behind `at` still holds the bytes written there.
    pub fn is_live(&self, at: &SliceRef) -> bool {
        self.inner
            .blocks
            .get(at.block as usize)
            .is_some_and(|b| b.generation() == at.generation)
    }

    /// Counters.
    pub fn stats(&self) -> HotCacheStats {
        let inner = &self.inner;
        let free_blocks = inner.alloc.lock().free.len();
        HotCacheStats {
            blocks: inner.blocks.len(),
            free_blocks,
            pinned_blocks: inner.blocks.iter().filter(|b| b.pins() > 0).count(),
            appends: inner.appends.load(Ordering::Relaxed),
            appended_bytes: inner.appended_bytes.load(Ordering::Relaxed),
            evictions: inner.evictions.load(Ordering::Relaxed),
            full_rejections: inner.full_rejections.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// Finds room for `len` bytes and pins its block.
    fn reserve(&self, len: usize) -> Result<SliceRef, HotCacheError> {
        let mut state = self.alloc.lock();
        if let Some((block, used)) = state.active {
            if used + len <= self.block_size {
                state.active = Some((block, used + len));
                return Ok(self.pinned_ref(block, used, len));
            }
            state.sealed.push_back(block);
            state.active = None;
        }
        let Some(block) = state.free.pop().or_else(|| self.evict_oldest(&mut state)) else {
            self.full_rejections.fetch_add(1, Ordering::Relaxed);
            return Err(HotCacheError::Full {
                blocks: self.blocks.len(),
            });
        };
        state.active = Some((block, len));
        Ok(self.pinned_ref(block, 0, len))
    }

    fn pinned_ref(&self, block: u32, offset: usize, len: usize) -> SliceRef {
        let meta = &self.blocks[block as usize];
        meta.add_pin();
        SliceRef {
            block,
            generation: meta.generation(),
            start: block as usize * self.block_size + offset,
            len,
        }
    }

    /// Reuses the oldest sealed block that nothing pins.
    fn evict_oldest(&self, state: &mut AllocState) -> Option<u32> {
        let position = state
            .sealed
            .iter()
            .position(|&b| self.blocks[b as usize].try_evict())?;
        self.evictions.fetch_add(1, Ordering::Relaxed);
        let block = state.sealed.remove(position)?;
        // Published before the block is handed out, hence before any byte is written into it.
        if let Some(word) = self.generations.get(block as usize) {
            word.store(self.blocks[block as usize].generation(), Ordering::SeqCst);
        }
        Some(block)
    }

    pub(crate) fn space_freed(&self) {
        let listener = self.listener.read().clone();
        if let Some(listener) = listener {
            listener();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> HotCache {
        HotCache::new(HotCacheConfig {
            capacity: 4 * 4096,
            block_size: 4096,
        })
        .unwrap()
    }

    #[test]
    fn appended_bytes_read_back() {
        let cache = small();
        let a = cache.append(b"first").unwrap();
        let b = cache.append(b"second").unwrap();
        assert_eq!(&*a, b"first");
        assert_eq!(&*b, b"second");
        assert_eq!(a.handle().arena_offset() + 5, b.handle().arena_offset());
    }

    #[test]
    fn oversized_batches_are_refused() {
        let cache = small();
        assert!(matches!(
            cache.append(&[0; 4097]),
            Err(HotCacheError::TooLarge { .. })
        ));
    }

    #[test]
    fn full_when_everything_is_pinned_then_space_after_unpin() {
        let cache = small();
        let freed = Arc::new(AtomicU64::new(0));
        let seen = freed.clone();
        cache.set_space_listener(move || {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let held: Vec<_> = (0..4).map(|_| cache.append(&[7; 4000]).unwrap()).collect();
        assert!(matches!(
            cache.append(&[1; 4000]),
            Err(HotCacheError::Full { blocks: 4 })
        ));
        let first = held[0].handle();
        drop(held);
        assert!(freed.load(Ordering::Relaxed) >= 1);
        let reused = cache.append(&[9; 4000]).unwrap();
        assert!(!cache.is_live(&first), "the oldest block was evicted");
        assert!(cache.pin(&first).is_none());
        assert_eq!(reused[0], 9);
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn eviction_takes_the_oldest_unpinned_block() {
        let cache = small();
        let a = cache.append(&[1; 4000]).unwrap();
        let b = cache.append(&[2; 4000]).unwrap().handle();
        let c = cache.append(&[3; 4000]).unwrap().handle();
        let _d = cache.append(&[4; 4000]).unwrap();
        // `a` is pinned (a slow reader): `b` goes first, then `c`.
        cache.append(&[5; 4000]).unwrap();
        assert!(!cache.is_live(&b));
        assert!(cache.is_live(&c));
        assert_eq!(a[0], 1);
    }

    #[test]
    fn a_reused_block_shows_its_new_generation_in_shared_memory_first() {
        let cache = small();
        let table = std::fs::File::from(cache.generations_memfd().try_clone_to_owned().unwrap());
        // SAFETY: a read-only view of the cache's own generation table, which only this test's
        // cache writes (with atomic stores of whole words).
        let map = unsafe { memmap2::Mmap::map(&table) }.unwrap();
        let word = |block: u32| {
            let at = block as usize * 8;
            u64::from_ne_bytes(map[at..at + 8].try_into().unwrap())
        };
        assert_eq!(map.len(), cache.block_count() * 8);
        let old = cache.append(&[1; 4000]).unwrap().handle();
        assert_eq!(word(old.block()), old.generation());
        for fill in 2..=4 {
            cache.append(&[fill; 4000]).unwrap();
        }
        // The fifth block of four reuses the first: its generation moved before the new
        // bytes went in, so a one-sided reader of `old` sees the change.
        let new = cache.append(&[5; 4000]).unwrap();
        assert_eq!(new.handle().block(), old.block());
        assert!(!cache.is_live(&old));
        assert_eq!(word(old.block()), new.handle().generation());
        assert_ne!(word(old.block()), old.generation());
    }
}
