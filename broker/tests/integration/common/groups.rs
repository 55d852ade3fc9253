//! Group requests for the raw test client: a JoinGroup (with v4's MEMBER_ID_REQUIRED round
//! trip) and the leader's SyncGroup.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::Client;

pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

pub fn join_request(group_id: &str, member_id: &str, metadata: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from(metadata.to_string()))])
}

/// Joins as a new member in `version`, doing the MEMBER_ID_REQUIRED round trip from v4.
pub fn join(
    client: &mut Client,
    version: i16,
    group_id: &str,
    metadata: &str,
) -> JoinGroupResponse {
    let first: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(group_id, "", metadata),
    );
    if version < 4 {
        return first;
    }
    assert_eq!(
        first.error_code,
        ResponseError::MemberIdRequired.code(),
        "JoinGroup v{version}"
    );
    assert!(first.member_id.starts_with("hotwire-test-"), "{first:?}");
    client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(group_id, first.member_id.as_str(), metadata),
    )
}

pub fn sync_request(group_id: &str, joined: &JoinGroupResponse) -> SyncGroupRequest {
    let assignments = joined
        .members
        .iter()
        .map(|m| {
            SyncGroupRequestAssignment::default()
                .with_member_id(m.member_id.clone())
                .with_assignment(Bytes::from(format!("for:{}", m.member_id.as_str())))
        })
        .collect();
    SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(assignments)
}
