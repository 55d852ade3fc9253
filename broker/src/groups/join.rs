//! JoinGroup: first joins, rejoins, and static members coming back under a new member id.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};
use uuid::Uuid;

use super::api::{JoinGroupParams, JoinGroupResult};
use super::group::{AfterSave, Group, JoinPhase};
use super::member::{millis, Member};
use super::snapshot::GroupStoreError;
use super::{ClientContext, GroupState};

/// A static member replaced without a rebalance, waiting for the snapshot that records its new
/// member id: if that write fails the replacement is undone, since after a restart the old id
/// would come back and fence the new incarnation.
pub(crate) struct StaticRejoin {
    generation: i32,
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<(String, Bytes)>,
    old_session_timeout: Duration,
    old_rebalance_timeout: Duration,
    reply: JoinGroupResult,
}

impl Group {
    /// Handles a JoinGroup whose group id and session timeout are valid. Returns the answer, or
    /// `None` when the request was parked on its member: `waiter` is answered when the join
    /// phase ends (or the member is removed, fenced, or its static rejoin is persisted).
    pub(crate) fn join(
        &mut self,
        now: Instant,
        client: &ClientContext,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) -> Option<JoinGroupResult> {
        let answer = if params.member_id.is_empty() {
            self.join_new(now, client, params, waiter)
        } else {
            self.join_known(now, client, params, waiter)
        };
        // This join may have been the last one the phase was waiting for.
        if self.is(GroupState::PreparingRebalance) {
            self.try_complete_join(now);
        }
        answer
    }

