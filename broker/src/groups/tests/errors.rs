//! Kafka's error codes for requests that do not fit the group's state.

use super::*;

#[tokio::test(start_paused = true)]
async fn member_id_required_round_trip_and_pending_ids_expire() {
    let (groups, _store) = start(config());
    let first = groups
        .join_group(&client("app"), join_params("g", "", "app"))
        .await;
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert_eq!(first.generation_id, -1);
    assert!(first.member_id.starts_with("app-"));
    // The group exists (Empty) but the pending id does not make it rebalance.
    assert_eq!(groups.describe_group("g").state, GroupState::Empty);

    let joined = groups
        .join_group(&client("app"), join_params("g", &first.member_id, "app"))
        .await;
    assert_eq!(joined.error, None);
    assert_eq!(joined.member_id, first.member_id);
    assert_eq!(joined.generation_id, 1);

    // An id handed out but not claimed within the session timeout is forgotten.
    let other = groups
        .join_group(&client("late"), join_params("g", "", "late"))
        .await;
    assert_eq!(other.error, Some(ResponseError::MemberIdRequired));
    tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 + 1)).await;
    let late = groups
        .join_group(&client("late"), join_params("g", &other.member_id, "late"))
        .await;
    assert_eq!(late.error, Some(ResponseError::UnknownMemberId));

    // v0-3 clients get a member id without the round trip.
    let mut old = join_params("g2", "", "old");
    old.require_known_member_id = false;
    let joined = groups.join_group(&client("old"), old).await;
    assert_eq!(joined.error, None);
    assert!(joined.member_id.starts_with("old-"));
}

#[tokio::test(start_paused = true)]
async fn join_rejects_bad_ids_timeouts_and_protocols() {
    let (groups, _store) = start(config());
    let joined = groups
        .join_group(&client("x"), join_params("", "", "x"))
        .await;
    assert_eq!(joined.error, Some(ResponseError::InvalidGroupId));
    for session in [999, 300_001] {
        let mut params = join_params("g", "", "x");
        params.session_timeout_ms = session;
        let joined = groups.join_group(&client("x"), params).await;
        assert_eq!(
            joined.error,
            Some(ResponseError::InvalidSessionTimeout),
            "{session}"
        );
    }
    let joined = groups
        .join_group(&client("x"), join_params("nosuch", "stale-id", "x"))
        .await;
    assert_eq!(joined.error, Some(ResponseError::UnknownMemberId));

    let members = stable_group(&groups, "g", &["a"]).await;
    let joined = groups
        .join_group(&client("x"), join_params("g", "stale-id", "x"))
        .await;
    assert_eq!(joined.error, Some(ResponseError::UnknownMemberId));
    let mut connect = join_params("g", "", "x");
    connect.protocol_type = "connect".into();
    let joined = groups.join_group(&client("x"), connect).await;
    assert_eq!(joined.error, Some(ResponseError::InconsistentGroupProtocol));
    let mut sticky = join_params("g", "", "x");
    sticky.protocols = protocols(&["sticky"], "x");
    let joined = groups.join_group(&client("x"), sticky).await;
    assert_eq!(joined.error, Some(ResponseError::InconsistentGroupProtocol));
    let mut empty = join_params("h", "", "x");
    empty.protocols.clear();
    let joined = groups.join_group(&client("x"), empty).await;
    assert_eq!(joined.error, Some(ResponseError::InconsistentGroupProtocol));
    // A sole member may switch assignors.
    let a = &members[0];
    let mut switch = join_params("g", &a.member_id, "a");
    switch.protocols = protocols(&["roundrobin"], "a");
    let rejoined = groups.join_group(&client("a"), switch).await;
    assert_eq!(rejoined.error, None);
    assert_eq!(rejoined.protocol_name.as_deref(), Some("roundrobin"));
}

