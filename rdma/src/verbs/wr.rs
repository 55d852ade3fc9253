//! One work request: building it, posting it, waiting for its completion.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdma_sys::{
    ibv_cq, ibv_poll_cq, ibv_post_send, ibv_qp, ibv_send_flags, ibv_send_wr, ibv_sge, ibv_wc,
    ibv_wc_status, ibv_wr_opcode,
};

use crate::RdmaError;

/// How long a completion may take before the operation is reported failed (a NIC retries a
/// lost packet for far less).
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);

/// A process-wide unique id for each work request, so a late completion of an earlier one
/// is never taken for the current one's.
pub(super) fn next_wr_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The operation of a work request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
    FetchAdd(u64),
    CompareSwap { expected: u64, new: u64 },
}

/// A work request, in terms the caller knows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) op: Op,
    pub(super) local: u64,
    pub(super) len: u32,
    pub(super) lkey: u32,
    pub(super) remote_addr: u64,
    pub(super) rkey: u32,
}

/// Posts `request` as one signaled work request and polls `cq` for its completion.
///
/// # Safety
/// `qp` and `cq` must be valid (a connected RC queue pair and its send completion queue), and
/// `request.local .. + len` registered memory untouched until this returns.
pub(super) unsafe fn post_and_wait(
    qp: *mut ibv_qp,
    cq: *mut ibv_cq,
    request: &Request,
) -> Result<(), RdmaError> {
    let mut sge = ibv_sge {
        addr: request.local,
        length: request.len,
        lkey: request.lkey,
    };
    // SAFETY: ibv_send_wr is a C struct of integers, pointers and unions of those: all zeroes
    // is a valid (empty) value, which is how C code initialises it too.
    let mut wr: ibv_send_wr = unsafe { MaybeUninit::zeroed().assume_init() };
    wr.wr_id = next_wr_id();
    wr.sg_list = &mut sge;
    wr.num_sge = 1;
    wr.send_flags = ibv_send_flags::IBV_SEND_SIGNALED.0;
    match request.op {
        Op::Read | Op::Write => {
            wr.opcode = if request.op == Op::Read {
                ibv_wr_opcode::IBV_WR_RDMA_READ
            } else {
                ibv_wr_opcode::IBV_WR_RDMA_WRITE
            };
            wr.wr.rdma = rdma_sys::rdma_t {
                remote_addr: request.remote_addr,
                rkey: request.rkey,
            };
        }
        Op::FetchAdd(add) => {
            wr.opcode = ibv_wr_opcode::IBV_WR_ATOMIC_FETCH_AND_ADD;
            wr.wr.atomic = rdma_sys::atomic_t {
                remote_addr: request.remote_addr,
                compare_add: add,
                swap: 0,
                rkey: request.rkey,
            };
        }
        Op::CompareSwap { expected, new } => {
            wr.opcode = ibv_wr_opcode::IBV_WR_ATOMIC_CMP_AND_SWP;
            wr.wr.atomic = rdma_sys::atomic_t {
                remote_addr: request.remote_addr,
                compare_add: expected,
                swap: new,
                rkey: request.rkey,
            };
        }
    }
    // SAFETY: the caller's guarantees; wr and sge live until submit returns.
    let completed = unsafe { submit(qp, cq, &mut wr)? };
    status(completed, request)
}

/// Posts `wr` (one signaled work request) and polls `cq` until its completion; returns the
/// completion's status.
///
/// # Safety
/// `qp` and `cq` must be valid (a connected RC queue pair and its send completion queue), and
/// everything `wr` points to must stay valid and untouched until this returns.
pub(super) unsafe fn submit(
    qp: *mut ibv_qp,
    cq: *mut ibv_cq,
    wr: &mut ibv_send_wr,
) -> Result<ibv_wc_status::Type, RdmaError> {
    let mut bad: *mut ibv_send_wr = std::ptr::null_mut();
    // SAFETY: qp is valid (caller); wr and what it points to live until the completion is
    // polled below.
    let rc = unsafe { ibv_post_send(qp, wr, &mut bad) };
    if rc != 0 {
        return Err(RdmaError::Io {
            context: "ibv_post_send".into(),
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    let deadline = Instant::now() + COMPLETION_TIMEOUT;
    loop {
        // SAFETY: ibv_wc is plain C data; zeroes are valid and poll_cq overwrites it.
        let mut wc: ibv_wc = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: cq is valid (caller); room for one completion.
        let n = unsafe { ibv_poll_cq(cq, 1, &mut wc) };
        if n < 0 {
            return Err(RdmaError::Protocol(format!("ibv_poll_cq failed ({n})")));
        }
        // A completion of an earlier request that timed out is not ours: skip it.
        if n == 1 && wc.wr_id == wr.wr_id {
            return Ok(wc.status);
        }
        if Instant::now() > deadline {
            return Err(RdmaError::Protocol("no completion within 10 s".into()));
        }
        std::hint::spin_loop();
    }
}

/// The outcome a completion status means.
pub(super) fn status(status: ibv_wc_status::Type, request: &Request) -> Result<(), RdmaError> {
    let at = format!(
        "{:?} of {} bytes at {:#x}",
        request.op, request.len, request.remote_addr
    );
    match status {
        ibv_wc_status::IBV_WC_SUCCESS => Ok(()),
        ibv_wc_status::IBV_WC_REM_ACCESS_ERR => Err(RdmaError::RemoteAccess {
            region: request.rkey,
            reason: format!("the NIC refused {at}"),
        }),
        ibv_wc_status::IBV_WC_REM_INV_REQ_ERR => Err(RdmaError::InvalidRequest(format!(
            "the NIC refused {at} as invalid"
        ))),
        ibv_wc_status::IBV_WC_LOC_LEN_ERR => Err(RdmaError::LocalLength(at)),
        other => Err(RdmaError::Protocol(format!(
            "work completion status {other} for {at}"
        ))),
    }
}
