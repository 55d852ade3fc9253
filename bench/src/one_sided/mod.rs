//! `one-sided`: the same broker over TCP and over its one-sided path (shm, or verbs in a bench
//! built with the `verbs` feature), in one run.
//!
//! - **Fetch throughput**: one partition preloaded with `--mib` MiB (hot), read from offset 0 to
//!   its end by an rdkafka consumer (Fetch over TCP), a raw Fetch loop that never decodes
//!   records (the transport alone), and the one-sided consumer (published index + READ of the
//!   cache), in rotating order; with `--broker-pid`, the broker's CPU seconds per GiB each.
//! - **Idle polls**: `--idle-polls` polls at the end of the partition by the one-sided consumer
//!   (one READ of the watermark word), the same consumer without the index (`Locate` each
//!   time) and a no-wait TCP Fetch: wall time and broker CPU per 1,000 polls.
//! - **Commit latency**: committing one partition's offset, `--commits` times each: Kafka
//!   OffsetCommit (rdkafka, synchronous) against FETCH_AND_ADD on the shared slot.
//! - **Tailing end-to-end latency**, at each `--tail-rate`: a producer (rdkafka, acks=all)
//!   stamps each record with its send time; a TCP consumer (rdkafka, long-poll Fetch) and a
//!   one-sided consumer tail the partition at once; latency is receive time minus stamp.
//!
//! Hotwire only (the one-sided path is Hotwire's); the TCP side uses the real Kafka client.

mod cost;
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
    /// Records per second of the tailing phases (one phase per rate).
    #[arg(long, value_delimiter = ',', default_value = "2000,20000")]
    pub tail_rate: Vec<u64>,
    /// Polls at the end of the partition per path (the idle-tailing cost).
    #[arg(long, default_value_t = 20_000)]
    pub idle_polls: u64,
    /// The broker's process id, when it runs on this host: its CPU time per GiB fetched and
    /// per 1,000 polls is reported for each path.
    #[arg(long)]
    pub broker_pid: Option<u32>,
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
    raw_tcp_fetch_mb_per_s: Vec<f64>,
    one_sided_fetch_mb_per_s: Vec<f64>,
    one_sided_read_batches: u64,
    one_sided_copied_polls: u64,
    /// CPU seconds per second the broker spends with nothing asked of it, left out of the
    /// figures below (with `--broker-pid`).
    broker_idle_cpu_s_per_s: Option<f64>,
    /// Broker CPU seconds per GiB of record payload fetched, per path (with `--broker-pid`).
    broker_cpu_s_per_gib: Vec<(String, f64)>,
    idle_polls: Vec<cost::IdlePolls>,
    offset_commit: Option<Percentiles>,
    fetch_and_add_commit: Option<Percentiles>,
    tailing: Vec<Tailing>,
}

/// Tailing end-to-end latency at one produce rate.
#[derive(Debug, Serialize)]
struct Tailing {
    records_per_s: u64,
    tcp: Option<Percentiles>,
    one_sided: Option<Percentiles>,
}

