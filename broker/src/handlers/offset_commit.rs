//! OffsetCommit: answered once the commit is durable in the internal log.
//!
//! The commit is queued on the internal log when the request is read ([`stage`]), so commits
//! sent one after another on a connection take effect in the order they were sent, as in Kafka,
//! even though their durability waits run concurrently.

use std::future::Future;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::internal::log::now_ms;
use crate::internal::CommittedOffset;
use crate::offsets::CommitError;

/// Kafka's default offset.metadata.max.bytes.
const MAX_METADATA: usize = 4096;

/// Validates the committer against its group and queues the commits of every valid partition
/// at once; the future answers once they are durable.
pub fn stage(
    broker: &Broker,
    request: OffsetCommitRequest,
    _version: i16,
) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    let group = request.group_id.0.to_string();
    let membership = if group.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        broker.groups.validate_offset_commit(
            &group,
            request.generation_id_or_member_epoch,
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|id| id.as_str()),
        )
    };
    let now = now_ms();
    // (topic index, partition index, error) for every partition, and the commits to write.
    let mut outcome = Vec::new();
    let mut commits = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let found = broker.topics.get(topic.name.0.as_str());
        for partition in &topic.partitions {
            let index = partition.partition_index;
            let error = match (&membership, &found) {
                (Err(error), _) => Some(*error),
                (Ok(()), None) => Some(ResponseError::UnknownTopicOrPartition),
                (Ok(()), Some(found)) if found.partition(index).is_none() => {
                    Some(ResponseError::UnknownTopicOrPartition)
                }
                _ if partition
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > MAX_METADATA) =>
                {
                    Some(ResponseError::OffsetMetadataTooLarge)
                }
                (Ok(()), Some(found)) => {
                    commits.push((
                        found.id,
                        index,
                        CommittedOffset {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                            commit_timestamp: now,
                        },
                    ));
                    None
                }
            };
            outcome.push((t, index, error));
        }
    }
    tracing::debug!(
        group,
        generation = request.generation_id_or_member_epoch,
        member = request.member_id.as_str(),
        commits = ?commits.iter().map(|(_, p, c)| (*p, c.offset)).collect::<Vec<_>>(),
        "offset commit"
    );
    let written = broker.offsets.commit(&group, commits);
    let mut topics: Vec<OffsetCommitResponseTopic> = request
        .topics
        .iter()
        .map(|t| OffsetCommitResponseTopic::default().with_name(t.name.clone()))
        .collect();
    async move {
        let written = written.await;
        let failed = match &written {
            Ok(()) => 0,
            Err(error @ CommitError::Full(_)) => {
                tracing::warn!(group, %error, "offset commit refused");
                // Not retriable: the client surfaces it instead of retrying forever.
                ResponseError::InvalidCommitOffsetSize.code()
            }
            Err(error) => {
                tracing::warn!(group, %error, "offset commit failed");
                ResponseError::CoordinatorNotAvailable.code()
            }
        };
        for (t, index, error) in outcome {
            let error = error.map_or(failed, |e| e.code());
            topics[t].partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(error),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }
}
