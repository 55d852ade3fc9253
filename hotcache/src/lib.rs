//! HotCache: Hotwire's off-heap cache of produced record batches.
//!
//! Produced batches are copied once into one big shared-memory arena (a `memfd` mapped with
//! `memmap2`, so the RDMA path can register it and same-host clients can map it). The arena is
//! sub-allocated in fixed-size blocks used as a FIFO log shared by all partitions: appends fill the
//! active block, a full block is sealed, and the oldest sealed block is reused once nothing pins it.
//!
//! A [`HotSlice`] pins its block: the flush pipeline holds one per batch until the batch is durable,
//! readers hold one while they send it. Each block carries a generation number that changes when the
//! block is reused, so a stale index entry (or a one-sided RDMA reader) can tell that the bytes it
//! points at are gone. When every block is pinned the cache is full and [`HotCache::append`] fails
//! with [`HotCacheError::Full`]: the broker turns that into backpressure.
//!
//! The per-partition [`PartitionIndex`] maps offsets to slices.
//!
//! Data read back from storage never enters the arena: it goes to the [`ColdCache`], which has its
//! own byte budget and a scan-resistant policy, with [`ReadAhead`] deciding how much to load ahead
//! of each catch-up reader. The caller supplies the loads (the broker reads storage), so this
//! crate knows nothing of Kafka requests, sockets or storage; offsets are plain `i64`s.

mod arena;
mod block;
mod cache;
mod cold;
mod error;
mod index;
mod slice;
mod slots;

pub use cache::{HotCache, HotCacheConfig, HotCacheStats};
pub use cold::{ColdCache, ColdCacheConfig, ColdCacheStats, ReadAhead, ReadAheadConfig};
pub use error::HotCacheError;
pub use index::{IndexEntry, PartitionIndex, ReadOutcome};
pub use slice::{HotSlice, PendingSlice, SliceRef};
pub use slots::AtomicSlots;
