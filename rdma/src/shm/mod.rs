//! The same-host provider: regions are shared-memory mappings handed over as file descriptors.
//!
//! The broker exports each region's memory file once per session ([`export`]): the HotCache
//! arena and the generation table as *read-only* descriptors, the offset table and the
//! session's staging ring read-write. A descriptor alone protects nothing (a client can reopen
//! `/proc/self/fd/N` read-write, or `ftruncate` a shared file and so turn the broker's own
//! accesses into `SIGBUS`): the kernel's file seals do. [`export`] hands out only memory files
//! sealed against resizing and further seals, and read-only ones only if also sealed with
//! `F_SEAL_FUTURE_WRITE` (Linux 5.1+), which refuses every writable mapping and `write(2)`
//! made after it, through any descriptor, while the creator's earlier mapping stays writable. The client maps them ([`ShmEndpoint::attach`]) and
//! performs one-sided operations on the mappings: READ is a copy, WRITE a copy the other way,
//! FETCH_AND_ADD and COMPARE_AND_SWAP are atomic instructions on the mapped word. The broker's
//! CPU takes no part, exactly as with a NIC.
//!
//! Every operation is first checked by the session's [`Grants`], as a NIC checks a work
//! request. On the offset table the kernel cannot enforce per-slot grants (one mapping covers
//! every slot), so there the check is the library's: a client that bypasses it can reach other
//! groups' slots. The verbs provider enforces the same grants in the NIC (see docs/rdma.md).

mod fdpass;
mod ring;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{fcntl_get_seals, SealFlags};

pub use fdpass::{recv_with_fds, send_with_fds, MAX_FDS};
pub use ring::{SharedRing, RING_ALIGN, RING_HEAD, RING_HEADER, RING_TAIL};

use crate::{Access, Grant, Grants, OneSided, RdmaError, RegionId, RemoteRegion};

/// A descriptor for a client, for `region` whose memory is the file behind `fd`: read-only
/// unless `access` includes WRITE or ATOMIC.
///
/// The file must be a memfd sealed with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, and, for a
/// read-only export, `F_SEAL_FUTURE_WRITE` too; otherwise this fails with
/// [`RdmaError::Refused`] (see the module docs for why).
pub fn export(fd: BorrowedFd<'_>, access: Access) -> Result<OwnedFd, RdmaError> {
    let writable = access.intersects(Access::WRITE | Access::ATOMIC);
    check_seals(fd, writable)?;
    if writable {
        return fd
            .try_clone_to_owned()
            .map_err(RdmaError::io("duplicate a region descriptor"));
    }
    // A new open file description, read-only: mmap(PROT_WRITE) on it fails with EACCES.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    File::open(&path)
        .map(OwnedFd::from)
        .map_err(RdmaError::io(format!("reopen {path} read-only")))
}

/// The seals a memory file must carry before it is handed to another process.
pub fn required_seals(writable: bool) -> SealFlags {
    let size = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    if writable {
        size
    } else {
        size | SealFlags::FUTURE_WRITE
    }
}

fn check_seals(fd: BorrowedFd<'_>, writable: bool) -> Result<(), RdmaError> {
    let need = required_seals(writable);
    let seals = fcntl_get_seals(fd).map_err(|e| {
        RdmaError::Refused(format!(
            "a region's memory file has no seals ({e}): only sealed memfds are shared"
        ))
    })?;
    if !seals.contains(need) {
        return Err(RdmaError::Refused(format!(
            "a region's memory file is sealed {seals:?}, not {need:?}: not shared (a read-only \
             region needs F_SEAL_FUTURE_WRITE, Linux 5.1+)"
        )));
    }
    Ok(())
}

struct Mapping {
    map: MmapRaw,
}

/// The client side of an shm session: mapped regions and the grants on them.
#[derive(Default)]
pub struct ShmEndpoint {
    grants: Grants,
    maps: RwLock<HashMap<RegionId, Mapping>>,
}

impl ShmEndpoint {
    /// An endpoint with nothing mapped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `region` from `fd` (as received from the broker) and grants its rights on all of
    /// it; a region with no rights (`Access::empty()`) is mapped for later, finer grants.
    pub fn attach(&self, region: RemoteRegion, fd: OwnedFd) -> Result<(), RdmaError> {
        let file = File::from(fd);
        let len = usize::try_from(region.len)
            .map_err(|_| RdmaError::Protocol(format!("region of {} bytes", region.len)))?;
        let actual = file
            .metadata()
            .map_err(RdmaError::io("stat a region descriptor"))?
            .len();
        if actual < region.len {
            return Err(RdmaError::Protocol(format!(
                "region {} claims {} bytes, its file has {actual}",
                region.id.0, region.len
            )));
        }
        let writable = is_writable(&file);
        let options = {
            let mut o = MmapOptions::new();
            o.len(len);
            o
        };
        let map = if writable {
            options.map_raw(&file)
        } else {
            options.map_raw_read_only(&file)
        }
        .map_err(RdmaError::io(format!("map region {}", region.id.0)))?;
        self.maps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(region.id, Mapping { map });
        if region.access.is_empty() {
            self.grants.add_bare_region(region.id, region.len);
        } else {
            self.grants.add_region(region);
        }
        Ok(())
    }

