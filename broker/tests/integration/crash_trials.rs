//! Randomized `kill -9` trials of commits and data.
//!
//! Each trial runs, against one broker on one storage directory, at once:
//! - per partition, a committer that moves one group's offset forward by TCP OffsetCommit or by
//!   one-sided fetch-and-add (then `Persist`), chosen at random, on the same slot;
//! - per partition, a committer that sends bursts of OffsetCommit requests back to back on one
//!   connection (librdkafka's test 0030 shape) and, between crashes, checks that OffsetFetch
//!   returns the last commit of each burst;
//! - a producer of acks=all batches with unique values.
//!
//! The broker is killed with SIGKILL at a random moment, restarted on the same directory (so
//! later trials replay what earlier restarts wrote and compacted), and checked: no
//! acknowledged commit is lost or overtaken by an older one, and every acknowledged record is
//! there exactly once. `HOTWIRE_CRASH_TRIALS` (default 10) sets the number of trials and
//! `HOTWIRE_CRASH_SEED` the seed; a failure prints the seed. `scripts/crash-trials.sh` runs the
//! long version.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{encode_batch, free_port, BrokerProcess};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, GroupId,
    ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rdma::client::{Committer, Session};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 3;
const MIXED_GROUP: &str = "mixed";
const BURST_GROUP: &str = "bursts";
const BURST: i64 = 20;

/// Small, fast settings so that trials flush, compact and persist often.
const BROKER_FLAGS: &[&str] = &[
    "--flush-interval-ms",
    "2",
    "--compaction-interval-ms",
    "50",
    "--compaction-min-objects",
    "4",
    "--compaction-min-mib",
    "0",
    "--rdma-commit-interval-ms",
    "20",
];

/// splitmix64: reproducible from the printed seed, no dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the broker acknowledged and what was only attempted, per (group, partition).
#[derive(Default)]
struct Ledger {
    /// Highest commit acknowledged.
    acked: HashMap<(String, i32), i64>,
    /// Highest commit ever sent (or added by fetch-and-add, durable or not).
    attempted: HashMap<(String, i32), i64>,
    /// Values of records acknowledged by acks=all.
    records_acked: HashSet<String>,
    /// Values of every record sent.
    records_sent: HashSet<String>,
    /// Violations seen while the broker was up.
    failures: Vec<String>,
}

impl Ledger {
    fn attempt(&mut self, group: &str, partition: i32, offset: i64) {
        let slot = self
            .attempted
            .entry((group.to_string(), partition))
            .or_insert(offset);
        *slot = (*slot).max(offset);
    }

    fn ack(&mut self, group: &str, partition: i32, offset: i64) {
        let slot = self
            .acked
            .entry((group.to_string(), partition))
            .or_insert(offset);
        *slot = (*slot).max(offset);
    }
}

/// A raw connection whose calls fail instead of panicking, since the broker dies under them.
pub(crate) struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub(crate) fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Self {
            stream,
            correlation: 0,
        })
    }

    fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> std::io::Result<()> {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("crash-trials")))
            .encode(&mut buf, api.request_header_version(version))
            .map_err(std::io::Error::other)?;
        body.encode(&mut buf, version)
            .map_err(std::io::Error::other)?;
        let mut frame = (buf.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame)
    }

    fn receive<R: Decodable>(&mut self, api: ApiKey, version: i16) -> std::io::Result<R> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame)?;
        let mut frame = Bytes::from(frame);
        ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(std::io::Error::other)?;
        R::decode(&mut frame, version).map_err(std::io::Error::other)
    }

    pub(crate) fn call<T: Encodable, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> std::io::Result<R> {
        self.send(api, version, body)?;
        self.receive(api, version)
    }
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn commit_request(group: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])])
}

fn commit_ok(response: &OffsetCommitResponse) -> bool {
    response.topics[0].partitions[0].error_code == 0
}

fn fetch_committed(conn: &mut Conn, group: &str) -> std::io::Result<Vec<i64>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name())
            .with_partition_indexes((0..PARTITIONS).collect())]));
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request)?;
    let mut offsets = vec![-1; PARTITIONS as usize];
    for p in &response.topics[0].partitions {
        offsets[p.partition_index as usize] = p.committed_offset;
    }
    Ok(offsets)
}

