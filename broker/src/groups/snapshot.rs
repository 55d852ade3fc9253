//! What the coordinator persists about a group, and the storage it persists it to.
//!
//! Like Kafka's group metadata records, a snapshot is written when a generation completes (the
//! leader's SyncGroup, answered only once the write is durable), when a group becomes Empty, and
//! when a static member is replaced without a rebalance. At start the coordinator is given the
//! last snapshot of every group and carries on from it: generations continue, and members come
//! back with fresh sessions.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Durable storage of group metadata. Futures resolve once the write is durable.
///
/// Both methods are called while the coordinator holds the group's lock, in the order the
/// group's changes happened, so an implementation must fix the order of its writes when it is
/// called (not when the future is first polled), and must not block or call back into the
/// coordinator from the call itself.
pub trait GroupStore: Send + Sync + 'static {
    /// Replaces the group's metadata with `snapshot`.
    fn save_group(
        &self,
        snapshot: GroupSnapshot,
    ) -> BoxFuture<'static, Result<(), GroupStoreError>>;
    /// Removes the group's metadata and all its committed offsets.
    fn delete_group(&self, group_id: String) -> BoxFuture<'static, Result<(), GroupStoreError>>;
}

/// Why a [`GroupStore`] write failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GroupStoreError {
    /// The write could not be made durable; it may succeed if retried.
    #[error("group metadata write failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store is shutting down and takes no more writes.
    #[error("group metadata store is closed")]
    Closed,
}

/// A group as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// The group id.
    pub group_id: String,
    /// The last completed generation.
    pub generation_id: i32,
    /// The protocol type of the group's members.
    pub protocol_type: Option<String>,
    /// The generation's protocol; `None` when the group is empty.
    pub protocol_name: Option<String>,
    /// The leader's member id; `None` when the group is empty.
    pub leader: Option<String>,
    /// The members of the generation with their assignments; empty for an Empty group.
    pub members: Vec<MemberSnapshot>,
}

impl GroupSnapshot {
    /// The snapshot of a group that exists only through its committed offsets (Kafka loads such
    /// groups as Empty at generation 0): pass it at start so the group lists after a restart.
    pub fn offsets_only(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
        }
    }
}

/// A member as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id` when static.
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// Its session timeout.
    pub session_timeout_ms: i32,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Its protocols in order of preference, with metadata.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Its assignment in the generation.
    pub assignment: Vec<u8>,
}
