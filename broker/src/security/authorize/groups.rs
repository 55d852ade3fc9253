//! Requests on groups, transactional ids and producer ids: READ on the group to take part in
//! it or commit, DESCRIBE to see it, DELETE to delete it or its offsets; each topic of a commit
//! or offset deletion needs READ, of an offset fetch DESCRIBE.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, ProducerId, RequestKind, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

use super::{split_off, Checked, Parts};
use crate::security::acl::{Access, Operation, ResourceType};

const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;
const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;
/// FindCoordinator's key type of a transactional id.
const KEY_TRANSACTION: i8 = 1;

/// The denied parts' entries, or the lists to filter, per API.
#[derive(Clone)]
pub enum DeniedGroups {
    /// OffsetCommit's denied topics.
    OffsetCommit(Vec<OffsetCommitResponseTopic>),
    /// OffsetFetch: denied groups (v8+), and topics to hide or answer denied.
    OffsetFetch(OffsetFetchFilter),
    /// OffsetDelete's denied topics.
    OffsetDelete(Vec<OffsetDeleteResponseTopic>),
    /// FindCoordinator v4+'s denied keys.
    FindCoordinator(Vec<Coordinator>),
    /// DescribeGroups' denied groups.
    DescribeGroups(Vec<DescribedGroup>),
    /// DeleteGroups' denied groups.
    DeleteGroups(Vec<DeletableGroupResult>),
    /// ListGroups: only the groups the client may describe.
    ListGroups(Access),
}

impl DeniedGroups {
    pub(super) fn apply(self, response: &mut ResponseKind) {
        match (self, response) {
            (Self::OffsetCommit(denied), ResponseKind::OffsetCommit(r)) => r.topics.extend(denied),
            (Self::OffsetFetch(filter), ResponseKind::OffsetFetch(r)) => filter.apply(r),
            (Self::OffsetDelete(denied), ResponseKind::OffsetDelete(r)) => r.topics.extend(denied),
            (Self::FindCoordinator(denied), ResponseKind::FindCoordinator(r)) => {
                r.coordinators.extend(denied)
            }
            (Self::DescribeGroups(denied), ResponseKind::DescribeGroups(r)) => {
                r.groups.extend(denied)
            }
            (Self::DeleteGroups(denied), ResponseKind::DeleteGroups(r)) => r.results.extend(denied),
            (Self::ListGroups(access), ResponseKind::ListGroups(r)) => r
                .groups
                .retain(|g| access.allows(Operation::Describe, ResourceType::Group, &g.group_id)),
            (_, other) => tracing::error!(?other, "denied groups for another API's response"),
        }
    }
}

fn may(access: &Access, operation: Operation, group: &str) -> bool {
    access.allows(operation, ResourceType::Group, group)
}

fn answer(response: ResponseKind) -> Checked {
    Checked::Answer(Box::new(response))
}

fn serve(body: RequestKind, denied: DeniedGroups) -> Checked {
    Checked::Serve(Box::new(body), Parts::Groups(denied))
}