#[tokio::test(start_paused = true)]
async fn sync_and_heartbeat_fence_generations_members_and_rebalances() {
    let (groups, _store) = start(config());
    let joined = stable_group(&groups, "g", &["a"]).await;
    let a = &joined[0];
    let heartbeat = |generation, member: &str| groups.heartbeat("g", generation, member, None);
    assert_eq!(
        heartbeat(0, &a.member_id),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(heartbeat(1, "nobody"), Err(ResponseError::UnknownMemberId));
    assert_eq!(
        groups.heartbeat("nosuch", 1, &a.member_id, None),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        groups.heartbeat("", 1, "x", None),
        Err(ResponseError::InvalidGroupId)
    );

    let mut stale = sync_params("g", a, Vec::new());
    stale.generation_id = 7;
    assert_eq!(
        groups.sync_group(stale).await.error,
        Some(ResponseError::IllegalGeneration)
    );
    let mut wrong_type = sync_params("g", a, Vec::new());
    wrong_type.protocol_type = Some("connect".into());
    assert_eq!(
        groups.sync_group(wrong_type).await.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut wrong_name = sync_params("g", a, Vec::new());
    wrong_name.protocol_name = Some("sticky".into());
    assert_eq!(
        groups.sync_group(wrong_name).await.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut right = sync_params("g", a, Vec::new());
    right.protocol_type = Some("consumer".into());
    right.protocol_name = Some("range".into());
    let synced = groups.sync_group(right).await;
    assert_eq!(
        synced.error, None,
        "a stable group answers with the current assignment"
    );
    assert_eq!(synced.assignment, assignment_for(&a.member_id));
    assert_eq!(synced.protocol_name.as_deref(), Some("range"));
    let mut nobody = sync_params("g", a, Vec::new());
    nobody.member_id = "nobody".into();
    assert_eq!(
        groups.sync_group(nobody).await.error,
        Some(ResponseError::UnknownMemberId)
    );

    // A new member starts a rebalance: generation 1 can no longer sync.
    let b = spawn_join_new(&groups, "g", "b");
    settle().await;
    assert_eq!(
        groups
            .sync_group(sync_params("g", a, Vec::new()))
            .await
            .error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        heartbeat(1, &a.member_id),
        Err(ResponseError::RebalanceInProgress)
    );
    let a2 = spawn_rejoin(&groups, "g", &a.member_id, "a").await.unwrap();
    let b = b.await.unwrap();
    assert_eq!(
        heartbeat(1, &a.member_id),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        heartbeat(2, &b.member_id),
        Ok(()),
        "heartbeats are fine while the leader assigns"
    );
    // A follower's parked sync is answered REBALANCE_IN_PROGRESS if a rebalance starts first.
    let follower = if a2.member_id == a2.leader_id {
        &b
    } else {
        &a2
    };
    let parked = spawn_sync(&groups, sync_params("g", follower, Vec::new()));
    settle().await;
    let c = spawn_join_new(&groups, "g", "c");
    assert_eq!(
        parked.await.unwrap().error,
        Some(ResponseError::RebalanceInProgress)
    );
    c.abort();
}

#[tokio::test(start_paused = true)]
async fn offset_commit_checks_follow_kafka() {
    let (groups, _store) = start(config());
    // Simple commits: allowed for unknown groups (which then exist, Empty) and Empty ones.
    assert_eq!(groups.validate_offset_commit("solo", -1, "", None), Ok(()));
    assert!(groups.group_exists("solo"));
    assert!(groups.is_empty_or_unknown("solo"));
    assert_eq!(groups.list_groups(&[], &[])[0].state, GroupState::Empty);
    assert_eq!(
        groups.validate_offset_commit("unknown", 3, "m", None),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        groups.validate_offset_commit("unknown", -1, "m", None),
        Err(ResponseError::UnknownMemberId)
    );
    assert!(!groups.group_exists("unknown"));
    assert!(groups.is_empty_or_unknown("unknown"));

    let joined = stable_group(&groups, "g", &["a"]).await;
    let a = &joined[0].member_id;
    assert!(!groups.is_empty_or_unknown("g"));
    assert_eq!(groups.validate_offset_commit("g", 1, a, None), Ok(()));
    assert_eq!(
        groups.validate_offset_commit("g", -1, "", None),
        Err(ResponseError::UnknownMemberId),
        "only members commit to a group with members"
    );
    assert_eq!(
        groups.validate_offset_commit("g", 0, a, None),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        groups.validate_offset_commit("g", 1, "nobody", None),
        Err(ResponseError::UnknownMemberId)
    );
    // Commits count as heartbeats: committing every 3 s keeps the member past its session.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(groups.validate_offset_commit("g", 1, a, None), Ok(()));
    }
    // During CompletingRebalance the member is about to get a new assignment.
    let b = spawn_join_new(&groups, "g", "b");
    settle().await;
    assert_eq!(
        groups.validate_offset_commit("g", 1, a, None),
        Ok(()),
        "allowed while preparing"
    );
    let a2 = spawn_rejoin(&groups, "g", a, "a").await.unwrap();
    b.await.unwrap();
    assert_eq!(
        groups.validate_offset_commit("g", a2.generation_id, a, None),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[tokio::test(start_paused = true)]
async fn list_groups_filters_by_state_and_type() {
    let (groups, _store) = start(config());
    stable_group(&groups, "stable", &["a"]).await;
    groups
        .validate_offset_commit("empty", -1, "", None)
        .unwrap();
    let names = |states: &[&str], types: &[&str]| {
        let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
        let types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
        groups
            .list_groups(&states, &types)
            .into_iter()
            .map(|g| g.group_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&[], &[]), ["empty", "stable"]);
    assert_eq!(names(&["Stable"], &[]), ["stable"]);
    assert_eq!(names(&["empty", "preparingrebalance"], &[]), ["empty"]);
    assert_eq!(names(&["NoSuchState"], &[]), Vec::<String>::new());
    assert_eq!(names(&[], &["Classic"]), ["empty", "stable"]);
    assert_eq!(names(&[], &["consumer"]), Vec::<String>::new());
    let described = groups.describe_group("nosuch");
    assert_eq!(described.state, GroupState::Dead);
    assert!(described.members.is_empty() && described.protocol_type.is_empty());
}
