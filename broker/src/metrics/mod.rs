//! Metrics in the Prometheus text format: request latency per API, flush sizes and durations,
//! hot and cold cache activity, backpressure and storage errors.
//!
//! Event metrics (latencies, counts of things that happen on a request path) are recorded as
//! they happen; state that a component already counts (the caches, the flush pipeline) is read
//! at scrape time by [`state::StateCollector`], so nothing is counted twice.

mod fetch_reads;
mod http;
mod state;

use std::fmt::Write as _;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use fetch_reads::{ClientReads, FetchReads};
pub use http::{serve, Render};
pub use state::StateCollector;

/// The API label of a request-latency sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    /// `Produce`, `Fetch`, ...
    pub api: String,
}

/// Metrics recorded where things happen. Cheap to clone (handles share their values).
#[derive(Clone)]
pub struct Events {
    /// Seconds from a request's arrival to its encoded response, per API.
    pub requests: Family<ApiLabel, Histogram, fn() -> Histogram>,
    /// Seconds from sealing a flush object to its durability.
    pub flush_seconds: Histogram,
    /// Bytes per flush object.
    pub flush_bytes: Histogram,
    /// Seconds a WAL record write waited for a blocking thread.
    pub wal_queued_seconds: Histogram,
    /// Seconds of a WAL record's write and `fdatasync`.
    pub wal_sync_seconds: Histogram,
    /// Fetched partitions per tier, in all and per client id.
    pub fetch_reads: FetchReads,
    /// Appends that had to wait for hot-cache space.
    pub backpressure_waits: Counter,
    /// Appends refused after waiting for hot-cache space.
    pub backpressure_timeouts: Counter,
    /// Fetch reads answered without data because the fetch memory budget was spent.
    pub fetch_budget_waits: Counter,
    /// Request frames that waited for request memory (`max_request_memory_mib`).
    pub request_memory_waits: Counter,
    /// Connections closed at accept because their address had `max_connections_per_ip` open.
    pub connections_refused: Counter,
    /// Connections to the SSL listener closed because their TLS handshake failed or timed out.
    pub tls_handshake_failures: Counter,
    /// Successful SASL authentications.
    pub sasl_authentications: Counter,
    /// Failed SASL authentications (each answered after the failure delay, then closed).
    pub sasl_authentication_failures: Counter,
    /// Successful SASL re-authentications on a connection (KIP-368).
    pub sasl_reauthentications: Counter,
    /// Connections closed because their SASL session expired without a re-authentication.
    pub sasl_sessions_expired: Counter,
    /// Failed flush attempts (each retried).
    pub flush_failures: Counter,
    /// Cold reads answered with a storage error.
    pub cold_read_errors: Counter,
    /// Seconds per compaction round.
    pub compaction_seconds: Histogram,
    /// Bytes written into segments by compaction.
    pub compaction_bytes_written: Counter,
    /// Objects written by compaction (uploads, in tiered mode).
    pub compaction_objects_written: Counter,
    /// Storage maintenance periods that failed (retried the next period).
    pub maintenance_failures: Counter,
}

/// Stored record batches skipped because they did not decode (corrupt bytes, a header that
/// lies about its records, or records past the decompression cap). Process-wide, so that read
/// paths without [`Events`] at hand (start-up recovery) count here too.
pub fn skipped_stored_batches() -> &'static Counter {
    static SKIPPED: std::sync::OnceLock<Counter> = std::sync::OnceLock::new();
    SKIPPED.get_or_init(Counter::default)
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 100 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

impl Default for Events {
    fn default() -> Self {
        Events {
            requests: Family::new_with_constructor(latency_histogram),
            // Finer (x1.25) than the request histograms: flush-latency percentiles are read
            // from it by the storage benchmark. 50 µs to about 60 s.
            flush_seconds: Histogram::new(exponential_buckets(0.000_05, 1.25, 64)),
            wal_queued_seconds: Histogram::new(exponential_buckets(0.000_005, 1.5, 40)),
            wal_sync_seconds: Histogram::new(exponential_buckets(0.000_01, 1.25, 64)),
            // 1 KiB to 1 GiB.
            flush_bytes: Histogram::new(exponential_buckets(1024.0, 2.0, 21)),
            fetch_reads: FetchReads::default(),
            backpressure_waits: Counter::default(),
            backpressure_timeouts: Counter::default(),
            fetch_budget_waits: Counter::default(),
            connections_refused: Counter::default(),
            tls_handshake_failures: Counter::default(),
            sasl_authentications: Counter::default(),
            sasl_authentication_failures: Counter::default(),
            sasl_reauthentications: Counter::default(),
            sasl_sessions_expired: Counter::default(),
            request_memory_waits: Counter::default(),
            flush_failures: Counter::default(),
            cold_read_errors: Counter::default(),
            compaction_seconds: latency_histogram(),
            compaction_bytes_written: Counter::default(),
            compaction_objects_written: Counter::default(),
            maintenance_failures: Counter::default(),
        }
    }
}

