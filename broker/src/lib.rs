//! Hotwire broker: a Kafka-compatible broker whose produced batches live in an off-heap
//! HotCache and become durable through the `dfs-adapter` flush pipeline.
//!
//! See `docs/architecture.md` for the produce and fetch paths.

pub mod broker;
pub mod cluster;
pub mod cold;
pub mod config;
pub mod config_doc;
pub mod durability;
pub mod groups;
pub mod handlers;
pub mod internal;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod offsets;
pub mod one_sided;
pub mod producers;
pub mod protocol;
pub mod records;
pub mod security;
pub mod server;
