//! CreateTopics.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::log::topics::TopicError;

/// Config source reported for overrides given at creation (Kafka's DYNAMIC_TOPIC_CONFIG).
const SOURCE_TOPIC: i8 = 1;

/// A created topic's id and configs, once durable.
pub type Created<'a> = BoxFuture<'a, Result<(uuid::Uuid, BTreeMap<String, String>), TopicError>>;

/// Where topics are created: a broker's own storage, or a cluster's etcd.
pub trait TopicCreator: Sync {
    /// Partitions of a topic created with `num_partitions = -1`.
    fn default_partitions(&self) -> i32;

    /// Creates a topic durably (or only validates it); returns its id and configs.
    fn create<'a>(
        &'a self,
        name: &'a str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Created<'a>;
}

impl TopicCreator for Broker {
    fn default_partitions(&self) -> i32 {
        self.config.default_partitions
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Created<'a> {
        Box::pin(async move {
            let topic = self
                .topics
                .create(&self.store, name, partitions, configs, validate_only)
                .await?;
            Ok((topic.id, topic.configs.clone()))
        })
    }
}

/// Creates each topic (or validates it only) and reports per-topic results.
pub async fn handle(
    creator: &dyn TopicCreator,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        results.push(create_one(creator, topic, request.validate_only, version).await);
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create_one(
    creator: &dyn TopicCreator,
    topic: CreatableTopic,
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let name = topic.name.0.to_string();
    let mut result = CreatableTopicResult::default().with_name(topic.name.clone());
    let fail = |mut result: CreatableTopicResult, error: ResponseError, message: String| {
        result.error_code = error.code();
        if version >= 1 {
            result.error_message = Some(str_bytes(message));
        }
        result
    };
    if topic.replication_factor == 0 || topic.replication_factor < -1 {
        let message = format!("replication factor {} is invalid", topic.replication_factor);
        return fail(result, ResponseError::InvalidReplicationFactor, message);
    }
    let partitions = match (topic.assignments.len(), topic.num_partitions) {
        (0, -1) => creator.default_partitions(),
        (0, n) => n,
        (n, -1) if topic.replication_factor == -1 => i32::try_from(n).unwrap_or(i32::MAX),
        (_, _) => {
            // As Kafka: manual assignments exclude a partition count and replication factor.
            let message = "both replica assignments and num_partitions or replication_factor \
                           were given"
                .to_string();
            return fail(result, ResponseError::InvalidRequest, message);
        }
    };
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        if let Some(value) = config.value {
            configs.insert(config.name.to_string(), value.to_string());
        }
    }
    match creator
        .create(&name, partitions, configs, validate_only)
        .await
    {
        Ok((id, configs)) => {
            if version >= 7 {
                result.topic_id = id;
            }
            if version >= 5 {
                result.num_partitions = partitions;
                result.replication_factor = 1;
                result.configs = Some(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(k.clone()))
                                .with_value(Some(str_bytes(v.clone())))
                                .with_config_source(SOURCE_TOPIC)
                        })
                        .collect(),
                );
            }
            result
        }
        Err(error) => {
            let code = match &error {
                // A name that cannot exist is invalid rather than unknown here.
                TopicError::Unknown(_) => ResponseError::InvalidTopicException,
                other => super::topic_changes::error_code(other),
            };
            fail(result, code, error.to_string())
        }
    }
}
