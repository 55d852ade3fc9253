//! The phases a workload runs through, in order: warm-up, then the measured phases.

use std::time::Duration;

use serde::Serialize;

use super::Workload;
use crate::units::Rate;

/// What a phase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// Not measured: lets connections, batches and caches settle.
    Warmup,
    /// Producers (and tailing consumers) at the workload's rate.
    Main,
    /// The catch-up workload's first measured phase: no catch-up readers yet.
    Baseline,
    /// Catch-up readers read the backlog from the beginning while producers keep their rate.
    CatchUp,
    /// One rate of a max-throughput search.
    Step,
}

/// One phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSpec {
    pub name: String,
    pub kind: PhaseKind,
    #[serde(skip)]
    pub duration: Duration,
    /// Total target rate of all producers.
    pub rate: Rate,
}

impl PhaseSpec {
    /// True for phases whose numbers are reported.
    pub fn measured(&self) -> bool {
        self.kind != PhaseKind::Warmup
    }
}

/// The phases of a validated workload. Warm-up runs at the rate of the first measured phase.
pub fn phases(w: &Workload) -> Vec<PhaseSpec> {
    let duration = w.run.duration.0;
    let phase = |name: String, kind, rate| PhaseSpec {
        name,
        kind,
        duration,
        rate,
    };
    let mut measured = Vec::new();
    if let Some(max) = &w.max_throughput {
        let mut rate = max.start_rate;
        for step in 1..=max.max_steps {
            measured.push(phase(
                format!("step-{step}"),
                PhaseKind::Step,
                Rate::Fixed(rate),
            ));
            rate *= max.step_factor;
        }
    } else {
        let rate = w.producers.rate.unwrap_or(Rate::Max);
        if w.catch_up.is_some() {
            measured.push(phase("baseline".into(), PhaseKind::Baseline, rate));
            measured.push(phase("catch-up".into(), PhaseKind::CatchUp, rate));
        } else {
            measured.push(phase("main".into(), PhaseKind::Main, rate));
        }
    }
    let mut all = Vec::with_capacity(measured.len() + 1);
    if w.run.warmup.0 > Duration::ZERO {
        all.push(PhaseSpec {
            name: "warmup".into(),
            kind: PhaseKind::Warmup,
            duration: w.run.warmup.0,
            rate: measured.first().map_or(Rate::Max, |first| first.rate),
        });
    }
    all.extend(measured);
    all
}
