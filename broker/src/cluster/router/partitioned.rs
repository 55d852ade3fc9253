//! Requests addressed to partitions (Produce, Fetch, ListOffsets, DeleteRecords): served whole
//! by one engine when all their partitions are in one shard this broker leads (the common case:
//! clients send each broker only what it leads), else split by shard and the answers merged.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest as ProducersTopicRequest;
use kafka_protocol::messages::describe_producers_response::TopicResponse as ProducersTopicResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeProducersRequest,
    DescribeProducersResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest,
    ProduceResponse,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

pub use super::split::Target;
use super::split::{merge, place, split, target, topic_id, Parts, Shape};
use super::topics::ensure_topics;
use crate::cluster::node::{Engine, Node};
use crate::handlers::fetch_budget::Held;
use crate::handlers::{
    delete_records, describe_producers, fetch, list_offsets, offset_for_leader_epoch, produce,
};

/// Produce: where it goes (creating unknown topics first, if allowed).
pub async fn produce_target(node: &Node, request: &ProduceRequest) -> Target {
    let names: Vec<String> = request
        .topic_data
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    ensure_topics(node, &names).await;
    target(request.topic_data.iter().flat_map(|t| {
        let id = topic_id(node, &t.name.0, t.topic_id);
        t.partition_data
            .iter()
            .map(move |p| place(node, id, p.index, false))
    }))
}

/// Produce goes to the shard's engine even while its lease is in doubt: the engine refuses it
/// there, where the refusal is remembered (see `ProducerStates::refuse`).
const PRODUCE: Shape<ProduceRequest, TopicProduceData, PartitionProduceData> = Shape {
    topics: |r| &mut r.topic_data,
    key: |t| (t.name.0.as_str(), t.topic_id),
    partitions: |t| &mut t.partition_data,
    index: |p| p.index,
    writes: false,
};

/// A produce request split by shard and staged on each engine (in request order), awaiting
/// its answers.
pub struct SplitProduce {
    acks: i16,
    staged: Vec<(Arc<Engine>, produce::StagedProduce)>,
    refused: Vec<(TopicProduceData, PartitionProduceData, ResponseError)>,
}

/// Splits a produce request by shard and stages each part (order-sensitive: runs before the
/// next request of the connection is read).
pub async fn produce_stage(node: &Node, request: ProduceRequest, version: i16) -> SplitProduce {
    let acks = request.acks;
    let Parts { parts, refused } = split(node, request, &PRODUCE);
    let mut staged = Vec::new();
    for (engine, part) in parts {
        let part = produce::stage(&engine.broker, part, version).await;
        staged.push((engine, part));
    }
    SplitProduce {
        acks,
        staged,
        refused,
    }
}

/// Waits for every part's answer and merges them (none for acks=0).
pub async fn produce_complete(split: SplitProduce) -> Option<ProduceResponse> {
    let answers =
        futures::future::join_all(split.staged.into_iter().map(|(engine, staged)| async move {
            produce::complete(&engine.broker, staged).await
        }))
        .await;
    if split.acks == 0 {
        return None;
    }
    let mut merged = ProduceResponse::default();
    for answer in answers.into_iter().flatten() {
        merged.throttle_time_ms = merged.throttle_time_ms.max(answer.throttle_time_ms);
        for topic in answer.responses {
            merge(
                &mut merged.responses,
                topic,
                |t| &mut t.partition_responses,
                |t| (t.name.0.to_string(), t.topic_id),
            );
        }
    }
    for (topic, partition, error) in split.refused {
        let answer = PartitionProduceResponse::default()
            .with_index(partition.index)
            .with_error_code(error.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1);
        let topic = TopicProduceResponse::default()
            .with_name(topic.name)
            .with_topic_id(topic.topic_id)
            .with_partition_responses(vec![answer]);
        merge(
            &mut merged.responses,
            topic,
            |t| &mut t.partition_responses,
            |t| (t.name.0.to_string(), t.topic_id),
        );
    }
    Some(merged)
}

const FETCH: Shape<FetchRequest, FetchTopic, FetchPartition> = Shape {
    topics: |r| &mut r.topics,
    key: |t| (t.topic.0.as_str(), t.topic_id),
    partitions: |t| &mut t.partitions,
    index: |p| p.partition,
    writes: false,
};

