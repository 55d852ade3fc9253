//! The classic group protocol against the `hotwire` binary: every advertised version of every
//! group API, and three consumers sharing a group through a join, a sync and a leave.

use crate::common::groups::{group, join, join_request, sync_request, text};
use crate::common::{BrokerProcess, Client};
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

/// No initial delay, so a single member's join completes at once.
const FAST: &[&str] = &["--group-initial-rebalance-delay-ms", "0"];

/// The range the broker advertises for `api`.
fn advertised(client: &mut Client, api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let response: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let entry = response
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .unwrap_or_else(|| panic!("{api:?} not advertised"));
    entry.min_version..=entry.max_version
}

fn leave(client: &mut Client, version: i16, group_id: &str, member_id: &str) -> i16 {
    let mut request = LeaveGroupRequest::default().with_group_id(group(group_id));
    if version >= 3 {
        request.members = vec![MemberIdentity::default().with_member_id(text(member_id))];
    } else {
        request.member_id = text(member_id);
    }
    let response: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, version, &request);
    if version >= 3 {
        assert_eq!(response.error_code, 0);
        response.members[0].error_code
    } else {
        response.error_code
    }
}

#[test]
fn group_apis_in_every_version() {
    let broker = BrokerProcess::start(FAST);
    let mut client = broker.connect();

    for version in advertised(&mut client, ApiKey::FindCoordinator) {
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![text("g")];
        } else {
            request.key = text("g");
        }
        let response: FindCoordinatorResponse =
            client.call(ApiKey::FindCoordinator, version, &request);
        let (error, port) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.port),
            None => (response.error_code, response.port),
        };
        assert_eq!(error, 0, "FindCoordinator v{version}");
        assert_eq!(
            port,
            i32::from(broker.addr.port()),
            "FindCoordinator v{version}"
        );
        if version >= 1 {
            let mut request = request.with_key_type(1);
            if version >= 4 {
                request.coordinator_keys = vec![text("txn")];
            } else {
                request.key = text("txn");
            }
            let response: FindCoordinatorResponse =
                client.call(ApiKey::FindCoordinator, version, &request);
            let error = response
                .coordinators
                .first()
                .map_or(response.error_code, |c| c.error_code);
            assert_eq!(
                error,
                ResponseError::TransactionalIdAuthorizationFailed.code()
            );
        }
    }

    let joins = advertised(&mut client, ApiKey::JoinGroup);
    let max = |api| *advertised(&mut broker.connect(), api).end();
    let (sync_max, heartbeat_max, leave_max) = (
        max(ApiKey::SyncGroup),
        max(ApiKey::Heartbeat),
        max(ApiKey::LeaveGroup),
    );
    for version in joins {
        let group_id = format!("join-v{version}");
        let joined = join(&mut client, version, &group_id, "subscription");
        assert_eq!(joined.error_code, 0, "JoinGroup v{version}");
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(joined.members[0].metadata.as_ref(), b"subscription");
        assert_eq!(
            joined.protocol_name.as_ref().map(|p| p.as_str()),
            Some("range")
        );
        if version >= 7 {
            assert_eq!(
                joined.protocol_type.as_ref().map(|p| p.as_str()),
                Some("consumer")
            );
        }

        let sync_version = version.min(sync_max);
        let synced: SyncGroupResponse = client.call(
            ApiKey::SyncGroup,
            sync_version,
            &sync_request(&group_id, &joined),
        );
        assert_eq!(synced.error_code, 0, "SyncGroup v{sync_version}");
        let expected = format!("for:{}", joined.member_id.as_str());
        assert_eq!(synced.assignment.as_ref(), expected.as_bytes());

        let heartbeat_version = version.min(heartbeat_max);
        let request = HeartbeatRequest::default()
            .with_group_id(group(&group_id))
            .with_generation_id(1)
            .with_member_id(joined.member_id.clone());
        let beat: HeartbeatResponse = client.call(ApiKey::Heartbeat, heartbeat_version, &request);
        assert_eq!(beat.error_code, 0, "Heartbeat v{heartbeat_version}");
        let stale: HeartbeatResponse = client.call(
            ApiKey::Heartbeat,
            heartbeat_version,
            &request.with_generation_id(0),
        );
        assert_eq!(stale.error_code, ResponseError::IllegalGeneration.code());
    }

    for version in advertised(&mut client, ApiKey::DescribeGroups) {
        let request =
            DescribeGroupsRequest::default().with_groups(vec![group("join-v5"), group("nosuch")]);
        let response: DescribeGroupsResponse =
            client.call(ApiKey::DescribeGroups, version, &request);
        let described = &response.groups[0];
        assert_eq!(described.error_code, 0, "DescribeGroups v{version}");
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.protocol_type.as_str(), "consumer");
        assert_eq!(described.protocol_data.as_str(), "range");
        assert_eq!(described.members.len(), 1);
        assert_eq!(described.members[0].client_id.as_str(), "hotwire-test");
        assert_eq!(
            described.members[0].member_metadata.as_ref(),
            b"subscription"
        );
        assert!(described.members[0].member_assignment.starts_with(b"for:"));
        assert_eq!(response.groups[1].group_state.as_str(), "Dead");
    }

    for version in advertised(&mut client, ApiKey::ListGroups) {
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request.states_filter = vec![text("Stable")];
        }
        let response: ListGroupsResponse = client.call(ApiKey::ListGroups, version, &request);
        assert_eq!(response.error_code, 0, "ListGroups v{version}");
        let joins = advertised(&mut client, ApiKey::JoinGroup).count();
        assert_eq!(response.groups.len(), joins, "ListGroups v{version}");
        assert!(response
            .groups
            .iter()
            .all(|g| g.protocol_type.as_str() == "consumer"));
        if version >= 4 {
            assert!(response
                .groups
                .iter()
                .all(|g| g.group_state.as_str() == "Stable"));
        }
    }

    // Leave every group (in each LeaveGroup version), then delete them (in each DeleteGroups
    // version): a group with members cannot be deleted, an empty one can, an unknown one is
    // not found.
    let mut leave_version = 0;
    let mut member_of = std::collections::HashMap::new();
    for described in describe_all(&mut client) {
        member_of.insert(described.0, described.1);
    }
    let busy: DeleteGroupsResponse = client.call(
        ApiKey::DeleteGroups,
        0,
        &DeleteGroupsRequest::default().with_groups_names(vec![group("join-v0")]),
    );
    assert_eq!(
        busy.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    let mut groups: Vec<String> = member_of.keys().cloned().collect();
    groups.sort();
    for group_id in &groups {
        let error = leave(&mut client, leave_version, group_id, &member_of[group_id]);
        assert_eq!(error, 0, "LeaveGroup v{leave_version}");
        leave_version = (leave_version + 1).min(leave_max);
    }
    let deletes = advertised(&mut client, ApiKey::DeleteGroups);
    let mut remaining = groups.iter();
    for version in deletes {
        let Some(group_id) = remaining.next() else {
            break;
        };
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![group(group_id), group("nosuch")]);
        let response: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, version, &request);
        assert_eq!(response.results[0].error_code, 0, "DeleteGroups v{version}");
        assert_eq!(
            response.results[1].error_code,
            ResponseError::GroupIdNotFound.code()
        );
    }
}

