//! The final text table: p50 to max and throughput for every measured phase.

use std::fmt::Write;

use super::result::{MaxThroughputResult, PhaseResult, RunResult};
use crate::stats::Percentiles;

/// Formats records/s and MB/s (10^6 bytes) together.
pub fn throughput_text(records_per_s: f64, mb_per_s: f64) -> String {
    format!("{records_per_s:.0} rec/s {mb_per_s:.2} MB/s")
}

/// Renders the whole report of a run.
pub fn render_table(result: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workload {} against {} ({})",
        result.workload.name, result.bootstrap, result.label
    );
    let _ = writeln!(out, "note: {}", result.latency_note);
    if let Some(prefill) = &result.prefill {
        let _ = writeln!(
            out,
            "backlog: {} records, {:.1} MB written in {:.1}s ({})",
            prefill.records,
            prefill.bytes as f64 / 1e6,
            prefill.seconds,
            throughput_text(prefill.records_per_s, prefill.mb_per_s)
        );
    }
    out.push('\n');
    out.push_str(&phase_table(&result.phases));
    if let Some(max) = &result.max_throughput {
        out.push('\n');
        out.push_str(&steps_table(max));
    }
    for warning in &result.warnings {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    out
}

/// Latency rows (milliseconds) of every phase.
fn phase_table(phases: &[PhaseResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  throughput",
        "phase", "latency ms", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    for phase in phases {
        let produce = &phase.produce;
        row(
            &mut out,
            &phase.name,
            "produce",
            produce.latency.as_ref(),
            &format!(
                "{} (target {})",
                throughput_text(produce.records_per_s, produce.mb_per_s),
                phase
                    .target_rate
                    .map_or("max".to_string(), |rate| format!("{rate:.0}/s"))
            ),
        );
        if let Some(e2e) = &phase.end_to_end {
            row(
                &mut out,
                &phase.name,
                "end-to-end",
                e2e.latency.as_ref(),
                &throughput_text(e2e.records_per_s, e2e.mb_per_s),
            );
        }
        if let Some(catch_up) = &phase.catch_up {
            let caught_up = catch_up.caught_up_after_s.map_or_else(
                || {
                    format!(
                        "not caught up with {} records",
                        catch_up.records_to_catch_up
                    )
                },
                |s| {
                    format!(
                        "caught up with {} records after {s:.1}s: {:.1} MB/s",
                        catch_up.records_to_catch_up,
                        catch_up.backlog_read_mb_per_s.unwrap_or(0.0)
                    )
                },
            );
            let _ = writeln!(
                out,
                "{:<10} {:<12} {:>9} {:>53}  {} ({caught_up})",
                phase.name,
                "catch-up read",
                catch_up.records,
                "",
                throughput_text(catch_up.records_per_s, catch_up.mb_per_s)
            );
        }
        if let Some(reads) = &phase.broker_reads {
            let percent =
                |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
            let _ = writeln!(
                out,
                "{:<10} {:<12} tailing consumers {}, catch-up readers {} (broker's hot-cache hit rate of fetched partitions)",
                phase.name,
                "hot reads",
                percent(reads.tailing_hot_ratio),
                percent(reads.catch_up_hot_ratio)
            );
            if let Some(ahead) = reads.read_ahead.filter(|a| a.loaded > 0) {
                let _ = writeln!(
                    out,
                    "{:<10} {:<12} {:.1} MB loaded ahead, {:.1} MB used, {:.1} MB evicted unread",
                    phase.name,
                    "read-ahead",
                    ahead.loaded as f64 / 1e6,
                    ahead.used as f64 / 1e6,
                    ahead.wasted as f64 / 1e6
                );
            }
        }
    }
    out
}

fn row(out: &mut String, phase: &str, metric: &str, p: Option<&Percentiles>, throughput: &str) {
    match p {
        Some(p) => {
            let _ = writeln!(
                out,
                "{:<10} {:<12} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {throughput}",
                phase,
                metric,
                p.count,
                ms(p.p50_ms),
                ms(p.p90_ms),
                ms(p.p99_ms),
                ms(p.p99_9_ms),
                ms(p.p99_99_ms),
                ms(p.max_ms)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "{phase:<10} {metric:<12} {:>9} {:>53}  {throughput}",
                0, "(no samples)"
            );
        }
    }
}

/// Milliseconds with three significant decimals for small values.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.3}")
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn steps_table(max: &MaxThroughputResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>14} {:>14} {:>12}  verdict",
        "step", "target rec/s", "acked rec/s", "p99 ms"
    );
    for step in &max.steps {
        let verdict = if step.sustained {
            "sustained".to_string()
        } else {
            format!("broken: {}", step.reason.as_deref().unwrap_or("?"))
        };
        let _ = writeln!(
            out,
            "{:<10} {:>14.0} {:>14.0} {:>12}  {verdict}",
            step.name,
            step.target_rate,
            step.achieved_rate,
            step.window_p99_ms.map_or("-".to_string(), ms)
        );
    }
    let _ = match (max.sustained_rate, max.sustained_mb_per_s) {
        (Some(rate), Some(mb)) => writeln!(
            out,
            "highest sustained rate: {rate:.0} records/s ({mb:.2} MB/s); stopped: {}",
            max.stopped_because
        ),
        _ => writeln!(
            out,
            "no step was sustained; stopped: {}",
            max.stopped_because
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::result::{ProduceResult, StepVerdict};

    fn percentiles() -> Percentiles {
        Percentiles {
            count: 1000,
            min_ms: 0.1,
            mean_ms: 1.0,
            p50_ms: 0.9,
            p90_ms: 1.5,
            p99_ms: 2.25,
            p99_9_ms: 12.5,
            p99_99_ms: 125.0,
            max_ms: 1500.0,
        }
    }

    #[test]
    fn phase_rows_show_every_percentile_and_the_throughput() {
        let phase = PhaseResult {
            name: "main".into(),
            duration_s: 10.0,
            target_rate: Some(1000.0),
            produce: ProduceResult {
                sent: 10_000,
                acked: 10_000,
                errors: 0,
                records_per_s: 1000.0,
                mb_per_s: 1.024,
                latency: Some(percentiles()),
            },
            end_to_end: None,
            catch_up: None,
            broker_reads: None,
        };
        let table = phase_table(&[phase]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        for header in ["p50", "p90", "p99", "p99.9", "p99.99", "max", "throughput"] {
            assert!(lines[0].contains(header), "{table}");
        }
        for value in [
            "0.900",
            "1.500",
            "2.250",
            "12.5",
            "125.0",
            "1500",
            "1000 rec/s 1.02 MB/s",
            "target 1000/s",
        ] {
            assert!(lines[1].contains(value), "missing {value}: {table}");
        }
    }

    #[test]
    fn steps_say_which_rate_held() {
        let max = MaxThroughputResult {
            sustained_rate: Some(1500.0),
            sustained_mb_per_s: Some(1.5),
            steps: vec![
                StepVerdict {
                    name: "step-1".into(),
                    target_rate: 1500.0,
                    achieved_rate: 1499.0,
                    window_p99_ms: Some(3.0),
                    sustained: true,
                    reason: None,
                },
                StepVerdict {
                    name: "step-2".into(),
                    target_rate: 2250.0,
                    achieved_rate: 1600.0,
                    window_p99_ms: Some(900.0),
                    sustained: false,
                    reason: Some("acked 71% of the target".into()),
                },
            ],
            stopped_because: "step-2 was not sustained".into(),
        };
        let table = steps_table(&max);
        assert!(table.contains("sustained"), "{table}");
        assert!(table.contains("broken: acked 71%"), "{table}");
        assert!(
            table.contains("highest sustained rate: 1500 records/s"),
            "{table}"
        );
    }
}
