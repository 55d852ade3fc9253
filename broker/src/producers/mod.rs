//! Idempotent producers: producer-id allocation and per-partition sequence tracking.

pub mod ids;
pub mod recovery;
pub mod sequences;

pub use ids::ProducerIds;
pub use sequences::{ActiveProducer, ProducerLimits, ProducerStates, SequenceCheck, SequenceError};

#[cfg(test)]
mod sequence_trials;
