//! SyncGroup: followers wait, the leader's assignment is made durable, then everyone gets theirs.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::{SyncGroupParams, SyncGroupResult};
use super::group::{AfterSave, Group};
use super::snapshot::GroupStoreError;
use super::GroupState;

impl Group {
    /// Handles a SyncGroup. Returns the answer, or `None` when the request was parked on its
    /// member until the leader's assignment is durable.
    pub(crate) fn sync(
        &mut self,
        now: Instant,
        params: SyncGroupParams,
        waiter: oneshot::Sender<SyncGroupResult>,
    ) -> Option<SyncGroupResult> {
        if let Err(error) = self.validate_sync(&params) {
            return Some(SyncGroupResult::error(error));
        }
        let member_id = params.member_id.as_str();
        match self.state {
            GroupState::Empty => Some(SyncGroupResult::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Some(SyncGroupResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                self.synced(member_id);
                let Some(member) = self.members.get_mut(member_id) else {
                    return Some(SyncGroupResult::error(ResponseError::UnknownMemberId));
                };
                member.touch(now);
                Some(SyncGroupResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let Some(member) = self.members.get_mut(member_id) else {
                    return Some(SyncGroupResult::error(ResponseError::UnknownMemberId));
                };
                if let Some(previous) = member.sync_waiter.replace(waiter) {
                    let _ =
                        previous.send(SyncGroupResult::error(ResponseError::RebalanceInProgress));
                }
                self.synced(member_id);
                if self.is_leader(member_id) {
                    self.store_assignment(params.assignments);
                }
                None
            }
            GroupState::Dead => Some(SyncGroupResult::error(
                ResponseError::CoordinatorNotAvailable,
            )),
        }
    }

    /// Kafka's `validateSyncGroup`.
    fn validate_sync(&self, params: &SyncGroupParams) -> Result<(), ResponseError> {
        if self.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(&params.member_id, params.group_instance_id.as_deref())?;
        if params.generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        let mismatch = |asked: &Option<String>, ours: &Option<String>| {
            asked
                .as_ref()
                .is_some_and(|asked| Some(asked) != ours.as_ref())
        };
        if mismatch(&params.protocol_type, &self.protocol_type)
            || mismatch(&params.protocol_name, &self.protocol_name)
        {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// The member has sent its SyncGroup for this generation.
    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// Queues the snapshot of the new generation with the leader's assignment; members are
    /// answered once it is durable (`finish_sync`).
    fn store_assignment(&mut self, assignments: Vec<(String, Bytes)>) {
        let mut assignments: HashMap<String, Bytes> = assignments
            .into_iter()
            .filter(|(id, _)| self.members.contains_key(id))
            .collect();
        let missing: Vec<&String> = self
            .members
            .keys()
            .filter(|id| !assignments.contains_key(*id))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(group = %self.id, generation = self.generation, ?missing, "leader sent no assignment for some members; they get an empty one");
        }
        for id in self.members.keys() {
            assignments.entry(id.clone()).or_default();
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), static_members = self.static_members.len(), "assignment received from the leader");
        let snapshot =
            self.snapshot_with(|member| assignments.get(&member.id).cloned().unwrap_or_default());
        self.outbox.push(super::group::PendingSave {
            snapshot,
            then: Some(AfterSave::Sync {
                generation: self.generation,
                assignments,
            }),
        });
    }

    /// The new generation's snapshot is durable (or failed). Nothing happens if the group has
    /// moved on meanwhile (a member joined or left): that rebalance answered the waiters.
    pub(crate) fn finish_sync(
        &mut self,
        now: Instant,
        generation: i32,
        mut assignments: HashMap<String, Bytes>,
        result: Result<(), &GroupStoreError>,
    ) {
        if !self.is(GroupState::CompletingRebalance) || generation != self.generation {
            tracing::debug!(group = %self.id, generation, "assignment persisted for a generation that has moved on");
            return;
        }
        match result {
            Ok(()) => {
                for member in self.members.values_mut() {
                    member.assignment = assignments.remove(&member.id).unwrap_or_default();
                }
                self.set_state(GroupState::Stable);
                self.propagate(now, None);
                tracing::info!(group = %self.id, generation, "group is stable");
            }
            Err(error) => {
                tracing::warn!(group = %self.id, generation, %error, "could not persist the assignment; rebalancing");
                self.fail_assignment(now, ResponseError::CoordinatorNotAvailable);
                self.maybe_prepare_rebalance(now, "assignment could not be persisted");
            }
        }
    }

    /// Clears the assignment and tells every parked SyncGroup `error`.
    pub(crate) fn fail_assignment(&mut self, now: Instant, error: ResponseError) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate(now, Some(error));
    }

    /// Answers every parked SyncGroup with its member's assignment (or `error`); an answered
    /// member's session starts again, since it could not heartbeat while it waited.
    fn propagate(&mut self, now: Instant, error: Option<ResponseError>) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol_name.clone()),
            Some(_) => (None, None),
        };
        for member in self.members.values_mut() {
            let answer = SyncGroupResult {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: member.assignment.clone(),
            };
            if member.answer_sync(answer) {
                member.touch(now);
            }
        }
    }
}
