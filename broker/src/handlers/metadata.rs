//! Metadata: brokers, topics and partitions; auto-creates topics when allowed.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;
use crate::log::partition::LEADER_EPOCH;
use crate::log::topics::{validate_name, Topic, TopicError};

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers a Metadata request.
pub async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
    listener: usize,
) -> MetadataResponse {
    // v0 asks for every topic with an empty list; v1+ with a null one.
    let wanted = match request.topics {
        Some(list) if !(version == 0 && list.is_empty()) => Some(list),
        _ => None,
    };
    let may_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match wanted {
        None => {
            for topic in broker.topics.list() {
                topics.push(describe(broker, &topic));
            }
        }
        Some(list) => {
            for wanted in list {
                topics.push(match wanted.name {
                    Some(name) => lookup(broker, name.0.as_str(), may_create).await,
                    None => match broker.topics.get_by_id(wanted.topic_id) {
                        Some(topic) => describe(broker, &topic),
                        None => error_topic(None, wanted.topic_id, ResponseError::UnknownTopicId),
                    },
                });
            }
        }
    }
    let (host, port) = broker.config.advertised_for(listener);
    let node = BrokerId(broker.config.node_id);
    let mut response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(host))
            .with_port(port)])
        .with_topics(topics);
    if version >= 2 {
        response.cluster_id = Some(str_bytes(broker.cluster_id.clone()));
    }
    if version >= 1 {
        response.controller_id = node;
    }
    response
}

async fn lookup(broker: &Broker, name: &str, may_create: bool) -> MetadataResponseTopic {
    if let Some(topic) = broker.topics.get(name) {
        return describe(broker, &topic);
    }
    if validate_name(name).is_err() {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::InvalidTopicException,
        );
    }
    if !may_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    let partitions = broker.config.default_partitions;
    match broker
        .topics
        .get_or_create(&broker.store, name, partitions)
        .await
    {
        Ok(topic) => describe(broker, &topic),
        Err(TopicError::Storage(error)) => {
            tracing::warn!(topic = name, %error, "auto-create failed");
            error_topic(Some(name), Uuid::nil(), ResponseError::KafkaStorageError)
        }
        Err(error @ (TopicError::TooManyPartitions { .. } | TopicError::PolicyViolation(_))) => {
            tracing::warn!(topic = name, %error, "auto-create refused by the broker's limits");
            error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            )
        }
        Err(error) => {
            tracing::warn!(topic = name, %error, "auto-create refused");
            error_topic(
                Some(name),
                Uuid::nil(),
                ResponseError::InvalidTopicException,
            )
        }
    }
}

fn describe(broker: &Broker, topic: &Arc<Topic>) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = (0..topic.partitions.len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    topic_entry(&topic.name, topic.id, partitions)
}

/// A topic's Metadata entry with its partitions.
pub(crate) fn topic_entry(
    name: &str,
    id: Uuid,
    partitions: Vec<MetadataResponsePartition>,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name.to_string()))))
        .with_topic_id(id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

pub(crate) fn error_topic(
    name: Option<&str>,
    id: Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}
