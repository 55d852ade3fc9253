//! `one-sided`: the same broker over TCP and over its one-sided path (shm, or verbs in a bench
//! built with the `verbs` feature), in one run.
//!
//! - **Fetch throughput**: one partition preloaded with `--mib` MiB (hot), read from offset 0 to
//!   its end by an rdkafka consumer (Fetch over TCP) and by the one-sided consumer (Locate +
//!   READ of the cache), in alternating rounds (TCP, shm, shm, TCP, ...).
//! - **Commit latency**: committing one partition's offset, `--commits` times each: Kafka
//!   OffsetCommit (rdkafka, synchronous) against FETCH_AND_ADD on the shared slot.
//!
//! - **Tailing end-to-end latency**: a producer (rdkafka, acks=all, fixed rate) stamps each
//!   record with its send time; a TCP consumer (rdkafka, long-poll Fetch) and a one-sided
//!   consumer (polling Locate) tail the partition at once; latency is receive time minus stamp.
//!
//! Hotwire only (the one-sided path is Hotwire's); the TCP side uses the real Kafka client.

mod records;
mod tailing;
mod target;

pub use target::OneSidedTarget;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::kafka::admin::Admin;
use crate::stats::{new_histogram, Percentiles};

/// Arguments of `one-sided`.
#[derive(Debug, Args)]
pub struct OneSidedArgs {
    /// Kafka bootstrap address of the Hotwire broker.
    #[arg(long, short = 'b')]
    pub bootstrap: String,
    /// Where its one-sided path is.
    #[command(flatten)]
    pub target: OneSidedTarget,
    /// Directory for one-sided.json.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// MiB preloaded into the partition that both consumers read.
    #[arg(long, default_value_t = 64)]
    pub mib: u64,
    /// Commits per method.
    #[arg(long, default_value_t = 2000)]
    pub commits: u64,
    /// Fetch rounds per path.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Records per second of the tailing phase.
    #[arg(long, default_value_t = 2000)]
    pub tail_rate: u64,
    /// Seconds of the tailing phase.
    #[arg(long, default_value_t = 10)]
    pub tail_seconds: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    bootstrap: String,
    provider: &'static str,
    bytes: u64,
    records: u64,
    tcp_fetch_mb_per_s: Vec<f64>,
    one_sided_fetch_mb_per_s: Vec<f64>,
    one_sided_read_batches: u64,
    one_sided_copied_polls: u64,
    offset_commit: Option<Percentiles>,
    fetch_and_add_commit: Option<Percentiles>,
    tailing_tcp: Option<Percentiles>,
    tailing_one_sided: Option<Percentiles>,
}

const RECORD: usize = 1024;

/// Runs the comparison; returns the exit code.
pub fn run(args: &OneSidedArgs) -> Result<i32> {
    let topic = format!("bench-one-sided-{}", std::process::id());
    let admin = Admin::connect(&args.bootstrap)?;
    admin.create_topics(std::slice::from_ref(&topic), 1, 1)?;
    let records = (args.mib << 20) / RECORD as u64;
    preload(&args.bootstrap, &topic, records)?;
    let session = args.target.connect("hotwire-bench")?;
    let provider = args.target.provider();

    let mut report = Report {
        bootstrap: args.bootstrap.clone(),
        provider,
        bytes: 0,
        records,
        tcp_fetch_mb_per_s: Vec::new(),
        one_sided_fetch_mb_per_s: Vec::new(),
        one_sided_read_batches: 0,
        one_sided_copied_polls: 0,
        offset_commit: None,
        fetch_and_add_commit: None,
        tailing_tcp: None,
        tailing_one_sided: None,
    };
    for round in 0..args.rounds * 2 {
        // TCP, shm, shm, TCP, TCP, shm ...: drifts in the machine's load hit both alike.
        let tcp_first = round % 4 == 0 || round % 4 == 3;
        if tcp_first {
            let (bytes, secs) = tcp_fetch(&args.bootstrap, &topic, records)?;
            report.bytes = bytes;
            report.tcp_fetch_mb_per_s.push(bytes as f64 / secs / 1e6);
        } else {
            let (bytes, secs, read, copied) = one_sided_fetch(&session, &topic, records)?;
            report.bytes = bytes;
            report
                .one_sided_fetch_mb_per_s
                .push(bytes as f64 / secs / 1e6);
            report.one_sided_read_batches += read;
            report.one_sided_copied_polls += copied;
        }
    }
    report.offset_commit = tcp_commits(&args.bootstrap, &topic, args.commits)?;
    report.fetch_and_add_commit = faa_commits(&session, &topic, args.commits)?;
    let tail_topic = format!("{topic}-tail");
    admin.create_topics(std::slice::from_ref(&tail_topic), 1, 1)?;
    let (tcp_tail, shm_tail) = tailing::run(
        &args.bootstrap,
        &args.target,
        &tail_topic,
        args.tail_rate,
        Duration::from_secs(args.tail_seconds),
    )?;
    report.tailing_tcp = tcp_tail;
    report.tailing_one_sided = shm_tail;

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (tcp, shm) = (
        median(&report.tcp_fetch_mb_per_s),
        median(&report.one_sided_fetch_mb_per_s),
    );
    println!(
        "fetch {} MB from offset 0 (median of {} rounds each)",
        report.bytes / 1_000_000,
        args.rounds
    );
    println!("  TCP Fetch (rdkafka)       {tcp:8.1} MB/s");
    println!(
        "  {:26}{shm:8.1} MB/s   x{:.2}",
        format!("one-sided READ ({provider})"),
        shm / tcp.max(f64::MIN_POSITIVE)
    );
    for (name, p) in [
        (
            "commit OffsetCommit (rdkafka)".to_string(),
            &report.offset_commit,
        ),
        (
            format!("commit FETCH_AND_ADD ({provider})"),
            &report.fetch_and_add_commit,
        ),
        ("tailing e2e TCP (rdkafka)".to_string(), &report.tailing_tcp),
        (
            format!("tailing e2e one-sided ({provider})"),
            &report.tailing_one_sided,
        ),
    ] {
        if let Some(p) = p {
            println!(
                "  {name:30} p50 {:.4} ms  p99 {:.4} ms  p99.9 {:.4} ms  max {:.3} ms",
                p.p50_ms, p.p99_ms, p.p99_9_ms, p.max_ms
            );
        }
    }
    std::fs::create_dir_all(&args.out).map_err(BenchError::io("creating the output directory"))?;
    let path = args.out.join("one-sided.json");
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| BenchError::Broker(e.to_string()))?;
    std::fs::write(&path, json).map_err(BenchError::io(format!("writing {}", path.display())))?;
    println!("wrote {}", path.display());
    let _ = admin.delete_topics(&[topic, tail_topic]);
    Ok(0)
}

