//! Randomized trials of the sequence rules against a model of an idempotent client (as
//! librdkafka behaves): up to five batches in flight on one connection, delivered in the order
//! sent; after a retriable error the partition drains (sends nothing until every request in
//! flight is answered), then the batches to retry go first, in sequence order, before any new
//! one. The broker refuses batches for passing reasons at random, some acknowledgements are
//! lost (the client retries a batch that was appended), an appended batch is acknowledged only
//! once durable, and the partition moves to a new engine at random: what was not durable yet
//! is lost (its requests fail retriably) and the new engine rebuilds producer state from the
//! durable log. Whatever the interleaving, the log must hold every batch exactly once, in
//! order, a retried batch must get its original offsets, and the client must never be answered
//! OUT_OF_ORDER_SEQUENCE_NUMBER (librdkafka would bump its epoch and renumber, duplicating
//! what was appended but not acknowledged). `PROPTEST_CASES` runs more.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;

use super::sequences::{
    increment_sequence, test_batch, ProducerStates, SequenceCheck, SequenceError,
};
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
    /// The oldest appended batch becomes durable (and is answered).
    Durable,
    /// The partition moves to a new engine (a take-over or a restart).
    Move,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Send),
        4 => Just(Step::Deliver),
        1 => Just(Step::Refuse),
        1 => Just(Step::LoseAnswer),
        4 => Just(Step::Durable),
        1 => Just(Step::Move),
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
    /// How many batches of the log are durable.
    durable: usize,
    /// Answers waiting for durability: the batch, the log length it needs, whether the
    /// answer will be lost.
    waiting: VecDeque<(usize, usize, bool)>,
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
                let header = test_batch(42, 0, sequence, count);
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
            durable: 0,
            waiting: VecDeque::new(),
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
        let lose = matches!(step, Step::LoseAnswer);
        match self.states.check(&header) {
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
                self.waiting.push_back((batch, self.log.len(), lose));
                self.history.push(format!("{batch}: appended"));
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
                // Answered once the original is durable.
                let position = self.log.iter().position(|b| *b == batch).unwrap_or(0);
                self.waiting.push_back((batch, position + 1, lose));
                self.history.push(format!("{batch}: duplicate"));
            }
            Err(
                error @ (SequenceError::AfterRefused { .. }
                | SequenceError::GapAfterRecovery { .. }),
            ) => {
                self.retry.insert(batch);
                self.draining = true;
                self.history.push(format!("{batch}: {error}"));
            }
            Err(error) => {
                return Err(TestCaseError::fail(format!(
                    "batch {batch}: {error}; history: {:?}",
                    self.history
                )))
            }
        }
        Ok(())
    }

    /// The oldest appended batch becomes durable; the answers it releases go out.
    fn make_durable(&mut self) {
        if self.durable < self.log.len() {
            self.durable += 1;
        }
        while let Some(&(batch, needs, lose)) = self.waiting.front() {
            if needs > self.durable {
                break;
            }
            self.waiting.pop_front();
            if lose {
                self.retry.insert(batch);
                self.draining = true;
                self.history.push(format!("{batch}: durable, answer lost"));
            } else {
                self.acked[batch] = true;
                self.history.push(format!("{batch}: acknowledged"));
            }
        }
    }

    /// A new engine takes the partition over: what was not durable is gone, its requests fail
    /// retriably, and producer state is rebuilt from the durable log.
    fn move_partition(&mut self) {
        for (batch, _, _) in self.waiting.drain(..) {
            self.retry.insert(batch);
            self.draining = true;
        }
        for batch in self.log.drain(self.durable..) {
            self.offsets[batch] = None;
        }
        self.next_offset = self
            .log
            .last()
            .and_then(|b| self.offsets[*b])
            .map_or(0, |(_, last)| last + 1);
        let mut states = ProducerStates::default();
        for batch in &self.log {
            let (base, _) = self.offsets[*batch].expect("a durable batch has offsets");
            states.record(&self.headers[*batch], base);
        }
        states.mark_restored();
        self.states = states;
        self.history
            .push(format!("moved with {} durable", self.durable));
    }

    /// Runs until every batch is acknowledged, with nothing refused or lost.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10 * self.headers.len() + 100 {
            if self.acked.iter().all(|a| *a) {
                return Ok(());
            }
            if !self.waiting.is_empty() {
                self.make_durable();
            } else if self.wire.is_empty() {
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
        if first_sequence != 0 {
            // A producer far into its sequences wrote its first batch here before.
            trial.send();
            trial.deliver(Step::Deliver)?;
            trial.make_durable();
        }
        for step in steps {
            match step {
                Step::Send => trial.send(),
                Step::Durable => trial.make_durable(),
                Step::Move => trial.move_partition(),
                other => trial.deliver(other)?,
            }
        }
        trial.finish()?;
        prop_assert_eq!(trial.log, (0..counts.len()).collect::<Vec<_>>());
    }
}
