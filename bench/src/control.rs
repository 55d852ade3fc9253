//! The phase every producer thread follows, set by the run's driver.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::units::Rate;

const NOT_STARTED: usize = usize::MAX - 1;
const STOPPED: usize = usize::MAX;

/// What producers should be doing now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PhaseState {
    /// Producers are connected but wait (consumers are still joining).
    NotStarted,
    /// Produce in phase `index` at `rate` per producer.
    Running { index: usize, rate: Rate },
    /// Stop sending.
    Stopped,
}

/// Shared by the driver (writes) and producer threads (read before every record).
pub struct Control {
    phase: AtomicUsize,
    rates: Vec<Rate>,
    producers: u32,
}

impl Control {
    /// `rates` are the total rate of each phase, split evenly over `producers`.
    pub fn new(rates: Vec<Rate>, producers: u32) -> Self {
        Control {
            phase: AtomicUsize::new(NOT_STARTED),
            rates,
            producers: producers.max(1),
        }
    }

    /// Enters phase `index`.
    pub fn set_phase(&self, index: usize) {
        self.phase.store(index, Ordering::Release);
    }

    /// Tells producers to stop.
    pub fn stop(&self) {
        self.phase.store(STOPPED, Ordering::Release);
    }

    /// The current state, with the rate of one producer.
    pub fn state(&self) -> PhaseState {
        match self.phase.load(Ordering::Acquire) {
            NOT_STARTED => PhaseState::NotStarted,
            index => match self.rates.get(index) {
                Some(rate) => PhaseState::Running {
                    index,
                    rate: rate.scaled(1.0 / f64::from(self.producers)),
                },
                None => PhaseState::Stopped,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_split_over_producers_and_stop_is_final() {
        let control = Control::new(vec![Rate::Fixed(1000.0), Rate::Max], 4);
        assert_eq!(control.state(), PhaseState::NotStarted);
        control.set_phase(0);
        assert_eq!(
            control.state(),
            PhaseState::Running {
                index: 0,
                rate: Rate::Fixed(250.0)
            }
        );
        control.set_phase(1);
        assert_eq!(
            control.state(),
            PhaseState::Running {
                index: 1,
                rate: Rate::Max
            }
        );
        control.stop();
        assert_eq!(control.state(), PhaseState::Stopped);
    }
}
