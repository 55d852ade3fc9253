//! Heartbeats, leaving, expiry, and the member checks of offset commits.

use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::api::{LeaveGroupResult, LeavingMember};
use super::group::Group;
use super::GroupState;

impl Group {
    /// Handles a Heartbeat (Kafka's rules): it extends the member's session, and during a join
    /// phase answers REBALANCE_IN_PROGRESS so the member rejoins.
    pub(crate) fn heartbeat(
        &mut self,
        now: Instant,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if self.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                Ok(())
            }
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                Err(ResponseError::RebalanceInProgress)
            }
        }
    }

    /// Handles a LeaveGroup for each member named, in order.
    pub(crate) fn leave(&mut self, now: Instant, leaving: Vec<LeavingMember>) -> LeaveGroupResult {
        if self.is(GroupState::Dead) {
            return LeaveGroupResult {
                error: Some(ResponseError::CoordinatorNotAvailable),
                members: Vec::new(),
            };
        }
        let members = leaving
            .into_iter()
            .map(|member| {
                let outcome = self.leave_one(now, &member).err();
                (member, outcome)
            })
            .collect();
        LeaveGroupResult {
            error: None,
            members,
        }
    }

    fn leave_one(&mut self, now: Instant, leaving: &LeavingMember) -> Result<(), ResponseError> {
        let reason = leaving.reason.as_deref().unwrap_or("none given");
        if leaving.member_id.is_empty() {
            // Administrative removal of a static member by its instance id alone.
            let current = leaving
                .group_instance_id
                .as_ref()
                .and_then(|instance| self.static_members.get(instance))
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?;
            tracing::info!(group = %self.id, member_id = current, reason, "static member removed by instance id");
            self.remove_member_and_rebalance(now, &current);
            return Ok(());
        }
        if self.pending_members.remove(&leaving.member_id).is_some() {
            tracing::info!(group = %self.id, member_id = leaving.member_id, "pending member left");
            self.try_complete_join(now);
            return Ok(());
        }
        self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())?;
        tracing::info!(group = %self.id, member_id = leaving.member_id, reason, "member left");
        self.remove_member_and_rebalance(now, &leaving.member_id);
        Ok(())
    }

    /// Removes a member and lets the group react: a rebalance, or the end of the current join
    /// phase if the member was the last one it waited for.
    pub(crate) fn remove_member_and_rebalance(&mut self, now: Instant, member_id: &str) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, "member removed")
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires whatever is due at `now`: members whose session passed, pending member ids not
    /// claimed in time, the join phase, and members that never synced.
    pub(crate) fn expire(&mut self, now: Instant) {
        if self.is(GroupState::Dead) {
            return;
        }
        let pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in pending {
            tracing::info!(group = %self.id, member_id, "pending member did not rejoin in time");
            self.pending_members.remove(&member_id);
            self.try_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| member.expiry().is_some_and(|deadline| deadline <= now))
            .map(|member| member.id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(group = %self.id, member_id, "member session expired; removing it");
            self.remove_member_and_rebalance(now, &member_id);
        }
        if self.is(GroupState::PreparingRebalance)
            && self.join_phase.is_some_and(|phase| phase.deadline() <= now)
        {
            self.join_deadline_passed(now);
        }
        if self.sync_deadline.is_some_and(|deadline| deadline <= now) {
            self.sync_deadline_passed(now);
        }
    }

    /// Kafka's offset-commit member checks. Generation -1 with no member id and no instance id
    /// is a "simple" commit (a client managing its own partitions), allowed only while the group
    /// has no members. A commit from a valid member counts as a heartbeat; during
    /// CompletingRebalance it is refused with REBALANCE_IN_PROGRESS, since the member is about
    /// to receive a new assignment.
    pub(crate) fn validate_offset_commit(
        &mut self,
        now: Instant,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        self.may_commit(generation_id, member_id, instance_id)?;
        if matches!(
            self.state,
            GroupState::Stable | GroupState::PreparingRebalance
        ) {
            self.touch(member_id, now);
        }
        Ok(())
    }

    /// The checks of [`Self::validate_offset_commit`] without its effect (a valid member's
    /// commit is a heartbeat).
    pub(crate) fn may_commit(
        &self,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if self.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !self.is(GroupState::Empty) {
            return Err(ResponseError::UnknownMemberId);
        }
        match self.state {
            GroupState::Empty | GroupState::Stable | GroupState::PreparingRebalance => Ok(()),
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.touch(now);
        }
    }
}
