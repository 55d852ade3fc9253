//! The one-sided path (shm provider) against the broker binary, from this test process:
//! mixed TCP and one-sided producers and consumers on one topic, commits by fetch-and-add seen
//! by OffsetFetch and kept across kill -9, reads racing block reuse, and refused requests.

use crate::common;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{encode_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rdma::client::{Batch, Committer, Consumer, Producer, Session};
use rdma::control::RegionRole;
use rdma::RdmaError;

const TOPIC: &str = "one-sided";

fn start(dir: &Path, extra: &[&str]) -> (BrokerProcess, PathBuf) {
    let socket = dir.join("rdma.sock");
    let mut args = vec!["--rdma-shm-socket", socket.to_str().unwrap()];
    args.extend_from_slice(extra);
    (BrokerProcess::start(&args), socket)
}

fn connect(socket: &Path) -> Session {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Session::connect(socket, "test") {
            Ok(session) => return session,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("no rdma session: {error}"),
        }
    }
}

fn batch_of(tag: &str, n: usize, records: usize) -> Vec<u8> {
    padded_batch(tag, n, records, 0)
}

/// Values `tag-n-i`, then `pad` bytes after a `|`.
fn padded_batch(tag: &str, n: usize, records: usize, pad: usize) -> Vec<u8> {
    let values = (0..records).map(|i| {
        let mut v = format!("{tag}-{n:05}-{i}").into_bytes();
        if pad > 0 {
            v.push(b'|');
            v.extend(std::iter::repeat_n(b'.', pad));
        }
        Bytes::from(v)
    });
    encode_batch(values, Compression::None, -1, -1, 0)
}

fn tcp_produce(client: &mut Client, records: Vec<u8>) -> i64 {
    tcp_produce_to(client, TOPIC, records)
}

fn tcp_produce_to(client: &mut Client, topic: &str, records: Vec<u8>) -> i64 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.into()))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0);
    answer.base_offset
}

/// Every record value of `batches`, decoded.
fn values(batches: impl IntoIterator<Item = Bytes>) -> Vec<String> {
    let mut out = Vec::new();
    for mut bytes in batches {
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
            }
        }
    }
    out
}

fn tcp_read_all(client: &mut Client, end: i64) -> Vec<String> {
    let mut offset = 0;
    let mut all = Vec::new();
    while offset < end {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
        let records = response.responses[0].partitions[0].records.clone().unwrap();
        let got = values([records]);
        assert!(!got.is_empty(), "no progress at {offset}");
        offset += got.len() as i64;
        all.extend(got);
    }
    all
}

fn one_sided_read_all(consumer: &mut Consumer, end: i64) -> Vec<String> {
    let mut all = Vec::new();
    while consumer.position() < end {
        let batches: Vec<Batch> = consumer.poll(1 << 20).unwrap();
        assert!(
            !batches.is_empty(),
            "no progress at {}",
            consumer.position()
        );
        all.extend(values(batches.into_iter().map(|b| Bytes::from(b.bytes))));
    }
    all
}

#[test]
fn tcp_and_one_sided_clients_share_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path(), &[]);
    let mut tcp = broker.connect();
    let session = connect(&socket);
    let mut producer = Producer::new(&session);
    let mut expected = Vec::new();
    let mut next = 0i64;
    for n in 0..40 {
        let records = 1 + n % 5;
        let (tag, base) = if n % 2 == 0 {
            ("tcp", tcp_produce(&mut tcp, batch_of("tcp", n, records)))
        } else {
            let base = producer
                .send(TOPIC, 0, &batch_of("rdma", n, records), -1)
                .unwrap();
            ("rdma", base)
        };
        assert_eq!(base, next, "batch {n} offsets");
        next += records as i64;
        expected.extend((0..records).map(|i| format!("{tag}-{n:05}-{i}")));
    }
    let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
    assert_eq!(one_sided_read_all(&mut consumer, next), expected);
    assert!(
        consumer.stats().read_batches >= 40,
        "{:?}",
        consumer.stats()
    );
    assert_eq!(
        consumer.stats().copied_polls,
        0,
        "hot data is read one-sided"
    );
    assert_eq!(tcp_read_all(&mut tcp, next), expected);
    // At the end: nothing, not an error.
    assert!(consumer.poll(1 << 20).unwrap().is_empty());
}

