//! The result of one run, serialised as `result.json`. Field names carry their units.

use serde::Serialize;

use crate::broker_metrics::{FetchReads, ReadAheadBytes};
use crate::kafka::prefill::PrefillResult;
use crate::limits::LimitsResult;
use crate::stats::Percentiles;
use crate::workload::Workload;

/// Printed and stored with fixed-rate results.
pub const LATENCY_NOTE_FIXED: &str = "latency is measured from each record's intended send time \
    (fixed-rate schedule), so coordinated omission is corrected: a stall counts against every \
    record that should have been sent during it";
/// Printed and stored with unthrottled ("max") results.
pub const LATENCY_NOTE_MAX: &str = "producers were unthrottled (rate = max): latency is measured \
    from the send call and includes time queued in the client; there is no schedule, so no \
    coordinated-omission correction applies";

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub tool: String,
    pub version: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    pub bootstrap: String,
    /// Label given with `compare` (e.g. "hotwire"), else the bootstrap address.
    pub label: String,
    pub workload_file: String,
    /// The workload as it ran (after command-line overrides).
    pub workload: Workload,
    /// True when every measured phase had a fixed rate.
    pub coordinated_omission_corrected: bool,
    pub latency_note: String,
    pub topics: Vec<String>,
    pub prefill: Option<PrefillResult>,
    pub phases: Vec<PhaseResult>,
    pub max_throughput: Option<MaxThroughputResult>,
    /// One point per second from the start of warm-up.
    pub timeline: Vec<TimelinePoint>,
    /// Produce and consume errors over the whole run (0 for a clean run).
    pub errors: u64,
    /// Problems that make the numbers suspect (errors, purged records, lost assignment).
    pub warnings: Vec<String>,
    /// The `--limits-dir` probe, when asked for.
    pub limits: Option<LimitsResult>,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub name: String,
    pub duration_s: f64,
    /// Total target rate, records/s (`null` = unthrottled).
    pub target_rate: Option<f64>,
    pub produce: ProduceResult,
    /// Tailing consumers (absent without consumers).
    pub end_to_end: Option<ConsumeResult>,
    /// Catch-up readers (the catch-up phase only).
    pub catch_up: Option<CatchUpResult>,
    /// Where the broker answered the phase's fetches from, if it exposes per-client counters
    /// (Hotwire's `--metrics-listen`; `--broker-metrics` or `--spawn-broker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_reads: Option<BrokerReads>,
}

/// The broker's hot and cold fetch reads during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReads {
    /// Hot reads over all reads of the tailing consumers (`null`: they fetched nothing).
    pub tailing_hot_ratio: Option<f64>,
    /// The same for the catch-up readers.
    pub catch_up_hot_ratio: Option<f64>,
    /// Fetched partitions per client id and tier.
    pub per_client: FetchReads,
    /// The broker's cold read-ahead during the phase: loaded, used, wasted bytes.
    pub read_ahead: Option<ReadAheadBytes>,
}

/// Producers during a phase. Counts are by the time of the event (acks within the phase);
/// latencies are of records *sent* in the phase, however late their acknowledgement came.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceResult {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub records_per_s: f64,
    /// Value bytes acknowledged per second, in 10^6 bytes.
    pub mb_per_s: f64,
    pub latency: Option<Percentiles>,
}

/// Tailing consumers during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeResult {
    pub consumed: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// Record stamp → receipt, for records sent in the phase.
    pub latency: Option<Percentiles>,
}

/// Catch-up readers during the catch-up phase.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpResult {
    pub consumers: u32,
    pub records: u64,
    pub bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// Records that existed when the phase began (backlog and everything since).
    pub records_to_catch_up: u64,
    /// Seconds until the readers had read that many (`null`: not within the phase).
    pub caught_up_after_s: Option<f64>,
    /// Those records' bytes over that time: the catch-up read throughput proper, MB/s.
    pub backlog_read_mb_per_s: Option<f64>,
}

/// The outcome of a max-throughput search.
#[derive(Debug, Clone, Serialize)]
pub struct MaxThroughputResult {
    /// Highest step rate that was sustained (`null`: not even the first).
    pub sustained_rate: Option<f64>,
    pub sustained_mb_per_s: Option<f64>,
    pub steps: Vec<StepVerdict>,
    pub stopped_because: String,
}

/// One rate step.
#[derive(Debug, Clone, Serialize)]
pub struct StepVerdict {
    pub name: String,
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// p99 of acknowledgements received during the step (the value the decision used).
    pub window_p99_ms: Option<f64>,
    pub sustained: bool,
    pub reason: Option<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the start of warm-up, at the end of the interval.
    pub t_s: f64,
    pub phase: String,
    pub sent_per_s: f64,
    pub acked_per_s: f64,
    pub acked_mb_per_s: f64,
    pub produce_p50_ms: Option<f64>,
    pub produce_p99_ms: Option<f64>,
    pub produce_p99_9_ms: Option<f64>,
    pub produce_max_ms: Option<f64>,
    pub consumed_per_s: f64,
    pub consumed_mb_per_s: f64,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    pub e2e_p99_9_ms: Option<f64>,
    pub e2e_max_ms: Option<f64>,
    pub catch_up_per_s: f64,
    pub catch_up_mb_per_s: f64,
}
