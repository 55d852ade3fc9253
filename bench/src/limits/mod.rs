//! The physical limits a broker on this machine works against: how fast the storage
//! directory makes small writes durable, how fast it takes fsync'd sequential writes, and how
//! fast loopback TCP moves bytes. Broker results are best read as a ratio of these.

mod disk;
mod tcp;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::stats::Percentiles;

pub use disk::{probe_fsync, probe_sequential};
pub use tcp::probe_loopback;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct LimitsOptions {
    /// Directory whose file system is probed (the broker's storage directory).
    pub dir: PathBuf,
    /// Size of each write in the fsync latency probe.
    pub fsync_write: u64,
    /// Number of write + fsync rounds.
    pub fsync_count: u32,
    /// Bytes written in the sequential bandwidth probe.
    pub sequential_bytes: u64,
    /// Size of each sequential write.
    pub sequential_chunk: u64,
    /// An fsync after every this many bytes (as a broker flushing in large objects would).
    pub sequential_fsync_every: u64,
    /// How long the loopback TCP probe streams.
    pub tcp_duration: Duration,
}

/// The probe's findings.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsResult {
    pub dir: String,
    pub fsync_write_bytes: u64,
    /// Latency of one write plus fsync of the file.
    pub fsync: Option<Percentiles>,
    pub sequential: Bandwidth,
    pub loopback_tcp: Bandwidth,
}

/// A bandwidth measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Bandwidth {
    pub bytes: u64,
    pub seconds: f64,
    /// 10^6 bytes per second.
    pub mb_per_s: f64,
    /// How it was measured, in words.
    pub method: String,
}

impl Bandwidth {
    fn new(bytes: u64, elapsed: Duration, method: String) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Bandwidth {
            bytes,
            seconds,
            mb_per_s: bytes as f64 / 1e6 / seconds,
            method,
        }
    }
}

/// Runs all three probes.
pub fn probe(options: &LimitsOptions) -> Result<LimitsResult> {
    let dir = options.dir.as_path();
    let fsync = probe_fsync(dir, options.fsync_write, options.fsync_count)?;
    let sequential = probe_sequential(
        dir,
        options.sequential_bytes,
        options.sequential_chunk,
        options.sequential_fsync_every,
    )?;
    let loopback_tcp = probe_loopback(options.tcp_duration)?;
    Ok(LimitsResult {
        dir: display(dir),
        fsync_write_bytes: options.fsync_write,
        fsync,
        sequential,
        loopback_tcp,
    })
}

fn display(dir: &Path) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// The probe as a short text table.
pub fn render(result: &LimitsResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "limits of {} and loopback TCP", result.dir);
    match &result.fsync {
        Some(p) => {
            let _ = writeln!(
                out,
                "  {} B write + fsync: p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples)",
                result.fsync_write_bytes, p.p50_ms, p.p99_ms, p.p99_9_ms, p.max_ms, p.count
            );
        }
        None => {
            let _ = writeln!(out, "  write + fsync: no samples");
        }
    }
    for (name, bandwidth) in [
        ("sequential writes", &result.sequential),
        ("loopback TCP", &result.loopback_tcp),
    ] {
        let _ = writeln!(
            out,
            "  {name}: {:.0} MB/s ({}; {:.1} MB in {:.2}s)",
            bandwidth.mb_per_s,
            bandwidth.method,
            bandwidth.bytes as f64 / 1e6,
            bandwidth.seconds
        );
    }
    out
}
