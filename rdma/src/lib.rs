//! Hotwire's one-sided data path beside TCP.
//!
//! A client opens a session over a control channel (a Unix socket for the `shm` provider),
//! learns the regions it was granted, and then moves data with one-sided operations that the
//! broker's CPU never sees: READ of record batches straight from the registered HotCache arena,
//! 8-byte atomic FETCH_AND_ADD on the shared offset table for commits, WRITE into a per-session
//! staging ring for produce (followed by a notification on the control channel).
//!
//! - [`OneSided`]: the operations every provider offers, with verbs semantics.
//! - [`Grants`]: the shared layer that checks what an RDMA NIC checks (bounds, access rights,
//!   alignment of atomics, revoked keys) and answers with verbs-like [`RdmaError`]s, so that
//!   every provider behaves alike.
//! - [`shm`]: same-host provider: the regions are shared-memory mappings passed as file
//!   descriptors; READ is a copy, FETCH_AND_ADD an atomic on the mapped word.
//! - [`control`]: the session protocol (framing, messages, descriptor passing) and its server.
//! - [`published`]: the partition index the broker publishes, so that a reader fetches with
//!   READ alone.
//! - [`client`]: a consumer, committer and producer on top.
//! - [`words`]: reading and changing shared words so that no update is undone on NICs whose
//!   atomics are atomic only among themselves.
//! - `verbs` (feature `verbs`): the NIC provider on `rdma-sys`: device, protection domain,
//!   memory registration, RC queue pairs connected over a TCP control channel, memory windows
//!   for per-slot grants, and the work-request path of the same operations.
//!
//! The crate registers memory it is given as (file descriptor, length); it knows of record
//! batches only what the wire needs (their CRC, to detect a read that raced with reuse).

#![warn(missing_docs)]

mod access;
pub mod client;
pub mod control;
mod error;
mod grants;
pub mod published;
pub mod shm;
mod transport;
#[cfg(feature = "verbs")]
pub mod verbs;
pub mod words;

pub use access::{Access, RegionId, RemoteKey, RemoteRegion};
pub use error::RdmaError;
pub use grants::{Grant, Grants};
pub use transport::OneSided;
