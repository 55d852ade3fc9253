//! Hotwire's persistence layer on Apache OpenDAL.
//!
//! The crate stores opaque, already offset-assigned record batches for many partitions and knows
//! nothing of Kafka requests. Its pieces:
//!
//! - [`Store`]: an OpenDAL operator opened from a storage URL (`fs://...`, `s3://...`), with the
//!   topic catalog (`topics/<name>.json`), ranged reads and [`Store::recover`].
//! - [`FlushPipeline`]: aggregates [`PendingBatch`]es from all partitions into one flush object per
//!   flush (time, byte or batch-count policy, whichever fires first), writes objects concurrently
//!   and reports [`FlushEvent`]s strictly in object order.
//! - [`RootClaim`]: one broker per storage root (a file lock on `fs`, a lease elsewhere), taken
//!   before recovery.
//! - The flush object format (`wal/<seq>.hwf`): described in the `format` module and validated on
//!   recovery, so that torn or corrupt objects are detected instead of adopted.
//!
//! Durability: a flush object is reported [`FlushEvent::Durable`] only once it survives a crash:
//! on `fs` the file is fsynced by OpenDAL and the `wal/` directory by this crate; on object
//! stores the upload has completed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catalog;
mod claim;
mod compaction;
mod dirsync;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod lease;
mod manifest;
mod oplog;
mod pipeline;
mod process_identity;
mod records;
mod recovery;
mod slicing;
mod storage_url;
mod store;
mod stream;
mod topics;
mod types;
mod wal_log;

pub use catalog::Catalog;
pub use claim::RootClaim;
pub use compaction::{Compacted, CompactionConfig};
pub use error::StorageError;
pub use lease::LeaseConfig;
pub use manifest::{Checkpoint, Fence, ManifestState, Segment};
pub use pipeline::{FlushConfig, FlushEvent, FlushPipeline, FlushStats, PendingBatch};
pub use recovery::Recovered;
pub use slicing::{Slicing, MIN_SLICE_BYTES};
pub use storage_url::fs_path;
pub use store::{Store, StoreStats};
pub use stream::{FlushStream, StreamConfig, StreamStats, SweepReport};
pub use topics::TopicRecord;
pub use types::{epoch_base, epoch_of, ChunkLocation, ObjectId, PartitionKey, EPOCH_SHIFT};
pub use wal_log::{WalConfig, WriteObserver, WriteTiming};
