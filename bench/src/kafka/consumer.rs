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
    /// Catch-up readers that have not yet read every one of their partitions up to its end
    /// offset as it was when they started (set before they start).
    pub catch_up_readers_left: AtomicUsize,
    /// When the last of them had (clock nanoseconds; 0 = not yet).
    pub caught_up_ns: AtomicU64,
}

impl ConsumerShared {
    /// Shared state for a run with this tag.
    pub fn new(metrics: Arc<Metrics>, tag: u64) -> Self {
        ConsumerShared {
            metrics,
            tag,
            stop: AtomicBool::new(false),
            catch_up_readers_left: AtomicUsize::new(usize::MAX),
            caught_up_ns: AtomicU64::new(0),
        }
    }
}

/// How long to wait for a partition's watermarks.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

/// The low and high watermarks of `topic`/`partition`, asked of the broker now.
fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
        .map_err(BenchError::kafka(format!(
            "reading the end offset of {topic}/{partition}"
        )))
}

/// Commits the current end offset of every partition for the group of `config` (a "simple"
/// commit, outside any generation), so that the group's consumers start after a backlog.
pub fn commit_end_offsets(config: &ClientConfig, partitions: &[(String, i32)]) -> Result<()> {
    let consumer: BaseConsumer = config.create().map_err(BenchError::kafka(
        "creating a client to commit the backlog's end",
    ))?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        let (_, high) = watermarks(&consumer, topic, *partition)?;
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

/// A catch-up reader's way to the tail: its partitions' end offsets when it started. It has
/// caught up once its position in each has reached that end (consumer lag 0 as of its start).
struct CatchUpProgress {
    /// (topic, partition, end offset) not reached yet.
    left: Vec<(String, i32, i64)>,
}

impl CatchUpProgress {
    /// The end offsets of `partitions` now.
    fn new(consumer: &BaseConsumer, partitions: &[(String, i32)]) -> Result<Self> {
        let mut left = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let (low, high) = watermarks(consumer, topic, *partition)?;
            if high > low {
                left.push((topic.clone(), *partition, high));
            }
        }
        Ok(CatchUpProgress { left })
    }

    /// True once every partition's position has reached its end offset.
    fn caught_up(&mut self, consumer: &BaseConsumer) -> bool {
        if self.left.is_empty() {
            return true;
        }
        let Ok(positions) = consumer.position() else {
            return false;
        };
        self.left.retain(|(topic, partition, end)| {
            let at = positions
                .find_partition(topic, *partition)
                .and_then(|p| match p.offset() {
                    Offset::Offset(at) => Some(at),
                    _ => None,
                });
            at.is_none_or(|at| at < *end)
        });
        self.left.is_empty()
    }
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
                let started = assigned_from_start(&config, &partitions).and_then(|consumer| {
                    let progress = CatchUpProgress::new(&consumer, &partitions)?;
                    Ok((consumer, progress))
                });
                match started {
                    Ok((consumer, progress)) => {
                        let _ = ready.send(Ok(()));
                        consume_loop(&consumer, Role::CatchUp, &shared, &seen, Some(progress));
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
            .spawn(move || consume_loop(&consumer, role, &shared, &seen, None))
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

/// Polls until stopped. A catch-up reader (`progress`) checks every 100 ms whether it has
/// caught up; the last one to get there sets `caught_up_ns`.
fn consume_loop(
    consumer: &BaseConsumer,
    role: Role,
    shared: &ConsumerShared,
    assigned: &AtomicUsize,
    mut progress: Option<CatchUpProgress>,
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
            if progress.as_mut().is_some_and(|p| p.caught_up(consumer)) {
                progress = None;
                if shared.catch_up_readers_left.fetch_sub(1, Ordering::Relaxed) == 1 {
                    shared.caught_up_ns.store(now, Ordering::Relaxed);
                }
            }
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
            Counters::add(&counters.catch_up_records, 1);
            Counters::add(&counters.catch_up_bytes, bytes);
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
