//! Snapshots, restore, deletion and generations across restarts.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_failed_assignment_write_fails_the_generation_and_rebalances() {
    let (groups, store) = start(config());
    let tasks = [
        spawn_join_new(&groups, "g", "a"),
        spawn_join_new(&groups, "g", "b"),
    ];
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.unwrap());
    }
    let leader = joined.iter().find(|j| j.member_id == j.leader_id).unwrap();
    let follower = joined.iter().find(|j| j.member_id != j.leader_id).unwrap();
    let parked = spawn_sync(&groups, sync_params("g", follower, Vec::new()));
    settle().await;
    store.set_failing(true);
    let assignments = vec![(leader.member_id.clone(), assignment_for(&leader.member_id))];
    let led = groups
        .sync_group(sync_params("g", leader, assignments))
        .await;
    assert_eq!(led.error, Some(ResponseError::CoordinatorNotAvailable));
    assert_eq!(
        parked.await.unwrap().error,
        Some(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    assert!(store.latest("g").is_none());

    store.set_failing(false);
    let a = spawn_rejoin(&groups, "g", &joined[0].member_id, "a");
    let b = spawn_rejoin(&groups, "g", &joined[1].member_id, "b");
    let rejoined = [a.await.unwrap(), b.await.unwrap()];
    assert_eq!(rejoined[0].generation_id, joined[0].generation_id + 1);
    sync_all(&groups, "g", &rejoined).await;
    assert_eq!(
        store.latest("g").unwrap().generation_id,
        rejoined[0].generation_id
    );
}

#[tokio::test(start_paused = true)]
async fn delete_groups_follows_kafka_rules() {
    let (groups, store) = start(config());
    stable_group(&groups, "busy", &["a"]).await;
    groups.validate_offset_commit("idle", -1, "", None).unwrap();
    let outcomes = groups
        .delete_groups(vec![
            "busy".into(),
            "idle".into(),
            "nosuch".into(),
            "idle".into(),
        ])
        .await;
    assert_eq!(
        outcomes,
        [
            ("busy".to_string(), Err(ResponseError::NonEmptyGroup)),
            ("idle".to_string(), Ok(())),
            ("nosuch".to_string(), Err(ResponseError::GroupIdNotFound)),
        ]
    );
    assert_eq!(*store.deleted.lock(), ["idle"]);
    assert!(!groups.group_exists("idle"));
    assert_eq!(groups.describe_group("idle").state, GroupState::Dead);
    let listed: Vec<_> = groups
        .list_groups(&[], &[])
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, ["busy"]);

    // A deletion that cannot be made durable leaves the group in place.
    groups.validate_offset_commit("kept", -1, "", None).unwrap();
    store.set_failing(true);
    let outcomes = groups.delete_groups(vec!["kept".into()]).await;
    assert_eq!(outcomes[0].1, Err(ResponseError::CoordinatorNotAvailable));
    assert_eq!(groups.describe_group("kept").state, GroupState::Empty);
    store.set_failing(false);
}

fn member(id: &str, instance: Option<&str>) -> MemberSnapshot {
    MemberSnapshot {
        member_id: id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "app".to_string(),
        client_host: "/10.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocols: vec![("range".to_string(), b"subscription".to_vec())],
        assignment: format!("assigned:{id}").into_bytes(),
    }
}

/// Group "g" Stable at generation 41, led by "live".
fn stable_at_41(members: Vec<MemberSnapshot>) -> GroupSnapshot {
    GroupSnapshot {
        group_id: "g".into(),
        generation_id: 41,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        leader: Some("live".into()),
        members,
    }
}

#[tokio::test(start_paused = true)]
async fn restored_groups_carry_on_where_they_were() {
    let stable = stable_at_41(vec![member("live", None), member("dead", Some("i-dead"))]);
    let empty = GroupSnapshot {
        generation_id: 7,
        protocol_type: Some("consumer".into()),
        ..GroupSnapshot::offsets_only("e")
    };
    let (groups, store) = start_with(config(), vec![stable, empty]);
    let described = groups.describe_group("g");
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(described.members.len(), 2);
    assert_eq!(described.members[1].assignment.as_ref(), b"assigned:live");
    assert_eq!(described.members[1].client_host, "/10.0.0.1");
    assert_eq!(groups.describe_group("e").state, GroupState::Empty);

    // The live member keeps heartbeating and syncs to its stored assignment, no rebalance.
    let live = JoinGroupResult {
        generation_id: 41,
        member_id: "live".into(),
        ..JoinGroupResult::default()
    };
    let synced = groups.sync_group(sync_params("g", &live, Vec::new())).await;
    assert_eq!(synced.assignment.as_ref(), b"assigned:live");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(groups.heartbeat("g", 41, "live", None), Ok(()));
    }
    // The dead one expires one session after the restart: the group rebalances.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        groups.heartbeat("g", 41, "live", None),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        groups.heartbeat("g", 41, "dead", Some("i-dead")),
        Err(ResponseError::UnknownMemberId)
    );
    let rejoined = spawn_rejoin(&groups, "g", "live", "app").await.unwrap();
    assert_eq!(rejoined.generation_id, 42);

    // The Empty group's next generation follows its stored one.
    let joined = join_new(&groups, "e", "x").await;
    assert_eq!(joined.generation_id, 8);
    let _ = store;
}

/// A coordinator that took a group over from another broker makes its members rejoin: one
/// whose OffsetFetch the old coordinator refused (NOT_COORDINATOR) asks again only after a
/// rebalance. Members that rejoin form the next generation; the others leave it.
#[tokio::test(start_paused = true)]
async fn groups_taken_over_rebalance_and_their_live_members_rejoin() {
    let stable = stable_at_41(vec![member("live", None), member("gone", None)]);
    let empty = GroupSnapshot::offsets_only("e");
    let config = GroupConfig {
        rebalance_restored: true,
        ..config()
    };
    let (groups, _store) = start_with(config, vec![stable, empty]);
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    assert_eq!(groups.describe_group("e").state, GroupState::Empty);
    assert_eq!(
        groups.heartbeat("g", 41, "live", None),
        Err(ResponseError::RebalanceInProgress)
    );
    let rejoin = spawn_rejoin(&groups, "g", "live", "app");
    // Keep the live member's session while the absent one's rebalance timeout runs out.
    for _ in 0..(REBALANCE_MS / 3_000) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = groups.heartbeat("g", 41, "live", None);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rejoined = rejoin.await.unwrap();
    assert_eq!(rejoined.error, None);
    assert_eq!(rejoined.generation_id, 42);
    assert_eq!(rejoined.members.len(), 1, "only the live member rejoined");
}

#[tokio::test(start_paused = true)]
async fn generations_are_never_reused_across_rebalances_empty_groups_and_restarts() {
    let (groups, store) = start(config());
    let mut seen = Vec::new();
    for round in 0..3 {
        let joined = stable_group(&groups, "g", &["a"]).await;
        seen.push(joined[0].generation_id);
        let left = groups.leave_group(
            "g",
            vec![LeavingMember {
                member_id: joined[0].member_id.clone(),
                ..LeavingMember::default()
            }],
        );
        assert_eq!(left.members[0].1, None, "round {round}");
        settle().await;
        seen.push(store.latest("g").unwrap().generation_id);
    }
    // Restart from what was persisted; the next generation continues the sequence.
    drop(groups);
    let (restarted, _store) = start_with(config(), store.all());
    let joined = stable_group(&restarted, "g", &["a"]).await;
    seen.push(joined[0].generation_id);
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
}
