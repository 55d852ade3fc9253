//! The shared-memory mapping behind the cache.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{ftruncate, memfd_create, MemfdFlags};

/// One `MAP_SHARED` mapping of an anonymous memory file.
///
/// A memfd rather than anonymous memory so that the very same pages can be handed to another
/// process (shm RDMA provider) or registered with a NIC.
pub(crate) struct Arena {
    map: MmapRaw,
    file: File,
}

impl Arena {
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let fd = memfd_create("hotwire-hotcache", MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, len as u64)?;
        let file = File::from(fd);
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        Ok(Self { map, file })
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    pub(crate) fn base_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Read access to `[start, start + len)`.
    ///
    /// # Safety
    /// The range must lie inside the arena, must have been fully written before this call (with a
    /// happens-before edge to it), and must not be written again while the returned slice lives;
    /// the block pin protocol in `block.rs` guarantees the last two.
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &[u8] {
        debug_assert!(start + len <= self.len());
        // SAFETY: in bounds (caller), the mapping lives as long as `self`, and no writer aliases
        // the range while it is pinned (caller).
        unsafe { std::slice::from_raw_parts(self.base_ptr().add(start), len) }
    }

    /// Write access to `[start, start + len)`.
    ///
    /// # Safety
    /// The range must lie inside the arena and be reserved exclusively for the caller: no other
    /// slice of it may exist while the returned one lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [u8] {
        debug_assert!(start + len <= self.len());
        // SAFETY: in bounds and exclusive (caller); the mapping is writable and lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.base_ptr().add(start), len) }
    }
}

// SAFETY: the arena is plain shared memory; all access to its bytes goes through `slice` and
// `slice_mut`, whose callers uphold exclusivity through the allocator and block pins.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only hands out ranges under the same protocol.
unsafe impl Sync for Arena {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back_through_the_mapping() {
        let arena = Arena::new(1 << 16).unwrap();
        // SAFETY: the test owns the whole arena and holds one slice at a time.
        unsafe {
            arena.slice_mut(100, 5).copy_from_slice(b"hello");
            assert_eq!(arena.slice(100, 5), b"hello");
            assert_eq!(arena.slice(0, 4), &[0, 0, 0, 0]);
        }
    }

    #[test]
    fn the_memfd_sees_what_the_mapping_holds() {
        use std::os::unix::fs::FileExt;
        let arena = Arena::new(4096).unwrap();
        // SAFETY: exclusive test access.
        unsafe { arena.slice_mut(10, 3).copy_from_slice(b"abc") };
        let dup = File::from(arena.fd().try_clone_to_owned().unwrap());
        let mut buf = [0u8; 3];
        dup.read_exact_at(&mut buf, 10).unwrap();
        assert_eq!(&buf, b"abc");
    }
}
