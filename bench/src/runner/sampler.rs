//! Once-a-second samples of the run: the timeline behind the plots, and the progress line.

use hdrhistogram::Histogram;

use crate::clock::now_ns;
use crate::report::TimelinePoint;
use crate::stats::{merge, new_histogram, CounterSnapshot, Metrics, Percentiles};

/// Intervals shorter than this are folded into the next sample (their rates would be noise).
const MIN_INTERVAL_NS: u64 = 50_000_000;

/// Takes samples and keeps the timeline.
pub struct Sampler<'a> {
    metrics: &'a Metrics,
    start_ns: u64,
    last_ns: u64,
    last: CounterSnapshot,
    progress: bool,
    /// Produce latencies acknowledged since the current phase began (by acknowledgement
    /// time): what a max-throughput step is judged on while its stragglers are in flight.
    window: Histogram<u64>,
    points: Vec<TimelinePoint>,
}

impl<'a> Sampler<'a> {
    /// Starts the timeline now; `progress` prints a line per sample.
    pub fn new(metrics: &'a Metrics, progress: bool) -> Self {
        // Whatever was recorded before the run started is not part of the timeline.
        metrics.produce.take_interval();
        metrics.end_to_end.take_interval();
        let now = now_ns();
        Sampler {
            metrics,
            start_ns: now,
            last_ns: now,
            last: metrics.counters.snapshot(),
            progress,
            window: new_histogram(),
            points: Vec::new(),
        }
    }

    /// Samples the interval since the previous sample, attributed to `phase`.
    pub fn sample(&mut self, phase: &str) {
        let now = now_ns();
        let elapsed_ns = now.saturating_sub(self.last_ns);
        if elapsed_ns < MIN_INTERVAL_NS {
            return;
        }
        let seconds = elapsed_ns as f64 / 1e9;
        let counters = self.metrics.counters.snapshot();
        let delta = counters - self.last;
        let produce = self.metrics.produce.take_interval();
        let e2e = self.metrics.end_to_end.take_interval();
        merge(&mut self.window, &produce);
        let produce = Percentiles::from_histogram(&produce);
        let e2e = Percentiles::from_histogram(&e2e);
        let rate = |n: u64| n as f64 / seconds;
        let mb = |n: u64| n as f64 / 1e6 / seconds;
        let point = TimelinePoint {
            t_s: (now - self.start_ns) as f64 / 1e9,
            phase: phase.to_string(),
            sent_per_s: rate(delta.sent),
            acked_per_s: rate(delta.acked),
            acked_mb_per_s: mb(delta.acked_bytes),
            produce_p50_ms: produce.map(|p| p.p50_ms),
            produce_p99_ms: produce.map(|p| p.p99_ms),
            produce_p99_9_ms: produce.map(|p| p.p99_9_ms),
            produce_max_ms: produce.map(|p| p.max_ms),
            consumed_per_s: rate(delta.consumed),
            consumed_mb_per_s: mb(delta.consumed_bytes),
            e2e_p50_ms: e2e.map(|p| p.p50_ms),
            e2e_p99_ms: e2e.map(|p| p.p99_ms),
            e2e_p99_9_ms: e2e.map(|p| p.p99_9_ms),
            e2e_max_ms: e2e.map(|p| p.max_ms),
            catch_up_per_s: rate(delta.catch_up_records),
            catch_up_mb_per_s: mb(delta.catch_up_bytes),
        };
        if self.progress {
            println!("{}", progress_line(&point));
        }
        self.points.push(point);
        self.last = counters;
        self.last_ns = now;
    }

    /// Starts a new judging window (at a phase boundary).
    pub fn reset_window(&mut self) {
        self.window.reset();
    }

    /// p99 of the current window, milliseconds.
    pub fn window_p99_ms(&self) -> Option<f64> {
        Percentiles::from_histogram(&self.window).map(|p| p.p99_ms)
    }

    /// The timeline so far.
    pub fn into_points(self) -> Vec<TimelinePoint> {
        self.points
    }
}

/// One line per second, for a person watching a terminal.
fn progress_line(p: &TimelinePoint) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let mut line = format!(
        "{:>6.1}s {:<9} sent {:>7.0}/s acked {:>7.0}/s {:>7.2} MB/s  produce p50 {} p99 {} ms",
        p.t_s,
        p.phase,
        p.sent_per_s,
        p.acked_per_s,
        p.acked_mb_per_s,
        ms(p.produce_p50_ms),
        ms(p.produce_p99_ms)
    );
    if p.consumed_per_s > 0.0 {
        line.push_str(&format!(
            " | e2e p50 {} p99 {} ms",
            ms(p.e2e_p50_ms),
            ms(p.e2e_p99_ms)
        ));
    }
    if p.catch_up_per_s > 0.0 {
        line.push_str(&format!(" | catch-up {:.1} MB/s", p.catch_up_mb_per_s));
    }
    line
}
