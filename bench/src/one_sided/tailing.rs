//! Tailing end-to-end latency over TCP and over the one-sided path, at once, on one partition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, Message};

use super::OneSidedTarget;
use super::{assign_from_start, records};
use crate::error::{BenchError, Result};
use crate::stats::{new_histogram, Percentiles};

/// Bytes of each record (the first 8: send time, ns since the epoch).
const RECORD: usize = 256;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Latency in µs of a record stamped `sent_ns`.
fn record(histogram: &mut Histogram<u64>, value: &[u8]) {
    if let Some(stamp) = value.get(..8).and_then(|b| b.try_into().ok()) {
        let sent = u64::from_be_bytes(stamp);
        let _ = histogram.record((now_ns().saturating_sub(sent) / 1000).max(1));
    }
}

/// Produces `rate` records/s for `duration` while both consumers tail; their latencies.
pub fn run(
    bootstrap: &str,
    target: &OneSidedTarget,
    topic: &str,
    rate: u64,
    duration: Duration,
) -> Result<(Option<Percentiles>, Option<Percentiles>)> {
    let total = rate * duration.as_secs().max(1);
    let done = Arc::new(AtomicBool::new(false));
    let tcp = {
        let (bootstrap, topic, done) = (bootstrap.to_string(), topic.to_string(), done.clone());
        std::thread::spawn(move || tcp_tail(&bootstrap, &topic, total, &done))
    };
    let shm = {
        let (target, topic, done) = (target.clone(), topic.to_string(), done.clone());
        std::thread::spawn(move || one_sided_tail(&target, &topic, total, &done))
    };
    // Both consumers are at the (empty) end before the first record goes.
    std::thread::sleep(Duration::from_secs(2));
    let produced = produce(bootstrap, topic, rate, total);
    std::thread::sleep(Duration::from_secs(2));
    done.store(true, Ordering::SeqCst);
    produced?;
    let tcp = tcp
        .join()
        .map_err(|_| BenchError::Broker("TCP tailer panicked".into()))??;
    let shm = shm
        .join()
        .map_err(|_| BenchError::Broker("one-sided tailer panicked".into()))??;
    Ok((
        Percentiles::from_histogram(&tcp),
        Percentiles::from_histogram(&shm),
    ))
}

fn produce(bootstrap: &str, topic: &str, rate: u64, total: u64) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("compression.type", "none")
        .create()
        .map_err(BenchError::kafka("creating the tailing producer"))?;
    let started = Instant::now();
    let mut payload = vec![b'.'; RECORD];
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        payload[..8].copy_from_slice(&now_ns().to_be_bytes());
        while producer
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .payload(&payload)
                    .partition(0),
            )
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(BenchError::kafka("flushing the tailing producer"))
}

fn tcp_tail(bootstrap: &str, topic: &str, total: u64, done: &AtomicBool) -> Result<Histogram<u64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-one-sided-tail")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .create()
        .map_err(BenchError::kafka("creating the TCP tailer"))?;
    assign_from_start(&consumer, topic)?;
    let mut histogram = new_histogram();
    let mut seen = 0;
    while seen < total && !done.load(Ordering::SeqCst) {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.map_err(BenchError::kafka("tailing"))?;
            record(&mut histogram, message.payload().unwrap_or_default());
            seen += 1;
        }
    }
    Ok(histogram)
}

fn one_sided_tail(
    target: &OneSidedTarget,
    topic: &str,
    total: u64,
    done: &AtomicBool,
) -> Result<Histogram<u64>> {
    let session = target.connect("hotwire-bench-tail")?;
    let mut consumer = rdma::client::Consumer::new(&session, topic, 0, 0);
    let mut histogram = new_histogram();
    let mut seen = 0;
    while seen < total && !done.load(Ordering::SeqCst) {
        let batches = match consumer.poll(1 << 20) {
            Ok(batches) => batches,
            Err(rdma::RdmaError::Refused(m)) if m.contains("unknown topic") => Vec::new(),
            Err(e) => return Err(BenchError::Broker(format!("one-sided tailing: {e}"))),
        };
        if batches.is_empty() {
            // Polling, as a one-sided reader does; a short pause keeps a core for the others.
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        for batch in &batches {
            for value in records::values(&batch.bytes).unwrap_or_default() {
                record(&mut histogram, value);
                seen += 1;
            }
        }
    }
    Ok(histogram)
}