#[test]
fn commits_by_fetch_and_add_are_what_offset_fetch_reports_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // No periodic persist in the first part, so that the explicit Persist is what makes the
    // commit durable (with a short interval the loop could get there first and Persist find
    // nothing to write).
    let (broker, socket) = start(dir.path(), &["--rdma-commit-interval-ms", "3600000"]);
    let mut tcp = broker.connect();
    tcp_produce(&mut tcp, batch_of("x", 0, 100));
    let session = connect(&socket);
    let committer = Committer::join(&session, "g1", TOPIC, &[0]).unwrap();
    assert_eq!(
        tcp.committed("g1", TOPIC, 0),
        0,
        "joining starts the group at 0"
    );
    committer.add(0, 40).unwrap();
    assert_eq!(
        committer.add(0, 2).unwrap(),
        40,
        "fetch-and-add returns the old value"
    );
    assert_eq!(
        tcp.committed("g1", TOPIC, 0),
        42,
        "visible to OffsetFetch at once"
    );
    committer.commit(0, 30).unwrap();
    assert_eq!(
        committer.committed(0).unwrap(),
        42,
        "commit never moves backwards"
    );
    committer.commit(0, 77).unwrap();
    assert_eq!(
        committer.persist().unwrap(),
        1,
        "Persist writes the changed slot"
    );
    let err = committer.add(1, 1).unwrap_err();
    assert!(matches!(err, RdmaError::Refused(_)), "{err}");
    drop(committer);
    drop(session);

    let broker = broker.kill_and_restart(&[
        "--rdma-shm-socket",
        socket.to_str().unwrap(),
        "--rdma-commit-interval-ms",
        "50",
    ]);
    let mut tcp = broker.connect();
    assert_eq!(
        tcp.committed("g1", TOPIC, 0),
        77,
        "persisted commit lost in kill -9"
    );
    // Within the commit interval, without Persist: also durable after a short wait.
    let session = connect(&socket);
    let committer = Committer::join(&session, "g1", TOPIC, &[0]).unwrap();
    committer.add(0, 3).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let broker = broker.kill_and_restart(&["--rdma-shm-socket", socket.to_str().unwrap()]);
    assert_eq!(broker.connect().committed("g1", TOPIC, 0), 80);
}

#[test]
fn reads_racing_block_reuse_return_correct_bytes_or_retry() {
    let dir = tempfile::tempdir().unwrap();
    // 8 blocks of 64 KiB: produce below reuses every block many times while the reader runs.
    let (broker, socket) = start(
        dir.path(),
        &["--hot-cache-mib", "1", "--hot-block-kib", "128"],
    );
    let addr = broker.addr;
    let total = 1200;
    let (started_tx, started) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut tcp = Client::connect(addr);
        for n in 0..total {
            tcp_produce(&mut tcp, padded_batch("race", n, 20, 200));
            // The reader starts from offset 0 once the cache is nearly full (4.5 KB batches,
            // 1 MiB cache), so that it reads the oldest blocks while they are being reused.
            if n == 100 {
                let _ = started_tx.send(());
            }
        }
    });
    started.recv().unwrap();
    let session = connect(&socket);
    let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < total * 20 {
        assert!(Instant::now() < deadline, "reader stuck at {seen}");
        // A slow reader (a batch per 25 ms) while the producer runs, so that the producer
        // overtakes it and reuses blocks under it.
        if !writer.is_finished() {
            std::thread::sleep(Duration::from_millis(25));
        }
        let batches = match consumer.poll(4 << 10) {
            Ok(b) => b,
            // Before the first produce the topic does not exist yet.
            Err(RdmaError::Refused(m)) if m.contains("unknown topic") => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        for value in values(batches.into_iter().map(|b| Bytes::from(b.bytes))) {
            let (n, i) = (seen / 20, seen % 20);
            let head = value.split('|').next().unwrap_or_default();
            assert_eq!(head, format!("race-{n:05}-{i}"), "record {seen}");
            assert_eq!(value.len(), head.len() + 201, "record {seen} padding");
            seen += 1;
        }
    }
    writer.join().unwrap();
    let stats = consumer.stats();
    println!("{stats:?}");
    assert!(stats.read_batches > 0, "{stats:?}");
    assert!(
        stats.copied_polls > 0,
        "the reader started on evicted data: {stats:?}"
    );
}

