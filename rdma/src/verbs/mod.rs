//! The verbs provider (RoCE / InfiniBand NICs) on `rdma-sys`: feature `verbs`.
//!
//! - [`probe`] lists devices, and reports a machine without RDMA (no device, or a kernel
//!   without RDMA support, where `ibv_get_device_list` returns NULL with `ENOSYS`) as
//!   [`RdmaError::NoDevice`] rather than failing obscurely.
//! - [`Device`] opens a device, its port (LID, GID, MTU) and one protection domain;
//!   [`Device::register_fd`] registers a memory file's mapping ([`MemoryRegion`]);
//!   [`Device::queue_pair`] creates an RC [`QueuePair`], whose [`QpAddress`] the peers swap on
//!   the TCP control channel before [`QueuePair::connect`] (RTR, RTS).
//! - [`VerbsEndpoint`] runs the one-sided operations on a connected RC queue pair: each is
//!   checked by the same [`Grants`] as the shm provider, then posted as one signaled work
//!   request (IBV_WR_RDMA_READ, IBV_WR_RDMA_WRITE, IBV_WR_ATOMIC_FETCH_AND_ADD,
//!   IBV_WR_ATOMIC_CMP_AND_SWP) through a registered bounce buffer, and its completion polled;
//!   completion errors map to the same [`RdmaError`]s.
//! - [`MemoryWindow`]s bound on single offset slots ([`QueuePair::bind_window`]) make the NIC
//!   enforce per-slot READ and ATOMIC grants.
//! - [`Loopback`]: the host's own path through the NIC to words peers change with atomics
//!   (atomics on most NICs are atomic only among the NIC's operations).
//!
//! [`QpAddress`]: crate::control::QpAddress

mod attrs;
mod device;
mod gid;
mod loopback;
mod memory;
mod qp;
mod window;
mod wr;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use rdma_sys::{ibv_cq, ibv_qp};

pub use device::{probe, Device, VerbsConfig};
pub use loopback::Loopback;
pub use memory::MemoryRegion;
pub use qp::QueuePair;
pub use window::MemoryWindow;

use crate::control::QpAddress;
use crate::{Access, Grant, Grants, OneSided, RdmaError, RegionId, RemoteKey, RemoteRegion};

/// A registered local buffer that operations copy through.
struct Bounce {
    ptr: *mut u8,
    len: usize,
    lkey: u32,
    /// Why the queue pair can no longer be used: a work request failed or never completed
    /// (a NIC moves a reliable-connected queue pair to the error state on a failed request,
    /// and a request that timed out may still write into the buffer).
    broken: Option<String>,
}

/// What a connected endpoint owns (dropped after the endpoint stops using it): the queue
/// pair first, then the buffer registered for its work requests.
struct Owned {
    _qp: QueuePair,
    _bounce: MemoryRegion,
}

/// One-sided operations over one connected RC queue pair.
pub struct VerbsEndpoint {
    qp: *mut ibv_qp,
    cq: *mut ibv_cq,
    /// Serialises use of the queue pair and the bounce buffer.
    bounce: Mutex<Bounce>,
    grants: Grants,
    /// Keys of whole regions (none for a region reached only through windows).
    remotes: RwLock<HashMap<RegionId, RemoteKey>>,
    /// Windows on parts of regions, with the grant each one carries.
    windows: RwLock<Vec<(Grant, RemoteKey)>>,
    _owned: Option<Owned>,
}

// SAFETY: the raw queue pair, completion queue and bounce buffer are only used while holding
// the `bounce` mutex, one work request at a time; libibverbs allows a QP to be used from any
// thread with such external serialisation.
unsafe impl Send for VerbsEndpoint {}
// SAFETY: as above: every access to the raw pointers goes through the mutex.
unsafe impl Sync for VerbsEndpoint {}

