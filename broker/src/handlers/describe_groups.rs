//! DescribeGroups: a thin adapter to the group coordinator.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::groups::{GroupCoordinator, GroupState};

/// Kafka's marker for "authorized operations not requested".
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Without an authorizer every group operation Kafka defines is allowed: READ (3), DELETE (6)
/// and DESCRIBE (8), as a bit field.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Describes each group asked for. Unknown groups are described as Dead with no error up to v5
/// (as Kafka does); v6 answers them GROUP_ID_NOT_FOUND.
pub fn handle(
    groups: &GroupCoordinator,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if version >= 3 && request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        OPERATIONS_OMITTED
    };
    let described = request
        .groups
        .into_iter()
        .map(|group_id| {
            let group = groups.describe_group(group_id.0.as_str());
            let members = group
                .members
                .into_iter()
                .map(|member| {
                    let mut out = DescribedGroupMember::default()
                        .with_member_id(str_bytes(member.member_id))
                        .with_client_id(str_bytes(member.client_id))
                        .with_client_host(str_bytes(member.client_host))
                        .with_member_metadata(member.metadata)
                        .with_member_assignment(member.assignment);
                    if version >= 4 {
                        out.group_instance_id = member.group_instance_id.map(str_bytes);
                    }
                    out
                })
                .collect();
            let mut out = DescribedGroup::default()
                .with_group_id(GroupId(str_bytes(group.group_id)))
                .with_group_state(str_bytes(group.state.name()))
                .with_protocol_type(str_bytes(group.protocol_type))
                .with_protocol_data(str_bytes(group.protocol_data))
                .with_members(members);
            if version >= 3 {
                out.authorized_operations = operations;
            }
            if version >= 6 && group.state == GroupState::Dead {
                out.error_code = ResponseError::GroupIdNotFound.code();
                out.error_message = Some(str_bytes(format!(
                    "Group {} not found.",
                    group_id.0.as_str()
                )));
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}
