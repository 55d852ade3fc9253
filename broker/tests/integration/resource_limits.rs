//! Requests that would exhaust the broker's memory or sockets are refused or bounded: huge
//! CreateTopics, fetches beyond the broker's response cap, responses over `max_bytes`, produce
//! requests that would starve each other of hot-cache space, idle and half-sent connections,
//! connection floods from one address, unbounded group creation, and groups left behind (they
//! expire).

use crate::common;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{encode_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FetchResponse, GroupId, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(text(name))
}

/// Creates `name` with `partitions`, returning the topic's error code.
fn create_topic(client: &mut Client, name: &str, partitions: i32, validate_only: bool) -> i16 {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 2, &request);
    response.topics[0].error_code
}

/// One batch of one record whose value is `len` bytes.
fn big_batch(len: usize, fill: u8) -> Bytes {
    encode_batch([Bytes::from(vec![fill; len])], Compression::None, -1, -1, 0).into()
}

/// Produces `records` to `topic`/`partition` and returns (error code, base offset).
fn produce(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 7, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// Fetch v11 of `partitions` (each from offset 0) with these limits.
fn fetch(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Option<FetchResponse> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )]);
    let correlation = client.send(ApiKey::Fetch, 11, &request);
    let mut frame = client.read_frame()?;
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Decodable;
    let header =
        ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(11)).unwrap();
    assert_eq!(header.correlation_id, correlation);
    Some(FetchResponse::decode(&mut frame, 11).unwrap())
}

fn record_bytes(response: &FetchResponse) -> Vec<usize> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .collect()
}

#[test]
fn huge_partition_counts_are_refused_before_anything_is_allocated() {
    let broker = BrokerProcess::start(&[
        "--max-partitions-per-topic",
        "100",
        "--max-partitions",
        "150",
        "--max-topics",
        "3",
    ]);
    let mut client = broker.connect();
    let before = common::memory_kib(broker.pid(), "VmRSS");
    let started = Instant::now();
    for validate_only in [true, false] {
        for partitions in [2_000_000_000, 5_000_000, 101] {
            let code = create_topic(&mut client, "huge", partitions, validate_only);
            assert_eq!(
                code,
                ResponseError::InvalidPartitions.code(),
                "{partitions} partitions, validate_only {validate_only}"
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered quickly"
    );
    let peak = common::memory_kib(broker.pid(), "VmHWM");
    assert!(
        peak < before + 32 * 1024,
        "peak RSS {peak} KiB rose more than 32 MiB over {before} KiB"
    );

    // Within the per-topic limit, but the broker's total (150) is reached by the second topic.
    assert_eq!(create_topic(&mut client, "first", 100, false), 0);
    assert_eq!(
        create_topic(&mut client, "second", 60, true),
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(
        create_topic(&mut client, "second", 60, false),
        ResponseError::PolicyViolation.code()
    );
    assert_eq!(create_topic(&mut client, "second", 50, false), 0);
    // The topic count limit (3).
    assert_eq!(
        create_topic(&mut client, "third", -1, false),
        ResponseError::PolicyViolation.code()
    );
}

#[test]
fn auto_created_topics_count_against_the_limits() {
    let broker = BrokerProcess::start(&["--max-topics", "2"]);
    let mut client = broker.connect();
    let batch: Bytes = common::record_batch(1, Compression::None).into();
    assert_eq!(produce(&mut client, "auto-1", 0, batch.clone()).0, 0);
    assert_eq!(produce(&mut client, "auto-2", 0, batch.clone()).0, 0);
    let (code, _) = produce(&mut client, "auto-3", 0, batch);
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    assert_eq!(
        create_topic(&mut client, "explicit", 1, false),
        ResponseError::PolicyViolation.code()
    );
}

#[test]
fn fetch_responses_are_capped_by_the_broker_limit() {
    let broker = BrokerProcess::start(&["--fetch-max-bytes", "1000000"]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "capped", 1, false), 0);
    for b in 0..10u8 {
        assert_eq!(
            produce(&mut client, "capped", 0, big_batch(300_000, b)).0,
            0
        );
    }
    // About 3 MB stored; the client asks for up to 2 GiB.
    let response = fetch(&mut client, "capped", &[0], i32::MAX, i32::MAX)
        .expect("the broker answered instead of closing the connection");
    let sizes = record_bytes(&response);
    assert!(sizes[0] > 0, "{sizes:?}");
    assert!(sizes[0] <= 1_000_000, "{sizes:?} exceeds fetch_max_bytes");
}

/// librdkafka's test 0082: a response-level max_bytes below two batches returns only the
/// first, even when they are in different partitions and each partition's limit is large.
#[test]
fn max_bytes_is_exceeded_only_by_the_first_batch() {
    let broker = BrokerProcess::start(&["--default-partitions", "3"]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "max-bytes", 3, false), 0);
    for partition in 0..3 {
        let (code, _) = produce(&mut client, "max-bytes", partition, big_batch(600_000, 1));
        assert_eq!(code, 0);
    }
    let response = fetch(&mut client, "max-bytes", &[0, 1, 2], 1_000_000, 20_000_000).unwrap();
    let sizes = record_bytes(&response);
    assert!(sizes[0] > 600_000, "{sizes:?}");
    assert_eq!(&sizes[1..], &[0, 0], "{sizes:?}");
    // A first batch larger than max_bytes still comes back alone, so the consumer progresses.
    let response = fetch(&mut client, "max-bytes", &[0, 1, 2], 1000, 20_000_000).unwrap();
    let sizes = record_bytes(&response);
    assert!(sizes[0] > 600_000, "{sizes:?}");
    assert_eq!(&sizes[1..], &[0, 0], "{sizes:?}");
}

/// Concurrent fetches together hold at most the fetch memory budget; the rest wait or answer
/// with less, so peak memory stays bounded however many clients ask at once.
#[test]
fn concurrent_fetches_share_one_memory_budget() {
    let broker = BrokerProcess::start(&[
        "--fetch-memory-mib",
        "4",
        "--hot-cache-mib",
        "16",
        "--hot-block-kib",
        "1024",
    ]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "budget", 1, false), 0);
    for b in 0..8u8 {
        assert_eq!(
            produce(&mut client, "budget", 0, big_batch(700_000, b)).0,
            0
        );
    }
    let before = common::memory_kib(broker.pid(), "VmHWM");
    // 24 clients each ask for everything (about 5.6 MB) and read their answers slowly.
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let mut client = broker.connect();
            let request = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_max_bytes(50 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name("budget"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(50 << 20)])]);
            client.send(ApiKey::Fetch, 11, &request);
            client
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let peak = common::memory_kib(broker.pid(), "VmHWM");
    let mut answered = 0;
    for mut client in clients {
        if client.read_frame().is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 24, "every fetch is answered");
    // Without a budget 24 responses of 5.6 MB (and their encoded frames) are held at once.
    assert!(
        peak < before + 48 * 1024,
        "peak RSS rose from {before} KiB to {peak} KiB"
    );
}

