//! Pacing of catch-up reads: a byte rate that all cold reads together do not exceed.
//!
//! Bounding bytes in flight from storage keeps catch-up readers from taking the flushes'
//! storage bandwidth, but each answer they get still costs the broker CPU to send (and on a
//! small host, the very cores that serve produce requests). A rate caps that cost: a cold read
//! waits, on the cold runtime, until its bytes fit the rate, as a Kafka client quota would
//! throttle a fetch. Tailing (hot) reads are never paced.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A shared byte-rate limit for cold reads, counted in KiB.
pub struct ColdPace {
    limiter: DefaultDirectRateLimiter,
    /// One second's worth: the most that passes at once, and the largest single take.
    burst_kib: NonZeroU32,
    waited_ns: AtomicU64,
}

impl ColdPace {
    /// A limit of `mib_per_s` MiB per second; `None` for 0 (no limit).
    pub fn new(mib_per_s: usize) -> Option<Self> {
        let kib_per_s = u32::try_from(mib_per_s.saturating_mul(1024)).unwrap_or(u32::MAX);
        let burst_kib = NonZeroU32::new(kib_per_s)?;
        Some(ColdPace {
            limiter: RateLimiter::direct(Quota::per_second(burst_kib)),
            burst_kib,
            waited_ns: AtomicU64::new(0),
        })
    }

    /// Waits until `bytes` more fit the rate. An answer larger than one second's worth is
    /// charged in pieces of one second's worth (the most the limiter grants at once).
    pub async fn take(&self, bytes: usize) {
        let mut kib = u64::try_from(bytes.div_ceil(1024)).unwrap_or(u64::MAX);
        if kib == 0 {
            return;
        }
        let started = Instant::now();
        let burst = u64::from(self.burst_kib.get());
        while let Some(piece) = NonZeroU32::new(u32::try_from(kib.min(burst)).unwrap_or(u32::MAX)) {
            // Cannot fail: a piece is at most the burst size.
            let _ = self.limiter.until_n_ready(piece).await;
            kib -= u64::from(piece.get());
        }
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waited_ns.fetch_add(waited, Ordering::Relaxed);
    }

    /// Time cold reads have spent waiting for the rate, in total.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_no_limit() {
        assert!(ColdPace::new(0).is_none());
    }

    #[tokio::test]
    async fn reads_beyond_the_rate_wait_for_it() {
        let pace = ColdPace::new(1).unwrap();
        // The first second's worth passes at once.
        pace.take(1 << 20).await;
        let started = Instant::now();
        // Half a MiB more at 1 MiB/s: about half a second later, never sooner.
        pace.take(512 << 10).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(450),
            "waited only {waited:?}"
        );
        assert!(pace.waited() >= Duration::from_millis(450));
    }

    #[tokio::test]
    async fn an_answer_larger_than_a_second_is_charged_in_full() {
        let pace = ColdPace::new(1).unwrap();
        // 3 MiB at 1 MiB/s: the first MiB at once, the other two over about two seconds.
        let started = Instant::now();
        pace.take(3 << 20).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1_900),
            "waited only {waited:?}"
        );
    }

    #[tokio::test]
    async fn empty_answers_are_not_charged() {
        let pace = ColdPace::new(1).unwrap();
        pace.take(1 << 20).await;
        let before = pace.waited();
        pace.take(0).await;
        assert_eq!(pace.waited(), before, "an empty answer never waits");
    }
}
