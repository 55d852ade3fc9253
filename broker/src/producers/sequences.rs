//! Per-partition producer state: the epoch and the last five batches of each producer id.
//!
//! Kafka's rules, which clients rely on: a retried batch among a producer's last five is a
//! duplicate and is answered with its original offsets; a batch that does not follow the last
//! sequence is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH; a new
//! epoch starts again at sequence 0.
//!
//! The state is bounded, as Kafka bounds it: a producer that wrote nothing to the partition for
//! `producer_id_expiration_ms` is forgotten, and at most `max_producers_per_partition` are kept
//! (the least recently active goes first), so random producer ids cannot grow it without end.
//! A forgotten producer is treated as a new one: its next batch is appended.
//!
//! A batch this broker refuses for a passing reason before appending it (its lease in doubt, no
//! cache space, failing storage) is remembered too: the client retries it, but batches it had
//! pipelined behind it may arrive first, once the reason has passed. Appending one of those
//! would leave a gap, and answering it OUT_OF_ORDER_SEQUENCE_NUMBER makes librdkafka bump its
//! epoch and renumber every queued message from sequence 0, duplicating those that this broker
//! appended but had not yet acknowledged. So such a batch is refused too (retriably) until the
//! refused one comes back.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use thiserror::Error;

use crate::log::record_batch::BatchHeader;

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// max.in.flight.requests.per.connection limit for idempotence).
const REMEMBERED_BATCHES: usize = 5;

/// One batch a producer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WrittenBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

/// The first batch of a producer refused for a passing reason and not yet sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Refusal {
    epoch: i16,
    sequence: i32,
}

#[derive(Clone, Debug)]
struct ProducerEntry {
    epoch: i16,
    /// Empty for a producer known only by a refusal.
    batches: VecDeque<WrittenBatch>,
    /// When it last wrote here (ms since the epoch).
    last_active_ms: i64,
    refused: Option<Refusal>,
    /// Known only from storage (rebuilt at start-up or take-over), with no batch appended
    /// here since: see [`SequenceError::GapAfterRecovery`].
    restored: bool,
}

/// Bounds on the producers remembered per partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerLimits {
    /// Forgotten after this long without a write (`producer_id_expiration_ms`).
    pub expiration_ms: i64,
    /// Most remembered (`max_producers_per_partition`).
    pub max_producers: usize,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        Self {
            expiration_ms: 86_400_000,
            max_producers: 1_000,
        }
    }
}

/// The limits every partition uses, set once at start from the configuration.
static LIMITS: OnceLock<ProducerLimits> = OnceLock::new();

/// Sets the limits of every partition's producer state (once, before any append; later calls
/// are ignored).
pub fn configure(limits: ProducerLimits) {
    let _ = LIMITS.set(limits);
}

fn limits() -> ProducerLimits {
    LIMITS.get().copied().unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already written: answer with these offsets and do not append.
    Duplicate {
        /// Offset of its first record.
        base_offset: i64,
        /// Offset of its last record.
        last_offset: i64,
    },
}

/// A batch refused by the sequence rules.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SequenceError {
    /// Not the next sequence.
    #[error(
        "out of order sequence number for producer {producer_id}: expected {expected}, got {got}"
    )]
    OutOfOrder {
        /// Producer id.
        producer_id: i64,
        /// Next sequence expected.
        expected: i32,
        /// First sequence of the batch.
        got: i32,
    },
    /// Follows a batch of the same producer that this broker refused for a passing reason and
    /// that was not sent again yet (see the module documentation): retriable.
    #[error(
        "producer {producer_id}: sequence {got} follows sequence {refused}, which was refused \
         and not sent again yet"
    )]
    AfterRefused {
        /// Producer id.
        producer_id: i64,
        /// First sequence of the refused batch.
        refused: i32,
        /// First sequence of this batch.
        got: i32,
    },
    /// Shortly after this broker recovered the partition (started, or took it over), a gap
    /// after the last batch that storage holds from a producer that has appended nothing here
    /// since (or, for a producer storage does not know, a first batch not at sequence 0): most
    /// likely requests the client had in flight to the previous leader, the earlier ones
    /// refused there and this one arriving here first. Retriable, like [`Self::AfterRefused`]:
    /// answering OUT_OF_ORDER would make librdkafka bump its epoch and renumber, duplicating
    /// what was appended but not acknowledged (or, were this the first batch it has in flight,
    /// fail fatally); appending it would leave a gap.
    #[error(
        "producer {producer_id}: sequence {got} leaves a gap after {expected}, the next one \
         after what storage holds; retriable until the producer writes here"
    )]
    GapAfterRecovery {
        /// Producer id.
        producer_id: i64,
        /// Next sequence expected.
        expected: i32,
        /// First sequence of this batch.
        got: i32,
    },
    /// An epoch older than the producer's current one (a zombie instance).
    #[error("producer {producer_id} epoch {got} is older than its current epoch {current}")]
    StaleEpoch {
        /// Producer id.
        producer_id: i64,
        /// Current epoch.
        current: i16,
        /// Epoch of the batch.
        got: i16,
    },
}

