//! A fake verbs context for tests: its `post_send` and `poll_cq` ops run work requests on
//! this process's memory, checking rkeys, bounds and rights as a NIC does, so that the
//! work-request code is exercised without a device (`ibv_post_send` and `ibv_poll_cq`
//! dispatch through these ops).
//!
//! Its atomics behave as on most NICs (`IBV_ATOMIC_HCA`, every ConnectX): atomic among the
//! NIC's own operations (one atomic unit), but a read, then a write of the word, so that a CPU
//! store landing in between is lost. [`between_read_and_write`] lets a test land one there.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

#[derive(Default)]
struct NicState {
    regions: Vec<FakeRegion>,
    posted: u64,
}

/// Every live fake NIC's state, by the address of its context (tests run in parallel, and a
/// NIC may be used from several threads).
static NICS: Mutex<Option<HashMap<usize, NicState>>> = Mutex::new(None);
/// Queued completions, by the address of their completion queue.
static COMPLETIONS: Mutex<Option<HashMap<usize, VecDeque<ibv_wc>>>> = Mutex::new(None);
/// The atomic unit: one FETCH_AND_ADD or COMPARE_AND_SWAP at a time.
static ATOMIC_UNIT: Mutex<()> = Mutex::new(());

thread_local! {
    static BETWEEN: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
}

/// Runs `hook` inside the next atomic this thread posts, after the NIC read the word and
/// before it writes it back (where a CPU store of the host is lost on an `IBV_ATOMIC_HCA`
/// NIC). The hook must not post work requests itself.
pub(super) fn between_read_and_write(hook: impl FnMut() + 'static) {
    BETWEEN.with(|b| *b.borrow_mut() = Some(Box::new(hook)));
}

fn with_nic<T>(ctx: *const ibv_context, f: impl FnOnce(&mut NicState) -> T) -> T {
    let mut nics = NICS.lock().unwrap_or_else(|e| e.into_inner());
    f(nics
        .get_or_insert_with(HashMap::new)
        .entry(ctx as usize)
        .or_default())
}

fn with_completions<T>(cq: *const ibv_cq, f: impl FnOnce(&mut VecDeque<ibv_wc>) -> T) -> T {
    let mut all = COMPLETIONS.lock().unwrap_or_else(|e| e.into_inner());
    f(all
        .get_or_insert_with(HashMap::new)
        .entry(cq as usize)
        .or_default())
}

/// A queue pair of a fake NIC and the completion queue of its sends.
pub(super) struct FakeQueue {
    pub(super) qp: Box<ibv_qp>,
    pub(super) cq: Box<ibv_cq>,
}

impl FakeQueue {
    fn new(ctx: &mut ibv_context) -> Self {
        // SAFETY: C structs of integers, pointers and opaque arrays: zeroes are a valid value;
        // only the fields set here are ever read (by the ops dispatch).
        let mut qp: Box<ibv_qp> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: as above.
        let mut cq: Box<ibv_cq> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        qp.context = ctx;
        cq.context = ctx;
        qp.send_cq = &mut *cq;
        FakeQueue { qp, cq }
    }
}

impl Drop for FakeQueue {
    fn drop(&mut self) {
        let cq = &*self.cq as *const ibv_cq as usize;
        if let Some(all) = COMPLETIONS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            all.remove(&cq);
        }
    }
}

