//! The shared-memory mapping behind the cache.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;

/// What other processes given the memory file may do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// Read only: sealed against any new writable mapping or `write(2)`
    /// (`F_SEAL_FUTURE_WRITE`), whatever descriptor a process reopens it through.
    ReadOnly,
    /// Read and write through their mappings (offset slots changed by fetch-and-add).
    ReadWrite,
}

/// One `MAP_SHARED` mapping of an anonymous memory file.
///
/// A memfd rather than anonymous memory so that the very same pages can be handed to another
/// process (shm RDMA provider) or registered with a NIC.
///
/// The file is sealed at creation, once this process holds its one writable mapping: its size
/// can never change (`F_SEAL_SHRINK | F_SEAL_GROW`: a truncation by another holder would turn
/// our accesses into `SIGBUS`), no seal can be added later (`F_SEAL_SEAL`: a holder could
/// otherwise forbid the writable mappings other clients need), and for [`Sharing::ReadOnly`]
/// nobody can write it except through mappings that existed before (`F_SEAL_FUTURE_WRITE`,
/// Linux 5.1+, which leaves our own mapping writable).
pub(crate) struct Arena {
    map: MmapRaw,
    file: File,
    /// Whether `F_SEAL_FUTURE_WRITE` is in place (asked for and supported by the kernel).
    write_sealed: bool,
}

impl Arena {
    pub(crate) fn new(len: usize, sharing: Sharing) -> io::Result<Self> {
        let fd = memfd_create(
            "hotwire-hotcache",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        ftruncate(&fd, len as u64)?;
        let file = File::from(fd);
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        let write_sealed = seal(&file, sharing)?;
        Ok(Self {
            map,
            file,
            write_sealed,
        })
    }

    /// Whether no process can write the file any more except through this arena's mapping
    /// (false for [`Sharing::ReadWrite`], and on kernels before 5.1).
    pub(crate) fn write_sealed(&self) -> bool {
        self.write_sealed
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

/// Seals `file` for `sharing`; returns whether `F_SEAL_FUTURE_WRITE` is in place.
fn seal(file: &File, sharing: Sharing) -> io::Result<bool> {
    let size = SealFlags::SHRINK | SealFlags::GROW;
    if sharing == Sharing::ReadOnly {
        match fcntl_add_seals(file, size | SealFlags::FUTURE_WRITE | SealFlags::SEAL) {
            Ok(()) => return Ok(true),
            // Before Linux 5.1: the size seals still hold; the one-sided path checks
            // `write_sealed` and refuses to hand such a file out.
            Err(Errno::INVAL) => tracing::warn!(
                "this kernel lacks F_SEAL_FUTURE_WRITE (Linux 5.1+): the cache cannot be shared \
                 read-only"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    fcntl_add_seals(file, size | SealFlags::SEAL)?;
    Ok(false)
}

// SAFETY: the arena is plain shared memory; all access to its bytes goes through `slice` and
// `slice_mut`, whose callers uphold exclusivity through the allocator and block pins.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only hands out ranges under the same protocol.
unsafe impl Sync for Arena {}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn write_then_read_back_through_the_mapping() {
        let arena = Arena::new(1 << 16, Sharing::ReadOnly).unwrap();
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
        let arena = Arena::new(4096, Sharing::ReadOnly).unwrap();
        // SAFETY: exclusive test access.
        unsafe { arena.slice_mut(10, 3).copy_from_slice(b"abc") };
        let dup = File::from(arena.fd().try_clone_to_owned().unwrap());
        let mut buf = [0u8; 3];
        dup.read_exact_at(&mut buf, 10).unwrap();
        assert_eq!(&buf, b"abc");
    }

    /// What a hostile holder of the file could try, through a descriptor of its own reopened
    /// read-write from `/proc/self/fd`, as a client of the shm path can.
    fn reopened(arena: &Arena) -> File {
        File::options()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", arena.fd().as_raw_fd()))
            .unwrap()
    }

    #[test]
    fn a_read_only_arena_refuses_writers_and_resizes_but_keeps_its_own_mapping() {
        use std::os::unix::fs::FileExt;
        let arena = Arena::new(4096, Sharing::ReadOnly).unwrap();
        assert!(
            arena.write_sealed(),
            "kernel 5.1+ expected on test machines"
        );
        let file = reopened(&arena);
        // SAFETY: a test mapping of a file nothing truncates (it cannot be: sealed).
        let writable = unsafe { MmapOptions::new().len(4096).map_mut(&file) };
        assert_eq!(writable.unwrap_err().raw_os_error(), Some(libc_eperm()));
        assert_eq!(
            file.write_at(b"x", 0).unwrap_err().raw_os_error(),
            Some(libc_eperm())
        );
        assert_eq!(ftruncate(&file, 0).unwrap_err(), Errno::PERM);
        assert_eq!(ftruncate(&file, 1 << 20).unwrap_err(), Errno::PERM);
        assert_eq!(
            fcntl_add_seals(&file, SealFlags::WRITE).unwrap_err(),
            Errno::PERM,
            "no further seals"
        );
        // A read-only mapping cannot be upgraded either.
        // SAFETY: as above.
        let read = unsafe { MmapOptions::new().len(4096).map(&file) }.unwrap();
        // SAFETY: the range is the mapping just made; only its protection is asked to change.
        let upgrade = unsafe {
            rustix::mm::mprotect(
                read.as_ptr() as *mut _,
                4096,
                rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
            )
        };
        assert_eq!(upgrade.unwrap_err(), Errno::ACCESS);
        // Our own mapping, made before the seal, still writes, and the reader sees it.
        // SAFETY: exclusive test access.
        unsafe { arena.slice_mut(0, 2).copy_from_slice(b"ok") };
        assert_eq!(&read[..2], b"ok");
    }

    #[test]
    fn a_read_write_arena_still_refuses_resizes() {
        let arena = Arena::new(4096, Sharing::ReadWrite).unwrap();
        assert!(!arena.write_sealed());
        let file = reopened(&arena);
        // SAFETY: a test mapping of a file nothing truncates (it cannot be: sealed).
        let mut map = unsafe { MmapOptions::new().len(4096).map_mut(&file) }.unwrap();
        map[8] = 1;
        // SAFETY: exclusive test access; the byte was written through the other mapping.
        assert_eq!(unsafe { arena.slice(8, 1) }, &[1]);
        assert_eq!(ftruncate(&file, 0).unwrap_err(), Errno::PERM);
        assert_eq!(
            fcntl_add_seals(&file, SealFlags::FUTURE_WRITE).unwrap_err(),
            Errno::PERM,
            "a holder cannot lock other clients out"
        );
    }

    fn libc_eperm() -> i32 {
        Errno::PERM.raw_os_error()
    }
}
