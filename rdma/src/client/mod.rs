//! A Rust client for the one-sided path: [`Session`], [`Consumer`], [`Committer`],
//! [`Producer`].
//!
//! ```no_run
//! use rdma::client::{Committer, Consumer, Session};
//!
//! # fn main() -> Result<(), rdma::RdmaError> {
//! let session = Session::connect("/run/hotwire/rdma.sock", "example")?;
//! let mut consumer = Consumer::new(&session, "events", 0, 0);
//! let committer = Committer::join(&session, "my-group", "events", &[0])?;
//! loop {
//!     let batches = consumer.poll(1 << 20)?; // one-sided READs of the broker's cache
//!     if let Some(last) = batches.last() {
//!         // ... process the records in `batch.bytes` (Kafka v2 record batches) ...
//!         committer.commit(0, last.last_offset + 1)?; // FETCH_AND_ADD on the shared slot
//!     }
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```

mod batch;
mod commit;
mod consumer;
mod producer;
mod session;

pub use batch::{split_batches, Batch};
pub use commit::Committer;
pub use consumer::{Consumer, ConsumerStats};
pub use producer::Producer;
pub use session::Session;
