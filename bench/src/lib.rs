//! hotwire-bench: latency benchmarks for Hotwire or any Kafka-compatible broker.
//!
//! It drives the broker only through a real Kafka client (librdkafka via `rdkafka`) and never
//! links broker code, so `--bootstrap` can point the same workload at any broker. Workloads
//! are TOML files (`bench/workloads/`); a run prints a percentile table and writes a JSON
//! result and SVG plots. See `docs/benchmarks.md`.

pub mod broker_metrics;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod compare;
pub mod control;
pub mod error;
pub mod kafka;
pub mod limits;
pub mod one_sided;
pub mod pacer;
pub mod payload;
pub mod readiness;
pub mod report;
pub mod runner;
pub mod spawn;
pub mod stats;
pub mod units;
pub mod workload;
