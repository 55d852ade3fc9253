//! DescribeProducers: the idempotent producers each partition remembers, with their epoch and
//! last sequence (what Kafka's `kafka-transactions.sh describe-producers` shows). There are no
//! transactions, so no coordinator epoch and no open transaction: both -1.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

/// Describes each partition asked for.
pub fn handle(broker: &Broker, request: DescribeProducersRequest) -> DescribeProducersResponse {
    DescribeProducersResponse::default().with_topics(
        deduplicated(request)
            .topics
            .into_iter()
            .map(|topic| describe(broker, topic))
            .collect(),
    )
}

/// `request` with each topic and each of its partitions once: every partition named costs up
/// to `max_producers_per_partition` entries in the answer, so a small request repeating one
/// index must not make a huge one.
pub fn deduplicated(mut request: DescribeProducersRequest) -> DescribeProducersRequest {
    let mut merged: Vec<TopicRequest> = Vec::with_capacity(request.topics.len());
    for topic in std::mem::take(&mut request.topics) {
        match merged.iter_mut().find(|t| t.name == topic.name) {
            Some(known) => known.partition_indexes.extend(topic.partition_indexes),
            None => merged.push(topic),
        }
    }
    for topic in &mut merged {
        let unique: BTreeSet<i32> = topic.partition_indexes.drain(..).collect();
        topic.partition_indexes = unique.into_iter().collect();
    }
    request.topics = merged;
    request
}

fn describe(broker: &Broker, wanted: TopicRequest) -> TopicResponse {
    let topic = broker.topics.get(wanted.name.as_str());
    let partitions = wanted
        .partition_indexes
        .iter()
        .map(|&index| {
            let response = PartitionResponse::default().with_partition_index(index);
            match topic.as_ref().and_then(|t| t.partition(index)) {
                None => response.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Some(partition) => response.with_active_producers(
                    partition
                        .active_producers()
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_active_ms)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(-1)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    TopicResponse::default()
        .with_name(wanted.name)
        .with_partitions(partitions)
}

/// The answer for a partition refused before reaching a broker's log (`error`).
pub fn refused(index: i32, error: ResponseError) -> PartitionResponse {
    PartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(error.code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn repeated_topics_and_partitions_are_described_once() {
        let topic = |name: &'static str, indexes: Vec<i32>| {
            TopicRequest::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_partition_indexes(indexes)
        };
        let request = DescribeProducersRequest::default().with_topics(vec![
            topic("a", vec![3, 3, 1, 3]),
            topic("b", vec![0]),
            topic("a", vec![1, 2]),
        ]);
        let asked: Vec<(String, Vec<i32>)> = deduplicated(request)
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(
            asked,
            vec![("a".to_string(), vec![1, 2, 3]), ("b".to_string(), vec![0])]
        );
    }
}
