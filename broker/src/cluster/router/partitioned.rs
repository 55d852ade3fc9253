//! Requests addressed to partitions (Produce, Fetch, ListOffsets, DeleteRecords): served whole
//! by one engine when all their partitions are in one shard this broker leads (the common case:
//! clients send each broker only what it leads), else split by shard and the answers merged.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::topics::ensure_topics;
use crate::cluster::node::{Engine, Node};
use crate::cluster::shards;
use crate::handlers::fetch_budget::Held;
use crate::handlers::{delete_records, fetch, list_offsets, produce};

/// Where a partitioned request goes.
pub enum Target {
    /// One local engine serves it whole.
    One(Arc<Engine>),
    /// Its partitions span shards (or some are not served here): split it.
    Split,
}

/// Where one partition's part goes.
enum Place {
    Engine(Arc<Engine>),
    Refused(ResponseError),
}

fn place(node: &Node, topic_id: Option<Uuid>, partition: i32, writes: bool) -> Place {
    let view = node.member.view();
    let Some(record) = topic_id.and_then(|id| view.topics.values().find(|t| t.id == id)) else {
        return Place::Refused(ResponseError::UnknownTopicOrPartition);
    };
    if partition < 0 || partition >= record.partitions {
        return Place::Refused(ResponseError::UnknownTopicOrPartition);
    }
    match node.engine(shards::of_partition(record.id, partition, node.shards())) {
        Some(engine) if !writes || engine.may_acknowledge() => Place::Engine(engine),
        _ => Place::Refused(ResponseError::NotLeaderOrFollower),
    }
}

fn topic_id(node: &Node, name: &str, id: Uuid) -> Option<Uuid> {
    if !id.is_nil() {
        return Some(id);
    }
    node.member.view().topics.get(name).map(|t| t.id)
}

/// `Target::One` when every pair goes to the same engine.
fn target(places: impl Iterator<Item = Place>) -> Target {
    let mut one: Option<Arc<Engine>> = None;
    for place in places {
        match (place, &one) {
            (Place::Engine(engine), None) => one = Some(engine),
            (Place::Engine(engine), Some(first)) if first.shard == engine.shard => {}
            _ => return Target::Split,
        }
    }
    one.map_or(Target::Split, Target::One)
}

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
            .map(move |p| place(node, id, p.index, true))
    }))
}

/// A produce request split by shard and staged on each engine (in request order), awaiting
/// its answers.
pub struct SplitProduce {
    acks: i16,
    staged: Vec<produce::StagedProduce>,
    engines: Vec<Arc<Engine>>,
    refused: Vec<(TopicName, i32, ResponseError)>,
}

/// Splits a produce request by shard and stages each part (order-sensitive: runs before the
/// next request of the connection is read).
pub async fn produce_stage(node: &Node, request: ProduceRequest, version: i16) -> SplitProduce {
    let mut parts: BTreeMap<u32, (Arc<Engine>, ProduceRequest)> = BTreeMap::new();
    let mut refused = Vec::new();
    let acks = request.acks;
    for topic in &request.topic_data {
        let id = topic_id(node, &topic.name.0, topic.topic_id);
        for partition in &topic.partition_data {
            match place(node, id, partition.index, true) {
                Place::Engine(engine) => {
                    let (_, part) = parts.entry(engine.shard).or_insert_with(|| {
                        let mut part = request.clone();
                        part.topic_data.clear();
                        (engine.clone(), part)
                    });
                    push_partition(&mut part.topic_data, topic, partition.clone());
                }
                Place::Refused(error) => refused.push((topic.name.clone(), partition.index, error)),
            }
        }
    }
    let mut staged = Vec::new();
    let mut engines = Vec::new();
    for (_, (engine, part)) in parts {
        staged.push(produce::stage(&engine.broker, part, version).await);
        engines.push(engine);
    }
    SplitProduce {
        acks,
        staged,
        engines,
        refused,
    }
}

fn push_partition(
    topics: &mut Vec<kafka_protocol::messages::produce_request::TopicProduceData>,
    topic: &kafka_protocol::messages::produce_request::TopicProduceData,
    partition: kafka_protocol::messages::produce_request::PartitionProduceData,
) {
    match topics
        .iter_mut()
        .find(|t| t.name == topic.name && t.topic_id == topic.topic_id)
    {
        Some(t) => t.partition_data.push(partition),
        None => {
            let mut t = topic.clone();
            t.partition_data = vec![partition];
            topics.push(t);
        }
    }
}

