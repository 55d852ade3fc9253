//! One memory budget for the record bytes of all fetch responses in flight.
//!
//! Every fetch charges the bytes it returns before it reads them and keeps the charge until its
//! response frame has been handed to the socket, so however many clients fetch at once, the
//! responses held together stay within `fetch_memory_mib` (plus at most one oversized first
//! batch per fetch, which Kafka's rules require so a consumer always progresses).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Reply;

/// The budget is counted in KiB so that a large one fits the semaphore's permit count.
const UNIT: usize = 1024;

/// Shared by every connection.
pub struct FetchBudget {
    units: Arc<Semaphore>,
    total_units: usize,
}

/// Bytes charged to the budget; given back when dropped.
#[derive(Default)]
pub struct Held {
    units: Option<Arc<Semaphore>>,
    count: usize,
}

impl FetchBudget {
    /// A budget of `mib` MiB.
    pub fn new(mib: usize) -> Self {
        let total_units = mib
            .saturating_mul(1 << 20)
            .div_ceil(UNIT)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            units: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// The whole budget in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_units.saturating_mul(UNIT)
    }

    /// Charges `bytes` (at most the whole budget) to `held` if they are free now.
    pub fn try_charge(&self, held: &mut Held, bytes: usize) -> bool {
        let units = self.units_for(bytes);
        let Ok(units) = u32::try_from(units) else {
            return false;
        };
        match self.units.clone().try_acquire_many_owned(units) {
            Ok(permit) => {
                permit.forget();
                held.add(&self.units, units as usize);
                true
            }
            Err(_) => false,
        }
    }

    /// Charges `bytes` (at most the whole budget) to `held`, waiting until `deadline` for them
    /// to be given back by other fetches. False if the deadline passed first.
    pub async fn charge(&self, held: &mut Held, bytes: usize, deadline: Instant) -> bool {
        let units = self.units_for(bytes);
        let Ok(units) = u32::try_from(units) else {
            return false;
        };
        let acquire = self.units.clone().acquire_many_owned(units);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => {
                permit.forget();
                held.add(&self.units, units as usize);
                true
            }
            _ => false,
        }
    }

    fn units_for(&self, bytes: usize) -> usize {
        bytes.div_ceil(UNIT).clamp(1, self.total_units)
    }
}

impl Held {
    fn add(&mut self, units: &Arc<Semaphore>, count: usize) {
        self.units.get_or_insert_with(|| units.clone());
        self.count += count;
    }

    /// Bytes charged.
    pub fn bytes(&self) -> usize {
        self.count * UNIT
    }

    /// Gives back what is charged beyond `bytes` (rounded up to the unit).
    pub fn keep(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).min(self.count);
        if let Some(units) = &self.units {
            units.add_permits(self.count - keep);
        }
        self.count = keep;
    }

    /// Moves `other`'s charge into this one.
    pub fn absorb(&mut self, mut other: Held) {
        if let Some(units) = other.units.take() {
            self.add(&units, other.count);
            other.count = 0;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(units) = &self.units {
            units.add_permits(self.count);
        }
    }
}

/// A response frame that keeps its fetch's charge until the connection has written it.
struct HeldFrame {
    frame: Bytes,
    _held: Held,
}

impl AsRef<[u8]> for HeldFrame {
    fn as_ref(&self) -> &[u8] {
        &self.frame
    }
}

/// Ties `held` to the reply's frame, so the charge ends when the frame is dropped.
pub fn attach(reply: Reply, held: Held) -> Reply {
    match reply {
        Reply::Frame(frame) if held.count > 0 => {
            Reply::Frame(Bytes::from_owner(HeldFrame { frame, _held: held }))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_are_bounded_and_given_back() {
        let budget = FetchBudget::new(1);
        let mut a = Held::default();
        assert!(budget.try_charge(&mut a, 700 << 10));
        let mut b = Held::default();
        assert!(!budget.try_charge(&mut b, 400 << 10), "over the budget");
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert!(!budget.charge(&mut b, 400 << 10, soon).await);
        a.keep(100 << 10);
        assert_eq!(a.bytes(), 100 << 10);
        assert!(budget.try_charge(&mut b, 400 << 10));
        drop(a);
        drop(b);
        let mut all = Held::default();
        assert!(
            budget.try_charge(&mut all, usize::MAX),
            "clamped to the whole budget"
        );
        assert_eq!(all.bytes(), 1 << 20);
    }

    #[test]
    fn an_attached_charge_lasts_as_long_as_the_frame() {
        let budget = FetchBudget::new(1);
        let mut held = Held::default();
        assert!(budget.try_charge(&mut held, 1 << 20));
        let Reply::Frame(frame) = attach(Reply::Frame(Bytes::from_static(b"abc")), held) else {
            panic!("a frame stays a frame");
        };
        assert_eq!(&frame[..], b"abc");
        assert!(!budget.try_charge(&mut Held::default(), 1));
        drop(frame);
        assert!(budget.try_charge(&mut Held::default(), 1 << 20));
    }
}
