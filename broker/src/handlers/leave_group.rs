//! LeaveGroup: a thin adapter to the group coordinator.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::str_bytes;
use crate::groups::{GroupCoordinator, LeavingMember};

/// Removes one member (v0-2) or a batch (v3+, each with its own error).
pub fn handle(
    groups: &GroupCoordinator,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let leaving = if version >= 3 {
        request
            .members
            .into_iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.map(|id| id.to_string()),
                reason: member.reason.map(|reason| reason.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            ..LeavingMember::default()
        }]
    };
    let result = groups.leave_group(request.group_id.0.as_str(), leaving);
    let top = result.error.map_or(0, |e| e.code());
    if version < 3 {
        // One member, no per-member list: its error is the request's, as Kafka answers.
        let member_error = result
            .members
            .iter()
            .find_map(|(_, error)| *error)
            .map_or(0, |e| e.code());
        return LeaveGroupResponse::default().with_error_code(if top != 0 {
            top
        } else {
            member_error
        });
    }
    let members = result
        .members
        .into_iter()
        .map(|(member, error)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member.member_id))
                .with_group_instance_id(member.group_instance_id.map(str_bytes))
                .with_error_code(error.map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(members)
}
