//! The owner's own path to words that peers change with NIC atomics.
//!
//! On most NICs (`IBV_ATOMIC_HCA`) an atomic is atomic among the NIC's operations only: a CPU
//! store by the host that lands inside a peer's FETCH_AND_ADD is lost (see [`crate::words`]).
//! So the broker changes an offset slot that a session holds through the NIC as well: a queue
//! pair connected to a second queue pair of its own, and a type-2 memory window on the whole
//! region bound through that second queue pair (so only the loopback can use it), with a READ
//! and one FETCH_AND_ADD of the difference.

use std::sync::Arc;

use super::{Device, MemoryRegion, MemoryWindow, QueuePair, VerbsEndpoint};
use crate::{words, Access, Grant, RdmaError, RegionId, RemoteRegion};

/// The region's id on the loopback endpoint (its only one).
const REGION: RegionId = RegionId(0);

/// A loopback connection through which the host changes words of one registered region.
pub struct Loopback {
    // Dropped in this order: the endpoint (and its queue pair), then the window, then the
    // queue pair it was bound through.
    endpoint: VerbsEndpoint,
    _window: MemoryWindow,
    _target: Option<QueuePair>,
}

impl Loopback {
    /// Connects two queue pairs of `device` to each other and binds READ and ATOMIC on all of
    /// `region` (registered with windows allowed) for the first alone.
    pub fn open(device: &Arc<Device>, region: &Arc<MemoryRegion>) -> Result<Self, RdmaError> {
        let mut target = device.queue_pair()?;
        let initiator = device.queue_pair()?;
        target.connect(&initiator.address())?;
        let endpoint = VerbsEndpoint::connect(initiator, &target.address(), 64)?;
        let len = region.len() as u64;
        let window = target.bind_window(region, 0, len, Access::READ | Access::ATOMIC)?;
        Ok(Self::over(endpoint, window, Some(target), len))
    }

    /// A loopback over an endpoint whose peer bound `window` on the whole region of `len`
    /// bytes.
    pub(super) fn over(
        endpoint: VerbsEndpoint,
        window: MemoryWindow,
        target: Option<QueuePair>,
        len: u64,
    ) -> Self {
        endpoint.add_region(
            RemoteRegion {
                id: REGION,
                len,
                access: Access::empty(),
            },
            None,
        );
        let grant = Grant {
            region: REGION,
            start: 0,
            len,
            access: Access::READ | Access::ATOMIC,
        };
        endpoint.grant_window(grant, window.key());
        Loopback {
            endpoint,
            _window: window,
            _target: target,
        }
    }

    /// Stores `value` in the 8-byte word at `offset` through the NIC's atomic unit (two
    /// operations, see [`words::store_word`]); returns the value replaced and the value left
    /// (`value` plus any fetch-and-add that raced it).
    pub fn store(&self, offset: u64, value: u64) -> Result<(u64, u64), RdmaError> {
        words::store_word(&self.endpoint, REGION, offset, value)
    }

    /// The word at `offset`, read through the NIC.
    pub fn read(&self, offset: u64) -> Result<u64, RdmaError> {
        words::read_word(&self.endpoint, REGION, offset)
    }
}
