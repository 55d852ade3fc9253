//! Memory registration: a mapping the NIC may reach, with its keys.

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use rdma_sys::{ibv_access_flags, ibv_dereg_mr, ibv_mr, ibv_reg_mr};

use super::device::{os_error, Device};
use crate::{Access, RdmaError, RemoteKey};

/// A registered mapping. The mapping is the region's own (a second view of shared memory the
/// caller also maps, for the HotCache arena and the offset table), so registration never
/// depends on how the owner mapped it; both views share the same pages.
pub struct MemoryRegion {
    mr: *mut ibv_mr,
    map: MmapRaw,
    _device: Arc<Device>,
}

// SAFETY: an ibv_mr is immutable after registration and may be used from any thread; the
// mapping is only written by the NIC or through atomics and copies the owner coordinates.
unsafe impl Send for MemoryRegion {}
// SAFETY: as above.
unsafe impl Sync for MemoryRegion {}

/// The verbs access flags for what peers may do with the region's own key (`remote`), and the
/// rights memory windows bound on it may grant (`windows`, empty: no windows; windows with
/// WRITE or ATOMIC need LOCAL_WRITE, READ-only ones do not, so a read-only memory file can be
/// registered for them).
pub(super) fn access_flags(remote: Access, windows: Access) -> ibv_access_flags {
    let mut flags = ibv_access_flags(0);
    if remote.contains(Access::READ) {
        flags |= ibv_access_flags::IBV_ACCESS_REMOTE_READ;
    }
    if remote.contains(Access::WRITE) {
        flags |=
            ibv_access_flags::IBV_ACCESS_REMOTE_WRITE | ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
    }
    if remote.contains(Access::ATOMIC) {
        flags |=
            ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC | ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
    }
    if !windows.is_empty() {
        flags |= ibv_access_flags::IBV_ACCESS_MW_BIND;
    }
    if windows.intersects(Access::WRITE | Access::ATOMIC) {
        flags |= ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
    }
    flags
}

impl Device {
    /// Maps `len` bytes of the memory file `fd` and registers them with `remote` rights for
    /// peers holding the region's key, and `windows`: the rights memory windows bound on it
    /// may later grant (empty: none).
    pub fn register_fd(
        self: &Arc<Self>,
        fd: BorrowedFd<'_>,
        len: usize,
        remote: Access,
        windows: Access,
    ) -> Result<MemoryRegion, RdmaError> {
        let file = File::from(
            fd.try_clone_to_owned()
                .map_err(RdmaError::io("duplicate a region descriptor"))?,
        );
        let flags = access_flags(remote, windows);
        let mut options = MmapOptions::new();
        options.len(len);
        let map = if flags.0 & ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0 == 0 {
            options.map_raw_read_only(&file)
        } else {
            options.map_raw(&file)
        }
        .map_err(RdmaError::io("map a region for registration"))?;
        self.register(map, flags)
    }

    /// A private buffer of `len` bytes registered for local writes: what an endpoint's READs
    /// land in and its WRITEs are sent from.
    pub(super) fn register_buffer(self: &Arc<Self>, len: usize) -> Result<MemoryRegion, RdmaError> {
        let map = MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(RdmaError::io("map a bounce buffer"))?;
        self.register(MmapRaw::from(map), ibv_access_flags::IBV_ACCESS_LOCAL_WRITE)
    }

    fn register(
        self: &Arc<Self>,
        map: MmapRaw,
        flags: ibv_access_flags,
    ) -> Result<MemoryRegion, RdmaError> {
        // SAFETY: pd is valid for the device's life; the mapping stays alive (owned by the
        // region) until after ibv_dereg_mr in Drop.
        let mr = unsafe { ibv_reg_mr(self.pd, map.as_mut_ptr().cast(), map.len(), flags.0 as i32) };
        if mr.is_null() {
            return Err(os_error("ibv_reg_mr"));
        }
        Ok(MemoryRegion {
            mr,
            map,
            _device: self.clone(),
        })
    }
}

impl MemoryRegion {
    /// Where peers find it: base address and rkey.
    pub fn key(&self) -> RemoteKey {
        RemoteKey {
            addr: self.addr(),
            // SAFETY: mr is a live registration (until Drop).
            rkey: unsafe { (*self.mr).rkey },
        }
    }

    /// Base address of the mapping.
    pub fn addr(&self) -> u64 {
        self.map.as_mut_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The local key (for scatter-gather entries).
    pub(super) fn lkey(&self) -> u32 {
        // SAFETY: mr is a live registration (until Drop).
        unsafe { (*self.mr).lkey }
    }

    /// The registration, for binding memory windows on it.
    pub(super) fn raw(&self) -> *mut ibv_mr {
        self.mr
    }

    /// The mapping's first byte.
    pub(super) fn ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

impl Drop for MemoryRegion {
    fn drop(&mut self) {
        // SAFETY: registered once in register(); windows bound on it and queue pairs using it
        // are dropped before it (they are owned by the endpoint or session that owns it).
        unsafe { ibv_dereg_mr(self.mr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_map_to_verbs_flags_with_local_write_where_the_nic_writes() {
        let read = access_flags(Access::READ, Access::empty());
        assert_eq!(read, ibv_access_flags::IBV_ACCESS_REMOTE_READ);
        let ring = access_flags(Access::WRITE | Access::ATOMIC, Access::empty());
        for flag in [
            ibv_access_flags::IBV_ACCESS_REMOTE_WRITE,
            ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC,
            ibv_access_flags::IBV_ACCESS_LOCAL_WRITE,
        ] {
            assert_eq!(ring.0 & flag.0, flag.0);
        }
        assert_eq!(ring.0 & ibv_access_flags::IBV_ACCESS_REMOTE_READ.0, 0);
        // The offset table: no right of its own, only windows (atomic ones need local write).
        let table = access_flags(Access::empty(), Access::READ | Access::ATOMIC);
        assert_eq!(
            table,
            ibv_access_flags::IBV_ACCESS_MW_BIND | ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
        );
        // The arena: no right of its own, READ windows per session; mapped read-only.
        let arena = access_flags(Access::empty(), Access::READ);
        assert_eq!(arena, ibv_access_flags::IBV_ACCESS_MW_BIND);
    }
}
