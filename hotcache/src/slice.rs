//! A pinned range of the arena.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::cache::Inner;

/// Where a batch sits in the arena, without pinning it: what an index stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceRef {
    pub(crate) block: u32,
    pub(crate) generation: u64,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

impl SliceRef {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte offset of the range in the arena (what a one-sided reader adds to the region base).
    pub fn arena_offset(&self) -> usize {
        self.start
    }

    /// Index of the block holding the range (its entry in the generation table).
    pub fn block(&self) -> u32 {
        self.block
    }

    /// Generation of the block when the range was written.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Bytes in the arena that cannot be overwritten while this value lives.
///
/// Cloning adds a pin; dropping the last pin of a block makes it evictable. Turn it into
/// [`bytes::Bytes`] without copying with `Bytes::from_owner(slice)`.
pub struct HotSlice {
    pub(crate) inner: Arc<Inner>,
    pub(crate) at: SliceRef,
}

impl HotSlice {
    /// The unpinned location of these bytes.
    pub fn handle(&self) -> SliceRef {
        self.at
    }
}

impl Deref for HotSlice {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `self` holds a pin on the block at the generation the range was written in, so
        // the allocator cannot hand the block to a writer; the bytes were written before the
        // slice was published (the writer's reservation is the only mutable access, and it ended
        // before `append_with` returned).
        unsafe { self.inner.arena.slice(self.at.start, self.at.len) }
    }
}

impl AsRef<[u8]> for HotSlice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Clone for HotSlice {
    fn clone(&self) -> Self {
        self.inner.blocks[self.at.block as usize].add_pin();
        Self {
            inner: self.inner.clone(),
            at: self.at,
        }
    }
}

impl Drop for HotSlice {
    fn drop(&mut self) {
        if self.inner.blocks[self.at.block as usize].unpin() {
            self.inner.space_freed();
        }
    }
}

impl fmt::Debug for HotSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotSlice").field("at", &self.at).finish()
    }
}

/// Freshly reserved arena bytes that only their owner can see: fill them, then freeze.
///
/// Nothing else can reach the range until [`PendingSlice::freeze`]: its location is not known to
/// any index yet, and the pin keeps the block from being reused.
pub struct PendingSlice {
    slice: HotSlice,
}

impl PendingSlice {
    pub(crate) fn new(slice: HotSlice) -> Self {
        Self { slice }
    }

    /// Ends write access and returns the shareable, pinned slice.
    pub fn freeze(self) -> HotSlice {
        self.slice
    }
}

impl Deref for PendingSlice {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.slice
    }
}

impl DerefMut for PendingSlice {
    fn deref_mut(&mut self) -> &mut [u8] {
        let at = self.slice.at;
        // SAFETY: the allocator reserved this range for this value alone (it lies past every
        // earlier reservation of the block and below its end), the pin keeps the block from being
        // reused, and no shared slice of it exists before `freeze` consumes `self`.
        unsafe { self.slice.inner.arena.slice_mut(at.start, at.len) }
    }
}