/// Waits for every part's answer and merges them (none for acks=0).
pub async fn produce_complete(split: SplitProduce) -> Option<ProduceResponse> {
    let answers =
        futures::future::join_all(split.staged.into_iter().zip(split.engines).map(
            |(staged, engine)| async move { produce::complete(&engine.broker, staged).await },
        ))
        .await;
    if split.acks == 0 {
        return None;
    }
    let mut merged = ProduceResponse::default();
    for answer in answers.into_iter().flatten() {
        merged.throttle_time_ms = merged.throttle_time_ms.max(answer.throttle_time_ms);
        for topic in answer.responses {
            merge_topic(&mut merged.responses, topic);
        }
    }
    for (name, index, error) in split.refused {
        let partition = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(error.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1);
        merge_topic(
            &mut merged.responses,
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(vec![partition]),
        );
    }
    Some(merged)
}

fn merge_topic(topics: &mut Vec<TopicProduceResponse>, topic: TopicProduceResponse) {
    match topics
        .iter_mut()
        .find(|t| t.name == topic.name && t.topic_id == topic.topic_id)
    {
        Some(t) => t.partition_responses.extend(topic.partition_responses),
        None => topics.push(topic),
    }
}

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
    let mut parts: BTreeMap<u32, (Arc<Engine>, FetchRequest)> = BTreeMap::new();
    let mut merged = FetchResponse::default();
    for topic in &request.topics {
        let id = topic_id(node, &topic.topic.0, topic.topic_id);
        for partition in &topic.partitions {
            match place(node, id, partition.partition, false) {
                Place::Engine(engine) => {
                    let (_, part) = parts.entry(engine.shard).or_insert_with(|| {
                        let mut part = request.clone();
                        part.topics.clear();
                        (engine.clone(), part)
                    });
                    match part
                        .topics
                        .iter_mut()
                        .find(|t| t.topic == topic.topic && t.topic_id == topic.topic_id)
                    {
                        Some(t) => t.partitions.push(partition.clone()),
                        None => {
                            let mut t = topic.clone();
                            t.partitions = vec![partition.clone()];
                            part.topics.push(t);
                        }
                    }
                }
                Place::Refused(error) => merge_fetch_topic(
                    &mut merged.responses,
                    FetchableTopicResponse::default()
                        .with_topic(topic.topic.clone())
                        .with_topic_id(topic.topic_id)
                        .with_partitions(vec![PartitionData::default()
                            .with_partition_index(partition.partition)
                            .with_error_code(error.code())
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)]),
                ),
            }
        }
    }
    let refused_any = !merged.responses.is_empty();
    let ask = |engine: Arc<Engine>, part: FetchRequest, client: String| async move {
        let answer = fetch::handle_held(&engine.broker, part.clone(), version, &client).await;
        (engine, part, answer)
    };
    let mut pending: FuturesUnordered<_> = parts
        .into_values()
        .map(|(engine, mut part)| {
            if refused_any {
                // Errors to report: no long poll.
                part.max_wait_ms = 0;
            }
            ask(engine, part, client_id.to_string())
        })
        .collect();
    let mut held = Vec::new();
    while let Some((_, _, (response, h))) = pending.next().await {
        let has_data = has_data(&response);
        absorb(&mut merged, response);
        held.push(h);
        if has_data {
            // The rest may be long-polling: they are dropped here and asked again below
            // without waiting.
            break;
        }
    }
    drop(pending);
    // Parts abandoned above are asked again at once (their futures were dropped unanswered).
    let answered: Vec<(String, Uuid, i32)> = merged
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), t.topic_id, p.partition_index))
        })
        .collect();
    let mut again: BTreeMap<u32, (Arc<Engine>, FetchRequest)> = BTreeMap::new();
    for topic in &request.topics {
        let id = topic_id(node, &topic.topic.0, topic.topic_id);
        for partition in &topic.partitions {
            let key = (
                topic.topic.0.to_string(),
                topic.topic_id,
                partition.partition,
            );
            if answered.contains(&key) {
                continue;
            }
            if let Place::Engine(engine) = place(node, id, partition.partition, false) {
                let (_, part) = again.entry(engine.shard).or_insert_with(|| {
                    let mut part = request.clone();
                    part.topics.clear();
                    part.max_wait_ms = 0;
                    part.min_bytes = 0;
                    (engine.clone(), part)
                });
                match part
                    .topics
                    .iter_mut()
                    .find(|t| t.topic == topic.topic && t.topic_id == topic.topic_id)
                {
                    Some(t) => t.partitions.push(partition.clone()),
                    None => {
                        let mut t = topic.clone();
                        t.partitions = vec![partition.clone()];
                        part.topics.push(t);
                    }
                }
            }
        }
    }
    for (engine, part) in again.into_values() {
        let (response, h) = fetch::handle_held(&engine.broker, part, version, client_id).await;
        absorb(&mut merged, response);
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

fn absorb(merged: &mut FetchResponse, response: FetchResponse) {
    merged.throttle_time_ms = merged.throttle_time_ms.max(response.throttle_time_ms);
    for topic in response.responses {
        merge_fetch_topic(&mut merged.responses, topic);
    }
}

fn merge_fetch_topic(topics: &mut Vec<FetchableTopicResponse>, topic: FetchableTopicResponse) {
    match topics
        .iter_mut()
        .find(|t| t.topic == topic.topic && t.topic_id == topic.topic_id)
    {
        Some(t) => t.partitions.extend(topic.partitions),
        None => topics.push(topic),
    }
}

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
    let mut parts: BTreeMap<u32, (Arc<Engine>, ListOffsetsRequest)> = BTreeMap::new();
    let mut merged = ListOffsetsResponse::default();
    for topic in &request.topics {
        let id = topic_id(node, &topic.name.0, Uuid::nil());
        for partition in &topic.partitions {
            match place(node, id, partition.partition_index, false) {
                Place::Engine(engine) => {
                    let (_, part) = parts.entry(engine.shard).or_insert_with(|| {
                        let mut part = request.clone();
                        part.topics.clear();
                        (engine.clone(), part)
                    });
                    match part.topics.iter_mut().find(|t| t.name == topic.name) {
                        Some(t) => t.partitions.push(partition.clone()),
                        None => {
                            let mut t = topic.clone();
                            t.partitions = vec![partition.clone()];
                            part.topics.push(t);
                        }
                    }
                }
                Place::Refused(error) => merge_offsets_topic(
                    &mut merged.topics,
                    ListOffsetsTopicResponse::default()
                        .with_name(topic.name.clone())
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(error.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1)]),
                ),
            }
        }
    }
    let answers = futures::future::join_all(parts.into_values().map(|(engine, part)| async move {
        list_offsets::handle(&engine.broker, part, version).await
    }))
    .await;
    for answer in answers {
        for topic in answer.topics {
            merge_offsets_topic(&mut merged.topics, topic);
        }
    }
    merged
}

