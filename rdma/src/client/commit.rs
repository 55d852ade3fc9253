//! Committed offsets by one-sided atomics on the broker's offset table.

use std::collections::HashMap;

use crate::client::Session;
use crate::control::{GroupMember, Request, Response};
use crate::{words, Grant, RdmaError};

/// Commits a group's offsets for some partitions of one topic, with FETCH_AND_ADD on the same
/// slots that Kafka's OffsetCommit and OffsetFetch use.
///
/// The broker makes changed slots durable within its commit interval, or at once on
/// [`Committer::persist`].
pub struct Committer<'a> {
    session: &'a Session,
    slots: HashMap<i32, Grant>,
}

impl<'a> Committer<'a> {
    /// Joins the offset slots of `group` for `partitions` of `topic` as a simple consumer (no
    /// group membership: refused while the group has members), as [`Committer::join_as`]
    /// without a member.
    pub fn join(
        session: &'a Session,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Self, RdmaError> {
        Self::join_as(session, group, None, topic, partitions)
    }

    /// Joins the offset slots of `group` for `partitions` of `topic` (the broker creates a
    /// commit at offset 0 for a partition that has none). The broker checks `member` as an
    /// OffsetCommit's member id and generation, and answers [`RdmaError::Refused`] with the
    /// Kafka error's name (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, ...) if they do not hold.
    pub fn join_as(
        session: &'a Session,
        group: &str,
        member: Option<GroupMember>,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Self, RdmaError> {
        let (response, _) = session.call(&Request::Join {
            group: group.to_string(),
            topic: topic.to_string(),
            partitions: partitions.to_vec(),
            member,
        })?;
        let Response::Joined { slots } = response else {
            return Err(RdmaError::Protocol(format!(
                "expected Joined, got {response:?}"
            )));
        };
        let mut map = HashMap::new();
        for slot in slots {
            session.grant_slot(&slot)?;
            map.insert(slot.partition, slot.grant);
        }
        Ok(Committer {
            session,
            slots: map,
        })
    }

    fn slot(&self, partition: i32) -> Result<&Grant, RdmaError> {
        self.slots
            .get(&partition)
            .ok_or_else(|| RdmaError::Refused(format!("partition {partition} was not joined")))
    }

    /// Adds `delta` to the committed offset (FETCH_AND_ADD); returns the previous one.
    pub fn add(&self, partition: i32, delta: u64) -> Result<i64, RdmaError> {
        let slot = self.slot(partition)?;
        let old = self
            .session
            .endpoint()
            .fetch_add(slot.region, slot.start, delta)?;
        Ok(old as i64)
    }

    /// The committed offset now, by an 8-byte READ: a FETCH_AND_ADD of 0 would write back
    /// what it read, over a commit the broker stored meanwhile (see [`crate::words`]).
    pub fn committed(&self, partition: i32) -> Result<i64, RdmaError> {
        let slot = self.slot(partition)?;
        Ok(words::read_word(self.session.endpoint(), slot.region, slot.start)? as i64)
    }

    /// Moves the committed offset forward to `offset` (never backwards): a READ, then one
    /// COMPARE_AND_SWAP, repeated only if another committer moved it meanwhile.
    pub fn commit(&self, partition: i32, offset: i64) -> Result<(), RdmaError> {
        let slot = self.slot(partition)?;
        let to = u64::try_from(offset)
            .map_err(|_| RdmaError::InvalidRequest(format!("offset {offset} is negative")))?;
        words::raise_word(self.session.endpoint(), slot.region, slot.start, to)?;
        Ok(())
    }

    /// Asks the broker to make the session's slots durable now.
    pub fn persist(&self) -> Result<usize, RdmaError> {
        match self.session.call(&Request::Persist)?.0 {
            Response::Persisted { slots } => Ok(slots),
            other => Err(RdmaError::Protocol(format!(
                "expected Persisted, got {other:?}"
            ))),
        }
    }
}