/// Several large produce requests at once through a small hot cache all succeed: none holds
/// half-copied batches while waiting for space that only the others could free.
#[test]
fn large_concurrent_produces_do_not_starve_each_other() {
    let broker = BrokerProcess::start(&[
        "--hot-cache-mib",
        "8",
        "--hot-block-kib",
        "1024",
        "--produce-backpressure-ms",
        "5000",
    ]);
    let mut admin = broker.connect();
    assert_eq!(create_topic(&mut admin, "fill", 8, false), 0);
    // Each request: 16 batches of 250 KB (4 MB) to one partition; 32 MB through an 8 MiB
    // cache at once.
    let records: Bytes = (0..16u8)
        .flat_map(|b| big_batch(250_000, b).to_vec())
        .collect::<Vec<u8>>()
        .into();
    for round in 0..5 {
        let started = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|partition| {
                let mut client = broker.connect();
                let records = records.clone();
                std::thread::spawn(move || produce(&mut client, "fill", partition, records).0)
            })
            .collect();
        let codes: Vec<i16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(codes, vec![0; 8], "round {round}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "round {round} took {:?}",
            started.elapsed()
        );
    }
    // A request larger than one request's share of the cache (half of it) is refused at once.
    let huge: Bytes = (0..10u8)
        .flat_map(|b| big_batch(500_000, b).to_vec())
        .collect::<Vec<u8>>()
        .into();
    let started = Instant::now();
    let (code, _) = produce(&mut admin, "fill", 0, huge);
    assert_eq!(code, ResponseError::RecordListTooLarge.code());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn idle_connections_are_closed() {
    let broker = BrokerProcess::start(&["--connections-max-idle-ms", "500"]);
    let mut idle = broker.connect();
    let mut busy = broker.connect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            create_topic(&mut busy, "", 1, true),
            ResponseError::InvalidTopicException.code()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(idle.is_closed(), "the idle connection was closed");
    assert_eq!(
        create_topic(&mut busy, "", 1, true),
        ResponseError::InvalidTopicException.code()
    );
}

