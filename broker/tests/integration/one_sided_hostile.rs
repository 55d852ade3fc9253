//! The one-sided path (shm) against a hostile client: the memory files it is handed cannot be
//! written where they are read-only, resized or sealed further, and the broker keeps serving;
//! `Join` admits only whom an OffsetCommit would; a slot a session joined is not given to
//! another group while the session may still add to it; a session that stalls before its Hello
//! or in the middle of a frame is closed after `request_read_timeout_ms`.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{encode_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, GroupId, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, ProduceRequest, ProduceResponse, SyncGroupRequest, SyncGroupResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdma::client::{Committer, Consumer, Producer, Session};
use rdma::control::{self, GroupMember, RegionRole, Request, Response, PROTOCOL_VERSION};
use rdma::RdmaError;
use rustix::io::Errno;

const TOPIC: &str = "hostile";

fn start(dir: &Path) -> (BrokerProcess, PathBuf) {
    let socket = dir.join("rdma.sock");
    let broker = BrokerProcess::start(&["--rdma-shm-socket", socket.to_str().unwrap()]);
    (broker, socket)
}

fn wait_for(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no rdma socket");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tcp_produce(client: &mut Client, value: &str) -> i64 {
    let records = encode_batch(
        [Bytes::from(value.to_string())],
        Compression::None,
        -1,
        -1,
        0,
    );
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.into()))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0);
    answer.base_offset
}

/// The session's region descriptors, as a client receives them: (role, descriptor).
fn raw_session(socket: &Path) -> (UnixStream, Vec<(RegionRole, OwnedFd)>) {
    wait_for(socket);
    let mut stream = UnixStream::connect(socket).unwrap();
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
        client_id: "hostile".into(),
        token: None,
        login: None,
        qp: None,
    };
    control::write_frame(&mut stream, &hello, &[], &[]).unwrap();
    let frame = control::read_frame::<Response>(&mut stream).unwrap();
    let Response::Welcome { regions, .. } = frame.message else {
        panic!("expected Welcome, got {:?}", frame.message);
    };
    assert_eq!(regions.len(), frame.fds.len());
    let fds = regions.iter().map(|r| r.role).zip(frame.fds).collect();
    (stream, fds)
}

/// The region's memory file reopened read-write through `/proc/self/fd`, as any process can
/// try with a descriptor it was given.
fn reopen_read_write(fd: &OwnedFd) -> Option<File> {
    File::options()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
}

/// Tries a shared writable mapping of `file`.
fn map_writable(file: &File, len: usize) -> Result<(), Errno> {
    // SAFETY: a fresh mapping at an address the kernel picks; it is unmapped at once and never
    // dereferenced.
    unsafe {
        let at = rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            file,
            0,
        )?;
        rustix::mm::munmap(at, len).unwrap();
    }
    Ok(())
}

#[test]
fn a_client_cannot_write_read_only_regions_or_resize_any_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, socket) = start(dir.path());
    let mut tcp = broker.connect();
    tcp_produce(&mut tcp, "before");

    let (_stream, fds) = raw_session(&socket);
    for (role, fd) in &fds {
        let read_only = matches!(role, RegionRole::Cache | RegionRole::Generations);
        let file = reopen_read_write(fd).expect("same user: the reopen itself is allowed");
        let len = file.metadata().unwrap().len();
        if read_only {
            assert_eq!(map_writable(&file, 4096), Err(Errno::PERM), "{role:?}");
            let write = file.write_at(b"evil", 0).unwrap_err();
            assert_eq!(write.raw_os_error(), Some(Errno::PERM.raw_os_error()));
        }
        for size in [0, len / 2, len * 2] {
            assert_eq!(
                rustix::fs::ftruncate(&file, size),
                Err(Errno::PERM),
                "{role:?} resized to {size}"
            );
        }
        assert_eq!(
            rustix::fs::fcntl_add_seals(&file, rustix::fs::SealFlags::FUTURE_WRITE),
            Err(Errno::PERM),
            "{role:?} sealed further"
        );
        assert_eq!(file.metadata().unwrap().len(), len);
    }

    // The broker serves on: TCP, and a well-behaved one-sided client (ring produce, reads).
    tcp_produce(&mut tcp, "after");
    let session = Session::connect(&socket, "polite").unwrap();
    let base = Producer::new(&session)
        .send(
            TOPIC,
            0,
            &encode_batch([Bytes::from("ring")], Compression::None, -1, -1, 0),
            -1,
        )
        .unwrap();
    assert_eq!(base, 2);
    let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while read < 3 && Instant::now() < deadline {
        read += consumer.poll(1 << 20).unwrap().len();
    }
    assert_eq!(read, 3);
    assert!(broker.is_running());
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

