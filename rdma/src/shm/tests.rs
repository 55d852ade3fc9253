use std::os::fd::{AsFd, AsRawFd};

use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags};

use super::*;

/// A memfd of `len` bytes of `fill`, unsealed.
fn unsealed(len: u64, fill: u8) -> OwnedFd {
    let fd = memfd_create("rdma-test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    ftruncate(&fd, len).unwrap();
    let file = File::from(fd.try_clone().unwrap());
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![fill; len as usize], 0).unwrap();
    fd
}

/// A memfd of `len` bytes of `fill`, sealed as the broker seals the regions it shares
/// read-only (its writable mapping, if any, made before).
fn memfd(len: u64, fill: u8) -> OwnedFd {
    let fd = unsealed(len, fill);
    fcntl_add_seals(&fd, required_seals(false)).unwrap();
    fd
}

/// As [`memfd`], for regions shared read-write.
fn writable_memfd(len: u64, fill: u8) -> OwnedFd {
    let fd = unsealed(len, fill);
    fcntl_add_seals(&fd, required_seals(true)).unwrap();
    fd
}

#[test]
fn unsealed_or_half_sealed_files_are_not_exported() {
    let bare = unsealed(4096, 0);
    assert!(matches!(
        export(bare.as_fd(), Access::READ),
        Err(RdmaError::Refused(_))
    ));
    assert!(matches!(
        export(bare.as_fd(), Access::ATOMIC),
        Err(RdmaError::Refused(_))
    ));
    // Sealed for read-write sharing only: not enough for a read-only export.
    let writable = writable_memfd(4096, 0);
    assert!(export(writable.as_fd(), Access::ATOMIC).is_ok());
    let err = export(writable.as_fd(), Access::READ).unwrap_err();
    assert!(err.to_string().contains("FUTURE_WRITE"), "{err}");
}

#[test]
fn a_read_only_export_cannot_be_reopened_for_writing_or_resized() {
    let fd = memfd(4096, 7);
    let exported = export(fd.as_fd(), Access::READ).unwrap();
    // What a hostile client does with the descriptor it received.
    let path = format!("/proc/self/fd/{}", exported.as_raw_fd());
    let reopened = File::options().read(true).write(true).open(&path).unwrap();
    let err = MmapOptions::new().len(4096).map_raw(&reopened).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::PERM.raw_os_error())
    );
    assert!(std::os::unix::fs::FileExt::write_at(&reopened, b"x", 0).is_err());
    assert_eq!(
        ftruncate(&reopened, 0).unwrap_err(),
        rustix::io::Errno::PERM
    );
}

fn region(id: u32, len: u64, access: Access) -> RemoteRegion {
    RemoteRegion {
        id: RegionId(id),
        len,
        access,
    }
}

#[test]
fn read_only_exports_are_read_only_for_the_kernel_too() {
    let fd = memfd(4096, 7);
    let exported = export(fd.as_fd(), Access::READ).unwrap();
    let file = File::from(exported.try_clone().unwrap());
    assert!(
        MmapOptions::new().len(4096).map_raw(&file).is_err(),
        "a writable mapping of a read-only export must fail"
    );
    let endpoint = ShmEndpoint::new();
    endpoint
        .attach(region(1, 4096, Access::READ), exported)
        .unwrap();
    let mut buf = [0u8; 16];
    endpoint.read(RegionId(1), 100, &mut buf).unwrap();
    assert_eq!(buf, [7; 16]);
    assert!(matches!(
        endpoint.write(RegionId(1), 0, b"x"),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert!(matches!(
        endpoint.read(RegionId(1), 4090, &mut buf),
        Err(RdmaError::RemoteAccess { .. })
    ));
}

#[test]
fn atomics_on_two_mappings_of_one_table_agree() {
    let fd = writable_memfd(64, 0);
    let a = ShmEndpoint::new();
    let b = ShmEndpoint::new();
    for endpoint in [&a, &b] {
        let exported = export(fd.as_fd(), Access::ATOMIC).unwrap();
        endpoint
            .attach(region(3, 64, Access::empty()), exported)
            .unwrap();
        endpoint.grant(Grant {
            region: RegionId(3),
            start: 8,
            len: 8,
            access: Access::ATOMIC,
        });
    }
    assert_eq!(a.fetch_add(RegionId(3), 8, 5).unwrap(), 0);
    assert_eq!(b.fetch_add(RegionId(3), 8, 2).unwrap(), 5);
    assert_eq!(a.compare_swap(RegionId(3), 8, 7, 100).unwrap(), 7);
    assert_eq!(
        b.compare_swap(RegionId(3), 8, 7, 1).unwrap(),
        100,
        "failed CAS returns the old value"
    );
    assert!(
        matches!(
            a.fetch_add(RegionId(3), 16, 1),
            Err(RdmaError::RemoteAccess { .. })
        ),
        "a slot outside the grant"
    );
    a.revoke(RegionId(3));
    assert!(matches!(
        a.fetch_add(RegionId(3), 8, 1),
        Err(RdmaError::Revoked(3))
    ));
}

#[test]
fn descriptors_cross_a_unix_socket() {
    let (left, right) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = memfd(4096, 9);
    let exported = export(fd.as_fd(), Access::READ).unwrap();
    let sent = send_with_fds(left.as_fd(), b"hello", &[exported.as_fd()]).unwrap();
    assert_eq!(sent, 5);
    let mut buf = [0u8; 16];
    let (n, fds) = recv_with_fds(right.as_fd(), &mut buf).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"hello"[..], 1));
    let endpoint = ShmEndpoint::new();
    endpoint
        .attach(
            region(1, 4096, Access::READ),
            fds.into_iter().next().unwrap(),
        )
        .unwrap();
    let mut one = [0u8; 1];
    endpoint.read(RegionId(1), 4095, &mut one).unwrap();
    assert_eq!(one, [9]);
}