impl VerbsEndpoint {
    /// An endpoint on a queue pair the caller created and connected.
    ///
    /// # Safety
    /// `qp` must be a connected RC queue pair whose send completions go to `cq`, both valid
    /// for the endpoint's whole life; `[bounce, bounce + bounce_len)` must be memory that
    /// nothing else uses, registered with local write access under `lkey`.
    pub unsafe fn from_raw(
        qp: *mut ibv_qp,
        cq: *mut ibv_cq,
        bounce: *mut u8,
        bounce_len: usize,
        lkey: u32,
    ) -> Self {
        VerbsEndpoint {
            qp,
            cq,
            bounce: Mutex::new(Bounce {
                ptr: bounce,
                len: bounce_len,
                lkey,
                broken: None,
            }),
            grants: Grants::new(),
            remotes: RwLock::new(HashMap::new()),
            windows: RwLock::new(Vec::new()),
            _owned: None,
        }
    }

    /// Connects `qp` to the peer at `remote` (RTR, RTS) and registers a bounce buffer of
    /// `bounce_bytes`: the client side of a verbs session.
    pub fn connect(
        mut qp: QueuePair,
        remote: &QpAddress,
        bounce_bytes: usize,
    ) -> Result<Self, RdmaError> {
        qp.connect(remote)?;
        let bounce = qp.device.register_buffer(bounce_bytes)?;
        // SAFETY: the queue pair is connected and its CQ receives its completions; both and
        // the bounce registration are owned by the endpoint (`_owned`) and outlive every use.
        let mut endpoint =
            unsafe { Self::from_raw(qp.qp, qp.cq, bounce.ptr(), bounce.len(), bounce.lkey()) };
        endpoint._owned = Some(Owned {
            _qp: qp,
            _bounce: bounce,
        });
        Ok(endpoint)
    }

    /// Makes a peer's region addressable, with its rights on all of it (`Access::empty()`:
    /// none yet, finer grants follow). `key: None`: reached only through windows.
    pub fn add_region(&self, region: RemoteRegion, key: Option<RemoteKey>) {
        if region.access.is_empty() {
            self.grants.add_bare_region(region.id, region.len);
        } else {
            self.grants.add_region(region);
        }
        if let Some(key) = key {
            self.remotes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(region.id, key);
        }
    }

    /// Adds a finer grant on a region whose key covers it.
    pub fn grant(&self, grant: Grant) {
        self.grants.grant(grant);
    }

    /// Adds a finer grant that comes with its own memory window (`key.addr` is the address of
    /// the grant's first byte).
    pub fn grant_window(&self, grant: Grant, key: RemoteKey) {
        self.grants.grant(grant);
        self.windows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((grant, key));
    }

    /// The address and rkey for `len` bytes at `offset` of `region`: a window covering them,
    /// else the region's own key.
    fn remote(&self, region: RegionId, offset: u64, len: u64) -> Result<(u64, u32), RdmaError> {
        let windows = self.windows.read().unwrap_or_else(|e| e.into_inner());
        let window = windows.iter().find(|(grant, _)| {
            grant.region == region
                && offset >= grant.start
                && offset + len <= grant.start + grant.len
        });
        if let Some((grant, key)) = window {
            return Ok((key.addr + (offset - grant.start), key.rkey));
        }
        self.remotes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&region)
            .map(|key| (key.addr + offset, key.rkey))
            .ok_or(RdmaError::RemoteAccess {
                region: region.0,
                reason: "no key for this range".into(),
            })
    }

    /// Checks, posts `op` on `target` through the bounce buffer (filled by `before`), waits
    /// for it, and hands the buffer to `after`.
    fn run(
        &self,
        target: Target,
        op: wr::Op,
        before: impl FnOnce(&mut [u8]),
        after: impl FnOnce(&[u8]),
    ) -> Result<(), RdmaError> {
        let Target {
            region,
            offset,
            len,
            need,
        } = target;
        self.grants.check(region, offset, len as u64, need)?;
        let (remote_addr, rkey) = self.remote(region, offset, len as u64)?;
        let mut bounce = self.bounce.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &bounce.broken {
            return Err(RdmaError::Protocol(format!(
                "the queue pair is unusable after an earlier failure ({why}): open a new session"
            )));
        }
        if len > bounce.len {
            return Err(RdmaError::LocalLength(format!(
                "{len} bytes exceed the {}-byte registered buffer",
                bounce.len
            )));
        }
        // SAFETY: the bounce buffer is ours alone while the mutex is held (from_raw), and
        // `len <= bounce.len`.
        let local = unsafe { std::slice::from_raw_parts_mut(bounce.ptr, len) };
        before(local);
        let request = wr::Request {
            op,
            local: bounce.ptr as u64,
            len: len as u32,
            lkey: bounce.lkey,
            remote_addr,
            rkey,
        };
        // SAFETY: qp and cq are valid and connected (from_raw); the request's local range is
        // registered and stays untouched until its completion is polled.
        if let Err(error) = unsafe { wr::post_and_wait(self.qp, self.cq, &request) } {
            bounce.broken = Some(error.to_string());
            return Err(error);
        }
        after(local);
        Ok(())
    }

    /// The largest READ or WRITE one work request carries (the bounce buffer).
    fn chunk(&self) -> usize {
        self.bounce
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len
            .max(1)
    }
}