fn merge_offsets_topic(
    topics: &mut Vec<ListOffsetsTopicResponse>,
    topic: ListOffsetsTopicResponse,
) {
    match topics.iter_mut().find(|t| t.name == topic.name) {
        Some(t) => t.partitions.extend(topic.partitions),
        None => topics.push(topic),
    }
}

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
    let mut parts: BTreeMap<u32, (Arc<Engine>, DeleteRecordsRequest)> = BTreeMap::new();
    let mut merged = DeleteRecordsResponse::default();
    for topic in &request.topics {
        let id = topic_id(node, &topic.name.0, Uuid::nil());
        for partition in &topic.partitions {
            match place(node, id, partition.partition_index, true) {
                Place::Engine(engine) => {
                    let (_, part) = parts.entry(engine.shard).or_insert_with(|| {
                        let mut part = request.clone();
                        part.topics.clear();
                        (engine.clone(), part)
                    });
                    match part.topics.iter_mut().find(|t| t.name == topic.name) {
                        Some(t) => t.partitions.push(partition.clone()),
                        None => {
                            let mut t = topic.clone();
                            t.partitions = vec![partition.clone()];
                            part.topics.push(t);
                        }
                    }
                }
                Place::Refused(error) => merge_delete_topic(
                    &mut merged.topics,
                    DeleteRecordsTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_partitions(vec![DeleteRecordsPartitionResult::default()
                            .with_partition_index(partition.partition_index)
                            .with_low_watermark(-1)
                            .with_error_code(error.code())]),
                ),
            }
        }
    }
    let answers =
        futures::future::join_all(parts.into_values().map(|(engine, part)| async move {
            delete_records::handle(&engine.broker, part).await
        }))
        .await;
    for answer in answers {
        for topic in answer.topics {
            merge_delete_topic(&mut merged.topics, topic);
        }
    }
    merged
}

fn merge_delete_topic(topics: &mut Vec<DeleteRecordsTopicResult>, topic: DeleteRecordsTopicResult) {
    match topics.iter_mut().find(|t| t.name == topic.name) {
        Some(t) => t.partitions.extend(topic.partitions),
        None => topics.push(topic),
    }
}
