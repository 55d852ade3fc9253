//! The coordinator: groups by id, each behind its own lock; parked requests; persistence; timers.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use tokio::time::{Duration, Instant};

use super::api::{
    GroupDescription, GroupListing, GroupOverview, JoinGroupParams, JoinGroupResult,
    LeaveGroupResult, LeavingMember, SyncGroupParams, SyncGroupResult,
};
use super::group::{Group, PendingSave};
use super::snapshot::{GroupSnapshot, GroupStore};
use super::timers::{self, Timers};
use super::{ClientContext, GroupConfig, GroupState};

type GroupRef = Arc<Mutex<Group>>;

/// The group coordinator. Cheap to clone: clones share the same groups.
///
/// Every group change happens under that group's lock, synchronously; requests that must wait
/// park a `oneshot` sender on their member and await it after the lock is released. Snapshot
/// writes are started under the lock (so they reach the store in order) and awaited by a task
/// of their own, which re-takes the lock to act on the outcome.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: GroupConfig,
    store: Arc<dyn GroupStore>,
    groups: RwLock<HashMap<String, GroupRef>>,
    timers: Arc<Timers>,
    /// Counts changes of any group's generation or state (see [`GroupCoordinator::changes`]).
    changes: watch::Sender<u64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.timers.close();
    }
}

impl GroupCoordinator {
    /// A coordinator that carries on from `restored` (the last snapshot of each group, as Kafka
    /// loads its offsets topic): groups with members come back Stable, their members with fresh
    /// sessions, so live clients keep heartbeating without a rebalance and dead ones expire (or
    /// rebalancing, with [`GroupConfig::rebalance_restored`]); groups without members come back
    /// Empty. Generations continue from the stored ones.
    ///
    /// # Panics
    /// Outside a Tokio runtime, since it spawns the timer task.
    pub fn new(
        config: GroupConfig,
        store: Arc<dyn GroupStore>,
        restored: Vec<GroupSnapshot>,
    ) -> Self {
        let now = Instant::now();
        let initial_delay = Duration::from_millis(config.initial_rebalance_delay_ms.into());
        let mut groups = HashMap::with_capacity(restored.len());
        for snapshot in restored {
            let group = Group::restore(snapshot, initial_delay, config.rebalance_restored, now);
            if groups.contains_key(&group.id) {
                tracing::warn!(group = %group.id, "two snapshots of one group; keeping the later");
            }
            groups.insert(group.id.clone(), Arc::new(Mutex::new(group)));
        }
        tracing::info!(groups = groups.len(), "group coordinator restored");
        let timers = Arc::new(Timers::default());
        let coordinator = Self {
            inner: Arc::new(Inner {
                config,
                store,
                groups: RwLock::new(groups),
                timers: timers.clone(),
                changes: watch::Sender::new(0),
            }),
        };
        for group in coordinator.inner.groups.read().values() {
            coordinator.schedule(&mut group.lock());
        }
        let weak = Arc::downgrade(&coordinator.inner);
        tokio::spawn(timers::run(timers, move |group_id| {
            let Some(inner) = weak.upgrade() else {
                return false;
            };
            GroupCoordinator { inner }.fire(group_id);
            true
        }));
        coordinator
    }

    /// The settings in force.
    pub fn config(&self) -> &GroupConfig {
        &self.inner.config
    }

