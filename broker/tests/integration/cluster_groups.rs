//! Consumer groups whose coordinator moves to another broker of a cluster (etcd started on
//! loopback).

use std::time::{Duration, Instant};

use crate::common::cluster::{drain, group_led_by, start_in_cluster, wait_spread, wait_status};
use crate::common::etcd::EtcdServer;
use crate::common::groups::{group, join, join_request, sync_request};
use crate::common::Client;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, JoinGroupResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

/// No initial delay, so a single member's join completes at once.
const FAST: &[&str] = &["--group-initial-rebalance-delay-ms", "0"];

fn heartbeat(client: &mut Client, group_id: &str, joined: &JoinGroupResponse) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone());
    let response: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &request);
    response.error_code
}

/// librdkafka (2.0 to 2.12 at least) never repeats an OffsetFetch that failed with
/// NOT_COORDINATOR: the partitions it asked for stay unfetched until the next rebalance. So a
/// coordinator that takes a group over makes its members rejoin; their next heartbeat says so,
/// and the rejoin forms the next generation there.
#[test]
fn a_group_taken_over_by_another_broker_rebalances_there() {
    let etcd = EtcdServer::start();
    let root = tempfile::tempdir().unwrap();
    let storage = format!("fs://{}", root.path().display());
    let cluster = etcd.cluster_url("groups");
    let first = start_in_cluster(&storage, &cluster, "1", FAST);
    wait_status(&cluster, "2 shards, controller 1");
    let second = start_in_cluster(&storage, &cluster, "2", FAST);
    wait_spread(&cluster);
    let group_id = group_led_by(&cluster, 1);

    let mut old = first.connect();
    let joined = join(&mut old, 5, &group_id, "topic");
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced: SyncGroupResponse =
        old.call(ApiKey::SyncGroup, 3, &sync_request(&group_id, &joined));
    assert_eq!(synced.error_code, 0);
    assert_eq!(heartbeat(&mut old, &group_id, &joined), 0);

    drain(&cluster, 1, 2);
    // The old coordinator refuses the member's OffsetFetch.
    let fetch = OffsetFetchRequest::default()
        .with_group_id(group(&group_id))
        .with_topics(None);
    let fetched: OffsetFetchResponse = old.call(ApiKey::OffsetFetch, 7, &fetch);
    assert_eq!(fetched.error_code, ResponseError::NotCoordinator.code());

    // The new one, once it has opened the shard, asks the member to rejoin.
    let mut new = second.connect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = heartbeat(&mut new, &group_id, &joined);
        if answer != ResponseError::NotCoordinator.code() || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        answer,
        ResponseError::RebalanceInProgress.code(),
        "the member's heartbeat to the group's new coordinator"
    );
    let rejoined: JoinGroupResponse = new.call(
        ApiKey::JoinGroup,
        5,
        &join_request(&group_id, joined.member_id.as_str(), "topic"),
    );
    assert_eq!(rejoined.error_code, 0, "{rejoined:?}");
    assert_eq!(rejoined.generation_id, joined.generation_id + 1);
    let synced: SyncGroupResponse =
        new.call(ApiKey::SyncGroup, 3, &sync_request(&group_id, &rejoined));
    assert_eq!(synced.error_code, 0);
    let fetched: OffsetFetchResponse = new.call(ApiKey::OffsetFetch, 7, &fetch);
    assert_eq!(fetched.error_code, 0);
}
