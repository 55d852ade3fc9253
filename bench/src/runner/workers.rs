//! The threads of one run, and how they are stopped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;

use crate::clock::now_ns;
use crate::error::{BenchError, Result};
use crate::kafka::consumer::{ConsumerShared, ConsumerWorker};
use crate::kafka::producer::ProducerWorker;
use crate::kafka::targets::Targets;
use crate::stats::Metrics;

/// How long tailing consumers may take to be assigned every partition (a group's first
/// rebalance can wait several seconds for more members, e.g. Kafka's
/// group.initial.rebalance.delay.ms).
const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long producers may take to deliver what they have after the last phase.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long tailing consumers may take to read what was acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The run's threads.
#[derive(Default)]
pub(super) struct Workers {
    pub producers: Vec<ProducerWorker>,
    pub tailing: Vec<ConsumerWorker>,
    pub catch_up: Vec<ConsumerWorker>,
}

impl Workers {
    /// Waits until the tailing consumers between them hold every partition.
    pub fn wait_for_assignment(&self, partitions: u64) -> Result<()> {
        if self.tailing.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + ASSIGNMENT_TIMEOUT;
        loop {
            let assigned: usize = self.tailing.iter().map(ConsumerWorker::assigned).sum();
            if assigned as u64 >= partitions {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Broker(format!(
                    "tailing consumers were assigned {assigned} of {partitions} partitions after {}s (is the group coordinator working?)",
                    ASSIGNMENT_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `count` catch-up readers, splitting the partitions between them.
    pub fn spawn_catch_up(
        &mut self,
        count: u32,
        config: &ClientConfig,
        targets: &Targets,
        shared: &Arc<ConsumerShared>,
        nice: i32,
    ) -> Result<()> {
        let all = targets.all_partitions();
        let assignments: Vec<Vec<(String, i32)>> = (0..count)
            .map(|i| {
                all.iter()
                    .enumerate()
                    .filter(|(k, _)| *k as u32 % count == i)
                    .map(|(_, p)| p.clone())
                    .collect()
            })
            .filter(|mine: &Vec<_>| !mine.is_empty())
            .collect();
        // Before any starts: the last of them to catch up sets the time.
        shared
            .catch_up_readers_left
            .store(assignments.len(), Ordering::Relaxed);
        for (i, mine) in assignments.iter().enumerate() {
            self.catch_up.push(ConsumerWorker::spawn_catch_up(
                i as u32,
                config,
                mine,
                Arc::clone(shared),
                nice,
            )?);
        }
        Ok(())
    }

    /// Stops producers (waiting for their deliveries), lets tailing consumers read what was
    /// acknowledged, then stops every consumer. Returns warnings.
    pub fn shutdown(
        self,
        metrics: &Metrics,
        shared: &ConsumerShared,
        purge_queued: bool,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        for producer in self.producers {
            match producer.finish(purge_queued, FLUSH_TIMEOUT) {
                Ok(Some(note)) => notes.push(note),
                Ok(None) => {}
                Err(e) => notes.push(e.to_string()),
            }
        }
        if !self.tailing.is_empty() {
            let deadline = now_ns() + DRAIN_TIMEOUT.as_nanos() as u64;
            while now_ns() < deadline {
                let counts = metrics.counters.snapshot();
                if counts.consumed >= counts.acked {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
        for consumer in self.tailing.into_iter().chain(self.catch_up) {
            if let Err(e) = consumer.join() {
                notes.push(e.to_string());
            }
        }
        notes
    }
}