/// What an operation addresses and needs.
#[derive(Clone, Copy)]
struct Target {
    region: RegionId,
    offset: u64,
    len: usize,
    need: Access,
}

fn target(region: RegionId, offset: u64, len: usize, need: Access) -> Target {
    Target {
        region,
        offset,
        len,
        need,
    }
}

impl OneSided for VerbsEndpoint {
    /// Ranges larger than the bounce buffer go as several READs (a reader checks what it read
    /// anyway: generation and CRC-32C).
    fn read(&self, region: RegionId, offset: u64, local: &mut [u8]) -> Result<(), RdmaError> {
        if local.is_empty() {
            let at = target(region, offset, 0, Access::READ);
            return self.run(at, wr::Op::Read, |_| {}, |_| {});
        }
        let chunk = self.chunk();
        for (i, part) in local.chunks_mut(chunk).enumerate() {
            let at = target(
                region,
                offset + (i * chunk) as u64,
                part.len(),
                Access::READ,
            );
            self.run(at, wr::Op::Read, |_| {}, |b| part.copy_from_slice(b))?;
        }
        Ok(())
    }

    /// Ranges larger than the bounce buffer go as several WRITEs, in order.
    fn write(&self, region: RegionId, offset: u64, data: &[u8]) -> Result<(), RdmaError> {
        if data.is_empty() {
            let at = target(region, offset, 0, Access::WRITE);
            return self.run(at, wr::Op::Write, |_| {}, |_| {});
        }
        let chunk = self.chunk();
        for (i, part) in data.chunks(chunk).enumerate() {
            let at = target(
                region,
                offset + (i * chunk) as u64,
                part.len(),
                Access::WRITE,
            );
            self.run(at, wr::Op::Write, |b| b.copy_from_slice(part), |_| {})?;
        }
        Ok(())
    }

    fn fetch_add(&self, region: RegionId, offset: u64, add: u64) -> Result<u64, RdmaError> {
        let mut old = 0;
        let at = target(region, offset, 8, Access::ATOMIC);
        self.run(at, wr::Op::FetchAdd(add), |_| {}, |b| old = word(b))?;
        Ok(old)
    }

    fn compare_swap(
        &self,
        region: RegionId,
        offset: u64,
        expected: u64,
        new: u64,
    ) -> Result<u64, RdmaError> {
        let mut old = 0;
        let at = target(region, offset, 8, Access::ATOMIC);
        let op = wr::Op::CompareSwap { expected, new };
        self.run(at, op, |_| {}, |b| old = word(b))?;
        Ok(old)
    }
}

/// The 8-byte word an atomic left in the bounce buffer.
fn word(bytes: &[u8]) -> u64 {
    u64::from_ne_bytes(bytes.try_into().unwrap_or_default())
}
