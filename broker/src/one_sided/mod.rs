//! The one-sided path beside TCP, served through the `rdma` crate's providers.
//!
//! Two providers serve the same regions and requests: shm (`rdma_shm_socket`, below) and, in
//! a broker built with the `verbs` feature, RDMA NICs (`rdma_verbs_listen`, [`verbs`]).
//!
//! A client connects to `rdma_shm_socket` and gets read-only mappings of the HotCache arena and
//! its block-generation table, a read-write mapping of the offset table (ATOMIC granted only on
//! the slots of the groups it joins) and a staging ring of its own. Fetch is one-sided READ of
//! the arena at positions the broker locates; produce is a WRITE into the ring followed by a
//! notification, appended exactly as a TCP produce; commits are FETCH_AND_ADD on the very slots
//! TCP OffsetCommit writes, made durable within `rdma_commit_interval_ms` (see docs/rdma.md).

mod handlers;
mod persist;
mod published;
mod server;
mod session;
mod slot_holds;
#[cfg(feature = "verbs")]
pub mod verbs;

pub use persist::{persist_loop, JoinedSlots};
pub use published::PublishedIndex;
pub use server::serve;

use rdma::RegionId;

/// The HotCache arena.
pub const CACHE_REGION: RegionId = RegionId(1);
/// One `u64` generation per cache block.
pub const GENERATIONS_REGION: RegionId = RegionId(2);
/// The committed-offset table.
pub const OFFSETS_REGION: RegionId = RegionId(3);
/// The session's staging ring.
pub const RING_REGION: RegionId = RegionId(4);
/// The published partition index.
pub const INDEX_REGION: RegionId = RegionId(5);
