//! Broker processes in a cluster on one storage root (etcd started on loopback). Fencing: a
//! leader paused with SIGSTOP until its shard moved acknowledges nothing when it resumes, and
//! the log — as the new leader serves it, and as the old one recovers it when the shard comes
//! back to it — holds exactly what was acknowledged. Planned moves: drains, and moves for
//! load, lose nothing acknowledged. Users kept in etcd authenticate on every broker.

use crate::common;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::cluster::{
    admin, drain, group_led_by, set_user, shard_leaders, start_in_cluster, start_polling,
    wait_spread, wait_status,
};
use crate::common::etcd::EtcdServer;
use crate::common::{encode_batch, free_port, plain_login, produce_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;

const TOPIC: &str = "fenced";

fn produce_request(value: &str) -> ProduceRequest {
    produce_to(TOPIC, value, -1, 0)
}

/// One record to partition 0 of `topic`, from `producer_id` (-1: not idempotent) at epoch 0
/// and `sequence`.
fn produce_to(topic: &str, value: &str, producer_id: i64, sequence: i32) -> ProduceRequest {
    let epoch = if producer_id < 0 { -1 } else { 0 };
    let batch: Bytes = encode_batch(
        [Bytes::from(value.to_string())],
        Compression::None,
        producer_id,
        epoch,
        sequence,
    )
    .into();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

/// (error code, base offset) of a produce answered by `client`.
fn produce(client: &mut Client, value: &str) -> (i16, i64) {
    answer(client, &produce_request(value))
}

/// (error code, base offset) of `request` answered by `client`.
fn answer(client: &mut Client, request: &ProduceRequest) -> (i16, i64) {
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// Partition 0's leader as `client`'s broker sees it (creating the topic if needed).
fn leader(client: &mut Client) -> i32 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]))
        .with_allow_auto_topic_creation(true);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &request);
    response.topics[0]
        .partitions
        .first()
        .map_or(-1, |p| p.leader_id.0)
}

