//! ListOffsets: earliest, latest, max timestamp, and the first offset at or after a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::log::cold_read;
use crate::log::partition::{Partition, LEADER_EPOCH};
use crate::log::topic_config;

/// Stored chunks a timestamp lookup reads at most: the first whose index says it holds a
/// later timestamp answers unless its batches were skipped as undecodable; a few more are read
/// then, not the whole log.
const MAX_CHUNKS_PER_LOOKUP: usize = 8;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// Answers each partition's query.
pub async fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let topic = broker.topics.get(wanted.name.0.as_str());
        // Stored batches decode within the same cap as produce validation applies.
        let cap = topic.as_ref().map_or(0, |t| {
            topic_config::produce_limits(&t.configs, &broker.config).max_decompressed()
        });
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for query in wanted.partitions {
            let response =
                ListOffsetsPartitionResponse::default().with_partition_index(query.partition_index);
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(query.partition_index));
            partitions.push(match partition {
                None => response.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Some(partition) => match lookup(broker, partition, query.timestamp, cap).await {
                    Ok((offset, timestamp)) => {
                        let mut response = response.with_offset(offset).with_timestamp(timestamp);
                        if version >= 4 {
                            response.leader_epoch = LEADER_EPOCH;
                        }
                        response
                    }
                    Err(error) => response.with_error_code(error.code()),
                },
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for one query; (-1, -1) when no record matches, as Kafka answers.
/// `max_decompressed` bounds the decoding of each stored batch.
async fn lookup(
    broker: &Broker,
    partition: &Partition,
    timestamp: i64,
    max_decompressed: u64,
) -> Result<(i64, i64), ResponseError> {
    let found = match timestamp {
        LATEST => return Ok((partition.high_watermark(), -1)),
        EARLIEST | EARLIEST_LOCAL => return Ok((partition.log_start(), -1)),
        MAX_TIMESTAMP => match partition.stored_chunk_with_max_timestamp() {
            Some(chunk) => {
                cold_read::find_max_timestamp(&broker.store, &chunk, max_decompressed).await
            }
            None => Ok(None),
        },
        t if t >= 0 => by_timestamp(broker, partition, t, max_decompressed).await,
        _ => return Err(ResponseError::InvalidRequest),
    };
    match found {
        Ok(found) => Ok(found.unwrap_or((-1, -1))),
        Err(error) => {
            tracing::warn!(%error, "timestamp lookup failed");
            Err(ResponseError::KafkaStorageError)
        }
    }
}

/// The first record at or after `timestamp` in the stored chunks that may hold one.
async fn by_timestamp(
    broker: &Broker,
    partition: &Partition,
    timestamp: i64,
    max_decompressed: u64,
) -> Result<Option<(i64, i64)>, cold_read::ColdReadError> {
    let candidates = partition
        .stored_chunks()
        .into_iter()
        .filter(|c| c.max_timestamp >= timestamp)
        .take(MAX_CHUNKS_PER_LOOKUP);
    for chunk in candidates {
        let found =
            cold_read::find_by_timestamp(&broker.store, &chunk, timestamp, max_decompressed)
                .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