#[test]
fn half_sent_requests_are_closed_after_the_request_timeout() {
    let broker = BrokerProcess::start(&["--request-read-timeout-ms", "500"]);
    let mut client = broker.connect();
    // A frame announcing 100 bytes, of which 10 arrive.
    client.send_raw(&100u32.to_be_bytes());
    client.send_raw(&[0u8; 10]);
    let started = Instant::now();
    assert!(client.is_closed(), "the connection was closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that sends nothing at all is only idle (600 s by default), not half-sent.
    let mut quiet = broker.connect();
    quiet.set_read_timeout(Duration::from_millis(1500));
    assert!(quiet.would_block(), "a quiet connection stays open");
}

#[test]
fn many_clients_sending_large_frames_at_once_take_no_more_than_the_request_memory() {
    let broker = BrokerProcess::start(&[
        "--max-frame-bytes",
        "4194304",
        "--max-request-memory-mib",
        "8",
    ]);
    // Warm the broker up, then note its memory.
    let mut client = broker.connect();
    client.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert!(client.read_frame().is_some());
    let before = common::memory_kib(broker.pid(), "VmRSS");
    // 40 clients announce frames of 4 MiB and send 2 MiB of each, then hold: 80 MiB, were it
    // all read. At most 8 MiB of it may be; the rest waits in the sockets.
    let body = vec![7u8; 2 << 20];
    let attackers: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(broker.addr).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            stream.write_all(&(4u32 << 20).to_be_bytes()).unwrap();
            // A full socket times out: what the broker did not read stays with the client.
            let _ = stream.write_all(&body);
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = common::memory_kib(broker.pid(), "VmRSS");
    let grown_mib = during.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 40,
        "40 half-sent frames of 2 MiB grew the broker by {grown_mib} MiB"
    );
    // Once they go, their memory comes back and everyone is served again.
    drop(attackers);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = broker.connect();
        again.set_read_timeout(Duration::from_secs(2));
        again.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
        if again.read_frame().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "not served after the attack");
    }
}

#[test]
fn connections_per_address_are_limited() {
    let broker = BrokerProcess::start(&["--max-connections-per-ip", "3"]);
    // The readiness probe's connection holds a slot until the broker notices it closed, so
    // each of the three is retried until it is served.
    let mut open: Vec<Client> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.len() < 3 {
        let mut client = broker.connect();
        client.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
        if client.read_frame().is_some() {
            open.push(client);
        } else {
            assert!(
                Instant::now() < deadline,
                "three connections were never served"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for client in &mut open {
        assert_eq!(
            create_topic(client, "", 1, true),
            ResponseError::InvalidTopicException.code()
        );
    }
    let mut fourth = broker.connect();
    assert!(
        fourth.is_closed(),
        "the fourth connection from one address was closed"
    );
    // Once one closes (and the broker has noticed), a new one is served.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = broker.connect();
        again.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
        if again.read_frame().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A new member's JoinGroup (v5: answered MEMBER_ID_REQUIRED, leaving a pending member).
fn join_new(client: &mut Client, group: &str) -> i16 {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"m"))]);
    let response: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &request);
    response.error_code
}

#[test]
fn the_number_of_groups_is_limited() {
    let broker = BrokerProcess::start(&["--max-groups", "3"]);
    let mut client = broker.connect();
    let join = join_new;
    for group in ["g1", "g2", "g3"] {
        assert_eq!(
            join(&mut client, group),
            ResponseError::MemberIdRequired.code()
        );
    }
    assert_eq!(
        join(&mut client, "g4"),
        ResponseError::GroupMaxSizeReached.code()
    );
    // Known groups still take joins.
    assert_eq!(
        join(&mut client, "g1"),
        ResponseError::MemberIdRequired.code()
    );
}

/// A simple (group-less) commit of `offset` to `partitions` of `topic`: the error codes.
fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    partitions: std::ops::Range<i32>,
    offset: i64,
) -> Vec<i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                    })
                    .collect(),
            )]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 2, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

#[test]
fn a_full_offset_table_is_a_clear_error() {
    let broker = BrokerProcess::start(&["--offset-slots", "4"]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "slots", 6, false), 0);
    assert_eq!(commit(&mut client, "simple", "slots", 0..4, 1), vec![0; 4]);
    let codes = commit(&mut client, "simple", "slots", 4..6, 1);
    assert_eq!(
        codes,
        vec![ResponseError::InvalidCommitOffsetSize.code(); 2]
    );
}

