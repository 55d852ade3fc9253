//! DescribeProducers and DescribeLogDirs on one broker: an idempotent producer's epoch and last
//! sequence per partition (kept across kill -9: rebuilt from storage), and each partition's
//! stored size in the broker's one "log directory".

use crate::common::{idempotent_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

const TOPIC: &str = "described";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn produce(client: &mut Client, id: i64, epoch: i16, sequence: i32, count: i32) {
    let batch: Bytes = idempotent_batch(count, Compression::None, id, epoch, sequence).into();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// (producer id, epoch, last sequence).
type Active = (i64, i32, i32);

/// (partition, error, its active producers) for partitions 0, 1 and 9.
fn producers(client: &mut Client) -> Vec<(i32, i16, Vec<Active>)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name())
        .with_partition_indexes(vec![0, 1, 9])]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let active = p
                .active_producers
                .iter()
                .map(|a| (a.producer_id.0, a.producer_epoch, a.last_sequence))
                .collect();
            (p.partition_index, p.error_code, active)
        })
        .collect()
}

/// (log dir, [(topic, partition, size)]) for `topics` (None: all).
fn log_dirs(
    client: &mut Client,
    topics: Option<Vec<DescribableLogDirTopic>>,
) -> (String, Vec<(String, i32, i64)>) {
    let request = DescribeLogDirsRequest::default().with_topics(topics);
    let response: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 4, &request);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.results.len(), 1);
    let dir = &response.results[0];
    let mut sizes: Vec<(String, i32, i64)> = dir
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.partition_size))
        })
        .collect();
    sizes.sort();
    (dir.log_dir.to_string(), sizes)
}

#[test]
fn producers_and_log_dirs_are_described_and_producers_survive_kill9() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name())
        .with_num_partitions(2)
        .with_replication_factor(1)]);
    let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(created.topics[0].error_code, 0);
    let init = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let init: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &init);
    let (id, epoch) = (init.producer_id.0, init.producer_epoch);
    produce(&mut client, id, epoch, 0, 5);
    produce(&mut client, id, epoch, 5, 3);

    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let expected = vec![
        (0, 0, vec![(id, i32::from(epoch), 7)]),
        (1, 0, vec![]),
        (9, unknown, vec![]),
    ];
    assert_eq!(producers(&mut client), expected);

    let (dir, sizes) = log_dirs(&mut client, None);
    assert!(dir.starts_with("fs://"), "{dir}");
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes[0].2 > 0 && sizes[1].2 == 0, "{sizes:?}");
    let only_one = DescribableLogDirTopic::default()
        .with_topic(name())
        .with_partitions(vec![1]);
    let (_, sizes) = log_dirs(&mut client, Some(vec![only_one]));
    assert_eq!(sizes, vec![(TOPIC.to_string(), 1, 0)]);
    let (_, none) = log_dirs(&mut client, Some(vec![]));
    assert!(none.is_empty(), "{none:?}");

    broker = broker.kill_and_restart(&[]);
    let mut client = broker.connect();
    assert_eq!(producers(&mut client), expected);
}
