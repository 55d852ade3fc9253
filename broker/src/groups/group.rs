//! A group's data and membership bookkeeping. The state machine itself lives in `join`,
//! `rebalance`, `sync` and `liveness`, as further `impl Group` blocks.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::time::{Duration, Instant};

use super::api::{JoinGroupResult, JoinedMember, SyncGroupResult};
use super::join::StaticRejoin;
use super::member::Member;
use super::protocol_select::{select_protocol, supports_protocols};
use super::snapshot::{GroupSnapshot, GroupStoreError};
use super::GroupState;

/// The current join phase of a PreparingRebalance group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinPhase {
    /// A group that was Empty waits a fixed delay for more members (Kafka's
    /// `InitialDelayedJoin`): it never ends early, and is extended while members keep coming,
    /// up to the rebalance timeout in all.
    Initial {
        deadline: Instant,
        delay: Duration,
        remaining: Duration,
    },
    /// Ends when every member has rejoined, or at the deadline (Kafka's `DelayedJoin`).
    Normal { deadline: Instant },
}

impl JoinPhase {
    pub(crate) fn deadline(self) -> Instant {
        match self {
            Self::Initial { deadline, .. } | Self::Normal { deadline } => deadline,
        }
    }
}

/// A snapshot to write, and what to do with the group once it is durable (or failed).
pub(crate) struct PendingSave {
    pub(crate) snapshot: GroupSnapshot,
    pub(crate) then: Option<AfterSave>,
}

/// Work that waits for a snapshot write.
pub(crate) enum AfterSave {
    /// The leader's assignment for `generation`: propagate it (or fail the generation).
    Sync {
        generation: i32,
        assignments: HashMap<String, Bytes>,
    },
    /// A static member replaced without a rebalance: answer it (or undo the replacement).
    StaticRejoin(Box<StaticRejoin>),
}

/// One consumer group.
pub(crate) struct Group {
    pub(crate) id: String,
    /// Changed only through [`Group::set_state`], which dates it.
    pub(crate) state: GroupState,
    /// When `state` last changed (or the group was created or restored): an Empty group's
    /// offsets expire `offsets_retention_ms` after this.
    pub(crate) state_since: Instant,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id, for static members.
    pub(crate) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin by.
    pub(crate) pending_members: HashMap<String, Instant>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub(crate) pending_sync: HashSet<String>,
    pub(crate) join_phase: Option<JoinPhase>,
    /// When members still in `pending_sync` are removed.
    pub(crate) sync_deadline: Option<Instant>,
    /// A member joined during the initial delay, so the delay is extended.
    pub(crate) new_member_added: bool,
    pub(crate) initial_delay: Duration,
    /// Snapshot writes for the coordinator to start, in order, before it releases the lock.
    pub(crate) outbox: Vec<PendingSave>,
    /// The earliest deadline handed to the timer task and not yet fired.
    pub(crate) scheduled: Option<Instant>,
}

