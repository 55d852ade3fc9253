//! DeleteTopics.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::log::topics::TopicError;

/// Deletes topics named (v1-5) or named or identified (v6+).
pub async fn handle(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted = wanted(request, version);
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| broker.topics.get_by_id(id).map(|t| t.name.clone()));
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))));
        if version >= 6 {
            result.topic_id = id;
        }
        let outcome = match &name {
            Some(name) => broker.topics.delete(&broker.store, name).await,
            None => Err(TopicError::Unknown(id.to_string())),
        };
        match outcome {
            Ok(topic) => {
                // The topic is gone already; its data goes at the next maintenance round if
                // this fails now (recovery also drops data of unknown topics).
                if let Err(error) = broker.catalog.drop_topic(topic.id).await {
                    tracing::warn!(%error, topic = %topic.name, "segments of a deleted topic not retired yet");
                }
                if version >= 6 {
                    result.topic_id = topic.id;
                }
            }
            Err(error) => {
                let code = match (&error, name.is_some()) {
                    (TopicError::Unknown(_), true) => ResponseError::UnknownTopicOrPartition,
                    (TopicError::Unknown(_), false) => ResponseError::UnknownTopicId,
                    (TopicError::Storage(_), _) => ResponseError::KafkaStorageError,
                    _ => ResponseError::UnknownServerError,
                };
                result.error_code = code.code();
                if version >= 5 {
                    result.error_message = Some(str_bytes(error.to_string()));
                }
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// The topics a request names: by name (v1-5), or by name or id (v6+).
pub(crate) fn wanted(
    request: DeleteTopicsRequest,
    version: i16,
) -> Vec<(Option<String>, uuid::Uuid)> {
    if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    }
}
