use super::fake::FakeNic;
use super::*;
use crate::Grant;

fn endpoint(nic: &FakeNic, bounce: &mut [u8]) -> VerbsEndpoint {
    // SAFETY: the fake queue pair and completion queue live as long as `nic`, which outlives
    // the endpoint in every test; the bounce buffer is the test's own and unused elsewhere.
    unsafe {
        VerbsEndpoint::from_raw(
            &*nic.qp as *const _ as *mut _,
            &*nic.cq as *const _ as *mut _,
            bounce.as_mut_ptr(),
            bounce.len(),
            1,
        )
    }
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
    let slot = unsafe {
        window::bind(
            &*nic.qp as *const _ as *mut _,
            &*nic.cq as *const _ as *mut _,
            &*nic.pd as *const _ as *mut _,
            &target,
        )
    }
    .unwrap();
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
        unsafe {
            wr::post_and_wait(
                &*nic.qp as *const _ as *mut _,
                &*nic.cq as *const _ as *mut _,
                &request,
            )
        }
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
