//! Pending batches and the flush policies (time, bytes, batch count).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{FlushConfig, PendingBatch};

/// Batches waiting for their flush object, in submission order.
#[derive(Debug)]
pub(super) struct Batcher {
    pending: VecDeque<PendingBatch>,
    bytes: usize,
    /// When the oldest pending batch arrived; the time policy counts from here.
    since: Option<Instant>,
    max_delay: Duration,
    max_bytes: usize,
    max_batches: usize,
}

impl Batcher {
    pub(super) fn new(config: &FlushConfig) -> Self {
        Batcher {
            pending: VecDeque::new(),
            bytes: 0,
            since: None,
            max_delay: config.max_delay,
            // Zero limits would mean "never flush"; read them as "flush every batch".
            max_bytes: config.max_bytes.max(1),
            max_batches: config.max_batches.max(1),
        }
    }

    pub(super) fn push(&mut self, batch: PendingBatch, now: Instant) {
        self.bytes += batch.data.len();
        self.pending.push_back(batch);
        self.since.get_or_insert(now);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the time policy fires, if anything is pending.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.max_delay)
    }

    /// Whether any policy limit has been reached.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.bytes >= self.max_bytes
            || self.pending.len() >= self.max_batches
            || self.deadline().is_some_and(|deadline| now >= deadline)
    }

    /// Takes the batches for one object: from the oldest, until the byte or count limit is
    /// reached (so an object exceeds `max_bytes` by at most its last batch).
    ///
    /// Leftovers keep the original start time: they have waited as long as the ones taken
    /// and the time policy still bounds their delay.
    pub(super) fn take(&mut self) -> Vec<PendingBatch> {
        let mut taken = Vec::new();
        let mut taken_bytes = 0usize;
        while taken_bytes < self.max_bytes && taken.len() < self.max_batches {
            let Some(batch) = self.pending.pop_front() else {
                break;
            };
            taken_bytes += batch.data.len();
            taken.push(batch);
        }
        self.bytes -= taken_bytes;
        if self.pending.is_empty() {
            self.since = None;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::PartitionKey;

    fn batch(len: usize) -> PendingBatch {
        PendingBatch {
            key: PartitionKey {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
            },
            base_offset: 0,
            last_offset: 0,
            max_timestamp: 0,
            data: Bytes::from(vec![0; len]),
        }
    }

    fn batcher(max_bytes: usize, max_batches: usize) -> Batcher {
        Batcher::new(&FlushConfig {
            max_delay: Duration::from_millis(10),
            max_bytes,
            max_batches,
            ..FlushConfig::default()
        })
    }

    #[test]
    fn time_policy() {
        let mut b = batcher(1000, 100);
        let t0 = Instant::now();
        assert_eq!(b.deadline(), None);
        b.push(batch(1), t0);
        b.push(batch(1), t0 + Duration::from_millis(5));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(!b.is_due(t0 + Duration::from_millis(9)));
        assert!(b.is_due(t0 + Duration::from_millis(10)));
        assert_eq!(b.take().len(), 2);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn byte_policy_takes_up_to_the_crossing_batch() {
        let mut b = batcher(1000, 100);
        let now = Instant::now();
        for _ in 0..5 {
            b.push(batch(300), now);
        }
        assert!(b.is_due(now));
        assert_eq!(b.take().len(), 4); // 1200 bytes crosses 1000
        assert!(!b.is_due(now)); // 300 left
        assert_eq!(b.deadline(), Some(now + Duration::from_millis(10)));
    }

    #[test]
    fn count_policy() {
        let mut b = batcher(usize::MAX, 3);
        let now = Instant::now();
        b.push(batch(1), now);
        b.push(batch(1), now);
        assert!(!b.is_due(now));
        b.push(batch(1), now);
        assert!(b.is_due(now));
        b.push(batch(1), now);
        assert_eq!(b.take().len(), 3);
        assert_eq!(b.take().len(), 1);
    }

    #[test]
    fn zero_limits_flush_every_batch() {
        let mut b = batcher(0, 0);
        let now = Instant::now();
        b.push(batch(8), now);
        b.push(batch(8), now);
        assert!(b.is_due(now));
        assert_eq!(b.take().len(), 1);
    }
}
