//! Everything that talks to the broker, through librdkafka (the `rdkafka` crate) only.

pub mod admin;
pub mod config;
pub mod consumer;
pub mod prefill;
pub mod producer;
pub mod targets;