/// One member joins `group` over TCP (JoinGroup v5 with its member-id round trip, SyncGroup
/// v3): the group is Stable at the returned generation.
fn tcp_member(client: &mut Client, group: &str) -> (String, i32) {
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m"))])
    };
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &join(""));
    let joined: JoinGroupResponse =
        client.call(ApiKey::JoinGroup, 5, &join(first.member_id.as_str()));
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let sync = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"a"))]);
    let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 3, &sync);
    assert_eq!(synced.error_code, 0, "{synced:?}");
    (joined.member_id.to_string(), joined.generation_id)
}

fn refusal<T>(result: Result<T, RdmaError>) -> String {
    match result {
        Err(RdmaError::Refused(message)) => message,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got grants"),
    }
}

#[test]
fn join_checks_membership_and_generation_like_offset_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, socket) = start(dir.path());
    let mut tcp = _broker.connect();
    tcp_produce(&mut tcp, "x");
    wait_for(&socket);
    let session = Session::connect(&socket, "joiner").unwrap();

    // A group nobody is a member of: a simple consumer may join (as it may commit).
    Committer::join(&session, "simple", TOPIC, &[0]).unwrap();

    let (member_id, generation) = tcp_member(&mut tcp, "managed");
    let as_member = |member_id: &str, generation_id: i32| {
        Some(GroupMember {
            member_id: member_id.to_string(),
            generation_id,
            group_instance_id: None,
        })
    };
    let simple = refusal(Committer::join(&session, "managed", TOPIC, &[0]));
    assert!(simple.contains("UnknownMemberId"), "{simple}");
    let stale = refusal(Committer::join_as(
        &session,
        "managed",
        as_member(&member_id, generation - 1),
        TOPIC,
        &[0],
    ));
    assert!(stale.contains("IllegalGeneration"), "{stale}");
    let stranger = refusal(Committer::join_as(
        &session,
        "managed",
        as_member("someone-else", generation),
        TOPIC,
        &[0],
    ));
    assert!(stranger.contains("UnknownMemberId"), "{stranger}");

    let committer = Committer::join_as(
        &session,
        "managed",
        as_member(&member_id, generation),
        TOPIC,
        &[0],
    )
    .unwrap();
    committer.commit(0, 1).unwrap();
    assert_eq!(committer.committed(0).unwrap(), 1);
}

/// The answer a session gets once the broker ended it: the reason it gave.
fn ended_with(session: &Session) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match session.call(&Request::Persist) {
            Err(RdmaError::Refused(message)) => return message,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("expected the session to be ended, got {other:?}"),
        }
    }
}

#[test]
fn members_a_group_left_behind_lose_their_slots_as_an_offset_commit_would_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path());
    let mut tcp = broker.connect();
    tcp_produce(&mut tcp, "x");
    wait_for(&socket);

    // A member joins its slots, then leaves the group: the group moves to a new generation
    // without it, and its session (with its fetch-and-add rights) ends.
    let (member_id, generation) = tcp_member(&mut tcp, "managed");
    let member_session = Session::connect(&socket, "member").unwrap();
    let committer = Committer::join_as(
        &member_session,
        "managed",
        Some(GroupMember {
            member_id: member_id.clone(),
            generation_id: generation,
            group_instance_id: None,
        }),
        TOPIC,
        &[0],
    )
    .unwrap();
    committer.commit(0, 3).unwrap();
    // A simple committer of another group, and a bystander that joined nothing.
    let simple_session = Session::connect(&socket, "simple").unwrap();
    Committer::join(&simple_session, "simple", TOPIC, &[0]).unwrap();
    let bystander = Session::connect(&socket, "bystander").unwrap();
    let leave = LeaveGroupRequest::default()
        .with_group_id(group_id("managed"))
        .with_member_id(StrBytes::from_string(member_id.clone()));
    let left: LeaveGroupResponse = tcp.call(ApiKey::LeaveGroup, 2, &leave);
    assert_eq!(left.error_code, 0, "{left:?}");
    let reason = ended_with(&member_session);
    assert!(
        reason.contains("UnknownMemberId") && reason.contains("may no longer commit"),
        "{reason}"
    );

    // A consumer group forms on the simple committer's group: commits without a member are
    // refused there now, and so is its standing right.
    tcp_member(&mut tcp, "simple");
    let reason = ended_with(&simple_session);
    assert!(reason.contains("UnknownMemberId"), "{reason}");

    // What the member committed stays; the bystander's session goes on.
    assert_eq!(tcp.committed("managed", TOPIC, 0), 3);
    assert!(matches!(
        bystander.call(&Request::Persist),
        Ok((Response::Persisted { .. }, _))
    ));
}

