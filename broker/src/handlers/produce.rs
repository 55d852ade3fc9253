//! Produce: each partition's batches appended through the log service (validated, copied
//! once into the hot cache, given offsets), answered according to acks (0: nothing, 1: once
//! in the hot cache, all: once durable).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::log::partition::{Appended, Partition};
use crate::log::service::{self, Refusal};
use crate::log::validate::decompression_budget;

/// Shortest acks=all wait, whatever the client's timeout says.
const MIN_ACK_WAIT: Duration = Duration::from_secs(1);

/// Outcome for one partition before the durability wait.
type Staged = Result<(Arc<Partition>, Appended), Refusal>;

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
            service::topic_to_write(broker, name.0.as_str()).await
        } else {
            Err(Refusal::of(ResponseError::InvalidRequiredAcks))
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = match &topic {
                Err(refusal) => Err(refusal.clone()),
                Ok(topic) => {
                    let records = data.records.unwrap_or_default();
                    service::append(broker, topic, data.index, records, &mut budget).await
                }
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
        Err(refusal) => return failed(response, refusal, version),
        Ok(appended) => appended,
    };
    if acks == -1 {
        if let Err(refusal) = service::until_durable(broker, &partition, appended, limit).await {
            return failed(response, refusal, version);
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
    refusal: Refusal,
    version: i16,
) -> PartitionProduceResponse {
    response.error_code = refusal.error.code();
    response.base_offset = -1;
    if version >= 8 {
        response.error_message = refusal.message.map(str_bytes);
    }
    response
}