fn preload(bootstrap: &str, topic: &str, records: u64) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .create()
        .map_err(BenchError::kafka("creating the preload producer"))?;
    let payload = vec![b'x'; RECORD];
    for _ in 0..records {
        loop {
            match producer.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .payload(&payload)
                    .partition(0),
            ) {
                Ok(()) => break,
                Err((_, _)) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(BenchError::kafka("flushing the preload"))?;
    Ok(())
}

/// Assigns partition 0 of `topic` to `consumer`, from its first offset.
fn assign_from_start(consumer: &BaseConsumer, topic: &str) -> Result<()> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(BenchError::kafka("assigning"))?;
    consumer
        .assign(&assignment)
        .map_err(BenchError::kafka("assigning"))
}

fn tcp_fetch(bootstrap: &str, topic: &str, records: u64) -> Result<(u64, f64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-one-sided-fetch")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .create()
        .map_err(BenchError::kafka("creating the TCP consumer"))?;
    assign_from_start(&consumer, topic)?;
    let started = Instant::now();
    let (mut seen, mut bytes) = (0u64, 0u64);
    while seen < records {
        if started.elapsed() > Duration::from_secs(300) {
            return Err(BenchError::Broker(format!(
                "TCP fetch stuck at {seen} records"
            )));
        }
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.map_err(BenchError::kafka("consuming"))?;
            bytes += message.payload().map_or(0, |p| p.len() as u64);
            seen += 1;
        }
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

fn one_sided_fetch(
    session: &rdma::client::Session,
    topic: &str,
    records: u64,
) -> Result<(u64, f64, u64, u64)> {
    let mut consumer = rdma::client::Consumer::new(session, topic, 0, 0);
    let started = Instant::now();
    let mut bytes = 0u64;
    while (consumer.position() as u64) < records {
        let batches = consumer
            .poll(1 << 20)
            .map_err(|e| BenchError::Broker(format!("one-sided fetch: {e}")))?;
        // Record payload bytes, as the TCP side counts them: batch size less its overheads is
        // close enough for 1 KiB records; count the records' share exactly instead.
        for batch in &batches {
            bytes += (batch.last_offset - batch.base_offset + 1) as u64 * RECORD as u64;
        }
    }
    let stats = consumer.stats();
    Ok((
        bytes,
        started.elapsed().as_secs_f64(),
        stats.read_batches,
        stats.copied_polls,
    ))
}

fn tcp_commits(bootstrap: &str, topic: &str, commits: u64) -> Result<Option<Percentiles>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-one-sided-commit-tcp")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(BenchError::kafka("creating the committing consumer"))?;
    let mut histogram = new_histogram();
    for i in 0..commits {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, 0, Offset::Offset(i as i64 + 1))
            .map_err(BenchError::kafka("building a commit"))?;
        let started = Instant::now();
        consumer
            .commit(&offsets, CommitMode::Sync)
            .map_err(BenchError::kafka("OffsetCommit"))?;
        let _ = histogram.record(started.elapsed().as_micros().max(1) as u64);
    }
    Ok(Percentiles::from_histogram(&histogram))
}

fn faa_commits(
    session: &rdma::client::Session,
    topic: &str,
    commits: u64,
) -> Result<Option<Percentiles>> {
    let committer =
        rdma::client::Committer::join(session, "bench-one-sided-commit-faa", topic, &[0])
            .map_err(|e| BenchError::Broker(format!("joining the offset slot: {e}")))?;
    // Microsecond histogram: a fetch-and-add on shared memory takes well under one, so the
    // batch of 100 is timed and each gets the mean (resolution: 0.01 us).
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| BenchError::Broker(format!("{e:?}")))?;
    for _ in 0..commits {
        let started = Instant::now();
        committer
            .add(0, 1)
            .map_err(|e| BenchError::Broker(format!("fetch-and-add: {e}")))?;
        let _ = histogram.record(started.elapsed().as_nanos().max(1) as u64);
    }
    // Reported in ms like every other latency: ns / 1e6.
    Ok(Some(Percentiles {
        count: histogram.len(),
        min_ms: histogram.min() as f64 / 1e6,
        mean_ms: histogram.mean() / 1e6,
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1e6,
        p90_ms: histogram.value_at_quantile(0.9) as f64 / 1e6,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1e6,
        p99_9_ms: histogram.value_at_quantile(0.999) as f64 / 1e6,
        p99_99_ms: histogram.value_at_quantile(0.9999) as f64 / 1e6,
        max_ms: histogram.max() as f64 / 1e6,
    }))
}
