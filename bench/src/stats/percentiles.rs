//! Percentile summaries of latency histograms.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency tracked exactly: one hour, in microseconds. Longer ones are clamped.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// An empty histogram of microseconds, 3 significant digits (0.1% resolution).
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5):
    // this cannot fail whatever the input.
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("constant histogram bounds are valid")
}

/// Adds `from` into `into`. Both come from [`new_histogram`], so their ranges agree and the
/// addition cannot overflow them; should it fail anyway, the interval is dropped, not the run.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(e) = into.add(from) {
        tracing::warn!("dropping a latency interval that did not fit: {e:?}");
    }
}

/// The percentiles every report shows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub p99_99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarises a histogram of microseconds; `None` if it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Some(Percentiles {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p99_9_ms: ms(h.value_at_quantile(0.999)),
            p99_99_ms: ms(h.value_at_quantile(0.9999)),
            max_ms: ms(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.002
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = new_histogram();
        for us in 1..=10_000 {
            h.record(us).unwrap();
        }
        let p = Percentiles::from_histogram(&h).unwrap();
        assert_eq!(p.count, 10_000);
        assert!(close(p.p50_ms, 5.0), "{p:?}");
        assert!(close(p.p90_ms, 9.0), "{p:?}");
        assert!(close(p.p99_ms, 9.9), "{p:?}");
        assert!(close(p.p99_9_ms, 9.99), "{p:?}");
        assert!(close(p.max_ms, 10.0), "{p:?}");
        assert!(close(p.mean_ms, 5.0005), "{p:?}");
        assert_eq!(p.min_ms, 0.001);
    }

    #[test]
    fn rare_slow_outliers_show_only_in_the_far_tail() {
        let mut h = new_histogram();
        // Two in 10,000 (0.02%) are slow: p99.9 does not see them, p99.99 does.
        h.record_n(1_000, 9_998).unwrap();
        h.record_n(500_000, 2).unwrap();
        let p = Percentiles::from_histogram(&h).unwrap();
        assert!(close(p.p99_9_ms, 1.0), "{p:?}");
        assert!(close(p.p99_99_ms, 500.0), "{p:?}");
        assert!(close(p.max_ms, 500.0), "{p:?}");
    }

    #[test]
    fn empty_histograms_have_no_percentiles_and_huge_values_are_clamped() {
        assert_eq!(Percentiles::from_histogram(&new_histogram()), None);
        let mut h = new_histogram();
        h.saturating_record(u64::MAX);
        assert!(Percentiles::from_histogram(&h).unwrap().max_ms >= 3_600_000.0);
    }
}
