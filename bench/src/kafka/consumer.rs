//! Consumers: tailing ones that measure end-to-end latency, and catch-up ones that read the
//! backlog from the beginning and measure read throughput.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::clock::now_ns;
use crate::error::{BenchError, Result};
use crate::pacer::corrected_latency_ns;
use crate::payload::decode;
use crate::stats::{Counters, Metrics};

/// How long one poll waits for a record; also how often the stop flag is checked.
const POLL: Duration = Duration::from_millis(100);

/// State shared by all consumers of a run.
pub struct ConsumerShared {
    pub metrics: Arc<Metrics>,
    /// The run's tag: records without it are not this run's and are not timed.
    pub tag: u64,
    pub stop: AtomicBool,
    /// Records the catch-up readers must read to have caught up with the tail as it was when
    /// they started (all records produced before the catch-up phase).
    pub catch_up_target: AtomicU64,
    /// When they did (clock nanoseconds; 0 = not yet).
    pub caught_up_ns: AtomicU64,
}

impl ConsumerShared {
    /// Shared state for a run with this tag.
    pub fn new(metrics: Arc<Metrics>, tag: u64) -> Self {
        ConsumerShared {
            metrics,
            tag,
            stop: AtomicBool::new(false),
            catch_up_target: AtomicU64::new(u64::MAX),
            caught_up_ns: AtomicU64::new(0),
        }
    }
}

/// How long to wait for a partition's watermarks.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits the current end offset of every partition for the group of `config` (a "simple"
/// commit, outside any generation), so that the group's consumers start after a backlog.
pub fn commit_end_offsets(config: &ClientConfig, partitions: &[(String, i32)]) -> Result<()> {
    let consumer: BaseConsumer = config.create().map_err(BenchError::kafka(
        "creating a client to commit the backlog's end",
    ))?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, WATERMARK_TIMEOUT)
            .map_err(BenchError::kafka(format!(
                "reading the end offset of {topic}/{partition}"
            )))?;
        list.add_partition_offset(topic, *partition, Offset::Offset(high))
            .map_err(BenchError::kafka("building the offsets to commit"))?;
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .map_err(BenchError::kafka(
            "committing the backlog's end offsets for the tailing group",
        ))
}

/// What a consumer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Tailing,
    CatchUp,
}

/// A consumer thread.
pub struct ConsumerWorker {
    thread: JoinHandle<()>,
    /// Partitions currently assigned (kept up to date by the thread).
    assigned: Arc<AtomicUsize>,
}

impl ConsumerWorker {
    /// A tailing consumer that subscribes to `topics` in its configured group.
    pub fn spawn_tailing(
        index: u32,
        config: &ClientConfig,
        topics: &[String],
        shared: Arc<ConsumerShared>,
    ) -> Result<ConsumerWorker> {
        let consumer: BaseConsumer = config
            .create()
            .map_err(BenchError::kafka("creating a consumer"))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(BenchError::kafka("subscribing a consumer"))?;
        Self::start(format!("consumer-{index}"), consumer, Role::Tailing, shared)
    }

    /// A catch-up consumer reading `partitions` from their first offset.
    pub fn spawn_catch_up(
        index: u32,
        config: &ClientConfig,
        partitions: &[(String, i32)],
        shared: Arc<ConsumerShared>,
        nice: i32,
    ) -> Result<ConsumerWorker> {
        let (config, partitions) = (config.clone(), partitions.to_vec());
        let assigned = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&assigned);
        let (ready, created) = std::sync::mpsc::channel();
        // The client is created on the reader's own thread, after it lowered its priority:
        // librdkafka's threads inherit the niceness of the thread that creates the client.
        let thread = std::thread::Builder::new()
            .name(format!("catch-up-{index}"))
            .spawn(move || {
                lower_priority(nice);
                match assigned_from_start(&config, &partitions) {
                    Ok(consumer) => {
                        let _ = ready.send(Ok(()));
                        consume_loop(&consumer, Role::CatchUp, &shared, &seen);
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })
            .map_err(BenchError::io("starting a consumer thread"))?;
        created.recv().map_err(|_| {
            BenchError::Worker("a catch-up thread ended before its client".into())
        })??;
        Ok(ConsumerWorker { thread, assigned })
    }

    fn start(
        name: String,
        consumer: BaseConsumer,
        role: Role,
        shared: Arc<ConsumerShared>,
    ) -> Result<ConsumerWorker> {
        let assigned = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&assigned);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || consume_loop(&consumer, role, &shared, &seen))
            .map_err(BenchError::io("starting a consumer thread"))?;
        Ok(ConsumerWorker { thread, assigned })
    }

    /// Partitions assigned to this consumer right now.
    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
    }

    /// Waits for the thread to end (after `ConsumerShared::stop` is set).
    pub fn join(self) -> Result<()> {
        self.thread
            .join()
            .map_err(|_| BenchError::Worker("a consumer thread panicked".into()))
    }
}

fn consume_loop(
    consumer: &BaseConsumer,
    role: Role,
    shared: &ConsumerShared,
    assigned: &AtomicUsize,
) {
    let counters = &shared.metrics.counters;
    let mut next_assignment_check = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            Some(Ok(message)) => on_record(&message, role, shared),
            Some(Err(error)) => {
                Counters::add(&counters.consume_errors, 1);
                counters.note_error(format!("consume failed: {error}"));
            }
            None => {}
        }
        let now = now_ns();
        if now >= next_assignment_check {
            let count = consumer.assignment().map_or(0, |list| list.count());
            assigned.store(count, Ordering::Relaxed);
            next_assignment_check = now + 100_000_000;
        }
    }
}

fn on_record(message: &BorrowedMessage<'_>, role: Role, shared: &ConsumerShared) {
    let received = now_ns();
    let counters = &shared.metrics.counters;
    let bytes = message.payload_len() as u64;
    match role {
        Role::Tailing => {
            Counters::add(&counters.consumed, 1);
            Counters::add(&counters.consumed_bytes, bytes);
            if let Some(stamp) = message.payload().and_then(|v| decode(v, shared.tag)) {
                shared
                    .metrics
                    .end_to_end
                    .record(stamp.phase, corrected_latency_ns(stamp.sent_ns, received));
            }
        }
        Role::CatchUp => {
            let read = counters.catch_up_records.fetch_add(1, Ordering::Relaxed) + 1;
            Counters::add(&counters.catch_up_bytes, bytes);
            if read >= shared.catch_up_target.load(Ordering::Relaxed) {
                // Only the first reader to get there sets the time.
                let _ = shared.caught_up_ns.compare_exchange(
                    0,
                    received,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }
}

/// A consumer assigned `partitions` from their first offset.
fn assigned_from_start(
    config: &ClientConfig,
    partitions: &[(String, i32)],
) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = config
        .create()
        .map_err(BenchError::kafka("creating a catch-up consumer"))?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(BenchError::kafka("building a catch-up assignment"))?;
    }
    consumer.assign(&list).map_err(BenchError::kafka(
        "assigning partitions to a catch-up consumer",
    ))?;
    Ok(consumer)
}

/// Lowers the calling thread's scheduling priority (Linux: niceness is per thread, and threads
/// it creates inherit it). 0 leaves it as it is.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!("cannot lower the catch-up readers' priority to {nice}: {error}");
    }
}