fn create_topic(addr: SocketAddr) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name())
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse = Conn::open(addr)
        .unwrap()
        .call(ApiKey::CreateTopics, 5, &request)
        .unwrap();
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// Moves `MIXED_GROUP`'s offset of `partition` forward, by TCP or by fetch-and-add, until the
/// broker is gone.
fn mixed_committer(
    addr: SocketAddr,
    socket: &Path,
    partition: i32,
    mut current: i64,
    ledger: &Mutex<Ledger>,
    mut rng: Rng,
) {
    let Ok(mut conn) = Conn::open(addr) else {
        return;
    };
    // The one-sided listener may start a moment after the Kafka one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let session = loop {
        match Session::connect(socket, "test") {
            Ok(session) => break session,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(_) => return,
        }
    };
    let Ok(committer) = Committer::join(&session, MIXED_GROUP, TOPIC, &[partition]) else {
        return;
    };
    loop {
        let step = 1 + rng.below(50) as i64;
        if rng.below(2) == 0 {
            let offset = current + step;
            ledger
                .lock()
                .unwrap()
                .attempt(MIXED_GROUP, partition, offset);
            match conn.call(
                ApiKey::OffsetCommit,
                7,
                &commit_request(MIXED_GROUP, partition, offset),
            ) {
                Ok(response) if commit_ok(&response) => {
                    ledger.lock().unwrap().ack(MIXED_GROUP, partition, offset);
                    current = offset;
                }
                _ => return,
            }
        } else {
            ledger
                .lock()
                .unwrap()
                .attempt(MIXED_GROUP, partition, current + step);
            if committer.add(partition, step as u64).is_err() {
                return;
            }
            current += step;
            if rng.below(3) == 0 {
                if committer.persist().is_err() {
                    return;
                }
                ledger.lock().unwrap().ack(MIXED_GROUP, partition, current);
            }
        }
    }
}

/// Sends bursts of commits back to back on one connection; checks each fully answered burst
/// against OffsetFetch.
fn burst_committer(addr: SocketAddr, partition: i32, mut current: i64, ledger: &Mutex<Ledger>) {
    let Ok(mut conn) = Conn::open(addr) else {
        return;
    };
    loop {
        ledger
            .lock()
            .unwrap()
            .attempt(BURST_GROUP, partition, current + BURST);
        for i in 1..=BURST {
            let request = commit_request(BURST_GROUP, partition, current + i);
            if conn.send(ApiKey::OffsetCommit, 7, &request).is_err() {
                return;
            }
        }
        for i in 1..=BURST {
            match conn.receive::<OffsetCommitResponse>(ApiKey::OffsetCommit, 7) {
                Ok(response) if commit_ok(&response) => {
                    ledger
                        .lock()
                        .unwrap()
                        .ack(BURST_GROUP, partition, current + i);
                }
                _ => return,
            }
        }
        current += BURST;
        match fetch_committed(&mut conn, BURST_GROUP) {
            Ok(offsets) if offsets[partition as usize] == current => {}
            Ok(offsets) => {
                ledger.lock().unwrap().failures.push(format!(
                    "burst on partition {partition}: last commit {current} answered, \
                     OffsetFetch then says {}",
                    offsets[partition as usize]
                ));
                return;
            }
            Err(_) => return,
        }
    }
}

/// Produces acks=all batches of unique values until the broker is gone.
fn producer(addr: SocketAddr, trial: usize, ledger: &Mutex<Ledger>, mut rng: Rng) {
    let Ok(mut conn) = Conn::open(addr) else {
        return;
    };
    for n in 0.. {
        let values: Vec<String> = (0..1 + rng.below(5))
            .map(|i| format!("t{trial}-b{n}-r{i}"))
            .collect();
        let batch = encode_batch(
            values.iter().map(|v| Bytes::from(v.clone())),
            Compression::None,
            -1,
            -1,
            0,
        );
        ledger
            .lock()
            .unwrap()
            .records_sent
            .extend(values.iter().cloned());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(rng.below(PARTITIONS as u64) as i32)
                    .with_records(Some(batch.into()))])]);
        match conn.call::<_, ProduceResponse>(ApiKey::Produce, 7, &request) {
            Ok(response) if response.responses[0].partition_responses[0].error_code == 0 => {
                ledger.lock().unwrap().records_acked.extend(values);
            }
            _ => return,
        }
    }
}

/// Every record value stored in `partition`, in offset order.
fn read_partition(conn: &mut Conn, partition: i32) -> Vec<String> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 2, &request).unwrap();
    let end = response.topics[0].partitions[0].offset;
    let mut offset = 0;
    let mut values = Vec::new();
    while offset < end {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = conn.call(ApiKey::Fetch, 11, &request).unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(
            data.error_code, 0,
            "fetch at {offset} of partition {partition}"
        );
        let mut bytes = data.records.clone().unwrap_or_default();
        let before = offset;
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                if record.offset >= offset {
                    values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
                    offset = record.offset + 1;
                }
            }
        }
        assert!(
            offset > before,
            "no progress at {offset} of partition {partition}"
        );
    }
    values
}