/// A context, protection domain, queue pair and completion queue whose ops are the fakes
/// below.
pub(super) struct FakeNic {
    ctx: Box<ibv_context>,
    pub(super) pd: Box<ibv_pd>,
    /// Owns the queue pair and completion queue that `qp` and `cq` point to.
    _queue: FakeQueue,
    pub(super) qp: *mut ibv_qp,
    pub(super) cq: *mut ibv_cq,
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
        let mut queue = FakeQueue::new(&mut ctx);
        let (qp, cq) = (&mut *queue.qp as *mut ibv_qp, &mut *queue.cq as *mut ibv_cq);
        with_nic(&*ctx, |nic| *nic = NicState::default());
        FakeNic {
            ctx,
            pd,
            _queue: queue,
            qp,
            cq,
        }
    }

    /// Another queue pair on this NIC (another session, or the broker's loopback).
    pub(super) fn queue(&mut self) -> FakeQueue {
        FakeQueue::new(&mut self.ctx)
    }

    /// Registers `memory` as a remote region under `rkey` with `access`.
    pub(super) fn register(&self, memory: &mut [u8], rkey: u32, access: Access) -> u64 {
        let base = memory.as_mut_ptr() as u64;
        with_nic(&*self.ctx, |nic| {
            nic.regions.push(FakeRegion {
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
        with_nic(&*self.ctx, |nic| nic.posted)
    }
}

impl Drop for FakeNic {
    fn drop(&mut self) {
        let ctx = &*self.ctx as *const ibv_context as usize;
        if let Some(nics) = NICS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            nics.remove(&ctx);
        }
    }
}

/// Runs each work request of the list at once and queues its completion.
unsafe extern "C" fn fake_post_send(
    qp: *mut ibv_qp,
    mut wr: *mut ibv_send_wr,
    _bad: *mut *mut ibv_send_wr,
) -> c_int {
    // SAFETY: the queue pair is a FakeQueue's, whose context and send CQ are set.
    let (ctx, cq) = unsafe { ((*qp).context as *const ibv_context, (*qp).send_cq) };
    while !wr.is_null() {
        with_nic(ctx, |nic| nic.posted += 1);
        // SAFETY: the caller (our wr.rs) passes a valid list of valid requests with one sge.
        let request = unsafe { &*wr };
        // SAFETY: as above.
        let status = if request.opcode == ibv_wr_opcode::IBV_WR_BIND_MW {
            bind(ctx, request)
        } else {
            // SAFETY: as above.
            let sge = unsafe { &*request.sg_list };
            execute(ctx, request, sge.addr, sge.length)
        };
        // SAFETY: plain C data, zeroes valid.
        let mut wc: ibv_wc = unsafe { MaybeUninit::zeroed().assume_init() };
        wc.wr_id = request.wr_id;
        wc.status = status;
        with_completions(cq, |queue| queue.push_back(wc));
        wr = request.next;
    }
    0
}

/// IBV_WR_BIND_MW: the window's new rkey now reaches its range with its rights.
fn bind(ctx: *const ibv_context, request: &ibv_send_wr) -> ibv_wc_status::Type {
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
    with_nic(ctx, |nic| {
        nic.regions.push(FakeRegion {
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
    with_nic(mw.context, |nic| {
        nic.regions.retain(|region| region.rkey != mw.rkey)
    });
    0
}

fn execute(
    ctx: *const ibv_context,
    request: &ibv_send_wr,
    local: u64,
    len: u32,
) -> ibv_wc_status::Type {
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
    let allowed = with_nic(ctx, |nic| {
        nic.regions.iter().any(|region| {
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
                let word = AtomicU64::from_ptr(remote.cast());
                // IBV_ATOMIC_HCA: atomic among the NIC's atomics, not against the CPU.
                let _unit = ATOMIC_UNIT.lock().unwrap_or_else(|e| e.into_inner());
                let old = word.load(Ordering::SeqCst);
                if let Some(mut hook) = BETWEEN.with(|b| b.borrow_mut().take()) {
                    hook();
                }
                if opcode == ibv_wr_opcode::IBV_WR_ATOMIC_FETCH_AND_ADD {
                    // Written back even when adding 0.
                    word.store(old.wrapping_add(atomic.compare_add), Ordering::SeqCst);
                } else if old == atomic.compare_add {
                    word.store(atomic.swap, Ordering::SeqCst);
                }
                std::ptr::copy_nonoverlapping(old.to_ne_bytes().as_ptr(), local, 8);
            }
        }
    }
    ibv_wc_status::IBV_WC_SUCCESS
}

/// Hands out one queued completion.
unsafe extern "C" fn fake_poll_cq(cq: *mut ibv_cq, entries: c_int, wc: *mut ibv_wc) -> c_int {
    if entries < 1 {
        return 0;
    }
    match with_completions(cq, VecDeque::pop_front) {
        Some(done) => {
            // SAFETY: the caller passes room for at least one completion.
            unsafe { wc.write(done) };
            1
        }
        None => 0,
    }
}
