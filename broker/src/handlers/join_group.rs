//! JoinGroup: a thin adapter to the group coordinator.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::str_bytes;
use crate::groups::{ClientContext, GroupCoordinator, JoinGroupParams};

/// Joins the group; waits for the join phase to end when the member takes part in one.
pub async fn handle(
    groups: &GroupCoordinator,
    client: &ClientContext,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let params = JoinGroupParams {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        reason: request.reason.map(|reason| reason.to_string()),
    };
    let result = groups.join_group(client, params).await;
    let members = result
        .members
        .into_iter()
        .map(|member| {
            let mut out = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(member.member_id))
                .with_metadata(member.metadata);
            if version >= 5 {
                out.group_instance_id = member.group_instance_id.map(str_bytes);
            }
            out
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_generation_id(result.generation_id)
        .with_leader(str_bytes(result.leader_id))
        .with_member_id(str_bytes(result.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(str_bytes);
        response.protocol_name = result.protocol_name.map(str_bytes);
    } else {
        // Not nullable before v7: Kafka sends an empty string.
        response.protocol_name = Some(str_bytes(result.protocol_name.unwrap_or_default()));
    }
    if version >= 9 {
        response.skip_assignment = result.skip_assignment;
    }
    response
}
