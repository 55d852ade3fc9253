//! Writes a run's files: `result.json`, `latency.svg`, `throughput.svg`, and for max-throughput
//! runs `latency-vs-throughput.svg`.

use std::path::{Path, PathBuf};

use super::plot::{write_latency_plot, write_throughput_plot};
use super::result::RunResult;
use super::sweep_plot::{write_sweep_plot, Curve};
use crate::error::{BenchError, Result};

/// Writes the JSON result and both plots into `dir` (created if missing); returns the paths.
pub fn write_run_outputs(dir: &Path, result: &RunResult) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let json_path = dir.join("result.json");
    let json = serde_json::to_string_pretty(result).map_err(|e| BenchError::Io {
        context: "serialising the result".into(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&json_path, json + "\n")
        .map_err(BenchError::io(format!("writing {}", json_path.display())))?;

    let title = format!("{} @ {}", result.workload.name, result.label);
    let latency = dir.join("latency.svg");
    write_latency_plot(&latency, &title, &result.timeline).map_err(|message| BenchError::Plot {
        path: latency.clone(),
        message,
    })?;
    let throughput = dir.join("throughput.svg");
    write_throughput_plot(&throughput, &title, &result.timeline).map_err(|message| {
        BenchError::Plot {
            path: throughput.clone(),
            message,
        }
    })?;
    let mut written = vec![json_path, latency, throughput];
    if let Some(curve) = Curve::of(result.label.clone(), result) {
        written.push(write_sweep_outputs(dir, &result.workload.name, &[curve])?);
    }
    Ok(written)
}

/// Writes `latency-vs-throughput.svg` into `dir`: the curves of max-throughput runs (one per
/// run), p99 and p99.9 against acknowledged records/s.
pub fn write_sweep_outputs(dir: &Path, title: &str, curves: &[Curve]) -> Result<PathBuf> {
    let path = dir.join("latency-vs-throughput.svg");
    write_sweep_plot(&path, title, curves).map_err(|message| BenchError::Plot {
        path: path.clone(),
        message,
    })?;
    Ok(path)
}