    fn join_new(
        &mut self,
        now: Instant,
        client: &ClientContext,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) -> Option<JoinGroupResult> {
        if self.is(GroupState::Dead) {
            return Some(JoinGroupResult::error(
                "",
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        let replaced = params
            .group_instance_id
            .as_ref()
            .and_then(|instance| self.static_members.get(instance))
            .cloned();
        if !self.supports(
            &params.protocol_type,
            &params.protocols,
            replaced.as_deref(),
        ) {
            return Some(JoinGroupResult::error(
                "",
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        // Kafka's member ids: the instance id for static members, else the client id.
        let prefix = params
            .group_instance_id
            .as_deref()
            .unwrap_or(&client.client_id);
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        match (params.group_instance_id.clone(), replaced) {
            (Some(instance), Some(old_id)) => {
                tracing::info!(group = %self.id, instance, old_id, new_id, state = %self.state, "static member rejoined with a new member id; replacing it");
                self.rejoin_static(now, &instance, &old_id, new_id, params, waiter);
                None
            }
            (None, _) if params.require_known_member_id => {
                // The client must come back with this id, so that a client that never sees the
                // answer leaves nothing behind but an entry that expires with the session.
                let deadline = now + millis(params.session_timeout_ms);
                self.pending_members.insert(new_id.clone(), deadline);
                tracing::debug!(group = %self.id, member_id = new_id, "member id required");
                Some(JoinGroupResult::error(
                    new_id,
                    ResponseError::MemberIdRequired,
                ))
            }
            _ => {
                self.add_member_and_rebalance(now, client, new_id, params, waiter);
                None
            }
        }
    }

    fn join_known(
        &mut self,
        now: Instant,
        client: &ClientContext,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) -> Option<JoinGroupResult> {
        let member_id = params.member_id.clone();
        if self.is(GroupState::Dead) {
            return Some(JoinGroupResult::error(
                member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports(&params.protocol_type, &params.protocols, Some(&member_id)) {
            return Some(JoinGroupResult::error(
                member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if self.pending_members.contains_key(&member_id) {
            // Only dynamic members are ever pending, whatever instance id the request carries.
            let params = JoinGroupParams {
                group_instance_id: None,
                ..params
            };
            self.add_member_and_rebalance(now, client, member_id, params, waiter);
            return None;
        }
        if let Err(error) = self.validate_member(&member_id, params.group_instance_id.as_deref()) {
            return Some(JoinGroupResult::error(member_id, error));
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|member| member.matches(&params.protocols));
        let leader = self.leader.clone().unwrap_or_default();
        let is_leader = self.is_leader(&member_id);
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // The member lost our answer: send the current generation again.
                let members = if is_leader {
                    self.member_metadata()
                } else {
                    Vec::new()
                };
                Some(self.join_result(&member_id, leader, members))
            }
            // A follower with nothing new learns the current generation and syncs; the leader
            // rejoining forces a rebalance, which is how it reacts to topic metadata changes.
            GroupState::Stable if unchanged && !is_leader => {
                Some(self.join_result(&member_id, leader, Vec::new()))
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => {
                self.update_member_and_rebalance(now, params, waiter);
                None
            }
            GroupState::Empty | GroupState::Dead => Some(JoinGroupResult::error(
                member_id,
                ResponseError::UnknownMemberId,
            )),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: Instant,
        client: &ClientContext,
        member_id: String,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) {
        let mut member = Member::new(
            member_id,
            params.group_instance_id,
            client,
            millis(params.session_timeout_ms),
            millis(params.rebalance_timeout_ms),
            params.protocols,
            now,
        );
        member.join_waiter = Some(waiter);
        tracing::info!(group = %self.id, member_id = %member.id, instance = ?member.instance_id, reason = ?params.reason, "adding member");
        if self.is(GroupState::PreparingRebalance)
            && matches!(self.join_phase, Some(JoinPhase::Initial { .. }))
        {
            self.new_member_added = true;
        }
        self.add_member(member, &params.protocol_type);
        self.maybe_prepare_rebalance(now, "new member joined");
    }

    fn update_member_and_rebalance(
        &mut self,
        now: Instant,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) {
        let Some(member) = self.members.get_mut(&params.member_id) else {
            return;
        };
        member.protocols = params.protocols;
        member.session_timeout = millis(params.session_timeout_ms);
        member.rebalance_timeout = millis(params.rebalance_timeout_ms);
        if let Some(previous) = member.join_waiter.replace(waiter) {
            // A repeated JoinGroup supersedes the first; the client no longer waits for that one.
            let _ = previous.send(JoinGroupResult::error(
                params.member_id.clone(),
                ResponseError::RebalanceInProgress,
            ));
        }
        tracing::info!(group = %self.id, member_id = %params.member_id, state = %self.state, reason = ?params.reason, "member rejoining");
        self.maybe_prepare_rebalance(now, "member rejoined");
    }

    /// A known static instance joined with no member id (it restarted): it takes over the old
    /// member, which is fenced. In a stable group whose protocol choice it does not change this
    /// needs no rebalance (the point of static membership), only a durable record of the new id.
    fn rejoin_static(
        &mut self,
        now: Instant,
        instance_id: &str,
        old_id: &str,
        new_id: String,
        params: JoinGroupParams,
        waiter: oneshot::Sender<JoinGroupResult>,
    ) {
        let current_leader = self.leader.clone().unwrap_or_default();
        let Some(old) = self.members.get(old_id) else {
            return;
        };
        let (old_protocols, old_session_timeout, old_rebalance_timeout) = (
            old.protocols.clone(),
            old.session_timeout,
            old.rebalance_timeout,
        );
        self.replace_static_member(instance_id, old_id, &new_id);
        if let Some(member) = self.members.get_mut(&new_id) {
            member.protocols = params.protocols;
            member.session_timeout = millis(params.session_timeout_ms);
            member.rebalance_timeout = millis(params.rebalance_timeout_ms);
            member.join_waiter = Some(waiter);
            member.touch(now);
        }
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                let is_leader = self.is_leader(&new_id);
                let reply = if params.supports_skip_assignment {
                    // v9+: the leader learns it leads but keeps the current assignment.
                    let members = if is_leader {
                        self.member_metadata()
                    } else {
                        Vec::new()
                    };
                    let leader = self.leader.clone().unwrap_or_default();
                    JoinGroupResult {
                        skip_assignment: is_leader,
                        ..self.join_result(&new_id, leader, members)
                    }
                } else {
                    // Before v9 the old leader id is returned, so a restarted leader does not
                    // compute an assignment that a stable group would never hand out.
                    self.join_result(&new_id, current_leader, Vec::new())
                };
                let rejoin = StaticRejoin {
                    generation: self.generation,
                    instance_id: instance_id.to_string(),
                    old_member_id: old_id.to_string(),
                    new_member_id: new_id,
                    old_protocols,
                    old_session_timeout,
                    old_rebalance_timeout,
                    reply,
                };
                self.persist(Some(AfterSave::StaticRejoin(Box::new(rejoin))));
            }
            GroupState::Stable => {
                self.maybe_prepare_rebalance(now, "static member rejoined with other protocols")
            }
            // The leader may be assigning to the old member id: start over with the new one.
            GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, "static member rejoined during the assignment")
            }
            // In a join phase the member simply counts as joined; a group with a static
            // member is never Empty, and Dead groups were refused earlier.
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The snapshot recording a static member's new id is durable, or failed.
    pub(crate) fn finish_static_rejoin(
        &mut self,
        now: Instant,
        rejoin: StaticRejoin,
        result: Result<(), &GroupStoreError>,
    ) {
        let still_waiting = self.is(GroupState::Stable)
            && self.generation == rejoin.generation
            && self
                .members
                .get(&rejoin.new_member_id)
                .is_some_and(Member::awaiting_join);
        if !still_waiting {
            // A rebalance (or the member's removal) has taken over and answers the member.
            return;
        }
        match result {
            Ok(()) => {
                if let Some(member) = self.members.get_mut(&rejoin.new_member_id) {
                    member.answer_join(rejoin.reply);
                    member.touch(now);
                }
            }
            Err(error) => {
                tracing::warn!(group = %self.id, %error, instance = rejoin.instance_id, "could not persist static member's new id; undoing the replacement");
                let waiter = self
                    .members
                    .get_mut(&rejoin.new_member_id)
                    .and_then(|member| {
                        member.protocols = rejoin.old_protocols;
                        member.session_timeout = rejoin.old_session_timeout;
                        member.rebalance_timeout = rejoin.old_rebalance_timeout;
                        member.join_waiter.take()
                    });
                self.replace_static_member(
                    &rejoin.instance_id,
                    &rejoin.new_member_id,
                    &rejoin.old_member_id,
                );
                if let Some(member) = self.members.get_mut(&rejoin.old_member_id) {
                    member.touch(now);
                }
                if let Some(waiter) = waiter {
                    let _ = waiter.send(JoinGroupResult::error(
                        "",
                        ResponseError::CoordinatorNotAvailable,
                    ));
                }
            }
        }
    }
}
