//! DescribeLogDirs: a "log directory" per storage root the broker serves (its URL, secrets
//! redacted: the broker's storage, or in a cluster each shard it leads), and the stored size
//! of each of its partitions. Storage is shared, so there is no replica
//! lag (offset_lag 0), no future replica, and no volume size to report (-1: unknown).

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::log::partition::Partition;

/// Kafka's "unknown" for a volume's total and usable bytes.
const UNKNOWN_BYTES: i64 = -1;

/// Describes this broker's partitions (those asked for; every one for a null list).
pub fn handle(broker: &Broker, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let topics = partitions(broker, &request, |_| true);
    DescribeLogDirsResponse::default().with_results(vec![result(broker.store.url(), topics)])
}

/// The partitions of `broker` that `request` asks for and `serves` accepts, with their sizes.
pub fn partitions(
    broker: &Broker,
    request: &DescribeLogDirsRequest,
    serves: impl Fn(&Partition) -> bool,
) -> Vec<DescribeLogDirsTopic> {
    // The request's topics and partitions as sets, read once (None: every partition).
    let asked: Option<HashMap<&str, HashSet<i32>>> = request.topics.as_ref().map(|list| {
        let mut asked: HashMap<&str, HashSet<i32>> = HashMap::new();
        for t in list {
            let partitions = asked.entry(t.topic.as_str()).or_default();
            partitions.extend(t.partitions.iter().copied());
        }
        asked
    });
    let mut out = Vec::new();
    for topic in broker.topics.list() {
        let wanted: Option<&HashSet<i32>> = match &asked {
            None => None,
            Some(asked) => match asked.get(topic.name.as_str()) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(index, partition)| {
                let index = i32::try_from(*index).unwrap_or(i32::MAX);
                wanted.is_none_or(|w| w.contains(&index)) && serves(partition)
            })
            .map(|(index, partition)| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                    .with_partition_size(
                        i64::try_from(partition.stored_bytes()).unwrap_or(i64::MAX),
                    )
                    .with_offset_lag(0)
            })
            .collect();
        if !partitions.is_empty() {
            out.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    out
}

/// One directory's entry: `log_dir` holding `topics`.
pub fn result(log_dir: &str, topics: Vec<DescribeLogDirsTopic>) -> DescribeLogDirsResult {
    DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(log_dir.to_string()))
        .with_topics(topics)
        .with_total_bytes(UNKNOWN_BYTES)
        .with_usable_bytes(UNKNOWN_BYTES)
}
