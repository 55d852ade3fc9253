//! The log: topics, partitions, record batches, and how durable data is read back.

pub mod cold_read;
pub mod partition;
pub mod record_batch;
pub mod reserve;
pub mod retention;
pub mod service;
pub mod topic_config;
pub mod topics;
pub mod validate;
