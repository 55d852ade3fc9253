//! The join phase: starting a rebalance, the initial delay, and ending the phase in a new
//! generation.

use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::group::{Group, JoinPhase};
use super::GroupState;

impl Group {
    /// Starts a rebalance if the state allows one (a group already rebalancing just continues).
    pub(crate) fn maybe_prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if self.state.can_rebalance() {
            self.prepare_rebalance(now, reason);
        }
    }

    /// Moves to PreparingRebalance: members waiting for an assignment are told to rejoin, and
    /// the join phase starts (with the initial delay when the group was Empty).
    pub(crate) fn prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if self.is(GroupState::CompletingRebalance) {
            self.fail_assignment(now, ResponseError::RebalanceInProgress);
        }
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        self.join_phase = Some(
            if self.is(GroupState::Empty) && !self.initial_delay.is_zero() {
                self.new_member_added = false;
                JoinPhase::Initial {
                    deadline: now + self.initial_delay,
                    delay: self.initial_delay,
                    remaining: timeout.saturating_sub(self.initial_delay),
                }
            } else {
                JoinPhase::Normal {
                    deadline: now + timeout,
                }
            },
        );
        tracing::info!(group = %self.id, from = %self.state, generation = self.generation, reason, "preparing to rebalance");
        self.set_state(GroupState::PreparingRebalance);
        self.try_complete_join(now);
    }

    /// Ends the join phase early once everyone has rejoined (never during the initial delay,
    /// whose purpose is to wait for members not yet known).
    pub(crate) fn try_complete_join(&mut self, now: Instant) {
        if self.is(GroupState::PreparingRebalance)
            && matches!(self.join_phase, Some(JoinPhase::Normal { .. }))
            && self.all_joined()
        {
            self.complete_join(now);
        }
    }

    /// The join phase's deadline has passed.
    pub(crate) fn join_deadline_passed(&mut self, now: Instant) {
        match self.join_phase {
            Some(JoinPhase::Initial {
                delay, remaining, ..
            }) if self.new_member_added && !remaining.is_zero() => {
                // Members are still arriving: wait another delay, within the rebalance timeout.
                self.new_member_added = false;
                let next = self.initial_delay.min(remaining);
                self.join_phase = Some(JoinPhase::Initial {
                    deadline: now + next,
                    delay: next,
                    remaining: remaining.saturating_sub(delay),
                });
            }
            _ => self.complete_join(now),
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are removed, and the members
    /// that did get the new generation (the leader with everyone's metadata). A group left
    /// without members becomes Empty, still moving to a new generation, and is persisted.
    pub(crate) fn complete_join(&mut self, now: Instant) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|member| !member.awaiting_join() && member.instance_id.is_none())
            .map(|member| member.id.clone())
            .collect();
        if !missing.is_empty() {
            tracing::info!(group = %self.id, ?missing, "removing members that did not rejoin");
        }
        for member_id in &missing {
            self.remove_member(member_id);
        }
        if self.is(GroupState::Dead) {
            return;
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them to rejoin or
            // for their sessions to expire.
            tracing::warn!(group = %self.id, "no member rejoined; extending the join phase");
            self.join_phase = Some(JoinPhase::Normal {
                deadline: now + self.rebalance_timeout(),
            });
            return;
        }
        self.join_phase = None;
        self.pending_sync.clear();
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            tracing::info!(group = %self.id, generation = self.generation, "group is now empty");
            self.persist(None);
            return;
        }
        self.protocol_name = self.select_protocol();
        if self.protocol_name.is_none() {
            // Join checks keep a common protocol; should that ever fail, the leader's choice
            // at least gives clients something to refuse.
            tracing::error!(group = %self.id, "no protocol common to all members");
            self.protocol_name = self
                .leader
                .as_ref()
                .and_then(|leader| self.members.get(leader))
                .and_then(|leader| leader.protocols.first())
                .map(|(name, _)| name.clone());
        }
        self.set_state(GroupState::CompletingRebalance);
        let leader = self.leader.clone().unwrap_or_default();
        let leader_view = self.member_metadata();
        let answers: Vec<_> = self
            .members
            .keys()
            .map(|id| {
                let members = if *id == leader {
                    leader_view.clone()
                } else {
                    Vec::new()
                };
                self.join_result(id, leader.clone(), members)
            })
            .collect();
        for (member, answer) in self.members.values_mut().zip(answers) {
            member.answer_join(answer);
            member.touch(now);
            member.is_new = false;
            self.pending_sync.insert(member.id.clone());
        }
        self.sync_deadline = Some(now + self.rebalance_timeout());
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), protocol = ?self.protocol_name, leader, "join phase complete; waiting for the leader's assignment");
    }

    /// Keeps the leader if it rejoined, else hands leadership to any member that did; false if
    /// none did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return false;
        };
        if self.members.get(leader).is_some_and(|m| m.awaiting_join()) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(member) => {
                tracing::info!(group = %self.id, leader = %member.id, "leader did not rejoin; electing another");
                self.leader = Some(member.id.clone());
                true
            }
            None => false,
        }
    }

    /// The rebalance timeout passed after a join phase and some members never sent SyncGroup:
    /// they are removed and the group rebalances without them.
    pub(crate) fn sync_deadline_passed(&mut self, now: Instant) {
        self.sync_deadline = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || self.pending_sync.is_empty()
        {
            return;
        }
        let missing: Vec<String> = self.pending_sync.drain().collect();
        tracing::info!(group = %self.id, ?missing, "removing members that did not sync in time");
        for member_id in &missing {
            self.remove_member(member_id);
        }
        self.prepare_rebalance(now, "members did not sync in time");
    }
}
