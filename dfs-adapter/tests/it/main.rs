//! Integration tests against a real local filesystem (no mocks).

mod common;
mod compaction;
mod failure;
mod model;
mod open;
mod pipeline;
mod recovery;
mod root;
mod shared_objects;
mod streams;
mod topics;
mod wal;
mod writer_epochs;
