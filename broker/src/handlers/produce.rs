//! Produce: validate each batch, copy it once into the hot cache, assign offsets, and answer
//! according to acks (0: nothing, 1: once in the hot cache, all: once durable).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use hotcache::PendingSlice;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::durability::{wait_durable, DurableWait};
use crate::log::partition::{AppendError, Appended, Partition};
use crate::log::record_batch::{check_batches, set_max_timestamp, BatchHeader, CheckedBatch};
use crate::log::topic_config;
use crate::log::topics::Topic;
use crate::log::validate::{
    decompression_budget, validate_batch_within, ProduceLimits, ValidationError,
};
use crate::producers::SequenceError;

/// Shortest acks=all wait, whatever the client's timeout says.
const MIN_ACK_WAIT: Duration = Duration::from_secs(1);

/// Outcome for one partition before the durability wait.
enum Staged {
    Failed(ResponseError, Option<String>),
    Appended(Arc<Partition>, Appended),
}

/// A produce request whose batches are appended (or refused), awaiting its answer.
pub struct StagedProduce {
    acks: i16,
    limit: Duration,
    version: i16,
    topics: Vec<(TopicName, Vec<(i32, Staged)>)>,
}

/// The order-sensitive half: validates and appends every partition's batches. The connection
/// runs it before reading the next request, so batches pipelined on one connection keep their
/// order in the log, as with Kafka.
pub async fn stage(broker: &Broker, request: ProduceRequest, version: i16) -> StagedProduce {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let record_bytes: usize = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let max_message_bytes = broker.config.message_max_bytes as u64;
    let mut budget = decompression_budget(record_bytes as u64, max_message_bytes);
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name;
        let topic = if valid_acks {
            find_topic(broker, name.0.as_str()).await
        } else {
            Err(ResponseError::InvalidRequiredAcks)
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = match &topic {
                Err(error) => Staged::Failed(*error, None),
                Ok(topic) => append(broker, topic, data.index, data.records, &mut budget).await,
            };
            partitions.push((data.index, outcome));
        }
        topics.push((name, partitions));
    }
    let limit =
        Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0)).max(MIN_ACK_WAIT);
    StagedProduce {
        acks,
        limit,
        version,
        topics,
    }
}

/// The waiting half: the response once acks are satisfied; `None` for acks=0.
pub async fn complete(broker: &Broker, staged: StagedProduce) -> Option<ProduceResponse> {
    let StagedProduce {
        acks,
        limit,
        version,
        topics,
    } = staged;
    if acks == 0 {
        return None;
    }
    let mut responses = Vec::with_capacity(topics.len());
    for (name, partitions) in topics {
        let answers = join_all(
            partitions
                .into_iter()
                .map(|(index, outcome)| answer(broker, index, outcome, acks, limit, version)),
        )
        .await;
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(answers),
        );
    }
    Some(ProduceResponse::default().with_responses(responses))
}

