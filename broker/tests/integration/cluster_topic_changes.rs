//! Changing and describing a topic in a cluster (etcd started on loopback): CreatePartitions
//! and IncrementalAlterConfigs through one broker change the record in etcd and every broker
//! serves the change (the new partitions on their shards' leaders, the new overrides in
//! DescribeConfigs); DescribeLogDirs and DescribeProducers describe what each broker leads.

use std::time::{Duration, Instant};

use crate::common::cluster::{start_in_cluster, wait_spread, wait_status};
use crate::common::etcd::EtcdServer;
use crate::common::{produce_batch, BrokerProcess, Client};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse,
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

/// (log dir, partition) for each partition of the topic `client`'s broker describes.
fn log_dir_partitions(client: &mut Client) -> Vec<(String, i32)> {
    let request = DescribeLogDirsRequest::default().with_topics(None);
    let response: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 4, &request);
    response
        .results
        .iter()
        .flat_map(|dir| {
            dir.topics
                .iter()
                .filter(|t| t.name.as_str() == TOPIC)
                .flat_map(move |t| {
                    t.partitions
                        .iter()
                        .map(move |p| (dir.log_dir.to_string(), p.partition_index))
                })
        })
        .collect()
}

/// (partition, error) of DescribeProducers for partitions 0 to 5.
fn producer_errors(client: &mut Client) -> Vec<(i32, i16)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name())
        .with_partition_indexes((0..6).collect())]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    let mut errors: Vec<(i32, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    errors.sort();
    errors
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

    // Each broker describes the shards it leads as its log directories: together they hold
    // every partition once. DescribeProducers answers for the partitions led here.
    let led = leaders(&mut two);
    let mut described = Vec::new();
    for (node, client) in [(1, &mut one), (2, &mut two)] {
        for (dir, partition) in log_dir_partitions(client) {
            assert!(dir.contains("shard"), "{dir}");
            assert_eq!(
                led[partition as usize], node,
                "partition {partition} in {dir}"
            );
            described.push(partition);
        }
    }
    described.sort();
    assert_eq!(described, (0..6).collect::<Vec<i32>>());
    for (partition, code) in producer_errors(&mut one) {
        let expected = if led[partition as usize] == 1 { 0 } else { 6 };
        assert_eq!(code, expected, "partition {partition}");
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

/// Creates `topic` with `partitions` through `client`; the error code.
fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> i16 {
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &create);
    created.topics[0].error_code
}

/// Grows `topic` to `count` partitions through `client`; the error code.
fn grow_topic(client: &mut Client, topic: &str, count: i32) -> i16 {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_count(count)
            .with_assignments(None)]);
    let response: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &request);
    response.results[0].error_code
}

/// Every topic's partition count, as `client`'s broker describes the cluster.
fn partitions_by_topic(client: &mut Client) -> Vec<(String, usize)> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map_or(String::new(), |n| n.to_string());
            (name, t.partitions.len())
        })
        .collect()
}

/// `max_partitions` holds for the whole cluster even when two brokers create and grow topics
/// at the same moment, each from its own (possibly stale) view: the limit is checked against
/// the view a change was derived from, and etcd applies the change only if no topic changed
/// since that view.
#[test]
fn racing_changes_on_two_brokers_never_exceed_the_partition_limit() {
    const LIMIT: usize = 10;
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("limits");
    let limit = LIMIT.to_string();
    let extra = ["--max-partitions", limit.as_str()];
    let brokers = [
        start_in_cluster(&storage, &cluster, "1", &extra),
        start_in_cluster(&storage, &cluster, "2", &extra),
    ];
    wait_status(&cluster, "2 shards, controller");
    for round in 0..4 {
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = brokers
            .iter()
            .enumerate()
            .map(|(side, broker)| {
                let mut client = broker.connect();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let mut codes = Vec::new();
                    // Creations and growths interleaved: both are held to the limit.
                    let first = format!("r{round}-b{side}-t0");
                    let mut first_size = 0;
                    for attempt in 0..4 {
                        let topic = format!("r{round}-b{side}-t{attempt}");
                        let code = create_topic(&mut client, &topic, 2);
                        codes.push(code);
                        if attempt == 0 && code == 0 {
                            first_size = 2;
                        }
                        if first_size > 0 {
                            let code = grow_topic(&mut client, &first, first_size + 2);
                            codes.push(code);
                            if code == 0 {
                                first_size += 2;
                            }
                        }
                    }
                    codes
                })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            for code in racer.join().unwrap() {
                match code {
                    0 => created += 2, // every accepted change adds two partitions
                    // Over the limit, or lost the race too often: refused either way.
                    c if c == ResponseError::PolicyViolation.code()
                        || c == ResponseError::RequestTimedOut.code() => {}
                    other => panic!("round {round}: unexpected error {other}"),
                }
            }
        }
        let mut one = brokers[0].connect();
        until("broker 1 sees every accepted change", || {
            partitions_by_topic(&mut one)
                .iter()
                .map(|(_, p)| p)
                .sum::<usize>()
                == created
        });
        assert!(
            created <= LIMIT,
            "round {round}: {created} partitions, limit {LIMIT}"
        );
        assert!(
            created >= LIMIT - 1,
            "round {round}: only {created} partitions accepted"
        );
        // Make room for the next round.
        let delete = kafka_protocol::messages::DeleteTopicsRequest::default()
            .with_topic_names(
                partitions_by_topic(&mut one)
                    .into_iter()
                    .map(|(n, _)| TopicName(StrBytes::from_string(n)))
                    .collect(),
            )
            .with_timeout_ms(10_000);
        let _: kafka_protocol::messages::DeleteTopicsResponse =
            one.call(ApiKey::DeleteTopics, 4, &delete);
        until("every topic deleted", || {
            partitions_by_topic(&mut one).is_empty()
        });
        let mut two = brokers[1].connect();
        until("broker 2 sees every topic deleted", || {
            partitions_by_topic(&mut two).is_empty()
        });
    }
}
