//! kill -9 in the middle of topic changes: a client grows a topic (CreatePartitions) and
//! changes its retention (IncrementalAlterConfigs) one request after another while the broker
//! is killed at a random moment, again and again. After each restart the topic is whole: every
//! acknowledged change is there, the one in flight is there or not (never half), and every
//! partition the topic lists takes data. `HOTWIRE_TOPIC_CRASH_TRIALS` (default 8) and
//! `HOTWIRE_CRASH_SEED` as in `crash_trials`.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::{produce_batch, BrokerProcess};
use crate::crash_trials::{env_or, Conn, Rng};
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

const TOPIC: &str = "shifting";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// What the changer asked for: the acknowledged state, and the change in flight when the
/// broker died (if any).
#[derive(Clone, Debug, Default)]
struct Changes {
    partitions: i32,
    retention_ms: Option<i64>,
    pending_partitions: Option<i32>,
    pending_retention_ms: Option<i64>,
}

/// Partitions the topic grows to at most.
const MAX_GROWTH: i32 = 2_000;

/// Grows the topic to `target` partitions, recording the acknowledgement; false if the
/// connection failed.
fn grow(conn: &mut Conn, changes: &Mutex<Changes>, target: i32) -> bool {
    changes.lock().unwrap().pending_partitions = Some(target);
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name())
            .with_count(target)
            .with_assignments(None)]);
    let Ok(grown) = conn.call::<_, CreatePartitionsResponse>(ApiKey::CreatePartitions, 3, &grow)
    else {
        return false;
    };
    assert_eq!(grown.results[0].error_code, 0, "growing to {target}");
    let mut changes = changes.lock().unwrap();
    changes.partitions = target;
    changes.pending_partitions = None;
    true
}

/// Grows the topic and changes its retention, alternately, until the connection fails.
fn changer(conn: &mut Conn, changes: &Mutex<Changes>, mut next_retention: i64) {
    loop {
        let target = changes.lock().unwrap().partitions + 1;
        // Long runs stop growing well below max_partitions_per_topic; retention still changes.
        if target <= MAX_GROWTH && !grow(conn, changes, target) {
            return;
        }

        next_retention += 1;
        changes.lock().unwrap().pending_retention_ms = Some(next_retention);
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(TOPIC))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(next_retention.to_string())))]),
        ]);
        let Ok(altered) = conn.call::<_, IncrementalAlterConfigsResponse>(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter,
        ) else {
            return;
        };
        assert_eq!(
            altered.responses[0].error_code, 0,
            "retention {next_retention}"
        );
        let mut changes = changes.lock().unwrap();
        changes.retention_ms = Some(next_retention);
        changes.pending_retention_ms = None;
    }
}

/// The topic's partition count and retention.ms, as the broker describes them.
fn described(broker: &BrokerProcess) -> (i32, Option<i64>) {
    let mut client = broker.connect();
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name())),
    ]));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    assert_eq!(metadata.topics[0].error_code, 0, "{metadata:?}");
    let partitions = metadata.topics[0].partitions.len() as i32;
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")]))]);
    let configs: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    let entry = &configs.results[0].configs[0];
    // An override shows as the topic's own (source 1); the broker default otherwise.
    let retention =
        (entry.config_source == 1).then(|| entry.value.as_ref().unwrap().parse().unwrap());
    (partitions, retention)
}

#[test]
fn topic_changes_are_whole_after_kill_9_at_random_moments() {
    let trials: usize = env_or("HOTWIRE_TOPIC_CRASH_TRIALS", 8);
    let seed = crate::crash_trials::seed();
    eprintln!("topic change crash trials: {trials} trials, HOTWIRE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let mut broker = BrokerProcess::start(&[]);
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name())
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let created: CreateTopicsResponse = broker.connect().call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(created.topics[0].error_code, 0);
    let changes = Arc::new(Mutex::new(Changes {
        partitions: 1,
        ..Default::default()
    }));

    for trial in 0..trials {
        let mut conn = Conn::open(broker.addr).unwrap();
        let shared = changes.clone();
        let first_retention = (trial as i64 + 1) * 1_000_000;
        let running = thread::spawn(move || changer(&mut conn, &shared, first_retention));
        thread::sleep(Duration::from_millis(5 + rng.below(150)));
        broker = broker.kill_and_restart(&[]);
        running
            .join()
            .expect("the changer saw only acknowledged successes");

        let mut state = changes.lock().unwrap();
        let (partitions, retention) = described(&broker);
        let context = format!("trial {trial} (HOTWIRE_CRASH_SEED={seed}): {state:?}");
        assert!(
            partitions == state.partitions || Some(partitions) == state.pending_partitions,
            "{partitions} partitions; {context}"
        );
        assert!(
            retention == state.retention_ms
                || (state.pending_retention_ms.is_some()
                    && retention == state.pending_retention_ms),
            "retention {retention:?}; {context}"
        );
        // Whatever survived is now the truth the next trial builds on.
        state.partitions = partitions;
        state.retention_ms = retention;
        state.pending_partitions = None;
        state.pending_retention_ms = None;
        drop(state);

        // The first partition and the newest ones (those a torn change would have hurt).
        let mut client = broker.connect();
        for partition in std::iter::once(0).chain(partitions.saturating_sub(8).max(1)..partitions) {
            let (code, _) = produce_batch(&mut client, TOPIC, partition, 1, 10);
            assert_eq!(
                code, 0,
                "partition {partition} of {partitions}: trial {trial}"
            );
        }
    }
}
