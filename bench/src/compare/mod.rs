//! `compare`: the same workload against two brokers in alternating rounds within one run
//! (A B, B A, A B, ...), so slow drifts of a noisy machine hit both sides alike; the medians
//! of the rounds are compared as ratios.

mod ratios;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::limits::LimitsResult;
use crate::report::{write_run_outputs, write_sweep_outputs, Curve, RunResult};
use crate::runner::{run, RunOptions};
use crate::workload::Acks;

pub use ratios::{ratio_rows, render_ratios, RatioRow};

/// One side of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub label: String,
    pub bootstrap: String,
    /// Replaces the workload's acks on this side (the same broker at acks=1 and acks=all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<Acks>,
    /// librdkafka settings added to the workload's `client` on this side (TLS, SASL): the same
    /// broker through two listeners puts the cost of encryption beside the rest of the path.
    /// Keys only in compare.json, never values (they may hold a password).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "keys_only"
    )]
    pub client: BTreeMap<String, String>,
}

fn keys_only<S: serde::Serializer>(
    client: &BTreeMap<String, String>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(client.keys())
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub a: Side,
    pub b: Side,
    pub rounds: u32,
    /// Used as the template for every run (bootstrap and label are replaced).
    pub run: RunOptions,
    pub out: PathBuf,
}

/// The comparison, as written to `compare.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CompareResult {
    pub workload: String,
    pub a: Side,
    pub b: Side,
    pub rounds: u32,
    /// The order the runs happened in, e.g. ["A", "B", "B", "A"].
    pub order: Vec<String>,
    /// Medians over rounds and the ratio B / A.
    pub rows: Vec<RatioRow>,
    /// Each run's own result directory.
    pub runs: Vec<String>,
    pub warnings: Vec<String>,
    /// The machine's limits, probed once before the rounds (`--limits-dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsResult>,
}

/// Runs the rounds, writing each run's outputs under `out/round-N-{A,B}-LABEL/`.
pub fn compare(options: &CompareOptions) -> Result<CompareResult> {
    let mut results_a: Vec<RunResult> = Vec::new();
    let mut results_b: Vec<RunResult> = Vec::new();
    let mut order = Vec::new();
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    for round in 0..options.rounds {
        // Alternate who goes first, so neither side always runs on a warmer (or more
        // fragmented) machine.
        let sides = if round % 2 == 0 {
            [(&options.a, "A"), (&options.b, "B")]
        } else {
            [(&options.b, "B"), (&options.a, "A")]
        };
        for (side, letter) in sides {
            tracing::info!(
                "round {} of {}: {} ({})",
                round + 1,
                options.rounds,
                side.label,
                side.bootstrap
            );
            let mut run_options = options.run.clone();
            run_options.bootstrap = side.bootstrap.clone();
            run_options.label = side.label.clone();
            if let Some(acks) = side.acks {
                run_options.workload.producers.acks = acks;
            }
            run_options.workload.client.extend(side.client.clone());
            let result = run(&run_options)?;
            let dir = options.out.join(format!(
                "round-{}-{letter}-{}",
                round + 1,
                sanitize(&side.label)
            ));
            write_run_outputs(&dir, &result)?;
            runs.push(dir.display().to_string());
            warnings.extend(
                result
                    .warnings
                    .iter()
                    .map(|w| format!("round {} {}: {w}", round + 1, side.label)),
            );
            order.push(letter.to_string());
            if letter == "A" {
                results_a.push(result);
            } else {
                results_b.push(result);
            }
        }
    }
    // Max-throughput workloads: every run's latency against its throughput, in one plot.
    let mut curves = Vec::new();
    for (round, (a, b)) in results_a.iter().zip(&results_b).enumerate() {
        let suffix = if options.rounds > 1 {
            format!(" (round {})", round + 1)
        } else {
            String::new()
        };
        curves.extend(Curve::of(format!("{}{suffix}", options.a.label), a));
        curves.extend(Curve::of(format!("{}{suffix}", options.b.label), b));
    }
    if !curves.is_empty() {
        write_sweep_outputs(&options.out, &options.run.workload.name, &curves)?;
    }
    Ok(CompareResult {
        workload: options.run.workload.name.clone(),
        a: options.a.clone(),
        b: options.b.clone(),
        rounds: options.rounds,
        order,
        rows: ratio_rows(&results_a, &results_b),
        runs,
        warnings,
        limits: None,
    })
}

/// A label made safe for a directory name.
fn sanitize(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "side".into()
    } else {
        clean
    }
}