/// Groups and offsets left behind expire after `offsets_retention_ms` (Kafka's
/// `offsets.retention.minutes`), durably, and give back their room under `max_groups` and
/// `offset_slots`; a group that keeps committing is kept.
#[test]
fn idle_groups_expire_and_give_back_their_room() {
    let limits = [
        "--max-groups",
        "2",
        "--offset-slots",
        "2",
        "--offsets-retention-ms",
        "2000",
        "--retention-check-interval-ms",
        "200",
    ];
    let broker = BrokerProcess::start(&limits);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "idle", 2, false), 0);
    assert_eq!(commit(&mut client, "gone", "idle", 0..1, 5), vec![0]);
    assert_eq!(commit(&mut client, "busy", "idle", 1..2, 1), vec![0]);
    // Full: no third group, no third slot.
    assert_eq!(
        join_new(&mut client, "third"),
        ResponseError::GroupMaxSizeReached.code()
    );
    assert_eq!(
        commit(&mut client, "third", "idle", 0..1, 1),
        vec![ResponseError::InvalidCommitOffsetSize.code()]
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut busy = 1;
    while client.committed("gone", "idle", 0) != -1 {
        assert!(Instant::now() < deadline, "the idle group never expired");
        busy += 1;
        assert_eq!(commit(&mut client, "busy", "idle", 1..2, busy), vec![0]);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(client.committed("busy", "idle", 1), busy);
    assert_eq!(commit(&mut client, "third", "idle", 0..1, 7), vec![0]);

    // The expiry is durable; what was kept and committed since survives the restart.
    let broker = broker.kill_and_restart(&limits);
    let mut client = broker.connect();
    assert_eq!(client.committed("gone", "idle", 0), -1);
    assert_eq!(client.committed("busy", "idle", 1), busy);
    assert_eq!(client.committed("third", "idle", 0), 7);
}

/// Producer state per partition is capped: with room for two producers, a third one's batch
/// makes the broker forget the least recently active, whose retry is then appended again
/// instead of being recognised as a duplicate (as after Kafka's producer id expiration).
#[test]
fn producer_state_per_partition_is_capped() {
    let broker = BrokerProcess::start(&["--max-producers-per-partition", "2"]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "producers", 1, false), 0);
    let batch = |producer: i64| -> Bytes {
        common::idempotent_batch(1, Compression::None, producer, 0, 0).into()
    };
    assert_eq!(produce(&mut client, "producers", 0, batch(1000)), (0, 0));
    // Remembered: the retry is a duplicate.
    assert_eq!(produce(&mut client, "producers", 0, batch(1000)), (0, 0));
    assert_eq!(produce(&mut client, "producers", 0, batch(1001)), (0, 1));
    assert_eq!(produce(&mut client, "producers", 0, batch(1002)), (0, 2));
    // Forgotten: appended again.
    assert_eq!(produce(&mut client, "producers", 0, batch(1000)), (0, 3));
}

/// The catalog is input from storage: a stored topic above max_partitions_per_topic is not
/// loaded at start (its data stays), and comes back once the limit allows it.
#[test]
fn stored_topics_above_the_limit_are_not_loaded() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let metadata = |client: &mut Client| -> (i16, usize) {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("wide")))
            ]))
            .with_allow_auto_topic_creation(false);
        let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &request);
        let topic = &response.topics[0];
        (topic.error_code, topic.partitions.len())
    };
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    assert_eq!(create_topic(&mut client, "wide", 50, false), 0);
    drop(client);
    let broker = broker.kill_and_restart(&["--max-partitions-per-topic", "10"]);
    let (code, _) = metadata(&mut broker.connect());
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    let broker = broker.kill_and_restart(&[]);
    assert_eq!(metadata(&mut broker.connect()), (0, 50));
}

#[test]
fn the_members_of_a_group_are_limited() {
    let broker = BrokerProcess::start(&["--group-max-size", "2"]);
    let mut client = broker.connect();
    for _ in 0..2 {
        assert_eq!(
            join_new(&mut client, "crowd"),
            ResponseError::MemberIdRequired.code()
        );
    }
    assert_eq!(
        join_new(&mut client, "crowd"),
        ResponseError::GroupMaxSizeReached.code()
    );
    assert_eq!(
        join_new(&mut client, "other"),
        ResponseError::MemberIdRequired.code()
    );
}
