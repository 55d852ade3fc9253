//! Producing by one-sided WRITE into the session's staging ring, then a notification.

use std::time::Duration;

use crate::client::Session;
use crate::control::{RegionRole, Request, Response};
use crate::shm::{RING_ALIGN, RING_HEAD, RING_HEADER, RING_TAIL};
use crate::{words, RdmaError};

/// Produces record batches through one session's ring. One producer per session: its sends
/// are strictly in order, which is what lets the broker release ring space in order.
pub struct Producer<'a> {
    session: &'a Session,
}

impl<'a> Producer<'a> {
    /// The producer of `session`.
    pub fn new(session: &'a Session) -> Self {
        Producer { session }
    }

    /// Appends one Kafka v2 record batch (offsets are assigned by the broker) to
    /// `topic`/`partition`: reserves ring space with FETCH_AND_ADD, WRITEs the batch, then
    /// notifies the broker, which validates and appends it as a TCP produce and answers after
    /// the durability `acks` asks for. Returns the base offset given.
    pub fn send(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &[u8],
        acks: i16,
    ) -> Result<i64, RdmaError> {
        let ring = self.session.region(RegionRole::Ring)?;
        let capacity = self.session.ring_capacity();
        let len = u32::try_from(batch.len())
            .map_err(|_| RdmaError::LocalLength("batch over 4 GiB".into()))?;
        let rounded = u64::from(len).div_ceil(RING_ALIGN) * RING_ALIGN;
        if rounded == 0 || rounded > capacity {
            return Err(RdmaError::LocalLength(format!(
                "a batch of {len} bytes does not fit a ring of {capacity}"
            )));
        }
        let endpoint = self.session.endpoint();
        let head = endpoint.fetch_add(ring.id, RING_HEAD, rounded)?;
        // Wait until the broker has released enough of what was reserved before.
        loop {
            // READ, not FETCH_AND_ADD of 0, which would write back a stale tail over the
            // broker's release (see `crate::words`).
            let tail = words::read_word(endpoint, ring.id, RING_TAIL)?;
            if head + rounded - tail <= capacity {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let position = head % capacity;
        let first = (capacity - position).min(u64::from(len)) as usize;
        endpoint.write(ring.id, RING_HEADER + position, &batch[..first])?;
        if first < batch.len() {
            endpoint.write(ring.id, RING_HEADER, &batch[first..])?;
        }
        let (response, _) = self.session.call(&Request::Produce {
            topic: topic.to_string(),
            partition,
            position,
            len,
            acks,
        })?;
        match response {
            Response::Produced {
                base_offset,
                error_code: 0,
            } => Ok(base_offset),
            Response::Produced { error_code, .. } => Err(RdmaError::Refused(format!(
                "produce failed with Kafka error code {error_code}"
            ))),
            other => Err(RdmaError::Protocol(format!(
                "expected Produced, got {other:?}"
            ))),
        }
    }
}
