//! Changing a topic in a cluster (etcd started on loopback): CreatePartitions and
//! IncrementalAlterConfigs through one broker change the record in etcd, every broker serves
//! the change (the new partitions on their shards' leaders, the new overrides in
//! DescribeConfigs), and a change derived from a stale record is never applied over a newer one.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{start_in_cluster, wait_spread, wait_status};
use common::etcd::EtcdServer;
use common::{produce_batch, BrokerProcess, Client};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC: &str = "changing";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// Each partition's leader, as `client`'s broker describes the topic.
fn leaders(client: &mut Client) -> Vec<i32> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name())),
    ]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect()
}

fn grow(client: &mut Client, count: i32) -> i16 {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name())
            .with_count(count)
            .with_assignments(None)]);
    let response: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &request);
    response.results[0].error_code
}

fn set_config(client: &mut Client, config: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from(config.to_string()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from(value.to_string())))]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    response.responses[0].error_code
}

fn config(client: &mut Client, config: &str) -> String {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_configuration_keys(Some(vec![StrBytes::from(config.to_string())]))]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    // Empty while the broker does not know the topic yet.
    let result = &response.results[0];
    result
        .configs
        .first()
        .and_then(|c| c.value.as_ref())
        .map_or_else(|| format!("error {}", result.error_code), |v| v.to_string())
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn topic_changes_through_one_broker_are_served_by_every_broker() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("changes");
    let brokers = [
        start_in_cluster(&storage, &cluster, "1", &[]),
        start_in_cluster(&storage, &cluster, "2", &[]),
    ];
    wait_status(&cluster, "2 shards, controller");
    wait_spread(&cluster);
    let mut one = brokers[0].connect();
    let mut two = brokers[1].connect();
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name())
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let created: CreateTopicsResponse = one.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    assert_eq!(grow(&mut one, 6), 0);
    assert_eq!(grow(&mut one, 3), ResponseError::InvalidPartitions.code());
    until("broker 2 lists 6 partitions, each led", || {
        let led = leaders(&mut two);
        led.len() == 6 && led.iter().all(|l| *l == 1 || *l == 2)
    });
    // Every new partition takes data on its shard's leader. Right after the brokers started,
    // a shard may still be opening or moving: a client retries those errors after
    // refreshing its metadata, and so does this loop.
    for partition in 0..6 {
        until(&format!("partition {partition} takes data"), || {
            let leader = leaders(&mut two)[partition as usize];
            let client = if leader == 1 { &mut one } else { &mut two };
            match produce_batch(client, TOPIC, partition, 3, 10) {
                (0, offset) => {
                    assert_eq!(offset, 0, "partition {partition}");
                    true
                }
                (3 | 6 | 7, _) => false,
                (code, _) => panic!("partition {partition} on broker {leader}: error {code}"),
            }
        });
    }

    assert_eq!(set_config(&mut two, "retention.ms", "5000"), 0);
    until("broker 1 describes the new override", || {
        config(&mut one, "retention.ms") == "5000"
    });
    assert_eq!(
        set_config(&mut one, "cleanup.policy", "compact"),
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(config(&mut two, "cleanup.policy"), "delete");

    // A broker started now has both changes from the start.
    let third = start_in_cluster(&storage, &cluster, "3", &[]);
    let mut three = third.connect();
    until("broker 3 sees the grown topic", || {
        leaders(&mut three).len() == 6
    });
    until("broker 3 describes the override", || {
        config(&mut three, "retention.ms") == "5000"
    });
    drop::<[BrokerProcess; 2]>(brokers);
}
