//! Fixed-rate pacing and coordinated-omission-corrected latency.
//!
//! A fixed-rate producer has a schedule: record `n` is *meant* to be sent at
//! `start + n / rate`. If the broker (or the client's full queue) stalls the producer, the
//! records it could not send on time are still measured from their scheduled time, so a stall
//! shows up as the latency every waiting user would have seen instead of as one slow sample
//! (Gil Tene's "coordinated omission"). After a stall the producer sends the records that fell
//! due back to back until it is on schedule again.

/// The schedule of one fixed-rate producer.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    interval_ns: f64,
    issued: u64,
}

impl Pacer {
    /// A schedule of `rate` records per second starting at `start_ns`. A rate that is not
    /// positive and finite (refused by validation) is treated as one record per hour.
    pub fn new(start_ns: u64, rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0 / 3600.0
        };
        Pacer {
            start_ns,
            interval_ns: 1e9 / rate,
            issued: 0,
        }
    }

    /// When the next record is meant to be sent.
    pub fn next_intended_ns(&self) -> u64 {
        self.start_ns + (self.issued as f64 * self.interval_ns) as u64
    }

    /// Marks the next record as sent.
    pub fn advance(&mut self) {
        self.issued += 1;
    }

    /// Records sent so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Records whose intended time is at or before `now_ns` and that are not sent yet: how far
    /// behind schedule the producer is.
    pub fn due(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let scheduled = ((now_ns - self.start_ns) as f64 / self.interval_ns).floor() as u64 + 1;
        scheduled.saturating_sub(self.issued)
    }
}

/// Latency of an operation that completed at `done_ns` and was meant to start at
/// `intended_ns` (zero if the clock readings are out of order).
pub fn corrected_latency_ns(intended_ns: u64, done_ns: u64) -> u64 {
    done_ns.saturating_sub(intended_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_schedule_spaces_records_evenly() {
        let mut pacer = Pacer::new(5 * MS, 1000.0);
        let mut times = Vec::new();
        for _ in 0..4 {
            times.push(pacer.next_intended_ns());
            pacer.advance();
        }
        assert_eq!(times, [5 * MS, 6 * MS, 7 * MS, 8 * MS]);
        assert_eq!(pacer.issued(), 4);
    }

    #[test]
    fn due_counts_records_behind_schedule() {
        let mut pacer = Pacer::new(0, 1000.0);
        assert_eq!(pacer.due(0), 1, "the first record is due at the start");
        assert_eq!(pacer.due(MS / 2), 1);
        assert_eq!(pacer.due(10 * MS), 11);
        for _ in 0..11 {
            pacer.advance();
        }
        assert_eq!(pacer.due(10 * MS), 0);
        assert_eq!(
            Pacer::new(MS, 1000.0).due(0),
            0,
            "before the start nothing is due"
        );
    }

    #[test]
    fn a_stall_is_charged_to_every_record_that_waited() {
        // 1000 records/s; the producer is blocked from t=0 until t=10ms, then sends the 11
        // records that fell due back to back, each acknowledged 1ms after it was sent.
        let mut pacer = Pacer::new(0, 1000.0);
        let resume = 10 * MS;
        let mut corrected = Vec::new();
        let mut naive = Vec::new();
        while pacer.due(resume) > 0 {
            let intended = pacer.next_intended_ns();
            pacer.advance();
            let acked = resume + MS;
            corrected.push(corrected_latency_ns(intended, acked) / MS);
            naive.push(corrected_latency_ns(resume, acked) / MS);
        }
        // Corrected: the record due at 0 waited 11ms, the one due at 10ms only 1ms.
        assert_eq!(corrected, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        // Measured from the actual send the stall disappears: every sample says 1ms.
        assert!(naive.iter().all(|&l| l == 1));
    }

    #[test]
    fn nonsense_rates_do_not_divide_by_zero() {
        let pacer = Pacer::new(0, 0.0);
        assert_eq!(pacer.due(1_000 * MS), 1);
        let pacer = Pacer::new(0, f64::NAN);
        assert_eq!(pacer.next_intended_ns(), 0);
    }

    #[test]
    fn out_of_order_clock_readings_give_zero() {
        assert_eq!(corrected_latency_ns(10, 5), 0);
        assert_eq!(corrected_latency_ns(5, 10), 5);
    }
}
