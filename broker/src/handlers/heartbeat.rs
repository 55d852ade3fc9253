//! Heartbeat: a thin adapter to the group coordinator.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::groups::GroupCoordinator;

/// Extends the member's session; tells it when the group rebalances.
pub fn handle(groups: &GroupCoordinator, request: HeartbeatRequest) -> HeartbeatResponse {
    let instance = request.group_instance_id.as_ref().map(|id| id.as_str());
    let outcome = groups.heartbeat(
        request.group_id.0.as_str(),
        request.generation_id,
        request.member_id.as_str(),
        instance,
    );
    HeartbeatResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code()))
}