pub(super) fn check(access: &Access, body: RequestKind, version: i16) -> Checked {
    let denied_code = GROUP_DENIED.code();
    match body {
        RequestKind::JoinGroup(r) if !may(access, Operation::Read, &r.group_id) => {
            answer(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(denied_code)
                    .with_generation_id(-1),
            ))
        }
        RequestKind::SyncGroup(r) if !may(access, Operation::Read, &r.group_id) => answer(
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(denied_code)),
        ),
        RequestKind::Heartbeat(r) if !may(access, Operation::Read, &r.group_id) => answer(
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(denied_code)),
        ),
        RequestKind::LeaveGroup(r) if !may(access, Operation::Read, &r.group_id) => answer(
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(denied_code)),
        ),
        RequestKind::OffsetCommit(mut r) => {
            let group = may(access, Operation::Read, &r.group_id);
            let code = if group { TOPIC_DENIED } else { GROUP_DENIED };
            let denied = split_off(
                &mut r.topics,
                |t| group && access.allows(Operation::Read, ResourceType::Topic, &t.name),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partitions(partitions)
                },
            );
            if !group {
                return answer(ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(denied),
                ));
            }
            serve(
                RequestKind::OffsetCommit(r),
                DeniedGroups::OffsetCommit(denied),
            )
        }
        RequestKind::OffsetFetch(mut r) => {
            if version < 8 {
                if !may(access, Operation::Describe, &r.group_id) {
                    return answer(ResponseKind::OffsetFetch(
                        OffsetFetchResponse::default().with_error_code(denied_code),
                    ));
                }
                let filter = OffsetFetchFilter {
                    access: access.clone(),
                    denied: Vec::new(),
                    every_topic: r.topics.is_none().then(|| vec![r.group_id.to_string()]),
                };
                return serve(
                    RequestKind::OffsetFetch(r),
                    DeniedGroups::OffsetFetch(filter),
                );
            }
            let denied = split_off(
                &mut r.groups,
                |g| may(access, Operation::Describe, &g.group_id),
                |g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(denied_code)
                },
            );
            let every_topic = r
                .groups
                .iter()
                .filter(|g| g.topics.is_none())
                .map(|g| g.group_id.to_string())
                .collect();
            let filter = OffsetFetchFilter {
                access: access.clone(),
                denied,
                every_topic: Some(every_topic),
            };
            serve(
                RequestKind::OffsetFetch(r),
                DeniedGroups::OffsetFetch(filter),
            )
        }
        RequestKind::OffsetDelete(mut r) => {
            if !may(access, Operation::Delete, &r.group_id) {
                return answer(ResponseKind::OffsetDelete(
                    OffsetDeleteResponse::default().with_error_code(denied_code),
                ));
            }
            let denied = split_off(
                &mut r.topics,
                |t| access.allows(Operation::Read, ResourceType::Topic, &t.name),
                |t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED.code())
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                },
            );
            serve(
                RequestKind::OffsetDelete(r),
                DeniedGroups::OffsetDelete(denied),
            )
        }
        RequestKind::FindCoordinator(mut r) => {
            let (resource, code) = if r.key_type == KEY_TRANSACTION {
                (
                    ResourceType::TransactionalId,
                    ResponseError::TransactionalIdAuthorizationFailed,
                )
            } else {
                (ResourceType::Group, GROUP_DENIED)
            };
            if version < 4 {
                if !access.allows(Operation::Describe, resource, &r.key) {
                    return answer(ResponseKind::FindCoordinator(
                        FindCoordinatorResponse::default()
                            .with_error_code(code.code())
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                    ));
                }
                return Checked::Serve(Box::new(RequestKind::FindCoordinator(r)), Parts::Nothing);
            }
            let denied = split_off(
                &mut r.coordinator_keys,
                |key| access.allows(Operation::Describe, resource, key),
                |key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code())
                },
            );
            serve(
                RequestKind::FindCoordinator(r),
                DeniedGroups::FindCoordinator(denied),
            )
        }
        RequestKind::DescribeGroups(mut r) => {
            let denied = split_off(
                &mut r.groups,
                |g| may(access, Operation::Describe, g),
                |g| {
                    DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(denied_code)
                },
            );
            serve(
                RequestKind::DescribeGroups(r),
                DeniedGroups::DescribeGroups(denied),
            )
        }
        RequestKind::DeleteGroups(mut r) => {
            let denied = split_off(
                &mut r.groups_names,
                |g| may(access, Operation::Delete, g),
                |g| {
                    DeletableGroupResult::default()
                        .with_group_id(g)
                        .with_error_code(denied_code)
                },
            );
            serve(
                RequestKind::DeleteGroups(r),
                DeniedGroups::DeleteGroups(denied),
            )
        }
        RequestKind::ListGroups(r) if !access.allows_cluster(Operation::Describe) => serve(
            RequestKind::ListGroups(r),
            DeniedGroups::ListGroups(access.clone()),
        ),
        RequestKind::InitProducerId(r) => {
            let refused = match &r.transactional_id {
                Some(id) => (!access.allows(Operation::Write, ResourceType::TransactionalId, id))
                    .then_some(ResponseError::TransactionalIdAuthorizationFailed),
                None => (!access.allows_cluster(Operation::IdempotentWrite)
                    && !access.allows_some(Operation::Write, ResourceType::Topic))
                .then_some(ResponseError::ClusterAuthorizationFailed),
            };
            match refused {
                Some(code) => answer(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(code.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )),
                None => Checked::Serve(Box::new(RequestKind::InitProducerId(r)), Parts::Nothing),
            }
        }
        other => Checked::Serve(Box::new(other), Parts::Nothing),
    }
}

/// OffsetFetch's answer without the offsets of topics the client may not describe: gone from
/// a fetch of every topic, TOPIC_AUTHORIZATION_FAILED where the client named them.
#[derive(Clone)]
pub struct OffsetFetchFilter {
    access: Access,
    /// Entries of the groups the client may not describe (v8+).
    denied: Vec<OffsetFetchResponseGroup>,
    /// The groups whose every topic was asked for (v0-7: the one group, if so).
    every_topic: Option<Vec<String>>,
}

impl OffsetFetchFilter {
    fn apply(self, response: &mut OffsetFetchResponse) {
        let describable = |name: &str| {
            self.access
                .allows(Operation::Describe, ResourceType::Topic, name)
        };
        let every_topic = |group: &str| {
            self.every_topic
                .as_ref()
                .is_some_and(|groups| groups.iter().any(|g| g == group))
        };
        // v0-7: one group, so "every topic" is that group's.
        if self.every_topic.as_ref().is_some_and(|g| g.len() == 1) && response.groups.is_empty() {
            response.topics.retain(|t| describable(&t.name));
        }
        for topic in &mut response.topics {
            if !describable(&topic.name) {
                for partition in &mut topic.partitions {
                    partition.committed_offset = -1;
                    partition.metadata = None;
                    partition.error_code = TOPIC_DENIED.code();
                }
            }
        }
        for group in &mut response.groups {
            if every_topic(&group.group_id) {
                group.topics.retain(|t| describable(&t.name));
            }
            for topic in &mut group.topics {
                if !describable(&topic.name) {
                    for partition in &mut topic.partitions {
                        partition.committed_offset = -1;
                        partition.metadata = None;
                        partition.error_code = TOPIC_DENIED.code();
                    }
                }
            }
        }
        response.groups.extend(self.denied);
    }
}
