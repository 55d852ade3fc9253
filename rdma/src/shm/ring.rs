//! The broker's side of a produce staging ring: a shared memory file the client WRITEs into.
//!
//! Layout: a 64-byte header (`head` at 0: bytes ever reserved, moved by the client's
//! FETCH_AND_ADD; `tail` at 8: bytes ever released, moved by the broker once it copied a
//! batch out), then `capacity` data bytes used as a ring: a reservation at `head` occupies
//! `head % capacity` onwards, wrapping to 0.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};

use crate::RdmaError;

/// Bytes before the data area.
pub const RING_HEADER: u64 = 64;
/// Offset of the `head` word (reserved bytes).
pub const RING_HEAD: u64 = 0;
/// Offset of the `tail` word (released bytes).
pub const RING_TAIL: u64 = 8;

/// Reservations are rounded up to this, keeping batches 8-byte aligned.
pub const RING_ALIGN: u64 = 8;

/// A staging ring owned by the broker.
pub struct SharedRing {
    fd: OwnedFd,
    map: MmapRaw,
    capacity: u64,
}

impl SharedRing {
    /// A zeroed ring with `capacity` data bytes (a multiple of [`RING_ALIGN`]).
    ///
    /// Its memory file is sealed against resizing (a client that truncated it would turn the
    /// broker's copies out of it into `SIGBUS`) and against further seals.
    pub fn new(capacity: u64) -> Result<Self, RdmaError> {
        let capacity = capacity.max(RING_ALIGN) / RING_ALIGN * RING_ALIGN;
        let fd = memfd_create(
            "hotwire-ring",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| RdmaError::io("create a ring")(e.into()))?;
        ftruncate(&fd, RING_HEADER + capacity)
            .map_err(|e| RdmaError::io("size a ring")(e.into()))?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| RdmaError::io("seal a ring")(e.into()))?;
        let len = usize::try_from(RING_HEADER + capacity)
            .map_err(|_| RdmaError::Protocol("ring too large".into()))?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&fd)
            .map_err(RdmaError::io("map a ring"))?;
        Ok(Self { fd, map, capacity })
    }

    /// Bytes of the data area.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The memory file, to export to the client.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Total length of the region (header and data).
    pub fn region_len(&self) -> u64 {
        RING_HEADER + self.capacity
    }

    /// Copies `len` bytes at data position `position` (wrapping) out of the ring.
    pub fn copy_out(&self, position: u64, len: u32) -> Result<Vec<u8>, RdmaError> {
        let len = u64::from(len);
        if position >= self.capacity || len == 0 || len > self.capacity {
            return Err(RdmaError::InvalidRequest(format!(
                "ring range {position}+{len} outside a ring of {}",
                self.capacity
            )));
        }
        let mut out = vec![0u8; len as usize];
        let first = len.min(self.capacity - position);
        // SAFETY: both ranges lie inside the data area (checked above); the client wrote them
        // before its notification, and does not reuse them before `release` (ring protocol).
        unsafe {
            let data = self.map.as_ptr().add(RING_HEADER as usize);
            std::ptr::copy_nonoverlapping(
                data.add(position as usize),
                out.as_mut_ptr(),
                first as usize,
            );
            std::ptr::copy_nonoverlapping(
                data,
                out.as_mut_ptr().add(first as usize),
                (len - first) as usize,
            );
        }
        Ok(out)
    }

    /// Releases `len` bytes (rounded up to [`RING_ALIGN`]) for reuse.
    pub fn release(&self, len: u32) {
        let rounded = u64::from(len).div_ceil(RING_ALIGN) * RING_ALIGN;
        self.word(RING_TAIL).fetch_add(rounded, Ordering::SeqCst);
    }

    /// Bytes reserved so far (the head word).
    pub fn head(&self) -> u64 {
        self.word(RING_HEAD).load(Ordering::SeqCst)
    }

    fn word(&self, offset: u64) -> &AtomicU64 {
        // SAFETY: `offset` is 0 or 8: inside the page-aligned header, so 8-byte aligned; the
        // client changes these words only with atomics (FETCH_AND_ADD) too.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset as usize).cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_wrap_around_and_release_moves_the_tail() {
        let ring = SharedRing::new(64).unwrap();
        // SAFETY: the test is the only party; it writes inside the data area.
        unsafe {
            let data = ring.map.as_mut_ptr().add(RING_HEADER as usize);
            for i in 0..64 {
                *data.add(i) = i as u8;
            }
        }
        assert_eq!(
            ring.copy_out(60, 8).unwrap(),
            vec![60, 61, 62, 63, 0, 1, 2, 3]
        );
        assert!(ring.copy_out(64, 1).is_err());
        assert!(ring.copy_out(0, 65).is_err());
        ring.release(5);
        assert_eq!(ring.word(RING_TAIL).load(Ordering::SeqCst), 8);
    }

    #[test]
    fn a_client_cannot_resize_the_ring_or_add_seals() {
        let ring = SharedRing::new(4096).unwrap();
        // What a client gets (`export` of a writable region is a duplicate).
        let client = crate::shm::export(ring.fd(), crate::Access::WRITE).unwrap();
        assert_eq!(ftruncate(&client, 0).unwrap_err(), rustix::io::Errno::PERM);
        assert_eq!(
            ftruncate(&client, 1 << 30).unwrap_err(),
            rustix::io::Errno::PERM
        );
        assert_eq!(
            fcntl_add_seals(&client, SealFlags::FUTURE_WRITE).unwrap_err(),
            rustix::io::Errno::PERM
        );
        // The broker's copies still work.
        assert_eq!(ring.copy_out(0, 8).unwrap(), vec![0; 8]);
    }
}