#[test]
fn sessions_cannot_reach_outside_their_grants() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path(), &["--rdma-token", "s3cret"]);
    tcp_produce(&mut broker.connect(), batch_of("g", 0, 1));
    match Session::connect(&socket, "intruder") {
        Err(RdmaError::Refused(reason)) => assert!(reason.contains("authentication"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a session without the token was opened"),
    }
    let session = Session::connect_with_token(&socket, "test", Some("s3cret".into())).unwrap();
    let endpoint = session.endpoint();
    let cache = session.region(RegionRole::Cache).unwrap();
    let offsets = session.region(RegionRole::Offsets).unwrap();
    let mut buf = [0u8; 16];
    endpoint.read(cache.id, 0, &mut buf).unwrap();
    assert!(matches!(
        endpoint.read(cache.id, cache.len - 8, &mut buf),
        Err(RdmaError::RemoteAccess { .. })
    ));
    assert!(matches!(
        endpoint.write(cache.id, 0, b"overwrite"),
        Err(RdmaError::RemoteAccess { .. })
    ));
    // No slot joined yet: no atomic anywhere in the offset table.
    assert!(matches!(
        endpoint.fetch_add(offsets.id, 0, 1),
        Err(RdmaError::RemoteAccess { .. })
    ));
    let committer = Committer::join(&session, "mine", TOPIC, &[0]).unwrap();
    committer.add(0, 1).unwrap();
    // Exactly the joined slot is reachable among the first few (the others: other groups'
    // slots, or free ones).
    let reachable = (0..4)
        .filter(|i| endpoint.fetch_add(offsets.id, i * 8, 0).is_ok())
        .count();
    assert_eq!(reachable, 1, "only the joined slot may be granted");
}

#[test]
fn bad_control_frames_close_that_session_only() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path(), &[]);
    tcp_produce(&mut broker.connect(), batch_of("b", 0, 1));
    let _ = connect(&socket); // the socket is up
    let frames: Vec<Vec<u8>> = vec![
        // A JSON part of 4 GiB.
        [u32::MAX.to_le_bytes(), 0u32.to_le_bytes()].concat(),
        // Not JSON.
        [5u32.to_le_bytes().as_slice(), &0u32.to_le_bytes(), b"{{{{{"].concat(),
        // A valid request, but not Hello first.
        {
            let json = br#"{"type":"persist"}"#;
            [
                (json.len() as u32).to_le_bytes().as_slice(),
                &0u32.to_le_bytes(),
                json,
            ]
            .concat()
        },
        // A Hello with another protocol version.
        {
            let json = br#"{"type":"hello","version":99,"client_id":"x","token":null}"#;
            [
                (json.len() as u32).to_le_bytes().as_slice(),
                &0u32.to_le_bytes(),
                json,
            ]
            .concat()
        },
        // Half a header, then the client goes away.
        vec![1, 2, 3],
    ];
    for frame in frames {
        let mut raw = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        raw.write_all(&frame).unwrap();
        if frame.len() == 3 {
            continue;
        }
        // The broker answers with an error frame or just closes; either way the session ends.
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
    }
    // Everyone else is still served, on both paths.
    let session = connect(&socket);
    let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
    assert_eq!(consumer.poll(1 << 20).unwrap().len(), 1);
    tcp_produce(&mut broker.connect(), batch_of("b", 1, 1));
}

