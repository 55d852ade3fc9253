//! Tests of the coordinator state machine, through its public API, on Tokio's paused clock.
//! Storage is an in-memory [`GroupStore`] double; everything else is the real coordinator.

mod errors;
mod persistence;
mod rebalance;
mod static_members;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Duration;

use super::*;

/// Group metadata kept in memory; can be told to fail.
#[derive(Default)]
pub(super) struct MemoryStore {
    /// The latest snapshot of each group.
    pub(super) groups: Mutex<HashMap<String, GroupSnapshot>>,
    /// Every snapshot saved, in order.
    pub(super) saves: Mutex<Vec<GroupSnapshot>>,
    /// Every group deleted, in order.
    pub(super) deleted: Mutex<Vec<String>>,
    /// Fail every write while set.
    pub(super) fail: AtomicBool,
}

impl MemoryStore {
    fn failure(&self) -> Option<GroupStoreError> {
        self.fail
            .load(Ordering::SeqCst)
            .then(|| GroupStoreError::Storage("injected failure".into()))
    }

    pub(super) fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    pub(super) fn latest(&self, group_id: &str) -> Option<GroupSnapshot> {
        self.groups.lock().get(group_id).cloned()
    }

    pub(super) fn all(&self) -> Vec<GroupSnapshot> {
        self.groups.lock().values().cloned().collect()
    }
}

impl GroupStore for MemoryStore {
    fn save_group(
        &self,
        snapshot: GroupSnapshot,
    ) -> BoxFuture<'static, Result<(), GroupStoreError>> {
        // Recorded at call time, as the trait asks: the order of calls is the order of writes.
        let outcome = match self.failure() {
            Some(error) => Err(error),
            None => {
                self.saves.lock().push(snapshot.clone());
                self.groups
                    .lock()
                    .insert(snapshot.group_id.clone(), snapshot);
                Ok(())
            }
        };
        Box::pin(async move {
            // A durable write takes a little while.
            tokio::time::sleep(Duration::from_millis(5)).await;
            outcome
        })
    }

    fn delete_group(&self, group_id: String) -> BoxFuture<'static, Result<(), GroupStoreError>> {
        let outcome = match self.failure() {
            Some(error) => Err(error),
            None => {
                self.groups.lock().remove(&group_id);
                self.deleted.lock().push(group_id);
                Ok(())
            }
        };
        Box::pin(async move { outcome })
    }
}

pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 30_000;

/// A short initial delay, so members that start together land in one generation.
pub(super) fn config() -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 300_000,
        initial_rebalance_delay_ms: 100,
        max_groups: 1_000,
        max_size: 1_000,
        rebalance_restored: false,
    }
}

pub(super) fn start(config: GroupConfig) -> (GroupCoordinator, Arc<MemoryStore>) {
    start_with(config, Vec::new())
}

pub(super) fn start_with(
    config: GroupConfig,
    restored: Vec<GroupSnapshot>,
) -> (GroupCoordinator, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let coordinator = GroupCoordinator::new(config, store.clone(), restored);
    (coordinator, store)
}

pub(super) fn client(name: &str) -> ClientContext {
    ClientContext {
        client_id: name.to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

pub(super) fn protocols(names: &[&str], client: &str) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|name| (name.to_string(), Bytes::from(format!("{name}:{client}"))))
        .collect()
}

/// A v5-style JoinGroup from `client` offering `range`.
pub(super) fn join_params(group: &str, member_id: &str, client: &str) -> JoinGroupParams {
    JoinGroupParams {
        group_id: group.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: protocols(&["range"], client),
        require_known_member_id: true,
        supports_skip_assignment: false,
        reason: None,
    }
}

/// Joins as a new member: the MEMBER_ID_REQUIRED round trip, then the join proper.
pub(super) async fn join_new(
    coordinator: &GroupCoordinator,
    group: &str,
    name: &str,
) -> JoinGroupResult {
    let first = coordinator
        .join_group(&client(name), join_params(group, "", name))
        .await;
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(
        first.member_id.starts_with(&format!("{name}-")),
        "{first:?}"
    );
    coordinator
        .join_group(&client(name), join_params(group, &first.member_id, name))
        .await
}