/// The fetch paths compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FetchPath {
    Rdkafka,
    RawTcp,
    OneSided,
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
        raw_tcp_fetch_mb_per_s: Vec::new(),
        one_sided_fetch_mb_per_s: Vec::new(),
        one_sided_read_batches: 0,
        one_sided_copied_polls: 0,
        broker_idle_cpu_s_per_s: None,
        broker_cpu_s_per_gib: Vec::new(),
        idle_polls: Vec::new(),
        offset_commit: None,
        fetch_and_add_commit: None,
        tailing: Vec::new(),
    };
    let mut cpu = cost::BrokerCpu::new(args.broker_pid);
    report.broker_idle_cpu_s_per_s = cpu.idle_rate(Duration::from_secs(5));
    // Broker CPU seconds and payload bytes per path, over every round.
    let mut spent: Vec<(FetchPath, f64, u64)> = Vec::new();
    let order = [FetchPath::Rdkafka, FetchPath::RawTcp, FetchPath::OneSided];
    for round in 0..args.rounds as usize {
        // Each round starts with another path, so that drifts in the machine's load hit all.
        for path in order
            .iter()
            .cycle()
            .skip(round % order.len())
            .take(order.len())
        {
            let ((bytes, secs), cpu_s) = cpu.during(|| match path {
                FetchPath::Rdkafka => tcp_fetch(&args.bootstrap, &topic, records),
                FetchPath::RawTcp => raw_tcp_fetch(&args.bootstrap, &topic, records),
                FetchPath::OneSided => {
                    let (bytes, secs, read, copied) = one_sided_fetch(&session, &topic, records)?;
                    report.one_sided_read_batches += read;
                    report.one_sided_copied_polls += copied;
                    Ok((bytes, secs))
                }
            })?;
            report.bytes = bytes;
            let rate = bytes as f64 / secs / 1e6;
            match path {
                FetchPath::Rdkafka => report.tcp_fetch_mb_per_s.push(rate),
                FetchPath::RawTcp => report.raw_tcp_fetch_mb_per_s.push(rate),
                FetchPath::OneSided => report.one_sided_fetch_mb_per_s.push(rate),
            }
            if let Some(cpu_s) = cpu_s {
                spent.push((*path, cpu_s, bytes));
            }
        }
    }
    for path in order {
        let (cpu_s, bytes) = spent
            .iter()
            .filter(|(p, ..)| *p == path)
            .fold((0.0, 0u64), |(c, b), (_, cpu_s, bytes)| {
                (c + cpu_s, b + bytes)
            });
        if bytes > 0 {
            let gib = bytes as f64 / (1u64 << 30) as f64;
            report
                .broker_cpu_s_per_gib
                .push((format!("{path:?}"), cpu_s / gib));
        }
    }
    report.idle_polls = idle_polls(args, &session, &topic, records as i64, cpu)?;
    report.offset_commit = tcp_commits(&args.bootstrap, &topic, args.commits)?;
    report.fetch_and_add_commit = faa_commits(&session, &topic, args.commits)?;
    let mut tail_topics = Vec::new();
    for &rate in &args.tail_rate {
        let tail_topic = format!("{topic}-tail-{rate}");
        admin.create_topics(std::slice::from_ref(&tail_topic), 1, 1)?;
        let (tcp, one_sided) = tailing::run(
            &args.bootstrap,
            &args.target,
            &tail_topic,
            rate,
            Duration::from_secs(args.tail_seconds),
        )?;
        report.tailing.push(Tailing {
            records_per_s: rate,
            tcp,
            one_sided,
        });
        tail_topics.push(tail_topic);
    }

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
    let raw = median(&report.raw_tcp_fetch_mb_per_s);
    println!("  TCP Fetch (rdkafka)       {tcp:8.1} MB/s");
    println!("  TCP Fetch (raw loop)      {raw:8.1} MB/s");
    println!(
        "  {:26}{shm:8.1} MB/s   x{:.2} rdkafka, x{:.2} raw",
        format!("one-sided READ ({provider})"),
        shm / tcp.max(f64::MIN_POSITIVE),
        shm / raw.max(f64::MIN_POSITIVE)
    );
    for (path, cpu_s) in &report.broker_cpu_s_per_gib {
        println!("  broker CPU per GiB, {path:10} {cpu_s:8.3} s");
    }
    for idle in &report.idle_polls {
        println!(
            "  idle poll {:28} {:8.2} us{}",
            idle.path,
            idle.mean_us,
            idle.broker_cpu_s_per_1000
                .map(|s| format!(", broker CPU {:.4} s per 1,000 polls", s))
                .unwrap_or_default()
        );
    }
    let mut latencies = vec![
        (
            "commit OffsetCommit (rdkafka)".to_string(),
            &report.offset_commit,
        ),
        (
            format!("commit FETCH_AND_ADD ({provider})"),
            &report.fetch_and_add_commit,
        ),
    ];
    for tail in &report.tailing {
        latencies.push((
            format!("tailing {}/s TCP (rdkafka)", tail.records_per_s),
            &tail.tcp,
        ));
        latencies.push((
            format!("tailing {}/s one-sided", tail.records_per_s),
            &tail.one_sided,
        ));
    }
    for (name, p) in latencies {
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
    tail_topics.push(topic);
    let _ = admin.delete_topics(&tail_topics);
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

/// Reads the partition with bare Fetch requests whose records are never decoded.
fn raw_tcp_fetch(bootstrap: &str, topic: &str, records: u64) -> Result<(u64, f64)> {
    let mut fetcher = cost::RawFetcher::connect(bootstrap, topic)?;
    let started = Instant::now();
    let (mut offset, mut bytes) = (0i64, 0u64);
    while (offset as u64) < records {
        let fetched = fetcher.fetch(offset, 1 << 20)?;
        let (end, count) = cost::batches_end(&fetched)
            .ok_or_else(|| BenchError::Broker(format!("raw Fetch at {offset} returned nothing")))?;
        offset = end;
        bytes += count * RECORD as u64;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// `args.idle_polls` polls at the end of the partition by each path.
fn idle_polls(
    args: &OneSidedArgs,
    session: &rdma::client::Session,
    topic: &str,
    end: i64,
    cpu: cost::BrokerCpu,
) -> Result<Vec<cost::IdlePolls>> {
    let one_sided = |consumer: &mut rdma::client::Consumer| {
        consumer
            .poll(1 << 20)
            .map(|_| ())
            .map_err(|e| BenchError::Broker(format!("one-sided poll: {e}")))
    };
    let mut published = rdma::client::Consumer::new(session, topic, 0, end);
    let mut located = rdma::client::Consumer::new(session, topic, 0, end).without_index();
    // The subscription is made before measuring.
    one_sided(&mut published)?;
    let mut fetcher = cost::RawFetcher::connect(&args.bootstrap, topic)?;
    let provider = args.target.provider();
    Ok(vec![
        cost::IdlePolls::measure(
            &format!("one-sided index ({provider})"),
            args.idle_polls,
            cpu,
            || one_sided(&mut published),
        )?,
        cost::IdlePolls::measure(
            &format!("one-sided Locate ({provider})"),
            args.idle_polls,
            cpu,
            || one_sided(&mut located),
        )?,
        cost::IdlePolls::measure("TCP Fetch, no wait", args.idle_polls, cpu, || {
            fetcher.fetch(end, 1 << 20).map(|_| ())
        })?,
    ])
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