impl Events {
    /// Records WAL write timings into these metrics.
    pub fn wal_observer(&self) -> dfs_adapter::WriteObserver {
        let (queued, sync) = (
            self.wal_queued_seconds.clone(),
            self.wal_sync_seconds.clone(),
        );
        dfs_adapter::WriteObserver(std::sync::Arc::new(move |timing| {
            queued.observe(timing.queued.as_secs_f64());
            sync.observe(timing.write_and_sync.as_secs_f64());
        }))
    }

    /// The latency histogram of one API.
    pub fn request_latency(&self, api: &str) -> Histogram {
        self.requests
            .get_or_create(&ApiLabel {
                api: api.to_owned(),
            })
            .clone()
    }
}

/// Everything that a scrape reports.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Registers `events` and the scrape-time `state` under the `hotwire_` prefix.
    pub fn new(events: &Events, state: StateCollector) -> Self {
        let mut registry = Registry::with_prefix("hotwire");
        let e = events.clone();
        registry.register(
            "request_seconds",
            "Time from a request's arrival to its response, per API",
            e.requests,
        );
        registry.register(
            "flush_seconds",
            "Time from sealing a flush object to its durability",
            e.flush_seconds,
        );
        registry.register("flush_object_bytes", "Size of flush objects", e.flush_bytes);
        registry.register(
            "wal_queued_seconds",
            "Time a WAL record write waited for a blocking thread",
            e.wal_queued_seconds,
        );
        registry.register(
            "wal_sync_seconds",
            "Time of a WAL record's write and fdatasync",
            e.wal_sync_seconds,
        );
        registry.register(
            "fetch_hot_reads",
            "Fetched partitions answered from the hot cache",
            e.fetch_reads.hot.clone(),
        );
        registry.register(
            "fetch_cold_reads",
            "Fetched partitions answered from storage through the cold cache",
            e.fetch_reads.cold.clone(),
        );
        registry.register(
            "fetch_client_reads",
            "Fetched partitions per Kafka client.id and tier (hot or cold); at most 64 client ids, the rest as \"other\"",
            e.fetch_reads.per_client.clone(),
        );
        registry.register(
            "backpressure_waits",
            "Appends that waited for hot-cache space",
            e.backpressure_waits,
        );
        registry.register(
            "backpressure_timeouts",
            "Appends refused after waiting for hot-cache space",
            e.backpressure_timeouts,
        );
        registry.register(
            "fetch_budget_exhausted",
            "Fetch reads answered without data because the fetch memory budget was spent",
            e.fetch_budget_waits,
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because their address had max_connections_per_ip open",
            e.connections_refused,
        );
        registry.register(
            "tls_handshake_failures",
            "Connections to the SSL listener closed because their TLS handshake failed or timed out",
            e.tls_handshake_failures,
        );
        registry.register(
            "sasl_authentications",
            "Successful SASL authentications",
            e.sasl_authentications,
        );
        registry.register(
            "sasl_authentication_failures",
            "Failed SASL authentications (answered after the failure delay, then closed)",
            e.sasl_authentication_failures,
        );
        registry.register(
            "sasl_reauthentications",
            "Successful SASL re-authentications on an open connection (KIP-368)",
            e.sasl_reauthentications,
        );
        registry.register(
            "sasl_sessions_expired",
            "Connections closed because their SASL session expired without a re-authentication",
            e.sasl_sessions_expired,
        );
        registry.register(
            "request_memory_waits",
            "Request frames that waited for request memory (max_request_memory_mib)",
            e.request_memory_waits.clone(),
        );
        registry.register(
            "storage_flush_failures",
            "Failed flush attempts (each is retried)",
            e.flush_failures,
        );
        registry.register(
            "storage_cold_read_errors",
            "Cold reads answered with a storage error",
            e.cold_read_errors,
        );
        registry.register(
            "compaction_seconds",
            "Time per compaction round",
            e.compaction_seconds,
        );
        registry.register(
            "compaction_written_bytes",
            "Bytes written into segments by compaction",
            e.compaction_bytes_written,
        );
        registry.register(
            "compaction_written_objects",
            "Objects written by compaction: each partition's own, and one shared per round",
            e.compaction_objects_written,
        );
        registry.register(
            "storage_maintenance_failures",
            "Storage maintenance periods that failed (retried the next period)",
            e.maintenance_failures,
        );
        registry.register(
            "stored_batches_skipped",
            "Stored record batches skipped on a read because they did not decode",
            skipped_stored_batches().clone(),
        );
        registry.register_collector(Box::new(state));
        Metrics { registry }
    }

    /// The Prometheus text exposition of every metric now.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Only a formatter error, which writing to a String never gives.
            let _ = writeln!(out, "# encoding failed: {error}");
        }
        out
    }
}