/// Fetch: where it goes.
pub fn fetch_target(node: &Node, request: &FetchRequest) -> Target {
    target(request.topics.iter().flat_map(|t| {
        let id = topic_id(node, &t.topic.0, t.topic_id);
        t.partitions
            .iter()
            .map(move |p| place(node, id, p.partition, false))
    }))
}

/// A fetch split by shard: every part is asked at once with the client's wait; as soon as one
/// answers with something, the others are asked again without waiting, so that data in one
/// shard is not held back by a long poll in another.
pub async fn fetch(
    node: &Node,
    request: FetchRequest,
    version: i16,
    client_id: &str,
) -> (FetchResponse, Vec<Held>) {
    let Parts { parts, refused } = split(node, request, &FETCH);
    let mut merged = FetchResponse::default();
    let no_wait = !refused.is_empty();
    for (topic, partition, error) in refused {
        let answer = PartitionData::default()
            .with_partition_index(partition.partition)
            .with_error_code(error.code())
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        absorb_topic(
            &mut merged,
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_topic_id(topic.topic_id)
                .with_partitions(vec![answer]),
        );
    }
    let mut pending: FuturesUnordered<_> = parts
        .iter()
        .enumerate()
        .map(|(i, (engine, part))| {
            let mut part = part.clone();
            if no_wait {
                // Errors to report: no long poll.
                part.max_wait_ms = 0;
            }
            let engine = engine.clone();
            let client = client_id.to_string();
            async move {
                (
                    i,
                    fetch::handle_held(&engine.broker, part, version, &client).await,
                )
            }
        })
        .collect();
    let mut answered = vec![false; parts.len()];
    let mut held = Vec::new();
    while let Some((i, (response, h))) = pending.next().await {
        let data = has_data(&response);
        answered[i] = true;
        for topic in response.responses {
            absorb_topic(&mut merged, topic);
        }
        merged.throttle_time_ms = merged.throttle_time_ms.max(response.throttle_time_ms);
        held.push(h);
        if data {
            // The rest may be long-polling: dropped here and asked again without waiting.
            break;
        }
    }
    drop(pending);
    for (i, (engine, mut part)) in parts.into_iter().enumerate() {
        if answered[i] {
            continue;
        }
        part.max_wait_ms = 0;
        part.min_bytes = 0;
        let (response, h) = fetch::handle_held(&engine.broker, part, version, client_id).await;
        for topic in response.responses {
            absorb_topic(&mut merged, topic);
        }
        held.push(h);
    }
    (merged, held)
}

fn has_data(response: &FetchResponse) -> bool {
    response.responses.iter().any(|t| {
        t.partitions
            .iter()
            .any(|p| p.error_code != 0 || p.records.as_ref().is_some_and(|r| !r.is_empty()))
    })
}

fn absorb_topic(merged: &mut FetchResponse, topic: FetchableTopicResponse) {
    merge(
        &mut merged.responses,
        topic,
        |t| &mut t.partitions,
        |t| (t.topic.0.to_string(), t.topic_id),
    );
}

const LIST_OFFSETS: Shape<ListOffsetsRequest, ListOffsetsTopic, ListOffsetsPartition> = Shape {
    topics: |r| &mut r.topics,
    key: |t| (t.name.0.as_str(), Uuid::nil()),
    partitions: |t| &mut t.partitions,
    index: |p| p.partition_index,
    writes: false,
};

/// ListOffsets: where it goes.
pub fn list_offsets_target(node: &Node, request: &ListOffsetsRequest) -> Target {
    target(request.topics.iter().flat_map(|t| {
        let id = topic_id(node, &t.name.0, Uuid::nil());
        t.partitions
            .iter()
            .map(move |p| place(node, id, p.partition_index, false))
    }))
}

