use std::sync::atomic::Ordering;

use super::fake::{self, FakeNic, FakeQueue};
use super::*;
use crate::Grant;

fn endpoint(nic: &FakeNic, bounce: &mut [u8]) -> VerbsEndpoint {
    // SAFETY: the fake queue pair and completion queue live as long as `nic`, which outlives
    // the endpoint in every test; the bounce buffer is the test's own and unused elsewhere.
    unsafe { VerbsEndpoint::from_raw(nic.qp, nic.cq, bounce.as_mut_ptr(), bounce.len(), 1) }
}

#[test]
fn work_requests_read_write_and_atomics_through_the_verbs_ops() {
    let nic = FakeNic::new();
    let mut cache = (0..=255u8).collect::<Vec<u8>>();
    let mut table = vec![0u8; 64];
    let mut bounce = vec![0u8; 4096];
    let cache_addr = nic.register(&mut cache, 7, Access::READ | Access::WRITE);
    let table_addr = nic.register(&mut table, 9, Access::ATOMIC);
    let ep = endpoint(&nic, &mut bounce);
    ep.add_region(
        RemoteRegion {
            id: RegionId(1),
            len: 256,
            access: Access::READ | Access::WRITE,
        },
        Some(RemoteKey {
            addr: cache_addr,
            rkey: 7,
        }),
    );
    ep.add_region(
        RemoteRegion {
            id: RegionId(3),
            len: 64,
            access: Access::empty(),
        },
        Some(RemoteKey {
            addr: table_addr,
            rkey: 9,
        }),
    );
    ep.grant(Grant {
        region: RegionId(3),
        start: 8,
        len: 8,
        access: Access::ATOMIC,
    });

    let mut got = [0u8; 4];
    ep.read(RegionId(1), 10, &mut got).unwrap();
    assert_eq!(got, [10, 11, 12, 13]);
    ep.write(RegionId(1), 0, b"hi").unwrap();
    assert_eq!(&cache[..2], b"hi");
    assert_eq!(ep.fetch_add(RegionId(3), 8, 5).unwrap(), 0);
    assert_eq!(ep.fetch_add(RegionId(3), 8, 1).unwrap(), 5);
    assert_eq!(ep.compare_swap(RegionId(3), 8, 6, 60).unwrap(), 6);
    assert_eq!(u64::from_ne_bytes(table[8..16].try_into().unwrap()), 60);
    assert_eq!(nic.posted(), 5);
}

