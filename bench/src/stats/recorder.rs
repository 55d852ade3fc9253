//! A latency recorder shared by worker threads: one histogram per phase plus an interval
//! histogram that the once-a-second sampler takes and replaces.

use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::percentiles::new_histogram;

/// Latencies of one kind (produce or end-to-end).
pub struct LatencyRecorder {
    inner: Mutex<Inner>,
}

struct Inner {
    /// By the phase the record was *sent* in (from its stamp), so the slow tail of a phase
    /// that is acknowledged after the phase ended still counts for that phase.
    phases: Vec<Histogram<u64>>,
    /// Everything recorded since the sampler last took it, whatever the phase.
    interval: Histogram<u64>,
}

impl LatencyRecorder {
    /// A recorder for `phases` phases.
    pub fn new(phases: usize) -> Self {
        LatencyRecorder {
            inner: Mutex::new(Inner {
                phases: (0..phases).map(|_| new_histogram()).collect(),
                interval: new_histogram(),
            }),
        }
    }

    /// Records one latency of a record sent in `phase`. Phases past the end (the backlog
    /// pre-fill) go to the interval histogram only.
    pub fn record(&self, phase: u8, latency_ns: u64) {
        // Microseconds, at least 1: the histogram's lowest trackable value.
        let micros = (latency_ns / 1_000).max(1);
        let mut inner = self.lock();
        if let Some(histogram) = inner.phases.get_mut(usize::from(phase)) {
            histogram.saturating_record(micros);
        }
        inner.interval.saturating_record(micros);
    }

    /// Takes the interval histogram, leaving an empty one.
    pub fn take_interval(&self) -> Histogram<u64> {
        let mut inner = self.lock();
        let mut taken = new_histogram();
        std::mem::swap(&mut taken, &mut inner.interval);
        taken
    }

    /// A copy of one phase's histogram (empty if there is no such phase).
    pub fn phase(&self, phase: usize) -> Histogram<u64> {
        self.lock()
            .phases
            .get(phase)
            .cloned()
            .unwrap_or_else(new_histogram)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A worker that panicked mid-record leaves a histogram that is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_go_to_their_phase_and_the_interval() {
        let recorder = LatencyRecorder::new(2);
        recorder.record(0, 1_500_000);
        recorder.record(1, 3_000_000);
        recorder.record(1, 500);
        recorder.record(9, 7_000_000); // pre-fill: interval only
        assert_eq!(recorder.phase(0).len(), 1);
        assert_eq!(recorder.phase(1).len(), 2);
        assert_eq!(
            recorder.phase(1).min(),
            1,
            "sub-microsecond rounds up to 1us"
        );
        assert_eq!(recorder.phase(5).len(), 0);
        let interval = recorder.take_interval();
        assert_eq!(interval.len(), 4);
        assert_eq!(recorder.take_interval().len(), 0);
        assert_eq!(
            recorder.phase(1).len(),
            2,
            "taking the interval leaves phases alone"
        );
    }
}
