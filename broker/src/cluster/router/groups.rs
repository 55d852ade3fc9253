//! Requests addressed to a consumer group: served by the engine of the group's shard when this
//! broker leads it, answered `NOT_COORDINATOR` otherwise (the client asks FindCoordinator again
//! and goes to the shard's leader).

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    DeleteGroupsResponse, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, ProducerId, RequestKind, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

use crate::cluster::node::{Engine, Node};
use crate::cluster::shards;
use crate::handlers::find_coordinator::{self, CoordinatorAddress};
use crate::handlers::list_groups;

/// Where a group request goes.
pub enum GroupTarget {
    /// The engine of the group's shard.
    Engine(Arc<Engine>),
    /// This broker does not lead the group's shard.
    NotCoordinator,
}

/// The groups a request names (none for requests that are not group requests).
fn groups_of(body: &RequestKind) -> Vec<String> {
    let one = |g: &kafka_protocol::messages::GroupId| vec![g.0.to_string()];
    match body {
        RequestKind::JoinGroup(r) => one(&r.group_id),
        RequestKind::SyncGroup(r) => one(&r.group_id),
        RequestKind::Heartbeat(r) => one(&r.group_id),
        RequestKind::LeaveGroup(r) => one(&r.group_id),
        RequestKind::OffsetCommit(r) => one(&r.group_id),
        RequestKind::OffsetDelete(r) => one(&r.group_id),
        RequestKind::OffsetFetch(r) if r.groups.is_empty() => one(&r.group_id),
        RequestKind::OffsetFetch(r) => r.groups.iter().map(|g| g.group_id.0.to_string()).collect(),
        RequestKind::DescribeGroups(r) => r.groups.iter().map(|g| g.0.to_string()).collect(),
        RequestKind::DeleteGroups(r) => r.groups_names.iter().map(|g| g.0.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Routes a group request: to the engine of its groups' shard if every group named is in one
/// shard this broker leads.
pub fn route(node: &Node, body: &RequestKind) -> GroupTarget {
    let shards: Vec<u32> = groups_of(body)
        .iter()
        .map(|g| shards::of_group(g, node.settings()))
        .collect();
    match shards.first() {
        Some(first) if shards.iter().all(|s| s == first) => match node.engine(*first) {
            Some(engine) => GroupTarget::Engine(engine),
            None => GroupTarget::NotCoordinator,
        },
        _ => GroupTarget::NotCoordinator,
    }
}

/// The `NOT_COORDINATOR` answer to a group request (`None` for anything else: the connection
/// closes, as for an API the broker does not serve).
pub fn not_coordinator(body: RequestKind, version: i16) -> Option<ResponseKind> {
    let code = ResponseError::NotCoordinator.code();
    Some(match body {
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_member_id(r.member_id),
        ),
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        RequestKind::OffsetFetch(r) if version >= 8 => ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .into_iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(_) => {
            // v0-1 have no top-level error: an empty answer makes the client look again.
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
        }
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .into_iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(code)
                            .with_authorized_operations(i32::MIN)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .into_iter()
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        other => {
            tracing::error!("no cluster route for {other:?}");
            return None;
        }
    })
}

/// FindCoordinator: the leader of the group's shard.
pub async fn find_coordinator(
    node: &Node,
    request: FindCoordinatorRequest,
    version: i16,
    protocol: &str,
) -> FindCoordinatorResponse {
    let view = node.member.fresh_view().await;
    let assignments = view.assignments();
    let resolve = |key: &str| -> Option<CoordinatorAddress> {
        let shard = shards::of_group(key, node.settings());
        let leader = assignments.get(&shard)?.leader?;
        let broker = view.broker(leader)?;
        let (host, port) = broker.info.address(protocol);
        Some(CoordinatorAddress {
            node_id: broker.info.node_id,
            host,
            port,
        })
    };
    find_coordinator::handle_with(&resolve, request, version)
}

/// ListGroups: the groups of every shard this broker leads (clients ask every broker).
pub fn list_groups(node: &Node, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let mut merged = ListGroupsResponse::default();
    for engine in node.engines() {
        let answer = list_groups::handle(&engine.broker.groups, request.clone(), version);
        if answer.error_code != 0 {
            merged.error_code = answer.error_code;
        }
        merged.groups.extend(answer.groups);
    }
    merged
}

/// InitProducerId when this broker leads no shard (ids come from a shard's range).
pub fn no_producer_ids() -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
