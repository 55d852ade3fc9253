//! The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups, and the member checks of OffsetCommit), following
//! Apache Kafka's `GroupCoordinator`.
//!
//! Layout, one concern per file:
//! - `state`: the five group states and their Kafka names.
//! - `member`: one member, its protocols, assignment, session deadline and parked requests.
//! - `protocol_select`: which protocols a group can accept, and the vote that picks one.
//! - `group`: a group's data and membership bookkeeping; `join`, `rebalance`, `sync` and
//!   `liveness` hold the state machine, split by request. All of it is synchronous: a group is
//!   changed under its own lock, never across an `await`.
//! - `coordinator`: the map of groups, locking, parked requests, persistence and timers.
//! - `timers`: one background task that wakes at the nearest group deadline.
//! - `snapshot`: what is persisted ([`GroupSnapshot`]) and the storage trait ([`GroupStore`]).
//! - `admin`: the ListGroups / DescribeGroups views of a group, and its deletion.
//! - `api`: the coordinator's requests and answers, free of wire versions.
//!
//! Requests that must wait (JoinGroup until the join phase ends, SyncGroup until the leader's
//! assignment is durable) park a `oneshot` sender on their member; whatever completes the phase
//! (a request, a timer, a finished write) answers every parked request at once.

mod admin;
mod api;
mod coordinator;
mod group;
mod join;
mod liveness;
mod member;
mod protocol_select;
mod rebalance;
mod snapshot;
mod state;
mod sync;
mod timers;

#[cfg(test)]
mod tests;

pub use api::{
    GroupDescription, GroupListing, GroupOverview, JoinGroupParams, JoinGroupResult, JoinedMember,
    LeaveGroupResult, LeavingMember, MemberDescription, SyncGroupParams, SyncGroupResult,
};
pub use coordinator::GroupCoordinator;
pub use snapshot::{GroupSnapshot, GroupStore, GroupStoreError, MemberSnapshot};
pub use state::GroupState;

/// Coordinator settings, with Kafka's broker defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (Kafka `group.min.session.timeout.ms`).
    pub min_session_timeout_ms: u32,
    /// Largest session timeout a member may ask for (Kafka `group.max.session.timeout.ms`).
    pub max_session_timeout_ms: u32,
    /// How long a group leaving Empty waits for more members before its first join phase ends
    /// (Kafka `group.initial.rebalance.delay.ms`), so a starting fleet lands in one generation.
    pub initial_rebalance_delay_ms: u32,
    /// Most groups held; a JoinGroup that would create one more is refused (`max_groups`).
    pub max_groups: usize,
    /// Most members of one group, joined or awaiting their member id (`group_max_size`).
    pub max_size: usize,
    /// Whether restored groups with members start with a rebalance instead of Stable. Set when
    /// the coordinator takes groups over from another broker (a cluster hand-over): a client
    /// whose OffsetFetch the old coordinator refused with NOT_COORDINATOR never asks again
    /// until its next rebalance (librdkafka leaves those partitions unfetched), so the new
    /// coordinator makes every member rejoin. A single broker restarting keeps Kafka's
    /// behaviour (no rebalance): the restart broke every connection, and clients retry
    /// requests lost with a connection.
    pub rebalance_restored: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_groups: 100_000,
            max_size: 10_000,
            rebalance_restored: false,
        }
    }
}

/// Who sent a request, as DescribeGroups reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientContext {
    /// The `client_id` of the request header (empty when the client sent none).
    pub client_id: String,
    /// The client's address (Kafka reports it as `/` followed by the IP).
    pub client_host: String,
}