fn tcp_commit(client: &mut Client, group: &str, offset: i64) {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    assert_eq!(
        response.topics[0].partitions[0].error_code, 0,
        "{response:?}"
    );
}

#[test]
fn a_deleted_groups_slot_is_not_reused_while_an_old_session_can_still_add_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path());
    let mut tcp = broker.connect();
    tcp_produce(&mut tcp, "x");
    wait_for(&socket);
    let session = Session::connect(&socket, "old").unwrap();
    let old = Committer::join(&session, "gone", TOPIC, &[0]).unwrap();
    old.add(0, 5).unwrap();
    old.persist().unwrap();
    assert_eq!(tcp.committed("gone", TOPIC, 0), 5);

    let deleted: DeleteGroupsResponse = tcp.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group_id("gone")]),
    );
    assert_eq!(deleted.results[0].error_code, 0, "{deleted:?}");
    // Another group's first commit; then the old session, unaware, adds to its grant.
    tcp_commit(&mut tcp, "fresh", 7);
    old.add(0, 100).unwrap();
    old.persist().unwrap();
    assert_eq!(
        tcp.committed("fresh", TOPIC, 0),
        7,
        "the old session's fetch-and-add landed in another group's offset"
    );
    assert_eq!(tcp.committed("gone", TOPIC, 0), -1);

    // Once the old session ends, new groups get fresh slots that start from nothing.
    drop(old);
    drop(session);
    let next = Session::connect(&socket, "next").unwrap();
    let reader = Committer::join(&next, "reader", TOPIC, &[0]).unwrap();
    assert_eq!(reader.committed(0).unwrap(), 0);
    tcp_commit(&mut tcp, "later", 3);
    assert_eq!(tcp.committed("later", TOPIC, 0), 3);
    assert_eq!(tcp.committed("fresh", TOPIC, 0), 7);
}

/// Whether the broker closed `stream` within `within` (end of file or a reset; false if it
/// was still open then).
fn closed_within(stream: &mut UnixStream, within: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the broker sent something unexpected"),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_session_that_stalls_before_hello_or_inside_a_frame_is_closed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rdma.sock");
    let _broker = BrokerProcess::start(&[
        "--rdma-shm-socket",
        socket.to_str().unwrap(),
        "--request-read-timeout-ms",
        "300",
    ]);
    wait_for(&socket);

    // Connected, never says Hello.
    let mut silent = UnixStream::connect(&socket).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)));

    // Admitted, then a header that claims the largest frame and three bytes of it.
    let (mut stalled, _fds) = raw_session(&socket);
    let mut header = Vec::new();
    header.extend_from_slice(&(control::MAX_JSON as u32).to_le_bytes());
    header.extend_from_slice(&(control::MAX_BINARY as u32).to_le_bytes());
    stalled.write_all(&header).unwrap();
    stalled.write_all(b"{\"a").unwrap();
    assert!(closed_within(&mut stalled, Duration::from_secs(10)));

    // An admitted session that is only idle between frames stays open (its grants are live),
    // and the broker keeps serving new sessions.
    let (mut idle, _fds) = raw_session(&socket);
    assert!(!closed_within(&mut idle, Duration::from_secs(1)));
    let (mut fresh, _fds) = raw_session(&socket);
    control::write_frame(&mut fresh, &Request::Persist, &[], &[]).unwrap();
    let answer = control::read_frame::<Response>(&mut fresh).unwrap();
    assert!(
        !matches!(answer.message, Response::Error { .. }),
        "{answer:?}"
    );
}

#[test]
fn one_sided_sessions_are_limited_and_a_closed_one_gives_its_room_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rdma.sock");
    let _broker = BrokerProcess::start(&[
        "--rdma-shm-socket",
        socket.to_str().unwrap(),
        "--max-one-sided-sessions",
        "2",
    ]);
    let first = raw_session(&socket);
    let _second = raw_session(&socket);
    // A third is closed before it gets any memory.
    let mut third = UnixStream::connect(&socket).unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(10)));
    // Once one leaves (and the broker has noticed), a new session is admitted.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client_id: "again".into(),
            token: None,
            login: None,
            qp: None,
        };
        if control::write_frame(&mut stream, &hello, &[], &[]).is_ok() {
            if let Ok(frame) = control::read_frame::<Response>(&mut stream) {
                assert!(matches!(frame.message, Response::Welcome { .. }));
                break;
            }
        }
        assert!(Instant::now() < deadline, "no session slot came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}
