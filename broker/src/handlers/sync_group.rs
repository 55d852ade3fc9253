//! SyncGroup: a thin adapter to the group coordinator.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::groups::{GroupCoordinator, SyncGroupParams};

/// Syncs the group; waits for the leader's assignment to be durable.
pub async fn handle(
    groups: &GroupCoordinator,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let params = SyncGroupParams {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol_name: request.protocol_name.map(|n| n.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let result = groups.sync_group(params).await;
    let mut response = SyncGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_assignment(result.assignment);
    if version >= 5 {
        response.protocol_type = result.protocol_type.map(str_bytes);
        response.protocol_name = result.protocol_name.map(str_bytes);
    }
    response
}
