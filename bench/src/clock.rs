//! One monotonic clock for the whole process: send stamps, delivery reports and consumer
//! receipts are all nanoseconds since the same instant, so producer and consumer threads can
//! subtract each other's readings without trusting the wall clock.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    let base = BASE.get_or_init(Instant::now);
    // u64 nanoseconds last 584 years; the stamp keeps 56 bits (2.2 years), see payload.rs.
    base.elapsed().as_nanos() as u64
}
