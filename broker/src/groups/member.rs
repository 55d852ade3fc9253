//! One group member.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::api::{JoinGroupResult, SyncGroupResult};
use super::snapshot::MemberSnapshot;
use super::ClientContext;

/// How long a member that has just joined (and so cannot heartbeat yet) may wait in a join phase
/// before it is dropped. Without it, clients that gave up on a long rebalance and retried with a
/// fresh join would leave defunct members holding the phase open (Kafka's
/// `NewMemberJoinTimeoutMs`).
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// A member of a group, with the requests it has parked.
#[derive(Debug)]
pub struct Member {
    /// The member id.
    pub id: String,
    /// Its `group.instance.id` when it is a static member.
    pub instance_id: Option<String>,
    /// The client id it last joined with.
    pub client_id: String,
    /// The address it last joined from.
    pub client_host: String,
    /// How long it may go without a heartbeat.
    pub session_timeout: Duration,
    /// How long a join phase waits for it.
    pub rebalance_timeout: Duration,
    /// Its protocols in order of preference, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation (empty until the leader's sync is durable).
    pub assignment: Bytes,
    /// A JoinGroup waiting for the join phase to end.
    pub(crate) join_waiter: Option<oneshot::Sender<JoinGroupResult>>,
    /// A SyncGroup waiting for the leader's assignment to be durable.
    pub(crate) sync_waiter: Option<oneshot::Sender<SyncGroupResult>>,
    /// Joined during the current join phase and not yet answered.
    pub(crate) is_new: bool,
    /// When the member expires unless it heartbeats (see [`Member::expiry`]).
    pub(crate) heartbeat_deadline: Instant,
}

impl Member {
    /// A member that has just joined: it must be answered within [`NEW_MEMBER_JOIN_TIMEOUT`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        instance_id: Option<String>,
        client: &ClientContext,
        session_timeout: Duration,
        rebalance_timeout: Duration,
        protocols: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            instance_id,
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout,
            rebalance_timeout,
            protocols,
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            is_new: true,
            heartbeat_deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
        }
    }

    /// A member restored from storage: its session starts now, so a live client keeps it by
    /// heartbeating and a dead one expires one session timeout after the restart.
    pub(crate) fn restore(snapshot: MemberSnapshot, now: Instant) -> Self {
        let session_timeout = millis(snapshot.session_timeout_ms);
        Self {
            id: snapshot.member_id,
            instance_id: snapshot.group_instance_id,
            client_id: snapshot.client_id,
            client_host: snapshot.client_host,
            session_timeout,
            rebalance_timeout: millis(snapshot.rebalance_timeout_ms),
            protocols: snapshot
                .protocols
                .into_iter()
                .map(|(name, metadata)| (name, Bytes::from(metadata)))
                .collect(),
            assignment: Bytes::from(snapshot.assignment),
            join_waiter: None,
            sync_waiter: None,
            is_new: false,
            heartbeat_deadline: now + session_timeout,
        }
    }

    /// The persisted form, with `assignment` in place of the member's own.
    pub(crate) fn snapshot(&self, assignment: &Bytes) -> MemberSnapshot {
        MemberSnapshot {
            member_id: self.id.clone(),
            group_instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            session_timeout_ms: duration_ms(self.session_timeout),
            rebalance_timeout_ms: duration_ms(self.rebalance_timeout),
            protocols: self
                .protocols
                .iter()
                .map(|(name, metadata)| (name.clone(), metadata.to_vec()))
                .collect(),
            assignment: assignment.to_vec(),
        }
    }

    /// Its metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Whether it offers `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Whether `protocols` are exactly its current ones (names, order and metadata): a rejoin
    /// with the same protocols need not disturb a stable group.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Its first choice among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Whether a JoinGroup of this member is parked.
    pub fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Whether a SyncGroup of this member is parked.
    pub fn awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    /// When the member expires, if it can. A member with a parked request counts as alive (it
    /// cannot heartbeat on that connection meanwhile), except a new member, which is bounded
    /// by [`NEW_MEMBER_JOIN_TIMEOUT`].
    pub(crate) fn expiry(&self) -> Option<Instant> {
        let parked = self.awaiting_join() || self.awaiting_sync();
        (self.is_new || !parked).then_some(self.heartbeat_deadline)
    }

    /// Starts a new session window (a heartbeat, or an answer to a parked request).
    pub(crate) fn touch(&mut self, now: Instant) {
        self.heartbeat_deadline = now + self.session_timeout;
    }

    /// Answers a parked JoinGroup, if any; true if one was parked.
    pub(crate) fn answer_join(&mut self, result: JoinGroupResult) -> bool {
        match self.join_waiter.take() {
            Some(waiter) => {
                // The client may have gone; nothing to do then.
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }

    /// Answers a parked SyncGroup, if any; true if one was parked.
    pub(crate) fn answer_sync(&mut self, result: SyncGroupResult) -> bool {
        match self.sync_waiter.take() {
            Some(waiter) => {
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }
}

/// A non-negative millisecond count from the wire as a duration (negative counts as zero).
pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A duration as whole milliseconds for the wire, saturating.
pub(crate) fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}