/// A producer as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// Sequence of the last record it appended.
    pub last_sequence: i32,
    /// When it last appended here (ms since the epoch).
    pub last_active_ms: i64,
}

/// Producer state of one partition.
#[derive(Clone, Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// When expired producers were last swept out.
    swept_ms: i64,
    /// Until when (ms since the epoch) a gap is presumed to be requests split by a move (see
    /// [`SequenceError::GapAfterRecovery`]); 0 when the state was not rebuilt from storage.
    recovered_until_ms: i64,
}

/// How long after the state is rebuilt from storage a gap is presumed to be requests split by
/// the move (a client resends its refused batch within its retry backoff and a metadata
/// refresh: well under a second).
const RECOVERY_GRACE_MS: i64 = 10_000;

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

impl ProducerStates {
    /// Decides what to do with a batch, without changing anything.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        self.check_at(header, now_ms(), limits())
    }

    fn check_at(
        &self,
        header: &BatchHeader,
        now_ms: i64,
        limits: ProducerLimits,
    ) -> Result<SequenceCheck, SequenceError> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        // An unknown producer (first batch, state older than what was recovered, or expired)
        // is trusted; except, just after a recovery, one that does not start at sequence 0:
        // its earlier batches may be in flight, refused by the previous leader.
        let Some(entry) = self
            .producers
            .get(&header.producer_id)
            .filter(|e| !e.expired(now_ms, limits))
        else {
            if header.base_sequence != 0 && now_ms < self.recovered_until_ms {
                return Err(SequenceError::GapAfterRecovery {
                    producer_id: header.producer_id,
                    expected: 0,
                    got: header.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        };
        let first = header.base_sequence;
        let last = increment_sequence(first, header.last_offset_delta);
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: header.producer_id,
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if let Some(written) = entry.duplicate_of(header.producer_epoch, first, last) {
            return Ok(SequenceCheck::Duplicate {
                base_offset: written.base_offset,
                last_offset: written.last_offset,
            });
        }
        if let Some(refused) = entry.refused {
            if refused.epoch == header.producer_epoch && sequence_after(first, refused.sequence) {
                return Err(SequenceError::AfterRefused {
                    producer_id: header.producer_id,
                    refused: refused.sequence,
                    got: first,
                });
            }
        }
        if header.producer_epoch > entry.epoch {
            return if first == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: header.producer_id,
                    expected: 0,
                    got: first,
                })
            };
        }
        // Known only by a refusal: as trusted as an unknown producer.
        let Some(previous) = entry.batches.back() else {
            return Ok(SequenceCheck::Append);
        };
        let expected = increment_sequence(previous.last_sequence, 1);
        if first != expected && entry.restored && now_ms < self.recovered_until_ms {
            return Err(SequenceError::GapAfterRecovery {
                producer_id: header.producer_id,
                expected,
                got: first,
            });
        }
        if first != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id: header.producer_id,
                expected,
                got: first,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Remembers a batch written at `base_offset` (whose header holds the client's values).
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        self.record_at(header, base_offset, now_ms(), limits());
    }

    fn record_at(
        &mut self,
        header: &BatchHeader,
        base_offset: i64,
        now_ms: i64,
        limits: ProducerLimits,
    ) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.entry(header, now_ms, limits);
        entry.restored = false;
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        let last_sequence = increment_sequence(header.base_sequence, header.last_offset_delta);
        entry.batches.push_back(WrittenBatch {
            first_sequence: header.base_sequence,
            last_sequence,
            base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
        });
        // Written up to (or past) the refused batch, or in a newer epoch: the order is back.
        if entry.refused.is_some_and(|r| {
            r.epoch < header.producer_epoch
                || (r.epoch == header.producer_epoch && !sequence_after(r.sequence, last_sequence))
        }) {
            entry.refused = None;
        }
    }

    /// Remembers that a batch was refused for a passing reason before being appended, so that
    /// the producer's batches pipelined behind it wait for it (see the module documentation).
    /// A retried batch already written, or one of an older epoch, leaves nothing to remember.
    pub fn refuse(&mut self, header: &BatchHeader) {
        self.refuse_at(header, now_ms(), limits());
    }

    fn refuse_at(&mut self, header: &BatchHeader, now_ms: i64, limits: ProducerLimits) {
        if header.producer_id < 0
            || !matches!(
                self.check_at(header, now_ms, limits),
                Ok(SequenceCheck::Append)
                    | Err(SequenceError::OutOfOrder { .. })
                    | Err(SequenceError::GapAfterRecovery { .. })
            )
        {
            return;
        }
        let first = header.base_sequence;
        let entry = self.entry(header, now_ms, limits);
        match entry.refused {
            // An earlier refused batch is the one to wait for.
            Some(r) if r.epoch == header.producer_epoch && !sequence_after(r.sequence, first) => {}
            _ => {
                entry.refused = Some(Refusal {
                    epoch: header.producer_epoch,
                    sequence: first,
                })
            }
        }
    }

    /// The live entry of `header`'s producer, created (for its epoch, with no batch) if there
    /// is none, within the limits.
    fn entry(
        &mut self,
        header: &BatchHeader,
        now_ms: i64,
        limits: ProducerLimits,
    ) -> &mut ProducerEntry {
        self.forget_expired(now_ms, limits);
        if let Some(entry) = self.producers.get(&header.producer_id) {
            if entry.expired(now_ms, limits) {
                self.producers.remove(&header.producer_id);
            }
        }
        if !self.producers.contains_key(&header.producer_id)
            && self.producers.len() >= limits.max_producers
        {
            self.forget_least_recent();
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::with_capacity(REMEMBERED_BATCHES),
                last_active_ms: now_ms,
                refused: None,
                restored: false,
            });
        entry.last_active_ms = now_ms;
        entry
    }

    /// Drops producers idle past the expiration, at most once a tenth of it (each sweep walks
    /// every producer).
    fn forget_expired(&mut self, now_ms: i64, limits: ProducerLimits) {
        let period = (limits.expiration_ms / 10).max(1);
        if now_ms.saturating_sub(self.swept_ms) < period {
            return;
        }
        self.swept_ms = now_ms;
        let before = self.producers.len();
        self.producers.retain(|_, e| !e.expired(now_ms, limits));
        let forgotten = before - self.producers.len();
        if forgotten > 0 {
            tracing::debug!(forgotten, "expired idempotent producer state");
        }
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.last_active_ms)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
            tracing::debug!(
                producer_id = id,
                "producer state forgotten: max_producers_per_partition reached"
            );
        }
    }

    /// Marks every producer known now as known only from storage: until it appends here, a
    /// gap is [`SequenceError::GapAfterRecovery`] (retriable) rather than out of order. Called
    /// once the state is rebuilt from storage.
    pub fn mark_restored(&mut self) {
        for entry in self.producers.values_mut() {
            entry.restored = true;
        }
        self.recovered_until_ms = now_ms().saturating_add(RECOVERY_GRACE_MS);
    }

    /// The producers with a batch remembered here, by id (at most `max_producers_per_partition`).
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut active: Vec<ActiveProducer> = self
            .producers
            .iter()
            .filter_map(|(id, entry)| {
                let last = entry.batches.back()?;
                Some(ActiveProducer {
                    producer_id: *id,
                    epoch: entry.epoch,
                    last_sequence: last.last_sequence,
                    last_active_ms: entry.last_active_ms,
                })
            })
            .collect();
        active.sort_by_key(|p| p.producer_id);
        active
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

