//! Command-line adjustments of a workload file, for short test runs and quick looks.

use std::time::Duration;

use super::Workload;
use crate::units::{ByteSize, Dur};

/// Values given on the command line that replace or scale the workload's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Replaces `run.duration` (the length of every measured phase).
    pub duration: Option<Duration>,
    /// Replaces `run.warmup`.
    pub warmup: Option<Duration>,
    /// Multiplies every rate (fixed rates and the max-throughput start) and the backlog size.
    pub scale: Option<f64>,
    /// Replaces `max_throughput.max_steps`.
    pub max_steps: Option<u32>,
    /// Replaces `catch_up.nice`.
    pub catch_up_nice: Option<i32>,
}

impl Overrides {
    /// Applies the overrides in place. Nonsense values (a zero scale) are applied as given
    /// and then refused by validation, which names the setting they broke.
    pub fn apply(&self, workload: &mut Workload) {
        if let Some(duration) = self.duration {
            workload.run.duration = Dur(duration);
        }
        if let Some(warmup) = self.warmup {
            workload.run.warmup = Dur(warmup);
        }
        if let Some(scale) = self.scale {
            workload.producers.rate = workload.producers.rate.map(|rate| rate.scaled(scale));
            if let Some(max) = &mut workload.max_throughput {
                max.start_rate *= scale;
            }
            if workload.backlog.size.0 > 0 {
                // Keep at least one record, so a scaled catch-up workload still has a backlog.
                let scaled = (workload.backlog.size.0 as f64 * scale).round() as u64;
                workload.backlog.size = ByteSize(scaled.max(workload.records.size.0));
            }
        }
        if let (Some(steps), Some(max)) = (self.max_steps, &mut workload.max_throughput) {
            max.max_steps = steps;
        }
        if let (Some(nice), Some(catch_up)) = (self.catch_up_nice, &mut workload.catch_up) {
            catch_up.nice = nice;
        }
    }

    /// True when nothing is overridden (the run is the workload file as written).
    pub fn is_empty(&self) -> bool {
        self == &Overrides::default()
    }
}
