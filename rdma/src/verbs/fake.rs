//! A fake verbs context for tests: its `post_send` and `poll_cq` ops run work requests on
//! this process's memory, checking rkeys, bounds and rights as a NIC does, so that the
//! work-request code is exercised without a device (`ibv_post_send` and `ibv_poll_cq`
//! dispatch through these ops).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

use rdma_sys::{
    ibv_access_flags, ibv_context, ibv_cq, ibv_mw, ibv_mw_type, ibv_pd, ibv_qp, ibv_send_wr,
    ibv_wc, ibv_wc_status, ibv_wr_opcode,
};

use crate::Access;

struct FakeRegion {
    base: u64,
    len: u64,
    rkey: u32,
    access: Access,
}

thread_local! {
    static REGIONS: RefCell<Vec<FakeRegion>> = const { RefCell::new(Vec::new()) };
    static COMPLETIONS: RefCell<VecDeque<ibv_wc>> = const { RefCell::new(VecDeque::new()) };
    static POSTED: RefCell<u64> = const { RefCell::new(0) };
}

/// A context, protection domain, queue pair and completion queue whose ops are the fakes
/// below.
pub(super) struct FakeNic {
    _ctx: Box<ibv_context>,
    pub(super) pd: Box<ibv_pd>,
    pub(super) qp: Box<ibv_qp>,
    pub(super) cq: Box<ibv_cq>,
}

impl FakeNic {
    pub(super) fn new() -> Self {
        // SAFETY: these are C structs of integers, pointers and opaque arrays: zeroes are a
        // valid value; only the fields set below are ever read (by the ops dispatch).
        let mut ctx: Box<ibv_context> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        ctx.ops.post_send = Some(fake_post_send);
        ctx.ops.poll_cq = Some(fake_poll_cq);
        ctx.ops.alloc_mw = Some(fake_alloc_mw);
        ctx.ops.dealloc_mw = Some(fake_dealloc_mw);
        // SAFETY: as above.
        let mut pd: Box<ibv_pd> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        pd.context = &mut *ctx;
        // SAFETY: as above.
        let mut qp: Box<ibv_qp> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: as above.
        let mut cq: Box<ibv_cq> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        qp.context = &mut *ctx;
        cq.context = &mut *ctx;
        REGIONS.with(|r| r.borrow_mut().clear());
        COMPLETIONS.with(|c| c.borrow_mut().clear());
        POSTED.with(|p| *p.borrow_mut() = 0);
        FakeNic {
            _ctx: ctx,
            pd,
            qp,
            cq,
        }
    }

    /// Registers `memory` as a remote region under `rkey` with `access`.
    pub(super) fn register(&self, memory: &mut [u8], rkey: u32, access: Access) -> u64 {
        let base = memory.as_mut_ptr() as u64;
        REGIONS.with(|r| {
            r.borrow_mut().push(FakeRegion {
                base,
                len: memory.len() as u64,
                rkey,
                access,
            })
        });
        base
    }

    /// Work requests posted so far.
    pub(super) fn posted(&self) -> u64 {
        POSTED.with(|p| *p.borrow())
    }
}

/// Runs each work request of the list at once and queues its completion.
unsafe extern "C" fn fake_post_send(
    _qp: *mut ibv_qp,
    mut wr: *mut ibv_send_wr,
    _bad: *mut *mut ibv_send_wr,
) -> c_int {
    while !wr.is_null() {
        POSTED.with(|p| *p.borrow_mut() += 1);
        // SAFETY: the caller (our wr.rs) passes a valid list of valid requests with one sge.
        let request = unsafe { &*wr };
        // SAFETY: as above.
        let status = if request.opcode == ibv_wr_opcode::IBV_WR_BIND_MW {
            bind(request)
        } else {
            // SAFETY: as above.
            let sge = unsafe { &*request.sg_list };
            execute(request, sge.addr, sge.length)
        };
        // SAFETY: plain C data, zeroes valid.
        let mut wc: ibv_wc = unsafe { MaybeUninit::zeroed().assume_init() };
        wc.wr_id = request.wr_id;
        wc.status = status;
        COMPLETIONS.with(|c| c.borrow_mut().push_back(wc));
        wr = request.next;
    }
    0
}

