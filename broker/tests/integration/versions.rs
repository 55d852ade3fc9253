//! Every advertised version of every served API round-trips: the request decodes, the response
//! encodes, and a client decoding it in that version sees no error.

use crate::common::{record_batch, BrokerProcess};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// The range the broker advertises for `api`.
fn advertised(broker: &BrokerProcess, api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let response: ApiVersionsResponse =
        broker
            .connect()
            .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let entry = response
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .unwrap_or_else(|| panic!("{api:?} not advertised"));
    entry.min_version..=entry.max_version
}

#[test]
fn api_versions_in_every_version() {
    let broker = BrokerProcess::start(&[]);
    for version in advertised(&broker, ApiKey::ApiVersions) {
        let response: ApiVersionsResponse =
            broker
                .connect()
                .call(ApiKey::ApiVersions, version, &ApiVersionsRequest::default());
        assert_eq!(response.error_code, 0, "v{version}");
        assert!(response.api_keys.len() >= 8, "v{version}");
    }
}

#[test]
fn topics_metadata_and_configs_in_every_version() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    for version in advertised(&broker, ApiKey::CreateTopics) {
        let topic = format!("created-v{version}");
        let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(&topic))
            .with_num_partitions(3)
            .with_replication_factor(1)]);
        let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, version, &request);
        assert_eq!(response.topics[0].error_code, 0, "CreateTopics v{version}");
    }
    for version in advertised(&broker, ApiKey::Metadata) {
        let topics = (version >= 1)
            .then(|| vec![MetadataRequestTopic::default().with_name(Some(name("created-v2")))]);
        let request = MetadataRequest::default().with_topics(topics.or(Some(vec![])));
        let response: MetadataResponse = client.call(ApiKey::Metadata, version, &request);
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_ref() == Some(&name("created-v2")))
            .unwrap_or_else(|| panic!("Metadata v{version} lacks the topic"));
        assert_eq!(topic.error_code, 0);
        assert_eq!(topic.partitions.len(), 3, "Metadata v{version}");
        assert_eq!(response.brokers.len(), 1);
    }
    for version in advertised(&broker, ApiKey::DescribeConfigs) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("created-v2"))
                .with_configuration_keys(None),
        ]);
        let response: DescribeConfigsResponse =
            client.call(ApiKey::DescribeConfigs, version, &request);
        assert_eq!(
            response.results[0].error_code, 0,
            "DescribeConfigs v{version}"
        );
        assert!(response.results[0]
            .configs
            .iter()
            .any(|c| c.name.as_str() == "retention.ms"));
    }
    for version in advertised(&broker, ApiKey::DeleteTopics) {
        let topic = name(&format!("created-v{}", version + 1));
        let request = if version >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_name(Some(topic))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic])
        };
        let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, version, &request);
        assert_eq!(
            response.responses[0].error_code, 0,
            "DeleteTopics v{version}"
        );
    }
}

#[test]
fn produce_fetch_and_list_offsets_in_every_version() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    let mut expected_end = 0i64;
    for version in advertised(&broker, ApiKey::Produce) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("rw"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(record_batch(
                        4,
                        Compression::Lz4,
                    ))))])]);
        let response: ProduceResponse = client.call(ApiKey::Produce, version, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "Produce v{version}");
        assert_eq!(partition.base_offset, expected_end, "Produce v{version}");
        expected_end += 4;
    }
    for version in advertised(&broker, ApiKey::Fetch) {
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("rw"))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(4)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, version, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "Fetch v{version}");
        assert_eq!(partition.high_watermark, expected_end);
        let mut records = partition.records.clone().unwrap();
        let batches = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
            .unwrap_or_else(|e| panic!("Fetch v{version} records: {e}"));
        let first = &batches[0].records[0];
        assert_eq!(first.offset, 4, "Fetch v{version}");
        assert_eq!(first.value.as_deref(), Some(&b"value-0"[..]));
    }
    for version in advertised(&broker, ApiKey::ListOffsets) {
        for (timestamp, want) in [(-1i64, expected_end), (-2, 0), (1_700_000_000_002, 2)] {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("rw"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default().with_timestamp(timestamp)
                    ])]);
            let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, version, &request);
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0, "ListOffsets v{version}");
            assert_eq!(
                partition.offset, want,
                "ListOffsets v{version} ts {timestamp}"
            );
        }
    }
}