#[test]
fn out_of_grant_requests_are_refused_before_posting_and_the_nic_refuses_the_rest() {
    let nic = FakeNic::new();
    let mut cache = vec![1u8; 256];
    let mut bounce = vec![0u8; 64];
    // Registered read-only at the "NIC", but the session grants WRITE: the NIC has the last word.
    let addr = nic.register(&mut cache, 7, Access::READ);
    let ep = endpoint(&nic, &mut bounce);
    ep.add_region(
        RemoteRegion {
            id: RegionId(1),
            len: 256,
            access: Access::READ | Access::WRITE,
        },
        Some(RemoteKey { addr, rkey: 7 }),
    );
    let mut buf = [0u8; 16];
    assert!(matches!(
        ep.read(RegionId(1), 250, &mut buf),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert!(matches!(
        ep.fetch_add(RegionId(1), 0, 1),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert_eq!(nic.posted(), 0, "refused by the grants, never posted");
    // Larger than the 64-byte bounce buffer: two READs.
    let mut big = [0u8; 100];
    ep.read(RegionId(1), 0, &mut big).unwrap();
    assert_eq!(big, [1u8; 100]);
    assert_eq!(nic.posted(), 2);
    assert!(matches!(
        ep.write(RegionId(1), 0, b"x"),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert_eq!(nic.posted(), 3);
    assert_eq!(cache[0], 1, "nothing written");
    // A NIC moves the queue pair to the error state after a failed request: the endpoint
    // says so instead of posting on it again.
    match ep.read(RegionId(1), 0, &mut buf) {
        Err(RdmaError::Protocol(why)) => assert!(why.contains("new session"), "{why}"),
        other => panic!("expected the endpoint to be unusable, got {other:?}"),
    }
    assert_eq!(nic.posted(), 3);
}

#[test]
fn a_memory_window_confines_atomics_to_the_joined_slot_and_dropping_it_revokes_it() {
    let nic = FakeNic::new();
    let mut table = vec![0u8; 64];
    let mut bounce = vec![0u8; 64];
    // The table itself: no remote right, and its rkey is never handed out.
    let table_addr = nic.register(&mut table, 9, Access::empty());
    let ep = endpoint(&nic, &mut bounce);
    ep.add_region(
        RemoteRegion {
            id: RegionId(3),
            len: 64,
            access: Access::empty(),
        },
        None,
    );
    // The broker's side: bind a window on slot 2 through the session's queue pair.
    let target = window::Window {
        mr: std::ptr::null_mut(),
        addr: table_addr + 16,
        len: 8,
        access: Access::ATOMIC,
    };
    // SAFETY: the fake queue pair, completion queue and protection domain live as long as
    // `nic`; the fake does not dereference the registration.
    let slot =
        unsafe { window::bind(nic.qp, nic.cq, &*nic.pd as *const _ as *mut _, &target) }.unwrap();
    assert_eq!(slot.key().addr, table_addr + 16);
    assert_ne!(slot.key().rkey, 9);
    let grant = Grant {
        region: RegionId(3),
        start: 16,
        len: 8,
        access: Access::ATOMIC,
    };
    ep.grant_window(grant, slot.key());
    assert_eq!(ep.fetch_add(RegionId(3), 16, 5).unwrap(), 0);
    assert_eq!(ep.fetch_add(RegionId(3), 16, 2).unwrap(), 5);
    assert_eq!(u64::from_ne_bytes(table[16..24].try_into().unwrap()), 7);
    assert!(matches!(
        ep.fetch_add(RegionId(3), 24, 1),
        Err(RdmaError::RemoteAccess { .. })
    ));

    // A client that bypasses the library: the NIC refuses the neighbour slot through the
    // window, and the table's own rkey reaches nothing.
    let raw = |remote_addr: u64, rkey: u32| {
        let request = wr::Request {
            op: wr::Op::FetchAdd(1),
            local: bounce_addr(&ep),
            len: 8,
            lkey: 1,
            remote_addr,
            rkey,
        };
        // SAFETY: as in `endpoint`: the fake lives as long as the test; the bounce buffer is
        // registered local memory of 8 bytes at least.
        unsafe { wr::post_and_wait(nic.qp, nic.cq, &request) }
    };
    assert!(matches!(
        raw(table_addr + 24, slot.key().rkey),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert!(matches!(
        raw(table_addr + 16, 9),
        Err(RdmaError::RemoteAccess { .. })
    ));
    raw(table_addr + 16, slot.key().rkey).unwrap();
    assert_eq!(u64::from_ne_bytes(table[16..24].try_into().unwrap()), 8);

    // The session ends: its windows are deallocated and their keys reach nothing.
    let rkey = slot.key().rkey;
    drop(slot);
    assert!(matches!(
        raw(table_addr + 16, rkey),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert!(table[24..].iter().all(|b| *b == 0), "no other slot changed");
}

/// The endpoint's bounce buffer address (tests only).
fn bounce_addr(ep: &VerbsEndpoint) -> u64 {
    ep.bounce.lock().unwrap().ptr as u64
}

#[test]
fn opening_a_device_on_a_machine_without_rdma_says_so() {
    match Device::open(&VerbsConfig::default()) {
        Ok(device) => eprintln!("RDMA device {} opened", device.name()),
        Err(RdmaError::NoDevice(reason)) => {
            eprintln!("skipping the device tests: no RDMA device ({reason})");
            assert!(reason.contains("RDMA"), "{reason}");
        }
        Err(other) => panic!("opening a device failed unexpectedly: {other}"),
    }
}

#[test]
fn probe_reports_a_machine_without_rdma_clearly() {
    match probe() {
        Ok(devices) => {
            assert!(!devices.is_empty());
            eprintln!("RDMA devices: {devices:?}");
        }
        Err(RdmaError::NoDevice(reason)) => {
            eprintln!("skipping the device tests: no RDMA device ({reason})");
        }
        Err(other) => panic!("probe failed unexpectedly: {other}"),
    }
}

#[test]
fn a_verbs_session_without_a_device_fails_before_connecting() {
    if probe().is_ok() {
        eprintln!("skipping: an RDMA device is present");
        return;
    }
    // A listener that never answers: the device is opened before the control channel, so the
    // client learns at once that it cannot run here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    match crate::client::Session::connect_verbs(addr, "test", None, &VerbsConfig::default()) {
        Err(RdmaError::NoDevice(reason)) => {
            eprintln!("skipping the device tests: no RDMA device ({reason})")
        }
        Err(other) => panic!("expected NoDevice, got {other}"),
        Ok(_) => panic!("a verbs session opened without a device"),
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the client connected anyway");
}

/// An endpoint on `queue` of the fake NIC.
fn endpoint_on(queue: &FakeQueue, bounce: &mut [u8]) -> VerbsEndpoint {
    // SAFETY: as in `endpoint`: the queue outlives the endpoint in every test.
    unsafe {
        VerbsEndpoint::from_raw(
            &*queue.qp as *const _ as *mut _,
            &*queue.cq as *const _ as *mut _,
            bounce.as_mut_ptr(),
            bounce.len(),
            1,
        )
    }
}

/// A window on `len` bytes at `addr` granting `access`, bound through `queue` of `nic`.
fn bind_on(nic: &FakeNic, queue: &FakeQueue, addr: u64, len: u64, access: Access) -> MemoryWindow {
    let target = window::Window {
        mr: std::ptr::null_mut(),
        addr,
        len,
        access,
    };
    // SAFETY: the fake queue and protection domain outlive the window in every test; the fake
    // does not dereference the registration.
    unsafe {
        window::bind(
            &*queue.qp as *const _ as *mut _,
            &*queue.cq as *const _ as *mut _,
            &*nic.pd as *const _ as *mut _,
            &target,
        )
    }
    .unwrap()
}

fn table_region(len: u64) -> RemoteRegion {
    RemoteRegion {
        id: RegionId(3),
        len,
        access: Access::READ | Access::ATOMIC,
    }
}

#[test]
fn nic_atomics_are_atomic_only_among_themselves_so_reads_must_not_be_atomics() {
    let nic = FakeNic::new();
    let mut table = vec![0u8; 64];
    let mut bounce = vec![0u8; 64];
    let addr = nic.register(&mut table, 9, Access::READ | Access::ATOMIC);
    let ep = endpoint(&nic, &mut bounce);
    ep.add_region(table_region(64), Some(RemoteKey { addr, rkey: 9 }));
    let word = addr + 8;
    // SAFETY: `word` is an aligned word of `table`, alive for the whole test.
    let host = move || unsafe { std::sync::atomic::AtomicU64::from_ptr(word as *mut u64) };

    // The host (the broker's CPU) stores 42 while the NIC runs a FETCH_AND_ADD of 0 "to read
    // the slot": the NIC writes back the 0 it read, and the stored commit is gone.
    fake::between_read_and_write(move || host().store(42, Ordering::SeqCst));
    assert_eq!(ep.fetch_add(RegionId(3), 8, 0).unwrap(), 0);
    assert_eq!(
        host().load(Ordering::SeqCst),
        0,
        "the host's store was undone"
    );

    // A COMPARE_AND_SWAP that raises the slot loses a host store the same way: which is why
    // the host itself changes held slots through the NIC (`Loopback`).
    fake::between_read_and_write(move || host().store(100, Ordering::SeqCst));
    assert_eq!(
        crate::words::raise_word(&ep, RegionId(3), 8, 30).unwrap(),
        0
    );
    assert_eq!(host().load(Ordering::SeqCst), 30, "the host's 100 was lost");

    // A READ writes nothing: what the host stores stays.
    host().store(77, Ordering::SeqCst);
    assert_eq!(crate::words::read_word(&ep, RegionId(3), 8).unwrap(), 77);
    assert_eq!(host().load(Ordering::SeqCst), 77);
}

#[test]
fn host_stores_through_the_loopback_and_peer_fetch_adds_never_lose_one_another() {
    let mut nic = FakeNic::new();
    let mut table = vec![0u8; 64];
    let (mut peer_bounce, mut loop_bounce) = (vec![0u8; 64], vec![0u8; 64]);
    // The table as the broker registers it: no remote right of its own.
    let addr = nic.register(&mut table, 9, Access::empty());
    let (peer_queue, loop_queue, target_queue) = (nic.queue(), nic.queue(), nic.queue());
    // A session's window on slot 1, and the loopback's on the whole table.
    let rights = Access::READ | Access::ATOMIC;
    let slot = bind_on(&nic, &target_queue, addr + 8, 8, rights);
    let whole = bind_on(&nic, &target_queue, addr, 64, rights);
    let peer = endpoint_on(&peer_queue, &mut peer_bounce);
    peer.add_region(
        RemoteRegion {
            id: RegionId(3),
            len: 64,
            access: Access::empty(),
        },
        None,
    );
    let grant = Grant {
        region: RegionId(3),
        start: 8,
        len: 8,
        access: Access::READ | Access::ATOMIC,
    };
    peer.grant_window(grant, slot.key());
    let loopback = Loopback::over(endpoint_on(&loop_queue, &mut loop_bounce), whole, None, 64);

    // The peer adds 1 at a time; the host stores 1,000,000 × k (commits over TCP). Every
    // operation reports the value it replaced and the one it left, so the history must be one
    // chain from 0 to the final value that passes through every operation: a lost update
    // breaks it. (A store raced by adds leaves 1,000,000 × k plus them: they come after it.)
    const ADDS: u64 = 3000;
    const STORES: u64 = 300;
    let (adds, stores) = std::thread::scope(|s| {
        let adds = s.spawn(|| {
            (0..ADDS)
                .map(|_| peer.fetch_add(RegionId(3), 8, 1).unwrap())
                .collect::<Vec<_>>()
        });
        let stores = s.spawn(|| {
            (1..=STORES)
                .map(|k| loopback.store(8, k * 1_000_000).unwrap())
                .collect::<Vec<_>>()
        });
        (adds.join().unwrap(), stores.join().unwrap())
    });
    let mut next: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for old in adds {
        assert!(
            next.insert(old, old + 1).is_none(),
            "two adds replaced {old}"
        );
    }
    for (old, new) in stores {
        assert!(next.insert(old, new).is_none(), "two writes replaced {old}");
    }
    let (mut value, mut steps) = (0u64, 0u64);
    while let Some(&after) = next.get(&value) {
        value = after;
        steps += 1;
    }
    assert_eq!(
        steps,
        ADDS + STORES,
        "an update was lost (chain ends at {value})"
    );
    assert_eq!(loopback.read(8).unwrap(), value);
    assert!(
        value >= STORES * 1_000_000,
        "the last store is in the final value"
    );
    assert_eq!(u64::from_ne_bytes(table[8..16].try_into().unwrap()), value);
}

#[test]
fn a_read_window_is_the_only_way_into_a_region_registered_without_rights() {
    let mut nic = FakeNic::new();
    let mut arena = (0..=255u8).collect::<Vec<u8>>();
    let mut bounce = vec![0u8; 64];
    // The arena as the broker registers it for verbs: nothing for its own key.
    let addr = nic.register(&mut arena, 7, Access::empty());
    let (session_queue, broker_queue) = (nic.queue(), nic.queue());
    let ep = endpoint_on(&session_queue, &mut bounce);
    let region = RemoteRegion {
        id: RegionId(1),
        len: 256,
        access: Access::READ,
    };
    // A session that got the registration's key some other way reaches nothing.
    ep.add_region(region, Some(RemoteKey { addr, rkey: 7 }));
    let mut got = [0u8; 4];
    assert!(matches!(
        ep.read(RegionId(1), 4, &mut got),
        Err(RdmaError::RemoteAccess { .. })
    ));
    // The window bound for the session's queue pair: READ of the whole region, no more.
    let window = bind_on(&nic, &broker_queue, addr, 256, Access::READ);
    let mut bounce = vec![0u8; 64];
    let ep = endpoint_on(&session_queue, &mut bounce);
    ep.add_region(region, Some(window.key()));
    ep.read(RegionId(1), 4, &mut got).unwrap();
    assert_eq!(got, [4, 5, 6, 7]);
    ep.grant(Grant {
        region: RegionId(1),
        start: 0,
        len: 256,
        access: Access::WRITE,
    });
    assert!(
        matches!(
            ep.write(RegionId(1), 0, b"x"),
            Err(RdmaError::RemoteAccess { .. })
        ),
        "the window grants READ only"
    );
    assert_eq!(arena[0], 0);
    // The session ends: its window is revoked.
    let key = window.key();
    drop(window);
    let mut bounce = vec![0u8; 64];
    let ep = endpoint_on(&session_queue, &mut bounce);
    ep.add_region(region, Some(key));
    assert!(matches!(
        ep.read(RegionId(1), 4, &mut got),
        Err(RdmaError::RemoteAccess { .. })
    ));
}
