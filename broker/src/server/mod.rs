//! The TCP side: accepting connections and serving Kafka requests on them.

pub mod connection;
pub mod frames;
pub mod listener;
pub mod sasl_gate;
pub mod service;
pub mod tls;

pub use listener::serve;
pub use service::{Origin, Service};
