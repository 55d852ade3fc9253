//! The broker's own durable log: committed offsets, group metadata and producer-id blocks.
//!
//! It is one hidden partition, written through the same hot cache and flush pipeline as user
//! data, so a commit shares the flush (and the fsync) of the data around it instead of paying
//! for a write of its own. Records are ordinary v2 record batches whose values are JSON; the
//! state they describe is rebuilt by replaying them at start.

pub mod log;
pub mod record;
pub mod snapshot;

pub use log::{InternalLog, InternalLogError, LoggedRecord};
pub use record::{CommittedOffset, InternalRecord};

use dfs_adapter::PartitionKey;
use uuid::Uuid;

/// Topic id of the internal partition. Fixed, so every broker start finds it; never listed in
/// Metadata, never reachable by name.
pub const INTERNAL_TOPIC_ID: Uuid = Uuid::from_u128(0x686f_7477_6972_4000_8000_0000_0000_0001);

/// The internal partition's storage key.
pub fn internal_key() -> PartitionKey {
    PartitionKey {
        topic_id: INTERNAL_TOPIC_ID,
        partition: 0,
    }
}
