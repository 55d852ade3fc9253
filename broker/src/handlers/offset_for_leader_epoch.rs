//! OffsetForLeaderEpoch: where a leader epoch ends, which consumers ask after a leader change
//! to detect a truncated log (KIP-320).
//!
//! Hotwire's log never diverges: a new leader reopens the same stored log (every durable batch
//! of the old one), and consumers read only durable data. So for any epoch up to the current
//! one the answer is the log's durable end, which no consumer position can exceed: a client
//! never sees a truncation that did not happen. A client whose epoch is newer than this
//! broker's (it knows of a leader change this broker has not seen) or older (stale metadata)
//! is told so, as Kafka does.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::log::partition::LEADER_EPOCH;

/// Answers every partition asked.
pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let current = broker
        .shard
        .as_ref()
        .map_or(LEADER_EPOCH, |s| i32::try_from(s.epoch).unwrap_or(i32::MAX));
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let found = broker.topics.get(topic.topic.0.as_str());
            let partitions = topic
                .partitions
                .into_iter()
                .map(|asked| {
                    let answer = EpochEndOffset::default()
                        .with_partition(asked.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = found
                        .as_ref()
                        .and_then(|t| t.partitions.get(usize::try_from(asked.partition).ok()?))
                    else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if asked.current_leader_epoch >= 0 && asked.current_leader_epoch > current {
                        return answer.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if asked.current_leader_epoch >= 0 && asked.current_leader_epoch < current {
                        return answer.with_error_code(ResponseError::FencedLeaderEpoch.code());
                    }
                    if asked.leader_epoch > current {
                        // An epoch this log never had: undefined, as Kafka answers.
                        return answer;
                    }
                    answer
                        .with_leader_epoch(asked.leader_epoch)
                        .with_end_offset(partition.high_watermark())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
