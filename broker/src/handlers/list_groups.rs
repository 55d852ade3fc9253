//! ListGroups: a thin adapter to the group coordinator.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::groups::GroupCoordinator;

/// Lists the groups, filtered by state (v4+) and type (v5+).
pub fn handle(
    groups: &GroupCoordinator,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let strings = |list: Vec<kafka_protocol::protocol::StrBytes>| {
        list.into_iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let states = if version >= 4 {
        strings(request.states_filter)
    } else {
        Vec::new()
    };
    let types = if version >= 5 {
        strings(request.types_filter)
    } else {
        Vec::new()
    };
    let listed = groups
        .list_groups(&states, &types)
        .into_iter()
        .map(|group| {
            let mut out = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(group.group_id)))
                .with_protocol_type(str_bytes(group.protocol_type));
            if version >= 4 {
                out.group_state = str_bytes(group.state.name());
            }
            if version >= 5 {
                out.group_type = str_bytes("classic");
            }
            out
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}