/// `(group id, its one member id)` for every group listed.
fn describe_all(client: &mut Client) -> Vec<(String, String)> {
    let listed: ListGroupsResponse =
        client.call(ApiKey::ListGroups, 0, &ListGroupsRequest::default());
    let ids = listed.groups.iter().map(|g| g.group_id.clone()).collect();
    let described: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        0,
        &DescribeGroupsRequest::default().with_groups(ids),
    );
    described
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str().to_string(),
                g.members[0].member_id.as_str().to_string(),
            )
        })
        .collect()
}

/// One consumer's JoinGroup (v5, as librdkafka sends) and SyncGroup (v3); the leader assigns.
fn join_and_sync(
    broker: &BrokerProcess,
    group_id: &str,
    member_id: Option<&str>,
) -> (JoinGroupResponse, SyncGroupResponse) {
    let mut client = broker.connect();
    let joined = match member_id {
        None => join(&mut client, 5, group_id, "topic-a"),
        Some(id) => client.call(ApiKey::JoinGroup, 5, &join_request(group_id, id, "topic-a")),
    };
    assert_eq!(joined.error_code, 0);
    let synced: SyncGroupResponse =
        client.call(ApiKey::SyncGroup, 3, &sync_request(group_id, &joined));
    assert_eq!(synced.error_code, 0);
    (joined, synced)
}

#[test]
fn three_consumers_share_a_group_and_rebalance_when_one_leaves() {
    let broker = BrokerProcess::start(&["--group-initial-rebalance-delay-ms", "300"]);
    let members: Vec<(JoinGroupResponse, SyncGroupResponse)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| join_and_sync(&broker, "shared", None)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let leader = members[0].0.leader.clone();
    for (joined, synced) in &members {
        assert_eq!(
            joined.generation_id, 1,
            "one generation for a fleet starting together"
        );
        assert_eq!(joined.leader, leader);
        let expected = format!("for:{}", joined.member_id.as_str());
        assert_eq!(synced.assignment.as_ref(), expected.as_bytes());
        let expected_members = if joined.member_id == leader { 3 } else { 0 };
        assert_eq!(joined.members.len(), expected_members);
    }

    let mut client = broker.connect();
    let described: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group("shared")]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].members.len(), 3);

    // One leaves (v1, as librdkafka sends); the others learn it from their heartbeats.
    let (gone, stay) = members.split_first().unwrap();
    assert_eq!(
        leave(&mut client, 1, "shared", gone.0.member_id.as_str()),
        0
    );
    for (joined, _) in stay {
        let beat: HeartbeatResponse = client.call(
            ApiKey::Heartbeat,
            3,
            &HeartbeatRequest::default()
                .with_group_id(group("shared"))
                .with_generation_id(1)
                .with_member_id(joined.member_id.clone()),
        );
        assert_eq!(beat.error_code, ResponseError::RebalanceInProgress.code());
    }
    let rejoined: Vec<(JoinGroupResponse, SyncGroupResponse)> = std::thread::scope(|scope| {
        let broker = &broker;
        let threads: Vec<_> = stay
            .iter()
            .map(|(joined, _)| {
                let id = joined.member_id.as_str().to_string();
                scope.spawn(move || join_and_sync(broker, "shared", Some(&id)))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (joined, synced) in &rejoined {
        assert_eq!(joined.generation_id, 2);
        assert!(!synced.assignment.is_empty());
    }
    let described: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group("shared")]),
    );
    assert_eq!(described.groups[0].members.len(), 2);
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
}