impl ProducerEntry {
    fn expired(&self, now_ms: i64, limits: ProducerLimits) -> bool {
        now_ms.saturating_sub(self.last_active_ms) >= limits.expiration_ms
    }

    /// The remembered batch of `epoch` with exactly these sequences.
    fn duplicate_of(&self, epoch: i16, first: i32, last: i32) -> Option<&WrittenBatch> {
        (epoch == self.epoch)
            .then(|| {
                self.batches
                    .iter()
                    .find(|b| b.first_sequence == first && b.last_sequence == last)
            })
            .flatten()
    }
}

/// Whether sequence `a` comes after `b`, sequences wrapping from `i32::MAX` to 0 (within half
/// the range: a client never has more in flight).
fn sequence_after(a: i32, b: i32) -> bool {
    let distance = (i64::from(a) - i64::from(b)).rem_euclid(i64::from(i32::MAX) + 1);
    distance > 0 && distance < 1 << 30
}

/// A batch header for tests: `count` records of `producer_id` at `epoch` from sequence `first`.
#[cfg(test)]
pub(crate) fn test_batch(producer_id: i64, epoch: i16, first: i32, count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 100,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id,
        producer_epoch: epoch,
        base_sequence: first,
        record_count: count,
    }
}

#[cfg(test)]
mod tests {
    use super::test_batch as batch;
    use super::*;

