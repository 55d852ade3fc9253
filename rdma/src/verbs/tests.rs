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
        RemoteKey {
            addr: cache_addr,
            rkey: 7,
        },
    );
    ep.add_region(
        RemoteRegion {
            id: RegionId(3),
            len: 64,
            access: Access::empty(),
        },
        RemoteKey {
            addr: table_addr,
            rkey: 9,
        },
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
        RemoteKey { addr, rkey: 7 },
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
    assert!(matches!(
        ep.read(RegionId(1), 0, &mut [0u8; 100]),
        Err(RdmaError::LocalLength(_))
    ));
    assert_eq!(nic.posted(), 0, "refused by the grants, never posted");
    assert!(matches!(
        ep.write(RegionId(1), 0, b"x"),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert_eq!(nic.posted(), 1);
    assert_eq!(cache[0], 1, "nothing written");
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