impl Group {
    /// A new, Empty group at generation 0.
    pub(crate) fn new(id: String, initial_delay: Duration) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            state_since: Instant::now(),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_phase: None,
            sync_deadline: None,
            new_member_added: false,
            initial_delay,
            outbox: Vec::new(),
            scheduled: None,
        }
    }

    /// A group as it was persisted: Stable with its members when it had any (their sessions
    /// start now), or rebalancing when `rebalance` is set (see
    /// [`GroupConfig::rebalance_restored`](super::GroupConfig::rebalance_restored)); Empty
    /// when it had none.
    pub(crate) fn restore(
        snapshot: GroupSnapshot,
        initial_delay: Duration,
        rebalance: bool,
        now: Instant,
    ) -> Self {
        let mut group = Self::new(snapshot.group_id, initial_delay);
        group.generation = snapshot.generation_id;
        group.protocol_type = snapshot.protocol_type;
        if snapshot.members.is_empty() || snapshot.protocol_name.is_none() {
            if !snapshot.members.is_empty() {
                tracing::warn!(group = %group.id, "snapshot has members but no protocol; restoring it empty");
            }
            return group;
        }
        group.protocol_name = snapshot.protocol_name;
        for member in snapshot.members {
            let member = Member::restore(member, now);
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.id.clone());
            }
            group.members.insert(member.id.clone(), member);
        }
        group.leader = snapshot
            .leader
            .filter(|leader| group.members.contains_key(leader))
            .or_else(|| group.members.keys().next().cloned());
        group.set_state(GroupState::Stable);
        if rebalance {
            group.prepare_rebalance(now, "taken over from another coordinator");
        }
        group
    }

    /// Moves to `state`, noting when.
    pub(crate) fn set_state(&mut self, state: GroupState) {
        if self.state != state {
            self.state = state;
            self.state_since = Instant::now();
        }
    }

    pub(crate) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Whether a member offering these protocols fits, leaving `except` (the member itself when
    /// it rejoins) out of the count.
    pub(crate) fn supports(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        let others = self
            .members
            .values()
            .filter(move |member| Some(member.id.as_str()) != except);
        supports_protocols(
            self.protocol_type.as_deref(),
            others,
            protocol_type,
            protocols,
        )
    }

    /// The protocol a new generation would use.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        select_protocol(self.members.values())
    }

    /// Adds a member; the first member of a memberless group sets the protocol type and leads.
    pub(crate) fn add_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID (so a client that
    /// is still there rejoins) and electing another leader if it led.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        member.answer_join(JoinGroupResult::error("", ResponseError::UnknownMemberId));
        member.answer_sync(SyncGroupResult::error(ResponseError::UnknownMemberId));
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        Some(member)
    }

    /// Gives a static member a new member id. Requests parked under the old id are answered
    /// FENCED_INSTANCE_ID: they belong to a previous incarnation of the instance.
    pub(crate) fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        member.answer_join(JoinGroupResult::error(
            old_id,
            ResponseError::FencedInstanceId,
        ));
        member.answer_sync(SyncGroupResult::error(ResponseError::FencedInstanceId));
        member.id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
    }

    /// Kafka's `validateCurrentMember`: a static instance must map to this member id
    /// (FENCED_INSTANCE_ID when it maps to another), and the member must exist.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            return match self.static_members.get(instance) {
                Some(current) if current != member_id => {
                    tracing::info!(group = %self.id, member_id, instance, current = %current, "static member fenced");
                    Err(ResponseError::FencedInstanceId)
                }
                Some(_) => Ok(()),
                None => Err(ResponseError::UnknownMemberId),
            };
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// The longest rebalance timeout among the members: how long a join phase may take.
    pub(crate) fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Every member has rejoined and no MEMBER_ID_REQUIRED answer is still outstanding.
    pub(crate) fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::awaiting_join)
    }

    /// The members with their metadata for the generation's protocol, for the leader.
    pub(crate) fn member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinedMember {
                member_id: member.id.clone(),
                group_instance_id: member.instance_id.clone(),
                metadata: member.metadata(protocol),
            })
            .collect()
    }

    /// The successful JoinGroup answer of the current generation for `member_id`.
    pub(crate) fn join_result(
        &self,
        member_id: &str,
        leader_id: String,
        members: Vec<JoinedMember>,
    ) -> JoinGroupResult {
        JoinGroupResult {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// The group as persisted, with each member's assignment taken from `assignment`.
    pub(crate) fn snapshot_with(&self, assignment: impl Fn(&Member) -> Bytes) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.id.clone(),
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|member| member.snapshot(&assignment(member)))
                .collect(),
        }
    }

    /// Queues a write of the group as it is now.
    pub(crate) fn persist(&mut self, then: Option<AfterSave>) {
        let snapshot = self.snapshot_with(|member| member.assignment.clone());
        self.outbox.push(PendingSave { snapshot, then });
    }

    /// Continues the work that waited for a snapshot write.
    pub(crate) fn after_save(
        &mut self,
        now: Instant,
        then: AfterSave,
        result: Result<(), &GroupStoreError>,
    ) {
        match then {
            AfterSave::Sync {
                generation,
                assignments,
            } => self.finish_sync(now, generation, assignments, result),
            AfterSave::StaticRejoin(rejoin) => self.finish_static_rejoin(now, *rejoin, result),
        }
    }

    /// The earliest moment something in the group can expire.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.is(GroupState::Dead) {
            return None;
        }
        let join = self
            .join_phase
            .filter(|_| self.is(GroupState::PreparingRebalance))
            .map(JoinPhase::deadline);
        self.members
            .values()
            .filter_map(Member::expiry)
            .chain(self.pending_members.values().copied())
            .chain(join)
            .chain(self.sync_deadline)
            .min()
    }
}
