//! Joining, syncing, leaving, expiry and the join phase.

use super::*;

#[tokio::test(start_paused = true)]
async fn three_members_join_sync_and_become_stable() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    };
    let (groups, store) = start(config);
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| spawn_join_new(&groups, "g", name))
        .collect();
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.unwrap());
    }
    // The initial delay held the phase open (and was extended once, as members kept coming),
    // so all three landed in generation 1.
    assert!(started.elapsed() >= Duration::from_millis(3_000));
    let leader = joined[0].leader_id.clone();
    for member in &joined {
        assert_eq!(member.error, None);
        assert_eq!(member.generation_id, 1);
        assert_eq!(member.protocol_name.as_deref(), Some("range"));
        assert_eq!(member.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(member.leader_id, leader);
        if member.member_id == leader {
            assert_eq!(member.members.len(), 3);
            let mut metadata: Vec<_> = member.members.iter().map(|m| m.metadata.clone()).collect();
            metadata.sort();
            assert_eq!(metadata, ["range:a", "range:b", "range:c"]);
        } else {
            assert!(member.members.is_empty());
        }
    }
    let completing = groups.describe_group("g");
    assert_eq!(completing.state, GroupState::CompletingRebalance);
    assert_eq!(
        completing.protocol_data, "",
        "the protocol is described only when Stable"
    );
    assert!(completing
        .members
        .iter()
        .all(|m| m.metadata.is_empty() && m.assignment.is_empty() && m.client_id.len() == 1));

    sync_all(&groups, "g", &joined).await;
    let described = groups.describe_group("g");
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol_data, "range");
    assert_eq!(described.members.len(), 3);
    for member in &described.members {
        assert_eq!(member.assignment, assignment_for(&member.member_id));
        assert_eq!(member.client_host, "/127.0.0.1");
        assert!(member.metadata.starts_with(b"range:"));
    }
    let saved = store.latest("g").expect("the generation was persisted");
    assert_eq!(saved.generation_id, 1);
    assert_eq!(saved.leader.as_deref(), Some(leader.as_str()));
    assert_eq!(saved.members.len(), 3);
    assert!(saved
        .members
        .iter()
        .all(|m| m.assignment == assignment_for(&m.member_id).to_vec()));
    for member in &joined {
        assert_eq!(groups.heartbeat("g", 1, &member.member_id, None), Ok(()));
    }
    let listed = groups.list_groups(&[], &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state, listed[0].protocol_type.as_str()),
        (GroupState::Stable, "consumer")
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_leaving_rebalances_and_the_last_one_leaving_empties_the_group() {
    let (groups, store) = start(config());
    let joined = stable_group(&groups, "g", &["a"]).await;
    let b = spawn_join_new(&groups, "g", "b");
    settle().await;
    // b's arrival started a rebalance: a learns it from its heartbeat and rejoins.
    let a = &joined[0];
    assert_eq!(
        groups.heartbeat("g", 1, &a.member_id, None),
        Err(ResponseError::RebalanceInProgress)
    );
    let a2 = spawn_rejoin(&groups, "g", &a.member_id, "a").await.unwrap();
    let b = b.await.unwrap();
    assert_eq!((a2.generation_id, b.generation_id), (2, 2));
    sync_all(&groups, "g", &[a2.clone(), b.clone()]).await;

    let left = groups.leave_group(
        "g",
        vec![LeavingMember {
            member_id: b.member_id.clone(),
            ..LeavingMember::default()
        }],
    );
    assert_eq!(left.error, None);
    assert_eq!(left.members[0].1, None);
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        groups.heartbeat("g", 2, &b.member_id, None),
        Err(ResponseError::UnknownMemberId)
    );
    let a3 = spawn_rejoin(&groups, "g", &a.member_id, "a").await.unwrap();
    assert_eq!(a3.generation_id, 3);
    assert_eq!(a3.leader_id, a.member_id);
    sync_all(&groups, "g", &[a3]).await;

    let left = groups.leave_group(
        "g",
        vec![LeavingMember {
            member_id: a.member_id.clone(),
            ..LeavingMember::default()
        }],
    );
    assert_eq!(left.members[0].1, None);
    let described = groups.describe_group("g");
    assert_eq!(described.state, GroupState::Empty);
    assert!(described.members.is_empty());
    settle().await;
    let saved = store.latest("g").unwrap();
    assert_eq!(
        saved.generation_id, 4,
        "leaving completes one more (empty) generation"
    );
    assert!(saved.members.is_empty() && saved.protocol_name.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_expires_and_the_others_rebalance_without_it() {
    let (groups, _store) = start(config());
    let joined = stable_group(&groups, "g", &["a", "b"]).await;
    let (a, b) = (&joined[0], &joined[1]);
    // a heartbeats every 3 s; b says nothing for longer than its 10 s session.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(groups.heartbeat("g", 1, &a.member_id, None), Ok(()));
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        groups.heartbeat("g", 1, &a.member_id, None),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        groups.heartbeat("g", 1, &b.member_id, None),
        Err(ResponseError::UnknownMemberId)
    );
    let a2 = spawn_rejoin(&groups, "g", &a.member_id, "a").await.unwrap();
    assert_eq!(a2.generation_id, 2);
    assert_eq!(a2.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_join_phase_ends_at_the_rebalance_timeout_without_members_that_did_not_rejoin() {
    let (groups, _store) = start(config());
    let mut params = join_params("g", "", "b");
    params.session_timeout_ms = 120_000;
    params.rebalance_timeout_ms = 5_000;
    let joined = stable_group(&groups, "g", &["a"]).await;
    let b = {
        let groups = groups.clone();
        tokio::spawn(async move {
            let first = groups.join_group(&client("b"), params.clone()).await;
            params.member_id = first.member_id;
            groups.join_group(&client("b"), params).await
        })
    };
    settle().await;
    let a2 = spawn_rejoin(&groups, "g", &joined[0].member_id, "a")
        .await
        .unwrap();
    let b = b.await.unwrap();
    sync_all(&groups, "g", &[a2, b.clone()]).await;

    // b, whose session is long, does not rejoin the rebalance a starts: the phase ends at the
    // longest rebalance timeout (a's 30 s) and b is dropped.
    let started = tokio::time::Instant::now();
    let a3 = spawn_rejoin(&groups, "g", &joined[0].member_id, "a")
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(REBALANCE_MS as u64)
    );
    assert_eq!(a3.generation_id, 3);
    assert_eq!(a3.members.len(), 1);
    assert_eq!(
        groups.heartbeat("g", 3, &b.member_id, None),
        Err(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_or_changed_metadata_forces_a_rebalance_when_stable() {
    let (groups, _store) = start(config());
    let joined = stable_group(&groups, "g", &["a", "b"]).await;
    let follower = joined.iter().find(|j| j.member_id != j.leader_id).unwrap();
    let leader = joined.iter().find(|j| j.member_id == j.leader_id).unwrap();
    // A follower rejoining with the same metadata just learns the current generation.
    let again = groups
        .join_group(
            &client(name_of(follower)),
            join_params("g", &follower.member_id, name_of(follower)),
        )
        .await;
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, 1);
    assert_eq!(again.leader_id, leader.member_id);
    assert_eq!(groups.describe_group("g").state, GroupState::Stable);

    // The leader rejoining starts a rebalance (how it reacts to topic changes).
    let rejoin = spawn_rejoin(&groups, "g", &leader.member_id, name_of(leader));
    settle().await;
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    let follower_again = spawn_rejoin(&groups, "g", &follower.member_id, name_of(follower))
        .await
        .unwrap();
    let leader_again = rejoin.await.unwrap();
    assert_eq!(
        (follower_again.generation_id, leader_again.generation_id),
        (2, 2)
    );
    sync_all(&groups, "g", &[follower_again, leader_again]).await;
    assert_eq!(groups.describe_group("g").state, GroupState::Stable);

    // A follower with new metadata starts one too.
    let mut changed = join_params("g", &follower.member_id, name_of(follower));
    changed.protocols = protocols(&["range"], "changed");
    let changed = {
        let groups = groups.clone();
        tokio::spawn(async move { groups.join_group(&client("x"), changed).await })
    };
    settle().await;
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    let leader_again = spawn_rejoin(&groups, "g", &leader.member_id, name_of(leader))
        .await
        .unwrap();
    assert_eq!(leader_again.generation_id, 3);
    assert_eq!(changed.await.unwrap().generation_id, 3);
}

#[tokio::test(start_paused = true)]
async fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let (groups, _store) = start(config());
    let tasks = [
        spawn_join_new(&groups, "g", "a"),
        spawn_join_new(&groups, "g", "b"),
    ];
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.unwrap());
    }
    let generation = joined[0].generation_id;
    let leader = joined
        .iter()
        .find(|j| j.member_id == j.leader_id)
        .unwrap()
        .clone();
    let silent = joined
        .iter()
        .find(|j| j.member_id != j.leader_id)
        .unwrap()
        .clone();
    let assignments = vec![(leader.member_id.clone(), assignment_for(&leader.member_id))];
    let synced = groups
        .sync_group(sync_params("g", &leader, assignments))
        .await;
    assert_eq!(synced.error, None);
    assert_eq!(groups.describe_group("g").state, GroupState::Stable);
    // Both heartbeat, but one never sends SyncGroup: after the rebalance timeout (30 s) it is
    // removed and the group rebalances.
    let mut silent_outcome = Ok(());
    for _ in 0..11 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        silent_outcome = groups.heartbeat("g", generation, &silent.member_id, None);
        if silent_outcome.is_err() {
            break;
        }
        assert_eq!(
            groups.heartbeat("g", generation, &leader.member_id, None),
            Ok(())
        );
    }
    assert_eq!(silent_outcome, Err(ResponseError::UnknownMemberId));
    assert_eq!(
        groups.describe_group("g").state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        groups.heartbeat("g", generation, &leader.member_id, None),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_is_empty_for_retention_only_from_when_its_last_member_left() {
    let (groups, _store) = start(config());
    let retention = Duration::from_secs(5);
    assert!(groups.empty_for_at_least("unknown", retention));
    let joined = stable_group(&groups, "g", &["a"]).await;
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(
        !groups.empty_for_at_least("g", retention),
        "it has a member"
    );

    let left = groups.leave_group(
        "g",
        vec![LeavingMember {
            member_id: joined[0].member_id.clone(),
            ..LeavingMember::default()
        }],
    );
    assert_eq!(left.error, None);
    assert_eq!(groups.describe_group("g").state, GroupState::Empty);
    assert!(
        !groups.empty_for_at_least("g", retention),
        "it just emptied"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(groups.empty_for_at_least("g", retention));
}
