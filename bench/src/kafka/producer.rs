//! Measured producers: one sending thread each, paced to the phase's rate, with latency
//! recorded in librdkafka's delivery callback.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};

use crate::clock::now_ns;
use crate::control::{Control, PhaseState};
use crate::error::{BenchError, Result};
use crate::kafka::targets::Targets;
use crate::pacer::{corrected_latency_ns, Pacer};
use crate::payload::{pack, unpack, PayloadBuilder};
use crate::stats::{Counters, Metrics};

/// How long a sender sleeps when librdkafka's queue is full before trying the same record
/// again (its intended time is kept, so the wait counts in its latency).
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);
/// Longest single sleep while waiting for the next record's time, so phase changes and stop
/// are noticed quickly.
const MAX_PACING_SLEEP: Duration = Duration::from_millis(5);

/// librdkafka context: turns delivery reports into latency samples and counts.
pub struct ProducerCtx {
    metrics: Arc<Metrics>,
}

impl ProducerCtx {
    /// A context recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ProducerCtx { metrics }
    }
}

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    /// The record's packed phase and intended send time (see `payload::pack`).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let done = now_ns();
        let stamp = unpack(opaque as u64);
        let counters = &self.metrics.counters;
        match result {
            Ok(message) => {
                Counters::add(&counters.acked, 1);
                Counters::add(&counters.acked_bytes, message.payload_len() as u64);
                self.metrics
                    .produce
                    .record(stamp.phase, corrected_latency_ns(stamp.sent_ns, done));
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => Counters::add(&counters.purged, 1),
            Err((error, _)) => {
                Counters::add(&counters.produce_errors, 1);
                counters.note_error(format!("delivery failed: {error}"));
            }
        }
    }
}

/// The client type of every producer here.
pub type BenchProducer = ThreadedProducer<ProducerCtx>;

/// Creates a producer recording into `metrics`.
pub fn create(config: &ClientConfig, metrics: Arc<Metrics>) -> Result<BenchProducer> {
    config
        .create_with_context(ProducerCtx::new(metrics))
        .map_err(BenchError::kafka("creating a producer"))
}

/// What happened to one send attempt.
pub enum Sent {
    Queued,
    QueueFull,
    Failed(KafkaError),
}

/// Hands one record to librdkafka.
pub fn send_one(
    producer: &BenchProducer,
    targets: &Targets,
    seq: u64,
    value: &[u8],
    opaque: u64,
) -> Sent {
    let (topic, partition) = targets.pick(seq);
    // 64-bit targets only in practice; on 32 bits the stamp would lose its top bits and
    // only the latency of this run's records would be wrong, never memory.
    let mut record =
        BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque as usize).payload(value);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    match producer.send(record) {
        Ok(()) => Sent::Queued,
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Sent::QueueFull,
        Err((error, _)) => Sent::Failed(error),
    }
}

/// A producer and its sending thread.
pub struct ProducerWorker {
    producer: BenchProducer,
    thread: JoinHandle<()>,
}

/// What a sender needs besides its client.
pub struct SenderSetup {
    pub index: u32,
    pub targets: Arc<Targets>,
    pub control: Arc<Control>,
    pub metrics: Arc<Metrics>,
    pub payload: PayloadBuilder,
}

impl ProducerWorker {
    /// Creates the client and starts its sending thread (which waits for the first phase).
    pub fn spawn(config: &ClientConfig, setup: SenderSetup) -> Result<ProducerWorker> {
        let producer = create(config, Arc::clone(&setup.metrics))?;
        let sender = producer.clone();
        let thread = std::thread::Builder::new()
            .name(format!("producer-{}", setup.index))
            .spawn(move || send_loop(&sender, setup))
            .map_err(BenchError::io("starting a producer thread"))?;
        Ok(ProducerWorker { producer, thread })
    }

    /// Waits for the sending thread (after `Control::stop`), then for outstanding delivery
    /// reports. `purge_queued` drops records still waiting in the client's queue first (a
    /// max-throughput run that broke leaves a long queue). Returns a warning if some records
    /// were still undelivered after `timeout` (they are purged and counted as such).
    pub fn finish(self, purge_queued: bool, timeout: Duration) -> Result<Option<String>> {
        self.thread
            .join()
            .map_err(|_| BenchError::Worker("a producer thread panicked".into()))?;
        if purge_queued {
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue());
        }
        match self.producer.flush(timeout) {
            Ok(()) => Ok(None),
            Err(error) => {
                let left = self.producer.in_flight_count();
                self.producer
                    .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                // Let the purge's delivery reports run so they are counted.
                let _ = self.producer.flush(Duration::from_secs(5));
                Ok(Some(format!(
                    "{left} records were still undelivered {}s after the last phase ({error}); purged",
                    timeout.as_secs()
                )))
            }
        }
    }
}

/// Sends records until stopped, following the phase's rate.
fn send_loop(producer: &BenchProducer, mut setup: SenderSetup) {
    let counters = &setup.metrics.counters;
    // Producers start at different positions so that they do not all hit one partition.
    let mut seq = u64::from(setup.index);
    let mut phase = None;
    let mut pacer: Option<Pacer> = None;
    loop {
        let (index, rate) = match setup.control.state() {
            PhaseState::NotStarted => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            PhaseState::Stopped => return,
            PhaseState::Running { index, rate } => (index, rate),
        };
        if phase != Some(index) {
            // A new phase starts a new schedule: records a previous, overloaded phase still
            // owed are not carried into this one.
            phase = Some(index);
            pacer = rate.per_second().map(|r| Pacer::new(now_ns(), r));
        }
        let intended = match &pacer {
            Some(pacer) => {
                let next = pacer.next_intended_ns();
                let now = now_ns();
                if next > now {
                    std::thread::sleep(Duration::from_nanos(next - now).min(MAX_PACING_SLEEP));
                    continue;
                }
                next
            }
            None => now_ns(),
        };
        // Phases are at most 201 (validated), so the index fits the stamp's byte.
        let phase_byte = index.min(255) as u8;
        loop {
            let value = setup.payload.next(phase_byte, intended);
            match send_one(
                producer,
                &setup.targets,
                seq,
                value,
                pack(phase_byte, intended),
            ) {
                Sent::Queued => {
                    Counters::add(&counters.sent, 1);
                    break;
                }
                Sent::QueueFull => {
                    if setup.control.state() == PhaseState::Stopped {
                        return;
                    }
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Sent::Failed(error) => {
                    Counters::add(&counters.produce_errors, 1);
                    counters.note_error(format!("send failed: {error}"));
                    // Do not spin on a permanent error (e.g. an oversized record).
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                    break;
                }
            }
        }
        if let Some(pacer) = &mut pacer {
            pacer.advance();
        }
        seq += 1;
    }
}
