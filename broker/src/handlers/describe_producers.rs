//! DescribeProducers: the idempotent producers each partition remembers, with their epoch and
//! last sequence (what Kafka's `kafka-transactions.sh describe-producers` shows). There are no
//! transactions, so no coordinator epoch and no open transaction: both -1.

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
        request
            .topics
            .into_iter()
            .map(|topic| describe(broker, topic))
            .collect(),
    )
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
