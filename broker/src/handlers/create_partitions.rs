//! CreatePartitions: a topic grows to the count asked for; partitions are never removed. The
//! new partitions start empty; a cluster places them by shard like every other partition, so
//! manual replica assignments are refused.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use super::topic_changes::{self, repeated, TopicChanger};
use crate::log::topics::TopicError;

/// Grows each topic named (or only checks that it may, `validate_only`).
pub async fn handle(
    changer: &dyn TopicChanger,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let twice = repeated(request.topics.iter().map(|t| t.name.to_string()));
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let count = topic.count;
        let outcome = if twice.contains(&name) {
            Err((
                ResponseError::InvalidRequest,
                "the topic is listed more than once in the request".to_string(),
            ))
        } else if topic.assignments.is_some() {
            Err((
                ResponseError::InvalidReplicaAssignment,
                "partitions are placed by the broker (by shard in a cluster); manual \
                 assignments are not supported"
                    .to_string(),
            ))
        } else {
            topic_changes::change(changer, &name, request.validate_only, |old| {
                if count <= old.partitions {
                    return Err(TopicError::PartitionsShrink {
                        topic: old.name.clone(),
                        has: old.partitions,
                        asked: count,
                    });
                }
                let mut new = old.clone();
                new.partitions = count;
                Ok(new)
            })
            .await
            .map(drop)
            .map_err(|error| (topic_changes::error_code(&error), error.to_string()))
        };
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name);
        if let Err((code, message)) = outcome {
            result.error_code = code.code();
            result.error_message = Some(str_bytes(message));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}
