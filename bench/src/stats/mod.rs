//! Latency histograms, counters and percentile summaries.

mod counters;
mod percentiles;
mod recorder;

pub use counters::{CounterSnapshot, Counters};
pub use percentiles::{merge, new_histogram, Percentiles};
pub use recorder::LatencyRecorder;

/// Everything the workers of one run record into.
pub struct Metrics {
    /// Send → delivery report.
    pub produce: LatencyRecorder,
    /// Stamp in the record → consumer receipt.
    pub end_to_end: LatencyRecorder,
    pub counters: Counters,
}

impl Metrics {
    /// Metrics for a run of `phases` phases.
    pub fn new(phases: usize) -> Self {
        Metrics {
            produce: LatencyRecorder::new(phases),
            end_to_end: LatencyRecorder::new(phases),
            counters: Counters::default(),
        }
    }
}