    /// JoinGroup. Waits until the join phase ends when the member has to take part in one.
    pub async fn join_group(
        &self,
        client: &ClientContext,
        params: JoinGroupParams,
    ) -> JoinGroupResult {
        let member_id = params.member_id.clone();
        if params.group_id.is_empty() {
            return JoinGroupResult::error(member_id, ResponseError::InvalidGroupId);
        }
        let session = i64::from(params.session_timeout_ms);
        let config = &self.inner.config;
        if session < i64::from(config.min_session_timeout_ms)
            || session > i64::from(config.max_session_timeout_ms)
        {
            return JoinGroupResult::error(member_id, ResponseError::InvalidSessionTimeout);
        }
        // Only a first join creates a group; a member id for a group we do not know is stale.
        let group = if member_id.is_empty() {
            match self.get_or_create(&params.group_id) {
                Some(group) => group,
                None => {
                    tracing::warn!(
                        group = params.group_id,
                        limit = config.max_groups,
                        "new group refused: max_groups reached"
                    );
                    return JoinGroupResult::error(member_id, ResponseError::GroupMaxSizeReached);
                }
            }
        } else {
            match self.get(&params.group_id) {
                Some(group) => group,
                None => return JoinGroupResult::error(member_id, ResponseError::UnknownMemberId),
            }
        };
        let (waiter, parked) = oneshot::channel();
        let max_size = config.max_size;
        let joined = self.with_group(&group, |g, now| {
            // A new dynamic member beyond group_max_size (Kafka group.max.size) is refused.
            let new = params.member_id.is_empty() && params.group_instance_id.is_none();
            if new && g.members.len() + g.pending_members.len() >= max_size {
                tracing::warn!(group = %g.id, max_size, "member refused: group_max_size reached");
                return Some(JoinGroupResult::error(
                    "",
                    ResponseError::GroupMaxSizeReached,
                ));
            }
            g.join(now, client, params, waiter)
        });
        match joined {
            Some(answer) => answer,
            None => parked.await.unwrap_or_else(|_| {
                JoinGroupResult::error(member_id, ResponseError::CoordinatorNotAvailable)
            }),
        }
    }

