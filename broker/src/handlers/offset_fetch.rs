//! OffsetFetch: one group (v1-7) or several (v8+), named partitions or all of a group's.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;

/// One partition's answer: (partition, offset, leader epoch, metadata).
type Committed = (i32, i64, i32, Option<StrBytes>);

/// Answers committed offsets; unknown ones are -1 with no error, as Kafka answers.
pub fn handle(broker: &Broker, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let topics = lookup(broker, group.group_id.as_str(), wanted)
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(index, offset, epoch, metadata)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(index)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(metadata)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let topics = lookup(broker, request.group_id.as_str(), wanted)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, offset, epoch, metadata)| {
                            let mut partition = OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_metadata(metadata);
                            if version >= 5 {
                                partition.committed_leader_epoch = epoch;
                            }
                            partition
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Committed offsets of `group` for the named partitions, or for all it has committed.
fn lookup(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<Committed>)> {
    let missing = || (-1i64, -1i32, Some(str_bytes("")));
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(name, partitions)| {
                let topic = broker.topics.get(name.0.as_str());
                let answers = partitions
                    .into_iter()
                    .map(|index| {
                        let commit = topic
                            .as_ref()
                            .and_then(|t| broker.offsets.fetch(group, t.id, index));
                        let (offset, epoch, metadata) = match commit {
                            Some(c) => (
                                c.offset,
                                c.leader_epoch,
                                Some(str_bytes(c.metadata.unwrap_or_default())),
                            ),
                            None => missing(),
                        };
                        (index, offset, epoch, metadata)
                    })
                    .collect();
                (name, answers)
            })
            .collect(),
        None => {
            let mut by_topic: Vec<(TopicName, Vec<Committed>)> = Vec::new();
            for (key, commit) in broker.offsets.table().group(group) {
                // Commits of deleted topics have no name any more and are not reported.
                let Some(topic) = broker.topics.get_by_id(key.topic_id) else {
                    continue;
                };
                let name = TopicName(str_bytes(topic.name.clone()));
                let entry = (
                    key.partition,
                    commit.offset,
                    commit.leader_epoch,
                    Some(str_bytes(commit.metadata.unwrap_or_default())),
                );
                match by_topic.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, partitions)) => partitions.push(entry),
                    None => by_topic.push((name, vec![entry])),
                }
            }
            for (_, partitions) in &mut by_topic {
                partitions.sort_by_key(|p| p.0);
            }
            by_topic
        }
    }
}
