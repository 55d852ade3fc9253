//! Command-line interface.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_duration, parse_size};
use crate::workload::{Acks, Overrides};

/// Latency benchmarks for Hotwire or any Kafka-compatible broker, through librdkafka.
#[derive(Debug, Parser)]
#[command(name = "hotwire-bench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one workload against one broker: table on stdout, result.json and SVG plots in --out.
    Run(RunArgs),
    /// Run one workload against two brokers in alternating rounds and print the ratios.
    Compare(CompareArgs),
    /// Measure the machine's limits: fsync latency and bandwidth of a directory, loopback TCP.
    Limits(LimitsArgs),
    /// Hotwire over TCP against its one-sided (shm) path: fetch throughput, commit latency.
    OneSided(crate::one_sided::OneSidedArgs),
}

/// The workload and how to adjust it.
#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// Workload file (TOML), e.g. bench/workloads/batched.toml.
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// Directory for result.json and the plots (created if missing).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Replace the length of every measured phase (e.g. 2s).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Replace the warm-up (e.g. 1s, or 0).
    #[arg(long, value_parser = duration_arg)]
    pub warmup: Option<Duration>,
    /// Multiply every rate and the backlog size (e.g. 0.05 for a quick smoke run).
    #[arg(long, value_parser = scale_arg)]
    pub scale: Option<f64>,
    /// Replace max_throughput.max_steps.
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// Replace catch_up.nice (0: the catch-up readers compete for CPU like the producers).
    #[arg(long)]
    pub catch_up_nice: Option<i32>,
    /// Leave the run's topics on the broker.
    #[arg(long)]
    pub keep_topics: bool,
    /// No progress lines even on a terminal.
    #[arg(long)]
    pub quiet: bool,
}

impl WorkloadArgs {
    /// The command-line overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            duration: self.duration,
            warmup: self.warmup,
            scale: self.scale,
            max_steps: self.max_steps,
            catch_up_nice: self.catch_up_nice,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Bootstrap address of the broker to measure (any Kafka-compatible broker).
    #[arg(
        long,
        short = 'b',
        required_unless_present = "spawn_broker",
        conflicts_with = "spawn_broker"
    )]
    pub bootstrap: Option<String>,
    /// Start this broker binary (Hotwire's flags: --listen, --storage) for the run instead.
    #[arg(long)]
    pub spawn_broker: Option<PathBuf>,
    /// Storage directory for --spawn-broker (default: a temporary directory, removed after).
    #[arg(long, requires = "spawn_broker")]
    pub broker_storage: Option<PathBuf>,
    /// Extra flag for --spawn-broker, repeatable (after the workload's [broker] args).
    #[arg(
        long = "broker-arg",
        requires = "spawn_broker",
        allow_hyphen_values = true
    )]
    pub broker_args: Vec<String>,
    /// Name of the broker in reports (default: the bootstrap address).
    #[arg(long)]
    pub label: Option<String>,
    /// Also probe this directory's fsync latency and bandwidth (and loopback TCP) and store
    /// the limits beside the results.
    #[arg(long)]
    pub limits_dir: Option<PathBuf>,
    /// The broker's Prometheus endpoint (e.g. http://127.0.0.1:9100/metrics), scraped at
    /// phase boundaries for the hot-cache hit rate of tailing and catch-up reads (Hotwire's
    /// per-client counters). With --spawn-broker it is set up automatically.
    #[arg(long)]
    pub broker_metrics: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Bootstrap address of broker A (the reference).
    #[arg(long)]
    pub bootstrap_a: String,
    /// Bootstrap address of broker B.
    #[arg(long)]
    pub bootstrap_b: String,
    #[arg(long, default_value = "A")]
    pub label_a: String,
    #[arg(long, default_value = "B")]
    pub label_b: String,
    /// Replace the workload's acks on side A ("all", 1 or 0): with the same broker on both
    /// sides, `--acks-a 1` puts the cost of durability beside the rest of the path.
    #[arg(long)]
    pub acks_a: Option<Acks>,
    /// Replace the workload's acks on side B.
    #[arg(long)]
    pub acks_b: Option<Acks>,
    /// A librdkafka setting (KEY=VALUE, repeatable) for every client on side A, added to the
    /// workload's `client` table: e.g. `security.protocol=SSL` and `ssl.ca.location=ca.pem`
    /// on one side and the plaintext listener on the other measure TLS's cost.
    #[arg(long, value_parser = parse_setting)]
    pub client_a: Vec<(String, String)>,
    /// A librdkafka setting (KEY=VALUE, repeatable) for every client on side B.
    #[arg(long, value_parser = parse_setting)]
    pub client_b: Vec<(String, String)>,
    /// Also probe this directory's fsync latency and bandwidth (and loopback TCP) once before
    /// the rounds, print it beside the ratios and store it in compare.json.
    #[arg(long)]
    pub limits_dir: Option<PathBuf>,
    /// Rounds; each runs the workload once against each broker.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
}

#[derive(Debug, Args)]
pub struct LimitsArgs {
    /// Directory to probe: put it on the broker's storage file system.
    #[arg(long)]
    pub dir: PathBuf,
    /// Directory for limits.json (optional).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Size of each write in the fsync latency probe.
    #[arg(long, default_value = "4KiB", value_parser = size_arg)]
    pub fsync_write: u64,
    /// Write + fsync rounds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub fsync_count: u32,
    /// Bytes written in the sequential probe.
    #[arg(long, default_value = "256MiB", value_parser = size_arg)]
    pub sequential_size: u64,
    /// Size of each sequential write.
    #[arg(long, default_value = "1MiB", value_parser = size_arg)]
    pub sequential_chunk: u64,
    /// fsync after this many sequential bytes.
    #[arg(long, default_value = "8MiB", value_parser = size_arg)]
    pub fsync_every: u64,
    /// How long the loopback TCP probe streams.
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub tcp_duration: Duration,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn size_arg(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("must be above 0".into()),
        n => Ok(n),
    }
}

fn scale_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale > 0.0 && scale <= 1000.0 => Ok(scale),
        _ => Err(format!(
            "`{text}` must be a number above 0 and at most 1000"
        )),
    }
}

/// `KEY=VALUE` (the value may hold `=`).
fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}
