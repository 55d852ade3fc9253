//! Reliable-connected queue pairs: creation, the address a peer needs, and the transitions to
//! ready-to-send once the peer's address is known.

use std::hash::{BuildHasher, RandomState};
use std::mem::MaybeUninit;
use std::sync::Arc;

use rdma_sys::{
    ibv_cq, ibv_create_cq, ibv_create_qp, ibv_destroy_cq, ibv_destroy_qp, ibv_modify_qp, ibv_qp,
    ibv_qp_attr, ibv_qp_init_attr, ibv_qp_type,
};

use super::attrs::{self, PSN_MASK};
use super::device::{check, os_error, Device};
use crate::control::QpAddress;
use crate::RdmaError;

/// Work requests in flight per queue pair: an endpoint posts one at a time; the rest is room
/// for memory-window binds on the broker's side.
const SEND_DEPTH: u32 = 16;

/// An RC queue pair with its own completion queue, in the INIT state until
/// [`QueuePair::connect`].
pub struct QueuePair {
    pub(super) qp: *mut ibv_qp,
    pub(super) cq: *mut ibv_cq,
    psn: u32,
    pub(super) device: Arc<Device>,
}

// SAFETY: the queue pair and completion queue are used by one owner at a time (`&mut self`
// for posting, or under the endpoint's mutex); libibverbs allows any thread to do so.
unsafe impl Send for QueuePair {}
// SAFETY: shared references only read the immutable queue-pair number.
unsafe impl Sync for QueuePair {}

impl Device {
    /// A new RC queue pair in INIT (every remote right allowed at the queue-pair level: each
    /// registration and window narrows them).
    pub fn queue_pair(self: &Arc<Self>) -> Result<QueuePair, RdmaError> {
        // SAFETY: ctx is open; no completion channel, no vector.
        let cq = unsafe {
            ibv_create_cq(
                self.ctx,
                SEND_DEPTH as i32 * 2,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if cq.is_null() {
            return Err(os_error("ibv_create_cq"));
        }
        // SAFETY: plain C data; the fields that matter are set below.
        let mut init: ibv_qp_init_attr = unsafe { MaybeUninit::zeroed().assume_init() };
        init.send_cq = cq;
        init.recv_cq = cq;
        init.qp_type = ibv_qp_type::IBV_QPT_RC;
        init.sq_sig_all = 0;
        init.cap.max_send_wr = SEND_DEPTH;
        init.cap.max_recv_wr = 1;
        init.cap.max_send_sge = 1;
        init.cap.max_recv_sge = 1;
        // SAFETY: pd is valid; `init` describes a queue pair on the CQ created above.
        let qp = unsafe { ibv_create_qp(self.pd, &mut init) };
        if qp.is_null() {
            let error = os_error("ibv_create_qp");
            // SAFETY: created above, used by nothing else.
            unsafe { ibv_destroy_cq(cq) };
            return Err(error);
        }
        let pair = QueuePair {
            qp,
            cq,
            psn: RandomState::new().hash_one(qp as usize) as u32 & PSN_MASK,
            device: self.clone(),
        };
        pair.modify(attrs::init(&self.port), "INIT")?;
        Ok(pair)
    }
}

impl QueuePair {
    /// What the peer needs to connect to this queue pair.
    pub fn address(&self) -> QpAddress {
        QpAddress {
            // SAFETY: qp is live; qp_num never changes.
            qpn: unsafe { (*self.qp).qp_num },
            psn: self.psn,
            lid: self.device.lid,
            gid: self.device.gid,
            mtu: self.device.port.mtu,
        }
    }

    /// INIT → RTR → RTS towards the peer at `remote`.
    pub fn connect(&mut self, remote: &QpAddress) -> Result<(), RdmaError> {
        self.modify(attrs::rtr(&self.device.port, remote), "RTR")?;
        self.modify(attrs::rts(&self.device.port, self.psn), "RTS")
    }

    fn modify(&self, (mut attr, mask): (ibv_qp_attr, i32), state: &str) -> Result<(), RdmaError> {
        // SAFETY: qp is live; attr and mask were built for this transition (attrs.rs).
        let rc = unsafe { ibv_modify_qp(self.qp, &mut attr, mask) };
        check(rc, &format!("ibv_modify_qp to {state}"))
    }
}

impl Drop for QueuePair {
    fn drop(&mut self) {
        // SAFETY: created in queue_pair(), destroyed once, the QP before its CQ; no work
        // request is outstanding (every post is waited for).
        unsafe {
            ibv_destroy_qp(self.qp);
            ibv_destroy_cq(self.cq);
        }
    }
}
