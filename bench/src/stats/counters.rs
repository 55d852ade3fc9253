//! Event counters shared by the worker threads, and snapshots to subtract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Counts since the start of the run. Relaxed atomics: each counter is independent and
/// read only for rates, never to order other memory.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub acked_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    /// Records dropped from the client's queue at the end of a run that could not keep up.
    pub purged: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub consume_errors: AtomicU64,
    pub catch_up_records: AtomicU64,
    pub catch_up_bytes: AtomicU64,
    /// The first error of each kind, for the report.
    first_errors: Mutex<Vec<String>>,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    pub sent: u64,
    pub acked: u64,
    pub acked_bytes: u64,
    pub produce_errors: u64,
    pub purged: u64,
    pub consumed: u64,
    pub consumed_bytes: u64,
    pub consume_errors: u64,
    pub catch_up_records: u64,
    pub catch_up_bytes: u64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            sent: get(&self.sent),
            acked: get(&self.acked),
            acked_bytes: get(&self.acked_bytes),
            produce_errors: get(&self.produce_errors),
            purged: get(&self.purged),
            consumed: get(&self.consumed),
            consumed_bytes: get(&self.consumed_bytes),
            consume_errors: get(&self.consume_errors),
            catch_up_records: get(&self.catch_up_records),
            catch_up_bytes: get(&self.catch_up_bytes),
        }
    }

    /// Remembers an error message the first time one of its kind (text before the first
    /// colon) is seen, so a report can say *what* failed without repeating it a million times.
    pub fn note_error(&self, message: String) {
        let mut seen = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        let kind = message.split(':').next().unwrap_or_default().to_string();
        if seen.len() < 20
            && !seen
                .iter()
                .any(|m| m.split(':').next() == Some(kind.as_str()))
        {
            tracing::warn!("{message}");
            seen.push(message);
        }
    }

    /// The distinct errors noted.
    pub fn errors(&self) -> Vec<String> {
        self.first_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl std::ops::Sub for CounterSnapshot {
    type Output = CounterSnapshot;
    fn sub(self, earlier: CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            sent: self.sent.saturating_sub(earlier.sent),
            acked: self.acked.saturating_sub(earlier.acked),
            acked_bytes: self.acked_bytes.saturating_sub(earlier.acked_bytes),
            produce_errors: self.produce_errors.saturating_sub(earlier.produce_errors),
            purged: self.purged.saturating_sub(earlier.purged),
            consumed: self.consumed.saturating_sub(earlier.consumed),
            consumed_bytes: self.consumed_bytes.saturating_sub(earlier.consumed_bytes),
            consume_errors: self.consume_errors.saturating_sub(earlier.consume_errors),
            catch_up_records: self
                .catch_up_records
                .saturating_sub(earlier.catch_up_records),
            catch_up_bytes: self.catch_up_bytes.saturating_sub(earlier.catch_up_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_subtract_and_errors_are_kept_once_per_kind() {
        let counters = Counters::default();
        Counters::add(&counters.acked, 5);
        let first = counters.snapshot();
        Counters::add(&counters.acked, 7);
        Counters::add(&counters.acked_bytes, 70);
        let delta = counters.snapshot() - first;
        assert_eq!(delta.acked, 7);
        assert_eq!(delta.acked_bytes, 70);
        assert_eq!(first - counters.snapshot(), CounterSnapshot::default());

        counters.note_error("delivery failed: timed out".into());
        counters.note_error("delivery failed: timed out again".into());
        counters.note_error("consume failed: broker down".into());
        assert_eq!(counters.errors().len(), 2);
    }
}