/// `join_new` in a task of its own, since joins wait for the join phase.
pub(super) fn spawn_join_new(
    coordinator: &GroupCoordinator,
    group: &str,
    name: &str,
) -> JoinHandle<JoinGroupResult> {
    let (coordinator, group, name) = (coordinator.clone(), group.to_string(), name.to_string());
    tokio::spawn(async move { join_new(&coordinator, &group, &name).await })
}

/// Rejoins with a known member id, in a task of its own.
pub(super) fn spawn_rejoin(
    coordinator: &GroupCoordinator,
    group: &str,
    member_id: &str,
    name: &str,
) -> JoinHandle<JoinGroupResult> {
    let coordinator = coordinator.clone();
    let (group, member_id, name) = (group.to_string(), member_id.to_string(), name.to_string());
    tokio::spawn(async move {
        coordinator
            .join_group(&client(&name), join_params(&group, &member_id, &name))
            .await
    })
}

pub(super) fn sync_params(
    group: &str,
    joined: &JoinGroupResult,
    assignments: Vec<(String, Bytes)>,
) -> SyncGroupParams {
    SyncGroupParams {
        group_id: group.to_string(),
        generation_id: joined.generation_id,
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

/// SyncGroup in a task of its own, since followers wait for the leader.
pub(super) fn spawn_sync(
    coordinator: &GroupCoordinator,
    params: SyncGroupParams,
) -> JoinHandle<SyncGroupResult> {
    let coordinator = coordinator.clone();
    tokio::spawn(async move { coordinator.sync_group(params).await })
}

/// An assignment naming the member, so each can be told apart.
pub(super) fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("assigned:{member_id}"))
}

/// The client name a member joined with (member ids are `{client}-{uuid}`).
pub(super) fn name_of(joined: &JoinGroupResult) -> &str {
    joined.member_id.split('-').next().unwrap_or_default()
}

/// Lets every spawned task run until it waits (the paused clock moves only when all are idle).
pub(super) async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Brings `names` into a Stable group together: joins, then the leader assigns every member
/// `assignment_for(member)`. Returns the join answers in the order of `names`.
pub(super) async fn stable_group(
    coordinator: &GroupCoordinator,
    group: &str,
    names: &[&str],
) -> Vec<JoinGroupResult> {
    let tasks: Vec<_> = names
        .iter()
        .map(|name| spawn_join_new(coordinator, group, name))
        .collect();
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.unwrap());
    }
    sync_all(coordinator, group, &joined).await;
    joined
}

/// Every member of a freshly joined generation syncs; the leader assigns.
pub(super) async fn sync_all(
    coordinator: &GroupCoordinator,
    group: &str,
    joined: &[JoinGroupResult],
) {
    let leader = joined
        .iter()
        .find(|j| j.member_id == j.leader_id)
        .expect("a leader among the members");
    let mut followers = Vec::new();
    for member in joined.iter().filter(|j| j.member_id != j.leader_id) {
        followers.push(spawn_sync(
            coordinator,
            sync_params(group, member, Vec::new()),
        ));
    }
    let assignments = leader
        .members
        .iter()
        .map(|m| (m.member_id.clone(), assignment_for(&m.member_id)))
        .collect();
    let led = coordinator
        .sync_group(sync_params(group, leader, assignments))
        .await;
    assert_eq!(led.error, None);
    assert_eq!(led.assignment, assignment_for(&leader.member_id));
    for (task, member) in followers
        .into_iter()
        .zip(joined.iter().filter(|j| j.member_id != j.leader_id))
    {
        let synced = task.await.unwrap();
        assert_eq!(synced.error, None);
        assert_eq!(synced.assignment, assignment_for(&member.member_id));
    }
}