    #[test]
    fn idle_producers_expire_and_the_count_is_capped() {
        let limits = ProducerLimits {
            expiration_ms: 1_000,
            max_producers: 3,
        };
        let mut states = ProducerStates::default();
        states.record_at(&batch(1, 0, 0, 1), 10, 0, limits);
        // Within the expiration a retry is a duplicate and a gap is refused.
        assert!(matches!(
            states.check_at(&batch(1, 0, 0, 1), 500, limits),
            Ok(SequenceCheck::Duplicate {
                base_offset: 10,
                ..
            })
        ));
        assert!(states.check_at(&batch(1, 0, 5, 1), 500, limits).is_err());
        // Past it the producer is unknown again, and a sweep drops it.
        assert_eq!(
            states.check_at(&batch(1, 0, 5, 1), 1_000, limits),
            Ok(SequenceCheck::Append)
        );
        states.record_at(&batch(2, 0, 0, 1), 11, 1_000, limits);
        assert_eq!(states.len(), 1);

        // At the cap the least recently active producer is forgotten.
        states.record_at(&batch(3, 0, 0, 1), 12, 1_100, limits);
        states.record_at(&batch(4, 0, 0, 1), 13, 1_200, limits);
        states.record_at(&batch(2, 0, 1, 1), 14, 1_300, limits);
        states.record_at(&batch(5, 0, 0, 1), 15, 1_400, limits);
        assert_eq!(states.len(), 3);
        assert_eq!(
            states.check_at(&batch(3, 0, 7, 1), 1_400, limits),
            Ok(SequenceCheck::Append),
            "producer 3 was the least recently active"
        );
        assert!(states.check_at(&batch(2, 0, 7, 1), 1_400, limits).is_err());
    }