/// `--rdma-verbs-listen` where the verbs path cannot run: the broker refuses to start and says
/// why (built without the `verbs` feature, or, with it, no RDMA device), rather than serving
/// without the path the operator asked for.
#[test]
fn the_verbs_path_refuses_to_start_where_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", dir.path().display());
    let listen = common::free_port().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
        .args(["--listen", &listen, "--storage", &storage])
        .args(["--rdma-verbs-listen", "127.0.0.1:0", "--rdma-token", "t"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            if !cfg!(feature = "verbs") {
                panic!("a broker without the verbs provider kept running");
            }
            eprintln!("skipping: an RDMA device is present and the verbs path started");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let reason = if cfg!(feature = "verbs") {
        "no RDMA device"
    } else {
        "built without the verbs provider"
    };
    assert!(stderr.contains(reason), "{stderr}");
}

#[test]
fn a_tailing_consumer_reads_by_read_alone_and_asks_the_broker_only_what_the_index_cannot_answer() {
    let dir = tempfile::tempdir().unwrap();
    // A ring of 4 batches per partition, so that a consumer can fall behind it.
    let (broker, socket) = start(dir.path(), &["--rdma-index-entries", "4"]);
    let mut tcp = broker.connect();
    let session = connect(&socket);
    let (mut expected, mut next) = (Vec::new(), 0i64);
    let produce = |tcp: &mut Client, expected: &mut Vec<String>, n: usize| {
        let base = tcp_produce(tcp, batch_of("idx", n, 2));
        expected.extend((0..2).map(|i| format!("idx-{n:05}-{i}")));
        base + 2
    };
    for n in 0..3 {
        next = produce(&mut tcp, &mut expected, n);
    }
    let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
    assert_eq!(one_sided_read_all(&mut consumer, next), expected);
    let stats = consumer.stats();
    assert_eq!(
        (stats.located_polls, stats.copied_polls),
        (0, 0),
        "{stats:?}"
    );

    // Idle at the end: each poll READs the watermark word, and nothing goes to the broker.
    for _ in 0..1000 {
        assert!(consumer.poll(1 << 20).unwrap().is_empty());
    }
    let stats = consumer.stats();
    assert_eq!(stats.located_polls, 0, "{stats:?}");
    assert!(stats.published_polls >= 1000, "{stats:?}");

    // New batches show through the watermark word and the ring.
    for n in 3..5 {
        next = produce(&mut tcp, &mut expected, n);
    }
    let mut read = one_sided_read_all(&mut consumer, next);
    assert_eq!(consumer.stats().located_polls, 0, "{:?}", consumer.stats());

    // Ten batches while the consumer waits: its place in the ring is overwritten, so it
    // locates through the control channel, then goes back to the index.
    for n in 5..15 {
        next = produce(&mut tcp, &mut expected, n);
    }
    read.extend(one_sided_read_all(&mut consumer, next));
    let located = consumer.stats().located_polls;
    assert!(located >= 1, "{:?}", consumer.stats());
    next = produce(&mut tcp, &mut expected, 15);
    read.extend(one_sided_read_all(&mut consumer, next));
    assert_eq!(consumer.stats().located_polls, located, "back on the index");
    let mut all = one_sided_read_all(&mut Consumer::new(&session, TOPIC, 0, 0), next);
    assert_eq!(all, expected);
    all.truncate(6);
    assert_eq!([all, read].concat(), expected);
    assert_eq!(consumer.stats().copied_polls, 0, "{:?}", consumer.stats());
}

#[test]
fn a_deleted_topics_index_slot_never_hands_its_old_readers_the_next_partitions_batches() {
    let dir = tempfile::tempdir().unwrap();
    // One slot: the next partition to subscribe takes the deleted one's.
    let (broker, socket) = start(dir.path(), &["--rdma-index-partitions", "1"]);
    let mut tcp = broker.connect();
    let session = connect(&socket);
    tcp_produce(&mut tcp, batch_of("gone", 0, 2));
    let mut old = Consumer::new(&session, TOPIC, 0, 0);
    assert_eq!(one_sided_read_all(&mut old, 2).len(), 2);

    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str(TOPIC))])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = tcp.call(ApiKey::DeleteTopics, 4, &delete);
    assert_eq!(deleted.responses[0].error_code, 0, "{deleted:?}");
    // Another topic takes the slot, with more data than the old reader's position.
    let mut next = 0;
    for n in 0..5 {
        next = tcp_produce_to(&mut tcp, "next", batch_of("next", n, 2)) + 2;
    }
    let mut new = Consumer::new(&session, "next", 0, 0);
    assert_eq!(one_sided_read_all(&mut new, next).len(), 10);
    assert_eq!(new.stats().located_polls, 0, "{:?}", new.stats());

    // The old reader's entries fail their checksum (another incarnation of the slot): it
    // asks the broker, which knows no such topic, instead of reading the other topic's data.
    match old.poll(1 << 20) {
        Err(RdmaError::Refused(message)) => assert!(message.contains("unknown"), "{message}"),
        other => panic!("expected the deleted topic to be refused, got {other:?}"),
    }
}

#[test]
fn readers_subscribing_at_once_while_the_partition_is_written_share_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = start(dir.path(), &[]);
    let mut tcp = broker.connect();
    tcp_produce(&mut tcp, batch_of("race", 0, 2));
    let total = 60i64;
    let addr = broker.addr;
    // Flushes move the watermark (the index's listener) while the readers subscribe.
    let writer = std::thread::spawn(move || {
        let mut tcp = Client::connect(addr);
        for n in 1..30 {
            tcp_produce(&mut tcp, batch_of("race", n, 2));
        }
    });
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let session = connect(&socket);
                let mut consumer = Consumer::new(&session, TOPIC, 0, 0);
                let mut read = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                // Tailing the writer: empty polls until its next batch is durable.
                while consumer.position() < total {
                    assert!(
                        Instant::now() < deadline,
                        "stuck at {}",
                        consumer.position()
                    );
                    let batches = consumer.poll(1 << 20).unwrap();
                    read.extend(values(batches.into_iter().map(|b| Bytes::from(b.bytes))));
                }
                (read, consumer.stats())
            })
        })
        .collect();
    writer.join().unwrap();
    let expected: Vec<String> = (0..30)
        .flat_map(|n| (0..2).map(move |i| format!("race-{n:05}-{i}")))
        .collect();
    for reader in readers {
        let (read, stats) = reader.join().unwrap();
        assert_eq!(read, expected);
        assert!(stats.published_polls > 0, "{stats:?}");
        // Every reader got the slot: none fell back to the control channel.
        assert_eq!(
            (stats.located_polls, stats.copied_polls),
            (0, 0),
            "{stats:?}"
        );
    }
}
