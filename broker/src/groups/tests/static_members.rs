//! Static membership (`group.instance.id`).

use super::*;

fn static_params(group: &str, member_id: &str, instance: &str) -> JoinGroupParams {
    JoinGroupParams {
        group_instance_id: Some(instance.to_string()),
        ..join_params(group, member_id, instance)
    }
}

fn spawn_static_join(
    groups: &GroupCoordinator,
    params: JoinGroupParams,
) -> JoinHandle<JoinGroupResult> {
    let groups = groups.clone();
    tokio::spawn(async move {
        let name = params.group_instance_id.clone().unwrap_or_default();
        groups.join_group(&client(&name), params).await
    })
}

/// Two static members, `i1` and `i2`, in a Stable group at generation 1.
async fn stable_static_group(groups: &GroupCoordinator) -> Vec<JoinGroupResult> {
    let first = spawn_static_join(groups, static_params("g", "", "i1"));
    let second = spawn_static_join(groups, static_params("g", "", "i2"));
    let joined = vec![first.await.unwrap(), second.await.unwrap()];
    for member in &joined {
        assert_eq!(
            member.error, None,
            "static members need no MEMBER_ID_REQUIRED"
        );
        assert_eq!(member.generation_id, 1);
    }
    sync_all(groups, "g", &joined).await;
    assert_eq!(groups.describe_group("g").state, GroupState::Stable);
    joined
}

#[tokio::test(start_paused = true)]
async fn a_restarted_static_member_replaces_its_old_id_without_a_rebalance() {
    let (groups, store) = start(config());
    let joined = stable_static_group(&groups).await;
    let generation = joined[0].generation_id;
    let old = joined
        .iter()
        .find(|j| j.member_id.starts_with("i1-"))
        .unwrap()
        .clone();
    let saves_before = store.saves.lock().len();

    // i1 restarts: it joins with no member id and the same protocols.
    let rejoined = groups
        .join_group(&client("i1"), static_params("g", "", "i1"))
        .await;
    assert_eq!(rejoined.error, None);
    assert_ne!(rejoined.member_id, old.member_id);
    assert!(rejoined.member_id.starts_with("i1-"));
    assert_eq!(rejoined.generation_id, generation, "no rebalance");
    assert!(rejoined.members.is_empty());
    assert_eq!(groups.describe_group("g").state, GroupState::Stable);
    // The new id was made durable before the answer.
    assert_eq!(store.saves.lock().len(), saves_before + 1);
    let saved = store.latest("g").unwrap();
    assert!(saved
        .members
        .iter()
        .any(|m| m.member_id == rejoined.member_id));
    assert!(!saved.members.iter().any(|m| m.member_id == old.member_id));

    // The old incarnation is fenced; the new one syncs to the assignment the old one had.
    assert_eq!(
        groups.heartbeat("g", generation, &old.member_id, Some("i1")),
        Err(ResponseError::FencedInstanceId)
    );
    let mut sync = sync_params("g", &rejoined, Vec::new());
    sync.group_instance_id = Some("i1".into());
    let synced = groups.sync_group(sync).await;
    assert_eq!(synced.error, None);
    assert_eq!(synced.assignment, assignment_for(&old.member_id));
    assert_eq!(
        groups.heartbeat("g", generation, &rejoined.member_id, Some("i1")),
        Ok(())
    );
    let old_join = static_params("g", &old.member_id, "i1");
    assert_eq!(
        groups.join_group(&client("i1"), old_join).await.error,
        Some(ResponseError::FencedInstanceId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_static_member_with_new_protocols_or_a_failed_write_does_not_slip_through() {
    let (groups, store) = start(config());
    let joined = stable_static_group(&groups).await;
    let generation = joined[0].generation_id;
    let old = joined
        .iter()
        .find(|j| j.member_id.starts_with("i2-"))
        .unwrap()
        .clone();

    // The write recording the new id fails: the replacement is undone.
    store.set_failing(true);
    let refused = groups
        .join_group(&client("i2"), static_params("g", "", "i2"))
        .await;
    assert_eq!(refused.error, Some(ResponseError::CoordinatorNotAvailable));
    store.set_failing(false);
    assert_eq!(
        groups.heartbeat("g", generation, &old.member_id, Some("i2")),
        Ok(()),
        "the old incarnation keeps its membership"
    );

    // Protocols that change the group's choice need a rebalance.
    let mut changed = static_params("g", "", "i2");
    changed.protocols = protocols(&["roundrobin", "range"], "i2");
    let other = joined
        .iter()
        .find(|j| j.member_id.starts_with("i1-"))
        .unwrap()
        .clone();
    let mut other_params = static_params("g", &other.member_id, "i1");
    other_params.protocols = protocols(&["roundrobin", "range"], "i1");
    let other_rejoin = spawn_static_join(&groups, other_params);
    let new = spawn_static_join(&groups, changed);
    let (other_rejoin, new) = (other_rejoin.await.unwrap(), new.await.unwrap());
    assert_eq!(new.error, None);
    assert_eq!(new.generation_id, generation + 1);
    assert_eq!(other_rejoin.generation_id, generation + 1);
    assert_eq!(new.protocol_name.as_deref(), Some("roundrobin"));
}

#[tokio::test(start_paused = true)]
async fn static_members_can_be_removed_by_instance_id() {
    let (groups, _store) = start(config());
    let joined = stable_static_group(&groups).await;
    let left = groups.leave_group(
        "g",
        vec![
            LeavingMember {
                member_id: String::new(),
                group_instance_id: Some("i1".into()),
                reason: Some("admin".into()),
            },
            LeavingMember {
                member_id: String::new(),
                group_instance_id: Some("nobody".into()),
                reason: None,
            },
            LeavingMember {
                member_id: "wrong".into(),
                group_instance_id: Some("i2".into()),
                reason: None,
            },
        ],
    );
    assert_eq!(left.error, None);
    let outcomes: Vec<_> = left.members.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        outcomes,
        [
            None,
            Some(ResponseError::UnknownMemberId),
            Some(ResponseError::FencedInstanceId)
        ]
    );
    let described = groups.describe_group("g");
    assert_eq!(described.members.len(), 1);
    assert_eq!(
        described.members[0].group_instance_id.as_deref(),
        Some("i2")
    );
    assert_eq!(described.state, GroupState::PreparingRebalance);
    assert!(described.members[0].member_id.starts_with("i2-"));
    assert_eq!(joined.len(), 2);
}
