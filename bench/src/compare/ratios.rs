//! Medians over rounds and their ratio B / A, metric by metric.

use std::fmt::Write;

use serde::Serialize;

use crate::report::{PhaseResult, RunResult};

/// One compared metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatioRow {
    pub phase: String,
    pub metric: String,
    pub a_median: f64,
    pub b_median: f64,
    /// `b_median / a_median` (`null` when A's median is 0).
    pub ratio: Option<f64>,
    pub a_rounds: Vec<f64>,
    pub b_rounds: Vec<f64>,
}

/// The metrics compared for a phase.
fn phase_metrics(phase: &PhaseResult) -> Vec<(&'static str, Option<f64>)> {
    let produce = phase.produce.latency.as_ref();
    let e2e = phase.end_to_end.as_ref();
    let e2e_latency = e2e.and_then(|e| e.latency.as_ref());
    vec![
        ("produce p50 ms", produce.map(|p| p.p50_ms)),
        ("produce p99 ms", produce.map(|p| p.p99_ms)),
        ("produce p99.9 ms", produce.map(|p| p.p99_9_ms)),
        ("produce max ms", produce.map(|p| p.max_ms)),
        ("acked records/s", Some(phase.produce.records_per_s)),
        ("e2e p50 ms", e2e_latency.map(|p| p.p50_ms)),
        ("e2e p99 ms", e2e_latency.map(|p| p.p99_ms)),
        ("e2e p99.9 ms", e2e_latency.map(|p| p.p99_9_ms)),
        (
            "catch-up read MB/s",
            phase.catch_up.as_ref().map(|c| c.mb_per_s),
        ),
    ]
}

/// Every (phase, metric) present in all rounds of both sides.
fn values(run: &RunResult) -> Vec<(String, &'static str, f64)> {
    let mut out: Vec<(String, &'static str, f64)> = run
        .phases
        .iter()
        .flat_map(|phase| {
            phase_metrics(phase)
                .into_iter()
                .filter_map(|(metric, value)| value.map(|v| (phase.name.clone(), metric, v)))
        })
        .collect();
    if let Some(max) = &run.max_throughput {
        // A side that sustained no step scores 0, which is what happened.
        out.push((
            "search".into(),
            "sustained records/s",
            max.sustained_rate.unwrap_or(0.0),
        ));
    }
    out
}

/// Median of a non-empty list (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Rows for every metric that every round of both sides has, in the order of A's first run.
pub fn ratio_rows(a: &[RunResult], b: &[RunResult]) -> Vec<RatioRow> {
    let Some(first) = a.first() else {
        return Vec::new();
    };
    let lookup = |run: &RunResult, phase: &str, metric: &str| -> Option<f64> {
        values(run)
            .into_iter()
            .find(|(p, m, _)| p == phase && *m == metric)
            .map(|(_, _, v)| v)
    };
    values(first)
        .into_iter()
        .filter_map(|(phase, metric, _)| {
            let a_rounds: Option<Vec<f64>> = a.iter().map(|r| lookup(r, &phase, metric)).collect();
            let b_rounds: Option<Vec<f64>> = b.iter().map(|r| lookup(r, &phase, metric)).collect();
            let (a_rounds, b_rounds) = (a_rounds?, b_rounds?);
            if b_rounds.is_empty() {
                return None;
            }
            let (a_median, b_median) = (median(&a_rounds), median(&b_rounds));
            Some(RatioRow {
                phase,
                metric: metric.to_string(),
                a_median,
                b_median,
                ratio: (a_median > 0.0).then(|| b_median / a_median),
                a_rounds,
                b_rounds,
            })
        })
        .collect()
}

/// The comparison table.
pub fn render_ratios(rows: &[RatioRow], a_label: &str, b_label: &str, rounds: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "medians of {rounds} round(s), alternating order; ratio = B ({b_label}) / A ({a_label}): below 1 means B is lower (faster for latency, slower for throughput)"
    );
    let _ = writeln!(
        out,
        "{:<10} {:<22} {:>14} {:>14} {:>8}",
        "phase",
        "metric",
        format!("A {}", truncate(a_label)),
        format!("B {}", truncate(b_label)),
        "B/A"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<10} {:<22} {:>14.3} {:>14.3} {:>8}",
            row.phase,
            row.metric,
            row.a_median,
            row.b_median,
            row.ratio.map_or("-".to_string(), |r| format!("{r:.2}"))
        );
    }
    out
}

fn truncate(label: &str) -> String {
    label.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
