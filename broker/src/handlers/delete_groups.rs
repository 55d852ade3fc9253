//! DeleteGroups: a thin adapter to the group coordinator.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::str_bytes;
use crate::groups::GroupCoordinator;

/// Deletes each Empty group named, with its committed offsets.
pub async fn handle(
    groups: &GroupCoordinator,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let ids = request
        .groups_names
        .into_iter()
        .map(|id| id.0.to_string())
        .collect();
    let results = groups
        .delete_groups(ids)
        .await
        .into_iter()
        .map(|(group_id, outcome)| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_error_code(outcome.err().map_or(0, |e| e.code()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