async fn find_topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, ResponseError> {
    if let Some(topic) = broker.topics.get(name) {
        return Ok(topic);
    }
    if !broker.config.auto_create_topics {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    broker
        .topics
        .get_or_create(&broker.store, name, broker.config.default_partitions)
        .await
        .map_err(|error| {
            tracing::warn!(topic = name, %error, "auto-create on produce failed");
            ResponseError::UnknownTopicOrPartition
        })
}

/// Validates, copies into the hot cache and appends one partition's records. Decompression
/// for validation draws on the request's `budget`.
async fn append(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Option<Bytes>,
    budget: &mut u64,
) -> Staged {
    let Some(partition) = topic.partition(index) else {
        return Staged::Failed(ResponseError::UnknownTopicOrPartition, None);
    };
    let records = records.unwrap_or_default();
    let batches = match check_batches(&records) {
        Ok(batches) => batches,
        Err(error) => {
            tracing::debug!(topic = topic.name, index, %error, "corrupt batch refused");
            return Staged::Failed(ResponseError::CorruptMessage, Some(error.to_string()));
        }
    };
    let limits = topic_config::produce_limits(&topic.configs, &broker.config);
    let max_timestamps = match validate_all(&records, &batches, &limits, budget) {
        Ok(max_timestamps) => max_timestamps,
        Err(error) => {
            tracing::debug!(topic = topic.name, index, %error, "invalid batch refused");
            return Staged::Failed(error.code(), Some(error.to_string()));
        }
    };
    if let Some(batch) = batches.iter().find(|b| b.header.is_transactional()) {
        let message = format!(
            "transactional batches are not supported (producer id {})",
            batch.header.producer_id
        );
        return Staged::Failed(
            ResponseError::TransactionalIdAuthorizationFailed,
            Some(message),
        );
    }
    // In a cluster, a leader whose lease is in doubt (etcd out of reach) refuses writes until
    // it is sure again; batches pipelined behind a refused one then wait for it (see
    // ProducerStates::refuse), as they do behind one refused for want of cache space.
    if !broker.may_acknowledge() {
        partition.refuse(batches.iter().map(|b| &b.header));
        let message = "this broker's lease on the partition is in doubt".to_string();
        return Staged::Failed(ResponseError::NotLeaderOrFollower, Some(message));
    }
    // Room for all the batches at once, so a request never holds part of the cache while it
    // waits for the rest (see CacheSpace::reserve_all).
    let lens: Vec<usize> = batches.iter().map(|b| b.range.len()).collect();
    let mut slices = match broker.space.reserve_all(&lens).await {
        Ok(slices) => slices.into_iter(),
        Err(error) => {
            if matches!(
                error,
                ResponseError::RequestTimedOut | ResponseError::KafkaStorageError
            ) {
                partition.refuse(batches.iter().map(|b| &b.header));
            }
            return Staged::Failed(error, None);
        }
    };
    let mut copied: Vec<(PendingSlice, BatchHeader)> = Vec::with_capacity(batches.len());
    for (batch, max_timestamp) in batches.into_iter().zip(max_timestamps) {
        let bytes = &records[batch.range.clone()];
        match slices.next().ok_or(ResponseError::UnknownServerError) {
            Ok(mut slice) => {
                slice.copy_from_slice(bytes);
                let mut header = batch.header;
                if header.max_timestamp != max_timestamp {
                    // As Kafka does: the index and timestamp lookups trust this field.
                    set_max_timestamp(&mut slice, max_timestamp);
                    header.max_timestamp = max_timestamp;
                }
                copied.push((slice, header));
            }
            Err(error) => return Staged::Failed(error, None),
        }
    }
    match partition.append(copied, &broker.cache, &broker.pipeline) {
        Ok(appended) => Staged::Appended(partition.clone(), appended),
        Err(AppendError::Sequence(error)) => {
            // Rare outside a move, and what a stalled idempotent producer needs explained.
            tracing::info!(topic = %topic.name, index, %error, "batch refused by its sequence");
            let code = match error {
                SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
                // Retriable and "not persisted": the client waits for its requests in flight
                // and resends from the refused batch, with the same sequences.
                SequenceError::AfterRefused { .. } | SequenceError::GapAfterRecovery { .. } => {
                    ResponseError::NotLeaderOrFollower
                }
                _ => ResponseError::OutOfOrderSequenceNumber,
            };
            Staged::Failed(code, Some(error.to_string()))
        }
        Err(error) => Staged::Failed(ResponseError::KafkaStorageError, Some(error.to_string())),
    }
}

/// Validates the records of every batch (see [`validate_batch`]); the largest record timestamp
/// of each. Synchronous, so no decoder lives across an await.
fn validate_all(
    records: &Bytes,
    batches: &[CheckedBatch],
    limits: &ProduceLimits,
    budget: &mut u64,
) -> Result<Vec<i64>, ValidationError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    batches
        .iter()
        .map(|batch| {
            let bytes = records.slice(batch.range.clone());
            validate_batch_within(&bytes, &batch.header, limits, now_ms, budget)
        })
        .collect()
}

async fn answer(
    broker: &Broker,
    index: i32,
    outcome: Staged,
    acks: i16,
    limit: Duration,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    let (partition, appended) = match outcome {
        Staged::Failed(error, message) => return failed(response, error, message, version),
        Staged::Appended(partition, appended) => (partition, appended),
    };
    if acks == -1 {
        let health = broker.storage_health.clone();
        match wait_durable(&partition, appended.last_offset + 1, health, limit).await {
            DurableWait::Durable => {}
            DurableWait::TimedOut => {
                return failed(response, ResponseError::RequestTimedOut, None, version)
            }
            DurableWait::StorageFailed(why) => {
                let message = Some(format!("storage write failed: {why}"));
                return failed(response, ResponseError::KafkaStorageError, message, version);
            }
        }
    }
    let mut response = response.with_base_offset(appended.base_offset);
    if version >= 5 {
        response.log_start_offset = partition.log_start();
    }
    response
}

fn failed(
    mut response: PartitionProduceResponse,
    error: ResponseError,
    message: Option<String>,
    version: i16,
) -> PartitionProduceResponse {
    response.error_code = error.code();
    response.base_offset = -1;
    if version >= 8 {
        response.error_message = message.map(str_bytes);
    }
    response
}