/// Produces `value` until it is acknowledged (a new leader may still be opening the shard:
/// NOT_LEADER_OR_FOLLOWER until then, as clients see and retry); returns its offset.
fn produce_until_ok(client: &mut Client, value: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match produce(client, value) {
            (0, offset) => return offset,
            (code, _) => {
                assert!(
                    Instant::now() < deadline,
                    "{value:?} refused with {code} for 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn wait_leader(client: &mut Client, wanted: impl Fn(i32) -> bool, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        let leader = leader(client);
        if wanted(leader) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "leader still {leader} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every record value of partition 0, read from `client`'s broker.
fn values(client: &mut Client) -> Vec<String> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
        for record in set.records {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[test]
fn a_paused_leader_acknowledges_nothing_after_its_shard_moved() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("fencing");
    let start = |node: &str| start_in_cluster(&storage, &cluster, node, &[]);
    let brokers = [start("1"), start("2")];
    // Until the shards have settled (the second broker's arrival moves some): the leader
    // accepts the first write.
    let mut probe = brokers[0].connect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let old = loop {
        let leader = wait_leader(&mut probe, |l| l > 0, Duration::from_secs(20));
        let mut client = brokers[(leader - 1) as usize].connect();
        match produce(&mut client, "before") {
            (0, offset) => {
                assert_eq!(offset, 0);
                break leader;
            }
            (code, _) => {
                assert!(
                    Instant::now() < deadline,
                    "no leader accepts a write: {code}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let (paused, survivor) = if old == 1 {
        (&brokers[0], &brokers[1])
    } else {
        (&brokers[1], &brokers[0])
    };
    let mut late = paused.connect();

    paused.signal("STOP");
    let stopped = Instant::now();
    let mut to_new = survivor.connect();
    let new = wait_leader(&mut to_new, |l| l > 0 && l != old, Duration::from_secs(15));
    let moved_after = stopped.elapsed();
    // Queued to the paused leader; it reads this only when it resumes.
    late.send(ApiKey::Produce, 9, &produce_request("late"));
    assert_eq!(produce_until_ok(&mut to_new, "after"), 1);

    paused.signal("CONT");
    late.set_read_timeout(Duration::from_secs(15));
    let mut frame = late
        .read_frame()
        .expect("an answer from the resumed broker");
    ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9)).unwrap();
    let answer = ProduceResponse::decode(&mut frame, 9).unwrap();
    let code = answer.responses[0].partition_responses[0].error_code;
    assert_eq!(
        code,
        ResponseError::NotLeaderOrFollower.code(),
        "the resumed old leader answered {code} to a write after its fence"
    );
    eprintln!("paused leader {old}: shard moved to {new} after {moved_after:?}");
    assert_eq!(values(&mut to_new), ["before", "after"]);

    // The shard goes back to the old leader (now registered again) when the survivor dies:
    // it recovers exactly the acknowledged log.
    drop(to_new);
    let [a, b] = brokers;
    let (paused, survivor) = if old == 1 { (a, b) } else { (b, a) };
    drop(survivor);
    let mut back = paused.connect();
    wait_leader(&mut back, |l| l == old, Duration::from_secs(20));
    assert_eq!(produce_until_ok(&mut back, "back"), 2);
    assert_eq!(values(&mut back), ["before", "after", "back"]);
    // Each leader appended to the WAL in a directory of its own epoch, and the one that came
    // back holds only its own (the older ones were retired or are read-only to it).
    let epochs_in_wal: Vec<String> = std::fs::read_dir(root.path().join("shards"))
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path().join("wal")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('w'))
        .collect();
    assert!(
        !epochs_in_wal.is_empty(),
        "no leader wrote the append-only WAL"
    );
}

#[test]
fn a_cluster_broker_reports_what_it_leads_in_its_metrics() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("metrics");
    let metrics = free_port();
    let metrics_flag = metrics.to_string();
    let broker = start_in_cluster(
        &storage,
        &cluster,
        "7",
        &["--metrics-listen", &metrics_flag],
    );
    let mut client = broker.connect();
    wait_leader(&mut client, |l| l == 7, Duration::from_secs(20));
    produce_until_ok(&mut client, "one");
    let scraped = common::scrape_metrics(metrics);
    assert_eq!(
        scraped.get("hotwire_cluster_shards_led"),
        Some(&2.0),
        "{scraped:?}"
    );
    assert_eq!(scraped.get("hotwire_cluster_controller"), Some(&1.0));
    assert_eq!(scraped.get("hotwire_cluster_lease_valid"), Some(&1.0));
    assert_eq!(scraped.get("hotwire_cluster_brokers"), Some(&1.0));
    assert_eq!(scraped.get("hotwire_cluster_takeovers_total"), Some(&2.0));
    // Every engine's own metrics, labelled with its shard.
    let flushed: f64 = (0..2)
        .filter_map(|s| scraped.get(&format!("hotwire_flush_objects_total{{shard=\"{s}\"}}")))
        .sum();
    assert!(flushed >= 1.0, "{scraped:?}");
}

/// While etcd is out of reach a leader refuses writes; when it is sure of its lease again, a
/// batch an idempotent producer had pipelined behind a refused one must not be appended (a
/// gap) nor answered OUT_OF_ORDER_SEQUENCE_NUMBER (which makes librdkafka bump its epoch and
/// renumber, hence duplicate, what it had in flight elsewhere): it is refused retriably until
/// the refused batch comes back.
#[test]
fn an_idempotent_producer_keeps_its_order_across_an_etcd_outage() {
    let mut etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let broker = start_in_cluster(&storage, &etcd.cluster_url("outage"), "1", &[]);
    let mut client = broker.connect();
    wait_leader(&mut client, |l| l == 1, Duration::from_secs(20));
    const PRODUCER: i64 = 77;
    let send = |client: &mut Client, value: &str, sequence: i32| {
        answer(client, &produce_to(TOPIC, value, PRODUCER, sequence))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(&mut client, "a", 0).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never accepted a write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    etcd.kill();
    // Past the 1 s lease: the leader cannot be sure of it any more.
    std::thread::sleep(Duration::from_millis(1_500));
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(send(&mut client, "b", 1).0, not_leader);

    etcd.restart();
    // Sure again once a write elsewhere is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer(&mut client, &produce_to("probe", "p", -1, 0)).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "writes never resumed after etcd returned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        send(&mut client, "c", 2).0,
        not_leader,
        "the batch behind the refused one"
    );
    assert_eq!(send(&mut client, "b", 1), (0, 1));
    assert_eq!(send(&mut client, "c", 2), (0, 2));
    assert_eq!(send(&mut client, "c", 2), (0, 2), "a retry is a duplicate");
    assert_eq!(values(&mut client), ["a", "b", "c"]);
}

#[test]
fn an_operator_drains_a_broker_with_hotwire_admin() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("admin");
    let start = |node: &str| start_in_cluster(&storage, &cluster, node, &[]);
    let brokers = [start("1"), start("2")];
    wait_status(&cluster, "2 shards, controller");
    let balanced = |text: &str| text.matches("leads 1 shard(s)").count() == 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !balanced(&admin(&cluster, &["status"]).1) {
        assert!(
            Instant::now() < deadline,
            "the shards never spread over both brokers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Drain the leader of partition 0, which holds 40 flush objects: too few for a periodic
    // compaction (64), too many to hand over unfolded (16), so the leader folds them first.
    let mut probe = brokers[0].connect();
    let drained = wait_leader(&mut probe, |l| l > 0, Duration::from_secs(20));
    let other = 3 - drained;
    let mut client = brokers[(drained - 1) as usize].connect();
    let before: Vec<String> = (0..40).map(|i| format!("before the drain {i}")).collect();
    for value in &before {
        produce_until_ok(&mut client, value);
    }
    let segments = || {
        (0..2)
            .filter_map(|k| std::fs::read_dir(root.path().join(format!("shards/{k:05}/seg"))).ok())
            .map(|dir| dir.count())
            .sum::<usize>()
    };
    assert_eq!(segments(), 0, "compacted before the drain");

    let drained_id = drained.to_string();
    let (ok, text) = admin(&cluster, &["drain", &drained_id, "--wait", "30"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "broker {drained} is draining; it leads 0 shard(s)"
        )),
        "{text}"
    );
    let status = wait_status(&cluster, "leads 0 shard(s) (draining)");
    assert!(
        status.contains(&format!("  0: leader {other},"))
            && status.contains(&format!("  1: leader {other},")),
        "{status}"
    );
    assert!(
        segments() > 0,
        "the shard was handed over without compacting it"
    );
    // The drained broker's shard is served by the other one, with everything written before.
    let mut client = brokers[(other - 1) as usize].connect();
    produce_until_ok(&mut client, "after the drain");
    let mut expected = before.clone();
    expected.push("after the drain".to_string());
    assert_eq!(values(&mut client), expected);

    let (ok, text) = admin(&cluster, &["undrain", &drained_id]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !balanced(&admin(&cluster, &["status"]).1) {
        assert!(
            Instant::now() < deadline,
            "broker 1 never received a shard again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (ok, text) = admin("etcd://127.0.0.1:1/admin", &["status"]);
    assert!(!ok && text.contains("hotwire admin:"), "{text}");
}

/// Metadata and FindCoordinator name the leader etcd holds now, even on a broker whose last
/// read of the cluster is seconds old: a stale answer sends clients back to a broker that has
/// handed the shard over, and librdkafka 2.0 can then stay stuck on it (seen in the end-to-end
/// kill -9 test: a group consumer stopped on one partition, with no error). Broker 1 (the
/// controller) reads the cluster every 50 ms, broker 2 every 5 s; broker 1 is drained, and
/// broker 2 is asked at once.
#[test]
fn metadata_names_the_leader_etcd_holds_between_a_brokers_reads() {
    drain_the_fast_broker_and_ask_the_slow_one(true);
}

/// As above, FindCoordinator asked first (either answer refreshes the broker's view).
#[test]
fn find_coordinator_names_the_coordinator_etcd_holds_between_a_brokers_reads() {
    drain_the_fast_broker_and_ask_the_slow_one(false);
}

fn drain_the_fast_broker_and_ask_the_slow_one(metadata_first: bool) {
    const PARTITIONS: &[&str] = &["--default-partitions", "8"];
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("fresh");
    let first = start_in_cluster(&storage, &cluster, "1", PARTITIONS);
    wait_status(&cluster, "2 shards, controller 1");
    let slow = start_polling(&storage, &cluster, "2", "5000", PARTITIONS);
    wait_spread(&cluster);
    let mut client = slow.connect();
    wait_leader(&mut client, |l| l > 0, Duration::from_secs(30));
    // A group whose coordinator moves with the drain: one in broker 1's shard.
    let group = group_led_by(&cluster, 1);
    drain(&cluster, 1, 2);
    // Within tens of milliseconds of etcd naming broker 2 for every shard, while broker 2's
    // own view is most likely seconds older.
    let ask_metadata = |client: &mut Client| {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
        let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &request);
        let leaders: Vec<i32> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id.0)
            .collect();
        assert_eq!(leaders, vec![2; 8], "Metadata named a stale leader");
    };
    if metadata_first {
        ask_metadata(&mut client);
    }
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from(group))
        .with_key_type(0);
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &request);
    assert_eq!(
        (response.error_code, response.node_id.0),
        (0, 2),
        "FindCoordinator named a stale coordinator"
    );
    if !metadata_first {
        ask_metadata(&mut client);
    }
    drop(first);
}

#[test]
fn the_controller_moves_shards_for_load_when_counts_are_even() {
    const BUSY: &str = "busy";
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("load");
    let start = |node: &str| {
        BrokerProcess::start_shared(
            &storage,
            free_port(),
            &[
                "--node-id",
                node,
                "--cluster",
                &cluster,
                "--cluster-shards",
                "4",
                "--cluster-lease-s",
                "1",
                "--cluster-poll-ms",
                "50",
                "--cluster-load-min-gap-bytes-s",
                "50000",
                "--default-partitions",
                "32",
            ],
        )
    };
    let brokers = [start("1"), start("2")];
    wait_status(&cluster, "4 shards, controller");
    let even = |leaders: &BTreeMap<u32, i32>| {
        leaders.len() == 4 && leaders.values().filter(|l| **l == 1).count() == 2
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !even(&shard_leaders(&cluster)) {
        assert!(Instant::now() < deadline, "shards never spread 2 and 2");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = shard_leaders(&cluster);

    // One partition in each of broker 1's two shards receives all the load: broker 1 flushes
    // ~2 MB/s, broker 2 nothing, counts are even (2 and 2).
    let mut client = brokers[0].connect();
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(BUSY))))]))
        .with_allow_auto_topic_creation(true);
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    let topic = &metadata.topics[0];
    assert_eq!(topic.partitions.len(), 32);
    let mut hot: BTreeMap<u32, i32> = BTreeMap::new(); // shard -> partition
    for p in 0..32 {
        let shard = hotwire_broker::cluster::shards::of_partition(
            topic.topic_id,
            p,
            hotwire_broker::cluster::model::ClusterSettings {
                shards: 4,
                placement: hotwire_broker::cluster::shards::PLACEMENT,
            },
        );
        if before[&shard] == 1 {
            hot.entry(shard).or_insert(p);
        }
    }
    assert_eq!(
        hot.len(),
        2,
        "broker 1's shards {before:?} hold no partition"
    );

    let mut acked: BTreeMap<i32, i64> = hot.values().map(|p| (*p, 0)).collect();
    // Batches answered with an error: not acknowledged, so possibly written (a plain producer
    // is at least once, as on Kafka: a batch appended before the hand-over may be flushed by
    // it although its answer was NOT_LEADER_OR_FOLLOWER).
    let mut refused: BTreeMap<i32, Vec<i16>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checked = Instant::now();
    let (moved, after) = loop {
        for partition in acked.keys().copied().collect::<Vec<_>>() {
            // Once moved, the partition's producer would follow it to its new leader: here it
            // stops, so that the count of records it holds is known.
            match produce_batch(&mut client, BUSY, partition, 16, 4096) {
                (0, offset) => {
                    // Nothing acknowledged is lost, nothing acknowledged twice.
                    let before = acked[&partition];
                    let unsure = 16 * refused.get(&partition).map_or(0, Vec::len) as i64;
                    assert!(
                        offset >= before
                            && offset <= before + unsure
                            && (offset - before) % 16 == 0,
                        "partition {partition}: offset {offset} after {before} acknowledged"
                    );
                    *acked.get_mut(&partition).unwrap() = offset + 16;
                }
                (code, _) => refused.entry(partition).or_default().push(code),
            }
        }
        if checked.elapsed() > Duration::from_millis(500) {
            checked = Instant::now();
            let now = shard_leaders(&cluster);
            if let Some((&shard, _)) = hot.iter().find(|(shard, _)| now.get(shard) == Some(&2)) {
                if even(&now) {
                    break (shard, now);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no busy shard moved: {:?}",
            shard_leaders(&cluster)
        );
    };
    eprintln!(
        "shards {before:?} -> {after:?}; busy shards {hot:?}; acked {acked:?}; refused {refused:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|(s, l)| hot.contains_key(s) && **l == 1)
            .count(),
        1,
        "one busy shard each: {after:?}"
    );

    // The moved partition's records are all on its new leader, the next one follows them.
    let partition = hot[&moved];
    let mut client = brokers[1].connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let offset = loop {
        match produce_batch(&mut client, BUSY, partition, 1, 10) {
            (0, offset) => break offset,
            (code, _) => assert!(Instant::now() < deadline, "refused with {code}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Every acknowledged record is on the new leader; beyond them only whole batches that were
    // answered with an error.
    let unsure = 16 * refused.get(&partition).map_or(0, Vec::len) as i64;
    let before = acked[&partition];
    assert!(
        offset >= before && offset <= before + unsure && (offset - before) % 16 == 0,
        "offset {offset} on the new leader after {before} acknowledged; refused {refused:?}"
    );
}

/// (error code) of a SASL/PLAIN login on a fresh connection of `client`.
#[test]
fn cluster_users_live_in_etcd_and_each_listener_advertises_its_own_addresses() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("sasl");
    set_user(&cluster, "alice", "pa55");
    let sasl_ports = [free_port(), free_port()];
    let brokers: Vec<BrokerProcess> = (0..2)
        .map(|i| {
            let plain = free_port();
            let listeners = format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{}", sasl_ports[i]);
            let node = (i + 1).to_string();
            let args = [
                "--node-id",
                &node,
                "--cluster",
                &cluster,
                "--cluster-shards",
                "2",
                "--cluster-lease-s",
                "1",
                "--listeners",
                &listeners,
            ];
            BrokerProcess::start_shared(&storage, plain, &args)
        })
        .collect();
    wait_status(&cluster, "2 shards, controller");
    for (i, port) in sasl_ports.iter().enumerate() {
        let mut client = Client::connect(*port);
        assert_eq!(plain_login(&mut client, "alice", "wrong"), 58, "broker {i}");
        let mut client = Client::connect(*port);
        assert_eq!(plain_login(&mut client, "alice", "pa55"), 0, "broker {i}");
        // Metadata through the SASL listener names every broker's SASL address.
        let metadata: MetadataResponse =
            client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
        let mut ports: Vec<i32> = metadata.brokers.iter().map(|b| b.port).collect();
        ports.sort();
        let mut want: Vec<i32> = sasl_ports.iter().map(|p| i32::from(p.port())).collect();
        want.sort();
        assert_eq!(ports, want);
    }
    drop(brokers);
}
