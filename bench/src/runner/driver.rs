//! Walks the phases: switches producers to each phase's rate, samples every second, and in a
//! max-throughput run judges each step and stops at the first one that breaks.

use std::time::Duration;

use super::sampler::Sampler;
use crate::broker_metrics::{sample_delta, BrokerSample};
use crate::clock::now_ns;
use crate::control::Control;
use crate::error::Result;
use crate::report::StepVerdict;
use crate::stats::{CounterSnapshot, Metrics};
use crate::workload::{MaxThroughputSpec, PhaseKind, PhaseSpec};

const SECOND_NS: u64 = 1_000_000_000;
/// How often a phase that may end early ([`drive`]'s `finished`) is checked.
const FINISHED_CHECK_NS: u64 = 50_000_000;

/// What happened in one phase, by wall-clock window.
#[derive(Debug, Clone)]
pub struct PhaseWindow {
    pub index: usize,
    pub start_ns: u64,
    pub seconds: f64,
    /// Counter increments between the phase's start and end.
    pub delta: CounterSnapshot,
    /// The broker's fetch reads per client id and tier (and its read-ahead) during the phase,
    /// where it exposes them.
    pub broker: Option<BrokerSample>,
}

/// The phases that ran and, for a max-throughput run, the verdicts.
#[derive(Debug, Default)]
pub struct DriveOutcome {
    pub windows: Vec<PhaseWindow>,
    pub verdicts: Vec<StepVerdict>,
    /// Why the step search stopped (max-throughput only).
    pub stopped_because: Option<String>,
    /// True if the last step broke, leaving records queued in the clients.
    pub broke: bool,
}

/// What the driver asks of the run around the phases.
pub struct PhaseHooks<'a> {
    /// Called just before the catch-up phase, with the clock time.
    pub start_catch_up: &'a mut dyn FnMut(u64) -> Result<()>,
    /// The broker's counters now, where it exposes them (before and after each phase).
    pub scrape: &'a mut dyn FnMut() -> Option<BrokerSample>,
    /// True once a phase's work is done before its duration: the catch-up phase ends when the
    /// readers have caught up, so that it measures catching up only.
    pub finished: &'a dyn Fn(&PhaseSpec) -> bool,
}

/// Runs every phase in turn; a phase ends after its duration or when `hooks.finished` says.
pub fn drive(
    phases: &[PhaseSpec],
    control: &Control,
    metrics: &Metrics,
    sampler: &mut Sampler<'_>,
    max: Option<&MaxThroughputSpec>,
    hooks: PhaseHooks<'_>,
) -> Result<DriveOutcome> {
    let PhaseHooks {
        start_catch_up,
        scrape,
        finished,
    } = hooks;
    let mut outcome = DriveOutcome::default();
    for (index, phase) in phases.iter().enumerate() {
        if phase.kind == PhaseKind::CatchUp {
            start_catch_up(now_ns())?;
        }
        let reads_before = scrape();
        let before = metrics.counters.snapshot();
        let start = now_ns();
        control.set_phase(index);
        sampler.reset_window();
        let end = start + phase.duration.as_nanos() as u64;
        let mut next_sample = start + SECOND_NS;
        loop {
            let now = now_ns();
            if now >= end || finished(phase) {
                break;
            }
            if now >= next_sample {
                sampler.sample(&phase.name);
                next_sample += SECOND_NS;
                continue;
            }
            let wake = next_sample.min(end).min(now + FINISHED_CHECK_NS);
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
        sampler.sample(&phase.name);
        let window = PhaseWindow {
            index,
            start_ns: start,
            seconds: (now_ns() - start) as f64 / 1e9,
            delta: metrics.counters.snapshot() - before,
            broker: reads_before
                .zip(scrape())
                .map(|(b, a)| sample_delta(&b, &a)),
        };
        if let (PhaseKind::Step, Some(max)) = (phase.kind, max) {
            let verdict = judge(phase, &window, sampler.window_p99_ms(), max);
            let sustained = verdict.sustained;
            outcome.verdicts.push(verdict);
            outcome.windows.push(window);
            if !sustained {
                outcome.stopped_because = Some(format!("{} was not sustained", phase.name));
                outcome.broke = true;
                break;
            }
            continue;
        }
        outcome.windows.push(window);
    }
    if max.is_some() && outcome.stopped_because.is_none() {
        outcome.stopped_because =
            Some("every step was sustained (raise max_steps to search higher)".into());
    }
    control.stop();
    Ok(outcome)
}

/// Whether a step held its rate: enough acknowledgements, and a p99 under the limit.
pub fn judge(
    phase: &PhaseSpec,
    window: &PhaseWindow,
    window_p99_ms: Option<f64>,
    max: &MaxThroughputSpec,
) -> StepVerdict {
    let target = phase.rate.per_second().unwrap_or(0.0);
    let achieved = window.delta.acked as f64 / window.seconds.max(1e-9);
    let limit_ms = max.max_p99.0.as_secs_f64() * 1e3;
    let reason = if achieved < target * max.min_achieved_ratio {
        Some(format!(
            "acked {:.0}% of the target rate (needs {:.0}%)",
            100.0 * achieved / target.max(1e-9),
            100.0 * max.min_achieved_ratio
        ))
    } else if window.delta.produce_errors > 0 {
        Some(format!("{} produce errors", window.delta.produce_errors))
    } else {
        match window_p99_ms {
            Some(p99) if p99 > limit_ms => {
                Some(format!("p99 {p99:.1} ms above the {limit_ms:.0} ms limit"))
            }
            None => Some("no acknowledgement during the step".into()),
            Some(_) => None,
        }
    };
    StepVerdict {
        name: phase.name.clone(),
        target_rate: target,
        achieved_rate: achieved,
        window_p99_ms,
        sustained: reason.is_none(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Dur, Rate};

    fn step(rate: f64) -> PhaseSpec {
        PhaseSpec {
            name: "step-1".into(),
            kind: PhaseKind::Step,
            duration: Duration::from_secs(10),
            rate: Rate::Fixed(rate),
        }
    }

    fn window(acked: u64, errors: u64) -> PhaseWindow {
        PhaseWindow {
            index: 0,
            start_ns: 0,
            seconds: 10.0,
            delta: CounterSnapshot {
                acked,
                produce_errors: errors,
                ..CounterSnapshot::default()
            },
            broker: None,
        }
    }

    fn spec() -> MaxThroughputSpec {
        MaxThroughputSpec {
            start_rate: 1000.0,
            step_factor: 2.0,
            max_steps: 5,
            min_achieved_ratio: 0.95,
            max_p99: Dur(Duration::from_millis(100)),
        }
    }

    #[test]
    fn a_step_holds_with_enough_acks_and_a_low_p99() {
        let verdict = judge(&step(1000.0), &window(9_600, 0), Some(20.0), &spec());
        assert!(verdict.sustained, "{verdict:?}");
        assert_eq!(verdict.achieved_rate, 960.0);
    }

    #[test]
    fn a_step_breaks_on_rate_errors_latency_or_silence() {
        let low = judge(&step(1000.0), &window(9_000, 0), Some(20.0), &spec());
        assert!(low.reason.unwrap().contains("90%"));
        let errors = judge(&step(1000.0), &window(10_000, 3), Some(20.0), &spec());
        assert!(errors.reason.unwrap().contains("3 produce errors"));
        let slow = judge(&step(1000.0), &window(10_000, 0), Some(250.0), &spec());
        assert!(slow.reason.unwrap().contains("above the 100 ms"));
        let silent = judge(&step(1000.0), &window(10_000, 0), None, &spec());
        assert!(!silent.sustained);
    }
}
