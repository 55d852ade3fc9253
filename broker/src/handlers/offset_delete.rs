//! OffsetDelete: removes committed offsets of a group for partitions it no longer consumes.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;

use std::future::Future;

use futures::future::Either;

use crate::broker::Broker;
use crate::groups::GroupState;

/// Queues the deletion of the named commits now (so it is ordered with the connection's
/// commits) and answers once it is durable; partitions of topics the group is still subscribed
/// to are refused with GROUP_SUBSCRIBED_TO_TOPIC, as Kafka does.
pub fn stage(
    broker: &Broker,
    request: OffsetDeleteRequest,
) -> impl Future<Output = OffsetDeleteResponse> + Send + 'static {
    let group = request.group_id.0.to_string();
    let has_commits = !broker.offsets.table().group(&group).is_empty();
    if !broker.groups.group_exists(&group) && !has_commits {
        return Either::Left(std::future::ready(
            OffsetDeleteResponse::default().with_error_code(ResponseError::GroupIdNotFound.code()),
        ));
    }
    let mut deletions = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let found = broker.topics.get(topic.name.0.as_str());
        let subscribed = is_subscribed(broker, &group, topic.name.0.as_str());
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let error = match &found {
                    None => ResponseError::UnknownTopicOrPartition.code(),
                    Some(t) if t.partition(p.partition_index).is_none() => {
                        ResponseError::UnknownTopicOrPartition.code()
                    }
                    Some(_) if subscribed => ResponseError::GroupSubscribedToTopic.code(),
                    Some(t) => {
                        deletions.push((t.id, p.partition_index));
                        0
                    }
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let written = broker.offsets.delete(&group, deletions);
    Either::Right(async move {
        if let Err(error) = written.await {
            tracing::warn!(group, %error, "offset delete failed");
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code());
        }
        OffsetDeleteResponse::default().with_topics(topics)
    })
}

/// Whether a live consumer group's members subscribe to `topic`, from the subscriptions they
/// sent in JoinGroup (Kafka's consumer protocol). Groups of other protocol types and metadata
/// that does not decode count as not subscribed, as in Kafka.
fn is_subscribed(broker: &Broker, group: &str, topic: &str) -> bool {
    let Some(overview) = broker.groups.group_overview(group) else {
        return false;
    };
    if matches!(overview.state, GroupState::Empty | GroupState::Dead)
        || overview.protocol_type.as_deref() != Some("consumer")
    {
        return false;
    }
    overview.member_metadata.iter().any(|metadata| {
        let mut buf = metadata.clone();
        if buf.len() < 2 {
            return false;
        }
        let version = i16::from_be_bytes([buf[0], buf[1]]);
        let _ = buf.split_to(2);
        let version = version.clamp(0, 3);
        ConsumerProtocolSubscription::decode(&mut buf, version)
            .is_ok_and(|s| s.topics.iter().any(|t| t.as_str() == topic))
    })
}