    /// Adds a finer grant (e.g. ATOMIC on one offset slot).
    pub fn grant(&self, grant: Grant) {
        self.grants.grant(grant);
    }

    /// Revokes a region (later operations fail with [`RdmaError::Revoked`]).
    pub fn revoke(&self, id: RegionId) {
        self.grants.revoke(id);
    }

    /// Checks the operation, then runs `op` on the address of `offset` in the mapping.
    fn with_ptr<T>(
        &self,
        region: RegionId,
        offset: u64,
        len: u64,
        need: Access,
        op: impl FnOnce(*mut u8) -> T,
    ) -> Result<T, RdmaError> {
        self.grants.check(region, offset, len, need)?;
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let mapping = maps.get(&region).ok_or(RdmaError::RemoteAccess {
            region: region.0,
            reason: "region not mapped".into(),
        })?;
        // The grant check bounded offset + len by the region length, which the mapping covers.
        let offset = offset as usize;
        // SAFETY: `offset < mapping.len()` (checked above), so the pointer stays inside the
        // mapping, which lives while `maps` is borrowed.
        let ptr = unsafe { mapping.map.as_mut_ptr().add(offset) };
        Ok(op(ptr))
    }
}

impl OneSided for ShmEndpoint {
    fn read(&self, region: RegionId, offset: u64, local: &mut [u8]) -> Result<(), RdmaError> {
        if local.len() == 8 && offset % 8 == 0 {
            // An aligned word (an offset slot, a ring counter) that others change with
            // atomics: one atomic load, never a torn copy.
            let value = self.with_ptr(region, offset, 8, Access::READ, |word| {
                // Relaxed, then a fence: the mapping may be read-only, where only relaxed
                // atomic loads are allowed.
                // SAFETY: 8 bytes, 8-byte aligned (the mapping is page-aligned) inside the
                // mapping (checked); every writer changes such words with atomics.
                let value = unsafe { AtomicU64::from_ptr(word.cast()) }.load(Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::Acquire);
                value
            })?;
            local.copy_from_slice(&value.to_ne_bytes());
            return Ok(());
        }
        self.with_ptr(region, offset, local.len() as u64, Access::READ, |src| {
            // SAFETY: `src..src + local.len()` lies in the mapping (checked). The broker may be
            // reusing those bytes concurrently (that is what a one-sided read races with); the
            // copy may then be torn, which callers detect by the block generation and the
            // batch CRC (see `client::consumer`), exactly as with an RDMA READ.
            unsafe { std::ptr::copy_nonoverlapping(src, local.as_mut_ptr(), local.len()) }
        })
    }

    fn write(&self, region: RegionId, offset: u64, data: &[u8]) -> Result<(), RdmaError> {
        self.with_ptr(region, offset, data.len() as u64, Access::WRITE, |dst| {
            // SAFETY: in the mapping (checked), which is writable: WRITE is granted only on
            // regions exported read-write. The broker reads these bytes only after the
            // notification that follows the write.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
        })
    }

    fn fetch_add(&self, region: RegionId, offset: u64, add: u64) -> Result<u64, RdmaError> {
        self.with_ptr(region, offset, 8, Access::ATOMIC, |word| {
            // SAFETY: 8 bytes, 8-byte aligned (checked) inside a writable shared mapping; every
            // party changes the word only with atomic instructions.
            unsafe { AtomicU64::from_ptr(word.cast()) }.fetch_add(add, Ordering::SeqCst)
        })
    }

    fn compare_swap(
        &self,
        region: RegionId,
        offset: u64,
        expected: u64,
        new: u64,
    ) -> Result<u64, RdmaError> {
        self.with_ptr(region, offset, 8, Access::ATOMIC, |word| {
            // SAFETY: as in `fetch_add`.
            let word = unsafe { AtomicU64::from_ptr(word.cast()) };
            match word.compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(old) | Err(old) => old,
            }
        })
    }
}

/// Whether the descriptor was opened for writing.
fn is_writable(file: &File) -> bool {
    rustix::fs::fcntl_getfl(file.as_fd())
        .map(|flags| {
            flags.contains(rustix::fs::OFlags::RDWR) || flags.contains(rustix::fs::OFlags::WRONLY)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