    #[test]
    fn active_producers_report_their_epoch_and_last_sequence() {
        let limits = ProducerLimits::default();
        let mut states = ProducerStates::default();
        states.record_at(&batch(9, 2, 0, 10), 0, 1_000, limits);
        states.record_at(&batch(4, 0, 0, 3), 10, 2_000, limits);
        states.record_at(&batch(9, 2, 10, 5), 13, 3_000, limits);
        // Known by a refusal only: nothing appended, not reported.
        states.refuse_at(&batch(6, 0, 4, 1), 3_100, limits);
        let active = |id, epoch, last_sequence, last_active_ms| ActiveProducer {
            producer_id: id,
            epoch,
            last_sequence,
            last_active_ms,
        };
        assert_eq!(
            states.active(),
            vec![active(4, 0, 2, 2_000), active(9, 2, 14, 3_000)]
        );
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 10);
        assert_eq!(states.check(&first), Ok(SequenceCheck::Append));
        states.record(&first, 100);
        let second = batch(7, 0, 10, 5);
        assert_eq!(states.check(&second), Ok(SequenceCheck::Append));
        states.record(&second, 110);
        assert_eq!(
            states.check(&first),
            Ok(SequenceCheck::Duplicate {
                base_offset: 100,
                last_offset: 109
            })
        );
    }

    #[test]
    fn gaps_are_out_of_order_and_old_epochs_are_stale() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 3, 0, 10), 0);
        assert!(matches!(
            states.check(&batch(7, 3, 11, 1)),
            Err(SequenceError::OutOfOrder { expected: 10, .. })
        ));
        assert!(matches!(
            states.check(&batch(7, 2, 10, 1)),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert_eq!(states.check(&batch(7, 4, 0, 1)), Ok(SequenceCheck::Append));
        assert!(states.check(&batch(7, 4, 5, 1)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..6 {
            states.record(&batch(1, 0, i, 1), i64::from(i));
        }
        assert!(
            states.check(&batch(1, 0, 0, 1)).is_err(),
            "forgotten: out of order"
        );
        assert!(matches!(
            states.check(&batch(1, 0, 1, 1)),
            Ok(SequenceCheck::Duplicate { base_offset: 1, .. })
        ));
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut states = ProducerStates::default();
        states.record(&batch(1, 0, i32::MAX - 1, 2), 0);
        assert_eq!(states.check(&batch(1, 0, 0, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn non_idempotent_batches_are_not_tracked() {
        let mut states = ProducerStates::default();
        states.record(&batch(-1, -1, -1, 3), 0);
        assert!(states.is_empty());
        assert_eq!(
            states.check(&batch(-1, -1, -1, 3)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn a_gap_after_recovery_is_retriable_until_the_producer_writes_here() {
        // Rebuilt from storage: the producer's last stored batch is 0..=9.
        let mut states = ProducerStates::default();
        states.record(&batch(7, 0, 0, 10), 0);
        states.mark_restored();
        // 10..=14 was refused by the previous leader; 15.. arrives here first.
        assert!(matches!(
            states.check(&batch(7, 0, 15, 5)),
            Err(SequenceError::GapAfterRecovery {
                expected: 10,
                got: 15,
                ..
            })
        ));
        // Retries and the next batch are appended as usual.
        assert_eq!(
            states.check(&batch(7, 0, 0, 10)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 0,
                last_offset: 9
            })
        );
        states.record(&batch(7, 0, 10, 5), 10);
        // Once it wrote here, a gap is out of order again.
        assert!(matches!(
            states.check(&batch(7, 0, 20, 5)),
            Err(SequenceError::OutOfOrder { expected: 15, .. })
        ));
    }

    #[test]
    fn after_recovery_an_unknown_producer_starts_at_zero_or_waits() {
        let mut states = ProducerStates::default();
        // Not rebuilt from storage: an unknown producer is trusted wherever it starts.
        assert_eq!(states.check(&batch(8, 0, 30, 5)), Ok(SequenceCheck::Append));
        states.mark_restored();
        assert!(matches!(
            states.check(&batch(8, 0, 30, 5)),
            Err(SequenceError::GapAfterRecovery { got: 30, .. })
        ));
        assert_eq!(states.check(&batch(8, 0, 0, 5)), Ok(SequenceCheck::Append));
        // Past the grace period it is trusted again (its state may have expired).
        let later = now_ms() + RECOVERY_GRACE_MS + 1;
        assert_eq!(
            states.check_at(&batch(8, 0, 30, 5), later, limits()),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn batches_behind_a_refused_one_wait_for_it() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 0, 0, 10), 0);
        // 10..=14 refused (lease in doubt); 15.. was pipelined behind it and arrives once the
        // reason has passed: refused too, retriably, not appended nor out of order.
        states.refuse(&batch(7, 0, 10, 5));
        assert!(matches!(
            states.check(&batch(7, 0, 15, 5)),
            Err(SequenceError::AfterRefused {
                refused: 10,
                got: 15,
                ..
            })
        ));
        // Refusing the later one keeps waiting for the earlier.
        states.refuse(&batch(7, 0, 15, 5));
        // The retried batch is appended, and then the order is back.
        assert_eq!(states.check(&batch(7, 0, 10, 5)), Ok(SequenceCheck::Append));
        states.record(&batch(7, 0, 10, 5), 10);
        assert_eq!(states.check(&batch(7, 0, 15, 5)), Ok(SequenceCheck::Append));
        // A refused retry of a batch already written leaves nothing to wait for.
        states.refuse(&batch(7, 0, 10, 5));
        assert_eq!(states.check(&batch(7, 0, 15, 5)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn a_refusal_is_remembered_for_unknown_producers_and_new_epochs() {
        let mut states = ProducerStates::default();
        states.refuse(&batch(8, 0, 40, 1));
        assert!(matches!(
            states.check(&batch(8, 0, 41, 1)),
            Err(SequenceError::AfterRefused { .. })
        ));
        // Earlier sequences of the unknown producer are trusted as before.
        assert_eq!(states.check(&batch(8, 0, 39, 1)), Ok(SequenceCheck::Append));
        assert_eq!(states.check(&batch(8, 0, 40, 1)), Ok(SequenceCheck::Append));
        states.record(&batch(8, 0, 40, 1), 0);
        assert_eq!(states.check(&batch(8, 0, 41, 1)), Ok(SequenceCheck::Append));

        // A new epoch's first batch refused: its second waits; an older epoch is stale.
        states.refuse(&batch(8, 1, 0, 1));
        assert!(matches!(
            states.check(&batch(8, 1, 1, 1)),
            Err(SequenceError::AfterRefused { .. })
        ));
        assert_eq!(states.check(&batch(8, 1, 0, 1)), Ok(SequenceCheck::Append));
        states.record(&batch(8, 1, 0, 1), 1);
        assert_eq!(states.check(&batch(8, 1, 1, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(sequence_after(1, 0));
        assert!(!sequence_after(0, 0));
        assert!(!sequence_after(0, 1));
        assert!(sequence_after(0, i32::MAX));
        assert!(!sequence_after(i32::MAX, 0));
    }
}
