//! Turns phase windows and histograms into the reported numbers, and spots what makes them
//! suspect.

use super::driver::{DriveOutcome, PhaseWindow};
use super::{CATCH_UP_CLIENT, TAILING_CLIENT_PREFIX};
use crate::broker_metrics::hot_ratio;
use crate::report::{
    BrokerReads, CatchUpResult, ConsumeResult, MaxThroughputResult, PhaseResult, ProduceResult,
    StepVerdict,
};
use crate::stats::{CounterSnapshot, Metrics, Percentiles};
use crate::workload::{PhaseKind, PhaseSpec, Workload};

/// What the catch-up readers were asked to do and when they finished.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchUpInfo {
    pub consumers: u32,
    pub target_records: u64,
    /// Clock nanoseconds when they had read `target_records` (0 = never).
    pub caught_up_ns: u64,
}

/// Results of the measured phases that ran.
pub fn phase_results(
    phases: &[PhaseSpec],
    outcome: &DriveOutcome,
    metrics: &Metrics,
    workload: &Workload,
    catch_up: CatchUpInfo,
) -> Vec<PhaseResult> {
    outcome
        .windows
        .iter()
        .filter_map(|window| {
            let spec = phases.get(window.index)?;
            spec.measured()
                .then(|| phase_result(spec, window, metrics, workload, catch_up))
        })
        .collect()
}

fn phase_result(
    spec: &PhaseSpec,
    window: &PhaseWindow,
    metrics: &Metrics,
    workload: &Workload,
    catch_up: CatchUpInfo,
) -> PhaseResult {
    let d = &window.delta;
    let seconds = window.seconds.max(1e-9);
    let per_s = |n: u64| n as f64 / seconds;
    let mb_per_s = |n: u64| n as f64 / 1e6 / seconds;
    let end_to_end = (workload.consumers.count > 0).then(|| ConsumeResult {
        consumed: d.consumed,
        records_per_s: per_s(d.consumed),
        mb_per_s: mb_per_s(d.consumed_bytes),
        latency: Percentiles::from_histogram(&metrics.end_to_end.phase(window.index)),
    });
    let catch_up = (spec.kind == PhaseKind::CatchUp).then(|| {
        let caught_up_after_s = (catch_up.caught_up_ns > 0)
            .then(|| catch_up.caught_up_ns.saturating_sub(window.start_ns) as f64 / 1e9)
            .filter(|s| *s <= window.seconds);
        // Every record has the workload's size, so the backlog's bytes are known exactly.
        let backlog_bytes = catch_up.target_records as f64 * workload.records.size.0 as f64;
        CatchUpResult {
            consumers: catch_up.consumers,
            records: d.catch_up_records,
            bytes: d.catch_up_bytes,
            records_per_s: per_s(d.catch_up_records),
            mb_per_s: mb_per_s(d.catch_up_bytes),
            records_to_catch_up: catch_up.target_records,
            caught_up_after_s,
            backlog_read_mb_per_s: caught_up_after_s.map(|s| backlog_bytes / 1e6 / s.max(1e-9)),
        }
    });
    PhaseResult {
        name: spec.name.clone(),
        duration_s: window.seconds,
        target_rate: spec.rate.per_second(),
        produce: ProduceResult {
            sent: d.sent,
            acked: d.acked,
            errors: d.produce_errors,
            records_per_s: per_s(d.acked),
            mb_per_s: mb_per_s(d.acked_bytes),
            latency: Percentiles::from_histogram(&metrics.produce.phase(window.index)),
        },
        end_to_end,
        catch_up,
        broker_reads: window.broker.as_ref().map(|sample| BrokerReads {
            tailing_hot_ratio: hot_ratio(&sample.reads, TAILING_CLIENT_PREFIX),
            catch_up_hot_ratio: hot_ratio(&sample.reads, CATCH_UP_CLIENT),
            per_client: sample.reads.clone(),
            read_ahead: sample.read_ahead,
        }),
    }
}

/// The max-throughput summary: the highest sustained step.
pub fn max_throughput_result(
    outcome: &DriveOutcome,
    record_size: u64,
) -> Option<MaxThroughputResult> {
    let stopped_because = outcome.stopped_because.clone()?;
    let best: Option<&StepVerdict> = outcome
        .verdicts
        .iter()
        .filter(|v| v.sustained)
        .max_by(|a, b| a.target_rate.total_cmp(&b.target_rate));
    Some(MaxThroughputResult {
        sustained_rate: best.map(|v| v.target_rate),
        sustained_mb_per_s: best.map(|v| v.target_rate * record_size as f64 / 1e6),
        steps: outcome.verdicts.clone(),
        stopped_because,
    })
}

/// Warnings about a run's totals: errors, purged records, consumers that fell behind,
/// producers that could not hold their schedule.
pub fn warnings(
    total: &CounterSnapshot,
    phases: &[PhaseResult],
    workload: &Workload,
    errors: &[String],
    ended_on_broken_step: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if total.produce_errors > 0 {
        warnings.push(format!(
            "{} records failed to produce",
            total.produce_errors
        ));
    }
    if total.consume_errors > 0 {
        warnings.push(format!("{} consumer errors", total.consume_errors));
    }
    if !errors.is_empty() {
        warnings.push(format!("first errors: {}", errors.join("; ")));
    }
    // A max-throughput search that ended on a broken step leaves a queue behind by design:
    // dropping it does not make the numbers suspect.
    if total.purged > 0 && !ended_on_broken_step {
        warnings.push(format!(
            "{} records were dropped from the clients' queues at the end of the run (not counted as acknowledged)",
            total.purged
        ));
    }
    if workload.consumers.count > 0 && total.consumed < total.acked {
        warnings.push(format!(
            "tailing consumers received {} of {} acknowledged records",
            total.consumed, total.acked
        ));
    }
    for phase in phases {
        if let Some(target) = phase.target_rate.filter(|_| !ended_on_broken_step) {
            let expected = target * phase.duration_s;
            // 5% slack: the sampler's window edges and the schedule's start are not aligned.
            if expected >= 20.0 && (phase.produce.sent as f64) < expected * 0.95 {
                warnings.push(format!(
                    "phase {}: producers sent {:.0}% of the target rate; the client or broker could not keep up (latency still counts from the intended send times)",
                    phase.name,
                    100.0 * phase.produce.sent as f64 / expected
                ));
            }
        }
    }
    warnings
}