/// IBV_WR_BIND_MW: the window's new rkey now reaches its range with its rights.
fn bind(request: &ibv_send_wr) -> ibv_wc_status::Type {
    // SAFETY: the opcode says which union member was written.
    let bind = unsafe { request.bind_mw_tso_union.bind_mw };
    let flags = bind.bind_info.mw_access_flags;
    let mut access = Access::empty();
    for (flag, right) in [
        (ibv_access_flags::IBV_ACCESS_REMOTE_READ, Access::READ),
        (ibv_access_flags::IBV_ACCESS_REMOTE_WRITE, Access::WRITE),
        (ibv_access_flags::IBV_ACCESS_REMOTE_ATOMIC, Access::ATOMIC),
    ] {
        if flags & flag.0 != 0 {
            access |= right;
        }
    }
    REGIONS.with(|r| {
        r.borrow_mut().push(FakeRegion {
            base: bind.bind_info.addr,
            len: bind.bind_info.length,
            rkey: bind.rkey,
            access,
        })
    });
    // SAFETY: the window is live (allocated by fake_alloc_mw); libibverbs records the new key.
    unsafe { (*bind.mw).rkey = bind.rkey };
    ibv_wc_status::IBV_WC_SUCCESS
}

unsafe extern "C" fn fake_alloc_mw(pd: *mut ibv_pd, kind: ibv_mw_type::Type) -> *mut ibv_mw {
    // SAFETY: plain C data, zeroes valid.
    let mut mw: ibv_mw = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: pd is the fake's, whose context is set.
    mw.context = unsafe { (*pd).context };
    mw.pd = pd;
    mw.rkey = 0x5500;
    mw.type_ = kind;
    Box::into_raw(Box::new(mw))
}

/// Deallocation revokes whatever the window's key reached.
unsafe extern "C" fn fake_dealloc_mw(mw: *mut ibv_mw) -> c_int {
    // SAFETY: allocated by fake_alloc_mw, freed once.
    let mw = unsafe { Box::from_raw(mw) };
    REGIONS.with(|r| r.borrow_mut().retain(|region| region.rkey != mw.rkey));
    0
}

fn execute(request: &ibv_send_wr, local: u64, len: u32) -> ibv_wc_status::Type {
    let (remote, rkey, need, len) = match request.opcode {
        ibv_wr_opcode::IBV_WR_RDMA_READ => {
            // SAFETY: the opcode says which union member was written.
            let rdma = unsafe { request.wr.rdma };
            (rdma.remote_addr, rdma.rkey, Access::READ, u64::from(len))
        }
        ibv_wr_opcode::IBV_WR_RDMA_WRITE => {
            // SAFETY: as above.
            let rdma = unsafe { request.wr.rdma };
            (rdma.remote_addr, rdma.rkey, Access::WRITE, u64::from(len))
        }
        _ => {
            // SAFETY: as above (the atomics).
            let atomic = unsafe { request.wr.atomic };
            if atomic.remote_addr % 8 != 0 || len != 8 {
                return ibv_wc_status::IBV_WC_REM_INV_REQ_ERR;
            }
            (atomic.remote_addr, atomic.rkey, Access::ATOMIC, 8)
        }
    };
    let allowed = REGIONS.with(|r| {
        r.borrow().iter().any(|region| {
            region.rkey == rkey
                && region.access.contains(need)
                && remote >= region.base
                && remote + len <= region.base + region.len
        })
    });
    if !allowed {
        return ibv_wc_status::IBV_WC_REM_ACCESS_ERR;
    }
    let (local, remote) = (local as *mut u8, remote as *mut u8);
    // SAFETY: both ranges are registered memory of this test process (checked above for the
    // remote one; the local one is the endpoint's bounce buffer), `len` bytes long.
    unsafe {
        match request.opcode {
            ibv_wr_opcode::IBV_WR_RDMA_READ => {
                std::ptr::copy_nonoverlapping(remote, local, len as usize)
            }
            ibv_wr_opcode::IBV_WR_RDMA_WRITE => {
                std::ptr::copy_nonoverlapping(local, remote, len as usize)
            }
            opcode => {
                let atomic = request.wr.atomic;
                let word = std::sync::atomic::AtomicU64::from_ptr(remote.cast());
                let old = if opcode == ibv_wr_opcode::IBV_WR_ATOMIC_FETCH_AND_ADD {
                    word.fetch_add(atomic.compare_add, std::sync::atomic::Ordering::SeqCst)
                } else {
                    match word.compare_exchange(
                        atomic.compare_add,
                        atomic.swap,
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                    ) {
                        Ok(v) | Err(v) => v,
                    }
                };
                std::ptr::copy_nonoverlapping(old.to_ne_bytes().as_ptr(), local, 8);
            }
        }
    }
    ibv_wc_status::IBV_WC_SUCCESS
}

/// Hands out one queued completion.
unsafe extern "C" fn fake_poll_cq(_cq: *mut ibv_cq, entries: c_int, wc: *mut ibv_wc) -> c_int {
    if entries < 1 {
        return 0;
    }
    match COMPLETIONS.with(|c| c.borrow_mut().pop_front()) {
        Some(done) => {
            // SAFETY: the caller passes room for at least one completion.
            unsafe { wc.write(done) };
            1
        }
        None => 0,
    }
}