    /// SyncGroup. Followers wait for the leader; everyone waits until the leader's assignment
    /// is durable.
    pub async fn sync_group(&self, params: SyncGroupParams) -> SyncGroupResult {
        if params.group_id.is_empty() {
            return SyncGroupResult::error(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.get(&params.group_id) else {
            return SyncGroupResult::error(ResponseError::UnknownMemberId);
        };
        let (waiter, parked) = oneshot::channel();
        match self.with_group(&group, |g, now| g.sync(now, params, waiter)) {
            Some(answer) => answer,
            None => parked
                .await
                .unwrap_or_else(|_| SyncGroupResult::error(ResponseError::CoordinatorNotAvailable)),
        }
    }

    /// Heartbeat: extends the member's session.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let group = self.get(group_id).ok_or(ResponseError::UnknownMemberId)?;
        // A heartbeat only moves a deadline later, so the timer needs no new entry.
        let mut group = group.lock();
        group.heartbeat(Instant::now(), generation_id, member_id, group_instance_id)
    }

    /// LeaveGroup for one member (v0-2) or several (v3+), each with its own outcome.
    pub fn leave_group(&self, group_id: &str, members: Vec<LeavingMember>) -> LeaveGroupResult {
        if group_id.is_empty() {
            return LeaveGroupResult {
                error: Some(ResponseError::InvalidGroupId),
                members: Vec::new(),
            };
        }
        match self.get(group_id) {
            Some(group) => self.with_group(&group, |g, now| g.leave(now, members)),
            None => LeaveGroupResult {
                error: None,
                members: members
                    .into_iter()
                    .map(|member| (member, Some(ResponseError::UnknownMemberId)))
                    .collect(),
            },
        }
    }

    /// ListGroups, sorted by group id. `states` (v4+) and `types` (v5+) filter when non-empty,
    /// ignoring case; every group here is of type `classic`.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<GroupListing> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return Vec::new();
        }
        let wanted: Vec<Option<GroupState>> = states.iter().map(|s| GroupState::parse(s)).collect();
        let groups: Vec<GroupRef> = self.inner.groups.read().values().cloned().collect();
        let mut listed: Vec<GroupListing> = groups
            .iter()
            .map(|group| group.lock().listing())
            .filter(|listing| listing.state != GroupState::Dead)
            .filter(|listing| wanted.is_empty() || wanted.contains(&Some(listing.state)))
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// DescribeGroups for one group; an unknown group is described as Dead, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        match self.get(group_id) {
            Some(group) => group.lock().describe(),
            None => GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups: each Empty group is deleted with its committed offsets (GROUP_ID_NOT_FOUND
    /// for unknown groups, NON_EMPTY_GROUP for groups with members). Outcomes come in request
    /// order, one per distinct id.
    pub async fn delete_groups(
        &self,
        group_ids: Vec<String>,
    ) -> Vec<(String, Result<(), ResponseError>)> {
        let mut results: Vec<(String, Result<(), ResponseError>)> = Vec::new();
        let mut deletions = Vec::new();
        for group_id in group_ids {
            if results.iter().any(|(id, _)| *id == group_id) {
                continue;
            }
            let outcome = match self.get(&group_id) {
                None => Err(ResponseError::GroupIdNotFound),
                Some(group) => {
                    let mut locked = group.lock();
                    locked.begin_delete().map(|()| {
                        // Started under the lock, so it is ordered after the group's writes.
                        let write = self.inner.store.delete_group(group_id.clone());
                        deletions.push((results.len(), group.clone(), write));
                    })
                }
            };
            results.push((group_id, outcome));
        }
        let finished = futures::future::join_all(
            deletions
                .into_iter()
                .map(|(index, group, write)| async move { (index, group, write.await) }),
        )
        .await;
        for (index, group, outcome) in finished {
            let group_id = &results[index].0;
            match outcome {
                Ok(()) => {
                    let mut groups = self.inner.groups.write();
                    if groups.get(group_id).is_some_and(|g| Arc::ptr_eq(g, &group)) {
                        groups.remove(group_id);
                    }
                    tracing::info!(group = %group_id, "group deleted");
                }
                Err(error) => {
                    tracing::warn!(group = %group_id, %error, "could not delete group");
                    self.with_group(&group, |g, _| g.abort_delete());
                    results[index].1 = Err(ResponseError::CoordinatorNotAvailable);
                }
            }
        }
        results
    }

    /// The member checks of an OffsetCommit, with Kafka's rules: generation -1 with no member
    /// id is a "simple" commit, allowed when the group is Empty or unknown (an unknown group is
    /// then created Empty, so that it lists); otherwise UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
    /// FENCED_INSTANCE_ID, or REBALANCE_IN_PROGRESS during CompletingRebalance. A valid
    /// member's commit counts as a heartbeat.
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let group = match self.get(group_id) {
            Some(group) => group,
            None if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() => {
                match self.get_or_create(group_id) {
                    Some(group) => group,
                    // At max_groups the commit still goes ahead (the offset table bounds it);
                    // the group is just not listed.
                    None => return Ok(()),
                }
            }
            None if generation_id < 0 => return Err(ResponseError::UnknownMemberId),
            // A generation for a group we do not know is from an older incarnation of it.
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut group = group.lock();
        group.validate_offset_commit(Instant::now(), generation_id, member_id, group_instance_id)
    }

    /// Whether an OffsetCommit with this generation and member would be accepted now, without
    /// its effects (no heartbeat, no group created): what a standing right to commit (a
    /// one-sided session's joined slots) is judged by again after [`Self::changes`].
    pub fn may_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        match self.get(group_id) {
            Some(group) => group
                .lock()
                .may_commit(generation_id, member_id, group_instance_id),
            None if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() => {
                Ok(())
            }
            None if generation_id < 0 => Err(ResponseError::UnknownMemberId),
            None => Err(ResponseError::IllegalGeneration),
        }
    }

    /// A receiver that sees a change whenever some group's generation or state changed
    /// (members joined, left or expired, a rebalance completed, the group was deleted).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The ids of every group held, whatever its state.
    pub fn group_ids(&self) -> Vec<String> {
        self.inner.groups.read().keys().cloned().collect()
    }