/// Checks the restarted broker against the ledger; returns the committed offsets found.
fn check(broker: &BrokerProcess, ledger: &Ledger, trial: usize) -> HashMap<String, Vec<i64>> {
    let mut conn = Conn::open(broker.addr).unwrap();
    let mut found = HashMap::new();
    for group in [MIXED_GROUP, BURST_GROUP] {
        let offsets = fetch_committed(&mut conn, group).unwrap();
        for (partition, &offset) in offsets.iter().enumerate() {
            let key = (group.to_string(), partition as i32);
            let acked = ledger.acked.get(&key).copied().unwrap_or(-1);
            let attempted = ledger.attempted.get(&key).copied().unwrap_or(-1);
            assert!(
                offset >= acked,
                "trial {trial}: {group}/{partition}: commit {acked} was acknowledged, \
                 OffsetFetch after the crash says {offset}"
            );
            assert!(
                offset <= attempted,
                "trial {trial}: {group}/{partition}: OffsetFetch says {offset}, \
                 above anything committed ({attempted})"
            );
        }
        found.insert(group.to_string(), offsets);
    }
    let mut seen = HashSet::new();
    for partition in 0..PARTITIONS {
        for value in read_partition(&mut conn, partition) {
            assert!(
                ledger.records_sent.contains(&value),
                "trial {trial}: record {value} was never sent"
            );
            assert!(
                seen.insert(value.clone()),
                "trial {trial}: record {value} stored twice"
            );
        }
    }
    let lost: Vec<&String> = ledger.records_acked.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "trial {trial}: {} acknowledged records lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    found
}

/// The seed of a randomized test: `HOTWIRE_CRASH_SEED`, or the clock's nanoseconds (printed
/// by each test, so that a failure can be replayed).
pub(crate) fn seed() -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    env_or("HOTWIRE_CRASH_SEED", clock)
}

pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_acknowledged_commit_or_record_is_lost_or_overtaken_across_random_kill_9() {
    let trials: usize = env_or("HOTWIRE_CRASH_TRIALS", 10);
    let seed = seed();
    eprintln!("crash trials: {trials} trials, HOTWIRE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rdma.sock");
    let mut flags = vec!["--rdma-shm-socket", socket.to_str().unwrap()];
    flags.extend_from_slice(BROKER_FLAGS);
    let mut broker = BrokerProcess::start_on(tempfile::tempdir().unwrap(), free_port(), &flags);
    create_topic(broker.addr);

    let mut ledger = Ledger::default();
    let mut current: HashMap<String, Vec<i64>> = [MIXED_GROUP, BURST_GROUP]
        .iter()
        .map(|g| (g.to_string(), vec![0; PARTITIONS as usize]))
        .collect();
    let started = Instant::now();
    for trial in 0..trials {
        let shared = Arc::new(Mutex::new(std::mem::take(&mut ledger)));
        let mut workers = Vec::new();
        for partition in 0..PARTITIONS {
            let (addr, socket, ledger) = (broker.addr, socket.clone(), shared.clone());
            let start = current[MIXED_GROUP][partition as usize].max(0);
            let worker_rng = Rng(rng.next());
            workers.push(thread::spawn(move || {
                mixed_committer(addr, &socket, partition, start, &ledger, worker_rng)
            }));
            let (addr, ledger) = (broker.addr, shared.clone());
            let start = current[BURST_GROUP][partition as usize].max(0);
            workers.push(thread::spawn(move || {
                burst_committer(addr, partition, start, &ledger)
            }));
        }
        {
            let (addr, ledger, worker_rng) = (broker.addr, shared.clone(), Rng(rng.next()));
            workers.push(thread::spawn(move || {
                producer(addr, trial, &ledger, worker_rng)
            }));
        }
        thread::sleep(Duration::from_millis(100 + rng.below(1400)));
        let killed = Instant::now();
        broker = broker.kill_and_restart(&flags);
        let restarted = Instant::now();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        ledger = Arc::try_unwrap(shared)
            .unwrap_or_else(|_| panic!("workers still hold the ledger"))
            .into_inner()
            .unwrap();
        assert!(
            ledger.failures.is_empty(),
            "trial {trial} (seed {seed}): {:?}",
            ledger.failures
        );
        let checking = Instant::now();
        current = check(&broker, &ledger, trial);
        eprintln!(
            "trial {trial}: restart {:.2}s, workers stopped {:.2}s, check {:.2}s",
            (restarted - killed).as_secs_f64(),
            (checking - restarted).as_secs_f64(),
            checking.elapsed().as_secs_f64()
        );
        // What a trial reads back is the floor of what the next may find.
        for (group, offsets) in &current {
            for (partition, &offset) in offsets.iter().enumerate() {
                ledger.ack(group, partition as i32, offset);
            }
        }
    }
    let acked = ledger.records_acked.len();
    let commits: i64 = ledger.acked.values().sum();
    eprintln!(
        "crash trials passed: {trials} trials in {:.1}s, {acked} acknowledged records, \
         committed offsets summing to {commits}",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0 && commits > 0, "the trials did no work");
}
