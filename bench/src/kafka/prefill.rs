//! Writes the backlog before the measured phases, as fast as the broker accepts it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;
use rdkafka::ClientConfig;
use serde::Serialize;

use crate::clock::now_ns;
use crate::error::{BenchError, Result};
use crate::kafka::producer::{create, send_one, Sent};
use crate::kafka::targets::Targets;
use crate::payload::{pack, PayloadBuilder};
use crate::stats::Metrics;

/// Phase byte of backlog records: past every real phase, so their latency is not reported.
pub const PREFILL_PHASE: u8 = 255;
/// How long the pre-fill may take to be acknowledged after the last record is handed over.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(600);

/// How the backlog was written.
#[derive(Debug, Clone, Serialize)]
pub struct PrefillResult {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
}

/// Produces `records` records round-robin over `targets` and waits until all are
/// acknowledged. Any failure fails the run: a catch-up phase without its backlog would
/// measure something else.
pub fn prefill(
    config: &ClientConfig,
    targets: &Targets,
    records: u64,
    mut payload: PayloadBuilder,
    progress: bool,
) -> Result<PrefillResult> {
    let metrics = Arc::new(Metrics::new(0));
    let producer = create(config, Arc::clone(&metrics))?;
    let start = now_ns();
    let mut last_report = start;
    let mut seq = 0;
    while seq < records {
        let stamp = now_ns();
        let value = payload.next(PREFILL_PHASE, stamp);
        match send_one(&producer, targets, seq, value, pack(PREFILL_PHASE, stamp)) {
            Sent::Queued => seq += 1,
            Sent::QueueFull => std::thread::sleep(Duration::from_micros(200)),
            Sent::Failed(error) => {
                return Err(BenchError::Kafka {
                    context: format!("writing the backlog (record {seq} of {records})"),
                    source: error,
                })
            }
        }
        if progress && stamp - last_report >= 1_000_000_000 {
            last_report = stamp;
            let acked = metrics.counters.snapshot().acked;
            print!("\rbacklog: {acked}/{records} records acknowledged");
            let _ = std::io::stdout().flush();
        }
    }
    producer.flush(FLUSH_TIMEOUT).map_err(|e| {
        BenchError::Broker(format!(
            "the backlog was not acknowledged within {}s: {e}",
            FLUSH_TIMEOUT.as_secs()
        ))
    })?;
    if progress {
        println!();
    }
    let seconds = (now_ns() - start) as f64 / 1e9;
    let counts = metrics.counters.snapshot();
    if counts.produce_errors > 0 || counts.acked < records {
        return Err(BenchError::Broker(format!(
            "{} of {records} backlog records failed ({})",
            records - counts.acked.min(records),
            metrics.counters.errors().join("; ")
        )));
    }
    Ok(PrefillResult {
        records,
        bytes: counts.acked_bytes,
        seconds,
        records_per_s: records as f64 / seconds.max(1e-9),
        mb_per_s: counts.acked_bytes as f64 / 1e6 / seconds.max(1e-9),
    })
}
