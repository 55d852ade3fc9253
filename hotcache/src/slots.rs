//! An array of 8-byte atomic words in shared memory.
//!
//! The broker keeps committed consumer offsets here so that the TCP path (OffsetCommit) and the
//! RDMA path (8-byte atomic fetch-and-add on the registered region) change the very same words.

use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicU64;

use crate::arena::{Arena, Sharing};
use crate::error::HotCacheError;

/// `len` atomic `u64` words, 8-byte aligned, in one `MAP_SHARED` memory file.
pub struct AtomicSlots {
    arena: Arena,
    len: usize,
}

impl AtomicSlots {
    /// Maps `len` zeroed words that other processes given [`AtomicSlots::memfd`] may change
    /// (their size is sealed; see the arena).
    pub fn new(len: usize) -> Result<Self, HotCacheError> {
        Self::with_sharing(len, Sharing::ReadWrite)
    }

    /// Maps `len` zeroed words that only this process can change: the memory file is sealed
    /// against every later writable mapping (check [`AtomicSlots::write_sealed`]).
    pub fn new_read_only_shared(len: usize) -> Result<Self, HotCacheError> {
        Self::with_sharing(len, Sharing::ReadOnly)
    }

    fn with_sharing(len: usize, sharing: Sharing) -> Result<Self, HotCacheError> {
        if len == 0 {
            return Err(HotCacheError::Config("an empty slot table".into()));
        }
        let bytes = len
            .checked_mul(8)
            .ok_or_else(|| HotCacheError::Config(format!("{len} slots is too many")))?;
        Ok(Self {
            arena: Arena::new(bytes, sharing)?,
            len,
        })
    }

    /// Whether other processes can only read the words (sealed against writing; false for
    /// [`AtomicSlots::new`], and on kernels before 5.1).
    pub fn write_sealed(&self) -> bool {
        self.arena.write_sealed()
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a table has at least one word.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The memory file, for registration with an RDMA provider.
    pub fn memfd(&self) -> BorrowedFd<'_> {
        self.arena.fd()
    }

    /// The word at `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<&AtomicU64> {
        if index >= self.len {
            return None;
        }
        // SAFETY: the mapping is page-aligned, so `index * 8` is 8-byte aligned as AtomicU64
        // requires; it lies inside the mapping (checked above), which lives as long as `self`.
        // Other processes and NICs may change the word concurrently, but only through atomic
        // operations, which is exactly what AtomicU64 expects of shared memory.
        Some(unsafe { &*(self.arena.base_ptr().add(index * 8) as *const AtomicU64) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn words_start_at_zero_and_are_independent() {
        let slots = AtomicSlots::new(4).unwrap();
        slots.get(1).unwrap().store(42, Ordering::SeqCst);
        assert_eq!(slots.get(0).unwrap().load(Ordering::SeqCst), 0);
        assert_eq!(slots.get(1).unwrap().fetch_add(3, Ordering::SeqCst), 42);
        assert_eq!(slots.get(1).unwrap().load(Ordering::SeqCst), 45);
        assert!(slots.get(4).is_none());
    }

    #[test]
    fn another_mapping_of_the_memfd_sees_the_same_word() {
        let slots = AtomicSlots::new(2).unwrap();
        slots
            .get(1)
            .unwrap()
            .store(0x0102_0304_0506_0708, Ordering::SeqCst);
        let file = std::fs::File::from(slots.memfd().try_clone_to_owned().unwrap());
        // SAFETY: the test owns the memory file and nothing truncates it while it is mapped.
        let other = unsafe { memmap2::MmapOptions::new().len(16).map(&file) }.unwrap();
        assert_eq!(&other[8..16], &0x0102_0304_0506_0708u64.to_ne_bytes());
    }
}