/// ListOffsets split by shard.
pub async fn list_offsets(
    node: &Node,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let Parts { parts, refused } = split(node, request, &LIST_OFFSETS);
    let answers = futures::future::join_all(parts.into_iter().map(|(engine, part)| async move {
        list_offsets::handle(&engine.broker, part, version).await
    }))
    .await;
    let mut merged = ListOffsetsResponse::default();
    let key = |t: &ListOffsetsTopicResponse| (t.name.0.to_string(), Uuid::nil());
    for topic in answers.into_iter().flat_map(|a| a.topics) {
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    for (topic, partition, error) in refused {
        let answer = ListOffsetsPartitionResponse::default()
            .with_partition_index(partition.partition_index)
            .with_error_code(error.code())
            .with_timestamp(-1)
            .with_offset(-1)
            .with_leader_epoch(-1);
        let topic = ListOffsetsTopicResponse::default()
            .with_name(topic.name)
            .with_partitions(vec![answer]);
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    merged
}

const DELETE_RECORDS: Shape<DeleteRecordsRequest, DeleteRecordsTopic, DeleteRecordsPartition> =
    Shape {
        topics: |r| &mut r.topics,
        key: |t| (t.name.0.as_str(), Uuid::nil()),
        partitions: |t| &mut t.partitions,
        index: |p| p.partition_index,
        writes: true,
    };

/// DeleteRecords: where it goes.
pub fn delete_records_target(node: &Node, request: &DeleteRecordsRequest) -> Target {
    target(request.topics.iter().flat_map(|t| {
        let id = topic_id(node, &t.name.0, Uuid::nil());
        t.partitions
            .iter()
            .map(move |p| place(node, id, p.partition_index, true))
    }))
}

/// DeleteRecords split by shard.
pub async fn delete_records(node: &Node, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let Parts { parts, refused } = split(node, request, &DELETE_RECORDS);
    let answers =
        futures::future::join_all(parts.into_iter().map(|(engine, part)| async move {
            delete_records::handle(&engine.broker, part).await
        }))
        .await;
    let mut merged = DeleteRecordsResponse::default();
    let key = |t: &DeleteRecordsTopicResult| (t.name.0.to_string(), Uuid::nil());
    for topic in answers.into_iter().flat_map(|a| a.topics) {
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    for (topic, partition, error) in refused {
        let answer = DeleteRecordsPartitionResult::default()
            .with_partition_index(partition.partition_index)
            .with_low_watermark(-1)
            .with_error_code(error.code());
        let topic = DeleteRecordsTopicResult::default()
            .with_name(topic.name)
            .with_partitions(vec![answer]);
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    merged
}

const EPOCHS: Shape<OffsetForLeaderEpochRequest, OffsetForLeaderTopic, OffsetForLeaderPartition> =
    Shape {
        topics: |r| &mut r.topics,
        key: |t| (t.topic.0.as_str(), Uuid::nil()),
        partitions: |t| &mut t.partitions,
        index: |p| p.partition,
        writes: false,
    };

/// OffsetForLeaderEpoch: each partition answered by its shard's engine.
pub fn offset_for_leader_epoch(
    node: &Node,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let Parts { parts, refused } = split(node, request, &EPOCHS);
    let mut merged = OffsetForLeaderEpochResponse::default();
    let key = |t: &OffsetForLeaderTopicResult| (t.topic.0.to_string(), Uuid::nil());
    for (engine, part) in parts {
        for topic in offset_for_leader_epoch::handle(&engine.broker, part).topics {
            merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
        }
    }
    for (topic, partition, error) in refused {
        let answer = EpochEndOffset::default()
            .with_partition(partition.partition)
            .with_error_code(error.code())
            .with_leader_epoch(-1)
            .with_end_offset(-1);
        let topic = OffsetForLeaderTopicResult::default()
            .with_topic(topic.topic)
            .with_partitions(vec![answer]);
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    merged
}

const PRODUCERS: Shape<DescribeProducersRequest, ProducersTopicRequest, i32> = Shape {
    topics: |r| &mut r.topics,
    key: |t| (t.name.0.as_str(), Uuid::nil()),
    partitions: |t| &mut t.partition_indexes,
    index: |p| *p,
    writes: false,
};

/// DescribeProducers: each partition's producers from the engine of its shard.
pub fn describe_producers(
    node: &Node,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let request = describe_producers::deduplicated(request);
    let Parts { parts, refused } = split(node, request, &PRODUCERS);
    let mut merged = DescribeProducersResponse::default();
    let key = |t: &ProducersTopicResponse| (t.name.0.to_string(), Uuid::nil());
    for (engine, part) in parts {
        for topic in describe_producers::handle(&engine.broker, part).topics {
            merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
        }
    }
    for (topic, index, error) in refused {
        let topic = ProducersTopicResponse::default()
            .with_name(topic.name)
            .with_partitions(vec![describe_producers::refused(index, error)]);
        merge(&mut merged.topics, topic, |t| &mut t.partitions, key);
    }
    merged
}
