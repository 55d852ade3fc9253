//! Randomized trials of the sequence rules against a model of an idempotent client (as
//! librdkafka behaves): up to five batches in flight on one connection, delivered in the order
//! sent; after a retriable error the partition drains (sends nothing until every request in
//! flight is answered), then the batches to retry go first, in sequence order, before any new
//! one. The broker refuses batches for passing
//! reasons at random, and some acknowledgements are lost (the client retries a batch that was
//! appended). Whatever the interleaving, the log must hold every batch exactly once, in order,
//! a retried batch must get its original offsets, and the client must never be answered
//! OUT_OF_ORDER_SEQUENCE_NUMBER (librdkafka would bump its epoch and renumber, duplicating
//! what was appended but not acknowledged). `PROPTEST_CASES` runs more.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;

use super::sequences::{increment_sequence, ProducerStates, SequenceCheck, SequenceError};
use crate::log::record_batch::BatchHeader;

/// librdkafka's max.in.flight for an idempotent producer.
const IN_FLIGHT: usize = 5;

/// What happens next.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The client sends (a retry first, else a new batch if the window allows).
    Send,
    /// The broker handles the oldest request on the wire.
    Deliver,
    /// The broker refuses it for a passing reason (lease in doubt, no cache space).
    Refuse,
    /// The broker handles it, but the answer is lost (the client will retry it).
    LoseAnswer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Send),
        4 => Just(Step::Deliver),
        1 => Just(Step::Refuse),
        1 => Just(Step::LoseAnswer),
    ]
}

struct Trial {
    headers: Vec<BatchHeader>,
    states: ProducerStates,
    /// Batch indexes in log order.
    log: Vec<usize>,
    /// Where each appended batch went.
    offsets: Vec<Option<(i64, i64)>>,
    next_offset: i64,
    /// Acknowledged to the client.
    acked: Vec<bool>,
    /// Sent and not yet handled by the broker, in order.
    wire: VecDeque<usize>,
    /// Answered retriably (or unanswered), waiting to be sent again.
    retry: BTreeSet<usize>,
    /// The next batch never sent.
    next_new: usize,
    /// A retriable error was answered: waiting for the requests in flight.
    draining: bool,
    history: Vec<String>,
}

impl Trial {
    fn new(first_sequence: i32, counts: &[i32]) -> Self {
        let mut sequence = first_sequence;
        let headers = counts
            .iter()
            .map(|&count| {
                let header = BatchHeader {
                    base_offset: 0,
                    batch_length: 100,
                    attributes: 0,
                    last_offset_delta: count - 1,
                    base_timestamp: 0,
                    max_timestamp: 0,
                    producer_id: 42,
                    producer_epoch: 0,
                    base_sequence: sequence,
                    record_count: count,
                };
                sequence = increment_sequence(sequence, count);
                header
            })
            .collect::<Vec<_>>();
        let n = headers.len();
        Self {
            headers,
            states: ProducerStates::default(),
            log: Vec::new(),
            offsets: vec![None; n],
            next_offset: 0,
            acked: vec![false; n],
            wire: VecDeque::new(),
            retry: BTreeSet::new(),
            next_new: 0,
            draining: false,
            history: Vec::new(),
        }
    }

    fn send(&mut self) {
        // After a retriable error nothing is sent until nothing is in flight; then retries go
        // first, in order, before anything new.
        if self.draining {
            if !self.wire.is_empty() {
                return;
            }
            self.draining = false;
        }
        if let Some(&batch) = self.retry.iter().next() {
            self.retry.remove(&batch);
            self.wire.push_back(batch);
            self.history.push(format!("resend {batch}"));
            return;
        }
        let oldest_unacked = self.acked.iter().position(|a| !a).unwrap_or(self.next_new);
        if self.next_new < self.headers.len() && self.next_new - oldest_unacked < IN_FLIGHT {
            self.wire.push_back(self.next_new);
            self.history.push(format!("send {}", self.next_new));
            self.next_new += 1;
        }
    }

    fn deliver(&mut self, step: Step) -> Result<(), TestCaseError> {
        let Some(batch) = self.wire.pop_front() else {
            return Ok(());
        };
        let header = self.headers[batch];
        if matches!(step, Step::Refuse) {
            self.states.refuse(&header);
            self.retry.insert(batch);
            self.draining = true;
            self.history.push(format!("{batch}: refused"));
            return Ok(());
        }
        let answer = match self.states.check(&header) {
            Ok(SequenceCheck::Append) => {
                prop_assert_eq!(
                    batch,
                    self.log.len(),
                    "appended out of order or twice; history: {:?}",
                    self.history
                );
                let base = self.next_offset;
                self.next_offset += i64::from(header.record_count);
                self.states.record(&header, base);
                self.log.push(batch);
                self.offsets[batch] = Some((base, self.next_offset - 1));
                "appended".to_string()
            }
            Ok(SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            }) => {
                prop_assert_eq!(
                    self.offsets[batch],
                    Some((base_offset, last_offset)),
                    "a duplicate answered with other offsets; history: {:?}",
                    self.history
                );
                "duplicate".to_string()
            }
            Err(SequenceError::AfterRefused { .. }) => {
                self.retry.insert(batch);
                self.draining = true;
                self.history.push(format!("{batch}: after a refused one"));
                return Ok(());
            }
            Err(error) => {
                return Err(TestCaseError::fail(format!(
                    "batch {batch}: {error}; history: {:?}",
                    self.history
                )))
            }
        };
        if matches!(step, Step::LoseAnswer) {
            self.retry.insert(batch);
            self.draining = true;
            self.history.push(format!("{batch}: {answer}, answer lost"));
        } else {
            self.acked[batch] = true;
            self.history.push(format!("{batch}: {answer}"));
        }
        Ok(())
    }

    /// Runs until every batch is acknowledged, with nothing refused or lost.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10 * self.headers.len() + 100 {
            if self.acked.iter().all(|a| *a) {
                return Ok(());
            }
            if self.wire.is_empty() {
                self.send();
            } else {
                self.deliver(Step::Deliver)?;
            }
        }
        Err(TestCaseError::fail(format!(
            "not every batch was acknowledged; history: {:?}",
            self.history
        )))
    }
}

proptest! {
    #[test]
    fn a_pipelining_client_meets_refusals_and_lost_answers_without_gap_or_duplicate(
        first_sequence in prop_oneof![Just(0i32), (i32::MAX - 40)..=i32::MAX],
        counts in proptest::collection::vec(1i32..4, 1..30),
        steps in proptest::collection::vec(step(), 0..300),
    ) {
        let mut trial = Trial::new(first_sequence, &counts);
        for step in steps {
            match step {
                Step::Send => trial.send(),
                other => trial.deliver(other)?,
            }
        }
        trial.finish()?;
        prop_assert_eq!(trial.log, (0..counts.len()).collect::<Vec<_>>());
    }
}
