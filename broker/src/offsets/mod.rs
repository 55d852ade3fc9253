//! Committed consumer offsets: the shared-memory offset table and its durable log.

pub mod expiry;
pub mod group_store;
pub mod store;
pub mod table;

pub use store::{CommitError, Offsets};
pub use table::{HeldSlotWriter, OffsetTable, SlotKey, TableFull};