    /// Whether `group_id` has had no members for at least `retention` (Kafka's rule for
    /// expiring a group's offsets); true for a group this coordinator does not hold (offsets
    /// committed without a group, or at `max_groups`), false while it has members or is being
    /// deleted.
    pub fn empty_for_at_least(&self, group_id: &str, retention: Duration) -> bool {
        self.get(group_id).is_none_or(|group| {
            let group = group.lock();
            group.is(GroupState::Empty) && group.state_since.elapsed() >= retention
        })
    }

    /// Whether the group exists (and is not being deleted).
    pub fn group_exists(&self, group_id: &str) -> bool {
        self.get(group_id)
            .is_some_and(|group| !group.lock().is(GroupState::Dead))
    }

    /// Whether the group is unknown, Empty, or being deleted: its offsets are nobody's.
    pub fn is_empty_or_unknown(&self, group_id: &str) -> bool {
        self.get(group_id)
            .is_none_or(|group| matches!(group.lock().state, GroupState::Empty | GroupState::Dead))
    }

    /// State, protocol and member metadata, for OffsetDelete's subscription checks.
    pub fn group_overview(&self, group_id: &str) -> Option<GroupOverview> {
        self.get(group_id).map(|group| group.lock().overview())
    }

    fn get(&self, group_id: &str) -> Option<GroupRef> {
        self.inner.groups.read().get(group_id).cloned()
    }

    /// The group, created if there is room for one more (`None` at `max_groups`).
    fn get_or_create(&self, group_id: &str) -> Option<GroupRef> {
        if let Some(group) = self.get(group_id) {
            return Some(group);
        }
        let initial_delay =
            Duration::from_millis(self.inner.config.initial_rebalance_delay_ms.into());
        let mut groups = self.inner.groups.write();
        if !groups.contains_key(group_id) && groups.len() >= self.inner.config.max_groups {
            return None;
        }
        Some(
            groups
                .entry(group_id.to_string())
                .or_insert_with(|| {
                    Arc::new(Mutex::new(Group::new(group_id.to_string(), initial_delay)))
                })
                .clone(),
        )
    }

    /// Runs `f` on the group under its lock, then starts the snapshot writes it queued and
    /// hands the timer task the group's next deadline, still under the lock.
    fn with_group<R>(&self, group: &GroupRef, f: impl FnOnce(&mut Group, Instant) -> R) -> R {
        let mut locked = group.lock();
        let before = (locked.generation, locked.state);
        let out = f(&mut locked, Instant::now());
        if (locked.generation, locked.state) != before {
            self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.start_writes(group, &mut locked);
        self.schedule(&mut locked);
        out
    }

    fn start_writes(&self, group: &GroupRef, locked: &mut Group) {
        for PendingSave { snapshot, then } in locked.outbox.drain(..) {
            let generation = snapshot.generation_id;
            let write = self.inner.store.save_group(snapshot);
            let coordinator = self.clone();
            let group = group.clone();
            let group_id = locked.id.clone();
            tokio::spawn(async move {
                let result = write.await;
                match &result {
                    Ok(()) => {
                        tracing::debug!(group = %group_id, generation, "group metadata persisted")
                    }
                    Err(error) => {
                        tracing::warn!(group = %group_id, generation, %error, "persisting group metadata failed")
                    }
                }
                if let Some(then) = then {
                    coordinator.with_group(&group, |g, now| {
                        g.after_save(now, then, result.as_ref().map(|_| ()))
                    });
                }
            });
        }
    }

    /// Hands the timer task the group's next deadline if it is earlier than the one it has.
    fn schedule(&self, group: &mut Group) {
        if let Some(at) = group.next_deadline() {
            if group.scheduled.is_none_or(|scheduled| at < scheduled) {
                group.scheduled = Some(at);
                self.inner.timers.schedule(at, &group.id);
            }
        }
    }

    /// A deadline of the group has passed.
    fn fire(&self, group_id: &str) {
        if let Some(group) = self.get(group_id) {
            self.with_group(&group, |g, now| {
                g.scheduled = None;
                g.expire(now);
            });
        }
    }
}
