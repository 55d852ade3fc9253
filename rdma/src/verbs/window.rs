//! Memory windows: a remote key for a few bytes of a registered region, bound through one
//! queue pair (type 2), so that the NIC itself confines a peer to the offset slots it joined.
//!
//! The offset table is registered with no remote right of its own (only `MW_BIND`), and its
//! rkey is never sent. A `Join` binds one window on each joined 8-byte slot through the
//! session's queue pair, with REMOTE_READ and REMOTE_ATOMIC only: a type-2 window is valid only for the peer
//! of the queue pair it was bound through, and is revoked when the session drops it.

use std::mem::MaybeUninit;
use std::sync::Arc;

use rdma_sys::{
    ibv_alloc_mw, ibv_cq, ibv_dealloc_mw, ibv_inc_rkey, ibv_mr, ibv_mw, ibv_mw_bind_info,
    ibv_mw_type, ibv_pd, ibv_qp, ibv_send_flags, ibv_send_wr, ibv_wc_status, ibv_wr_opcode,
};

use super::device::os_error;
use super::memory::{access_flags, MemoryRegion};
use super::qp::QueuePair;
use super::wr::submit;
use crate::{Access, RdmaError, RemoteKey};

/// A bound memory window; dropping it revokes its key. It keeps the region it was bound on
/// (and so the device) alive, so it can never outlive them.
pub struct MemoryWindow {
    mw: *mut ibv_mw,
    key: RemoteKey,
    /// `None` only for windows bound by the tests on fake memory.
    _region: Option<Arc<MemoryRegion>>,
}

// SAFETY: the window is only deallocated in Drop; its key is plain data.
unsafe impl Send for MemoryWindow {}
// SAFETY: as above.
unsafe impl Sync for MemoryWindow {}

impl MemoryWindow {
    /// The key a peer uses: the address of the window's first byte and its rkey.
    pub fn key(&self) -> RemoteKey {
        self.key
    }
}

impl Drop for MemoryWindow {
    fn drop(&mut self) {
        // SAFETY: allocated once in bind(); deallocating invalidates its rkey.
        unsafe { ibv_dealloc_mw(self.mw) };
    }
}

impl QueuePair {
    /// Binds a window on `len` bytes at `offset` of `region`, granting `access` to this queue
    /// pair's peer only.
    pub fn bind_window(
        &mut self,
        region: &Arc<MemoryRegion>,
        offset: u64,
        len: u64,
        access: Access,
    ) -> Result<MemoryWindow, RdmaError> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > region.len() as u64)
        {
            return Err(RdmaError::InvalidRequest(format!(
                "a window of {len} bytes at {offset} is outside a region of {}",
                region.len()
            )));
        }
        let target = Window {
            mr: region.raw(),
            addr: region.addr() + offset,
            len,
            access,
        };
        // SAFETY: the queue pair is connected and ours alone (`&mut self`); pd and the
        // registration are alive, and the window keeps the registration (and with it the
        // device) alive for as long as it exists.
        let mut window = unsafe { bind(self.qp, self.cq, self.device.pd, &target)? };
        window._region = Some(region.clone());
        Ok(window)
    }
}

/// What a window covers.
pub(super) struct Window {
    pub(super) mr: *mut ibv_mr,
    pub(super) addr: u64,
    pub(super) len: u64,
    pub(super) access: Access,
}

/// Allocates a type-2 window in `pd` and binds it on `target` with an IBV_WR_BIND_MW work
/// request through `qp`.
///
/// # Safety
/// `qp` must be a connected RC queue pair whose send completions go to `cq`, in protection
/// domain `pd`, with nothing else posting on it meanwhile; `target.mr` a live registration in
/// `pd` that allows MW_BIND and covers the range.
pub(super) unsafe fn bind(
    qp: *mut ibv_qp,
    cq: *mut ibv_cq,
    pd: *mut ibv_pd,
    target: &Window,
) -> Result<MemoryWindow, RdmaError> {
    // SAFETY: pd is valid (caller).
    let mw = match unsafe { ibv_alloc_mw(pd, ibv_mw_type::IBV_MW_TYPE_2) } {
        Some(mw) if !mw.is_null() => mw,
        _ => return Err(os_error("ibv_alloc_mw")),
    };
    // Owned from here: a failed bind deallocates it.
    let window = MemoryWindow {
        mw,
        key: RemoteKey {
            addr: target.addr,
            // SAFETY: mw is live; a fresh rkey gets a new tag so stale keys never match.
            rkey: unsafe { ibv_inc_rkey((*mw).rkey) },
        },
        _region: None,
    };
    // SAFETY: plain C data (integers, pointers, unions of those): zeroes are valid.
    let mut wr: ibv_send_wr = unsafe { MaybeUninit::zeroed().assume_init() };
    wr.wr_id = super::wr::next_wr_id();
    wr.opcode = ibv_wr_opcode::IBV_WR_BIND_MW;
    wr.send_flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
    wr.bind_mw_tso_union.bind_mw = rdma_sys::bind_mw_t {
        mw,
        rkey: window.key.rkey,
        bind_info: ibv_mw_bind_info {
            mr: target.mr,
            addr: target.addr,
            length: target.len,
            // The rights alone: the MR's own flags (MW_BIND, LOCAL_WRITE) are not for peers.
            mw_access_flags: access_flags(target.access, Access::empty()).0
                & !rdma_sys::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE.0,
        },
    };
    // SAFETY: the caller's guarantees; wr lives until submit returns.
    let status = unsafe { submit(qp, cq, &mut wr)? };
    if status != ibv_wc_status::IBV_WC_SUCCESS {
        return Err(RdmaError::Protocol(format!(
            "binding a memory window failed with completion status {status}"
        )));
    }
    Ok(window)
}
