//! The broker's own state survives kill -9: producer ids never repeat, committed offsets stay.

use crate::common;
use crate::common::BrokerProcess;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

fn init_producer(broker: &BrokerProcess, version: i16) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        broker
            .connect()
            .call(ApiKey::InitProducerId, version, &request);
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

#[test]
fn producer_ids_never_repeat_across_crashes() {
    let mut broker = BrokerProcess::start(&[]);
    let mut seen = Vec::new();
    for _round in 0..3 {
        for version in [0, 4] {
            let (id, epoch) = init_producer(&broker, version);
            assert_eq!(epoch, 0);
            assert!(!seen.contains(&id), "producer id {id} handed out twice");
            seen.push(id);
        }
        broker = broker.kill_and_restart(&[]);
    }
}

#[test]
fn epoch_bumps_keep_the_id_and_stale_epochs_are_refused() {
    let broker = BrokerProcess::start(&[]);
    let (id, epoch) = init_producer(&broker, 4);
    let bump = |epoch: i16| {
        let request = InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        let response: InitProducerIdResponse =
            broker.connect().call(ApiKey::InitProducerId, 4, &request);
        response
    };
    let bumped = bump(epoch);
    assert_eq!(
        (
            bumped.error_code,
            bumped.producer_id.0,
            bumped.producer_epoch
        ),
        (0, id, 1)
    );
    let stale = bump(epoch);
    assert_eq!(
        stale.error_code,
        kafka_protocol::ResponseError::InvalidProducerEpoch.code()
    );
}

#[test]
fn transactional_producers_get_a_clear_error() {
    let broker = BrokerProcess::start(&[]);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            kafka_protocol::protocol::StrBytes::from_static_str("tx-1"),
        )))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        broker.connect().call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(
        response.error_code,
        kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code()
    );
}

/// Produces one idempotent batch to `idem`/0 and returns (error code, base offset).
fn produce_sequence(broker: &BrokerProcess, id: i64, epoch: i16, sequence: i32) -> (i16, i64) {
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let batch = common::idempotent_batch(
        5,
        kafka_protocol::records::Compression::None,
        id,
        epoch,
        sequence,
    );
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = broker.connect().call(ApiKey::Produce, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn retried_batches_are_answered_with_their_first_offsets_even_after_a_crash() {
    use kafka_protocol::ResponseError;
    let mut broker = BrokerProcess::start(&[]);
    let (id, epoch) = init_producer(&broker, 4);
    assert_eq!(produce_sequence(&broker, id, epoch, 0), (0, 0));
    assert_eq!(produce_sequence(&broker, id, epoch, 5), (0, 5));
    // A retry of the last batch: same offsets, nothing appended.
    assert_eq!(produce_sequence(&broker, id, epoch, 5), (0, 5));
    // A gap.
    assert_eq!(
        produce_sequence(&broker, id, epoch, 20).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    // Producer state is rebuilt from storage after kill -9.
    broker = broker.kill_and_restart(&[]);
    assert_eq!(
        produce_sequence(&broker, id, epoch, 5),
        (0, 5),
        "duplicate after restart"
    );
    assert_eq!(produce_sequence(&broker, id, epoch, 10), (0, 10));
    assert_eq!(
        produce_sequence(&broker, id, epoch - 1, 15).0,
        ResponseError::InvalidProducerEpoch.code()
    );
}

/// Commits `rounds` rounds of offsets (`round * 1000 + partition`) to every partition of
/// `topic` as group `group`: one internal-log record per partition and round.
fn commit_rounds(broker: &BrokerProcess, group: &str, topic: &str, rounds: std::ops::Range<i64>) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut client = broker.connect();
    for round in rounds {
        let partitions = (0..PARTITIONS)
            .map(|p| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(round * 1000 + i64::from(p))
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(partitions)]);
        let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
        assert!(response.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == 0));
    }
}

const PARTITIONS: i32 = 50;

#[test]
fn a_start_replays_the_last_snapshot_of_the_internal_log_and_what_followed_not_its_history() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let metrics = common::free_port();
    let metrics_flag = metrics.to_string();
    let flags = ["--metrics-listen", metrics_flag.as_str()];
    let mut broker = BrokerProcess::start(&flags);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse = broker.connect().call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0);
    let metric = |name: &str| {
        common::scrape_metrics(metrics)
            .get(&format!("hotwire_{name}"))
            .copied()
            .unwrap_or_else(|| panic!("no metric {name}"))
    };

    // 25,000 commit records of 50 live keys, then kill -9 and restart: twice.
    let mut rounds = 0;
    for _ in 0..2 {
        commit_rounds(&broker, "g", "t", rounds..rounds + 500);
        rounds += 500;
        let snapshots = metric("internal_log_snapshots_total");
        assert!(
            snapshots >= 2.0,
            "{snapshots} snapshots after {rounds} rounds"
        );
        broker = broker.kill_and_restart(&flags);
        let mut client = broker.connect();
        for p in 0..PARTITIONS {
            assert_eq!(
                client.committed("g", "t", p),
                (rounds - 1) * 1000 + i64::from(p),
                "partition {p}"
            );
        }
        // At most one snapshot's worth of records after it (10,000) plus the 50 restated.
        let replayed = metric("internal_log_replayed_records");
        assert!(
            (50.0..=10_100.0).contains(&replayed),
            "{replayed} records replayed of {}",
            rounds * 50
        );
        assert!(
            metric("internal_log_start") > 0.0,
            "the log start never moved"
        );
    }
}
