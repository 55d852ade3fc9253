//! Reading request frames (a 4-byte big-endian length, then that many bytes) under a memory
//! budget shared by every connection.
//!
//! A frame's bytes are only read once the budget holds its whole length; the permit then stays
//! with the request until its response is ready. So the memory that requests take, received or
//! being served, is bounded for the whole broker (Kafka's `queued.max.request.bytes`), however
//! many clients announce large frames or send them slowly: a frame that does not fit waits,
//! its bytes left in the socket, and the client feels TCP backpressure.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Length prefix of a frame.
const HEADER_LEN: usize = 4;

/// Why no frame could be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The length prefix announced more than the broker accepts.
    #[error("frame of {0} bytes is larger than max_frame_bytes")]
    TooLarge(usize),
    /// The stream ended inside a frame, or failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Bytes of request memory, shared by all connections.
#[derive(Clone, Debug)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    /// Counts frames that had to wait for memory.
    waits: Counter,
}

impl RequestMemory {
    /// A budget of `bytes`; `waits` counts the frames that had to wait for it.
    pub fn new(bytes: usize, waits: Counter) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            waits,
        }
    }

    /// Bytes not taken by a request now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// A frame's share of the request memory, given back when dropped.
#[derive(Debug)]
pub struct FramePermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// Reads whole frames from `R`, one at a time.
pub struct FrameReader<R> {
    read: R,
    max_frame: usize,
    memory: RequestMemory,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The frame being received: its bytes so far, its length and its permit.
    body: Option<(BytesMut, usize, FramePermit)>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_frame` bytes from `read`, taking their memory from `memory`.
    pub fn new(read: R, max_frame: usize, memory: RequestMemory) -> Self {
        Self {
            read,
            max_frame,
            memory,
            header: [0; HEADER_LEN],
            header_len: 0,
            body: None,
        }
    }

    /// Bytes of the next frame received so far, its length prefix included.
    pub fn buffered(&self) -> usize {
        self.header_len + self.body.as_ref().map_or(0, |(bytes, ..)| bytes.len())
    }

    /// Whether the next frame's length is known and its memory is not: it waits for other
    /// requests to finish, not for its client.
    pub fn waiting_for_memory(&self) -> bool {
        self.header_len == HEADER_LEN && self.body.is_none()
    }

    /// The next whole frame, with its share of the request memory; `None` where the stream
    /// ends between frames. Cancel-safe: what a cancelled call read is kept for the next one.
    pub async fn next(&mut self) -> Result<Option<(Bytes, FramePermit)>, FrameError> {
        loop {
            if self.header_len < HEADER_LEN {
                let read = self.read.read(&mut self.header[self.header_len..]).await?;
                if read == 0 {
                    return match self.header_len {
                        0 => Ok(None),
                        _ => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                    };
                }
                self.header_len += read;
                continue;
            }
            let Some((bytes, len, _)) = &mut self.body else {
                let len = u32::from_be_bytes(self.header) as usize;
                if len > self.max_frame {
                    return Err(FrameError::TooLarge(len));
                }
                let permit = self.take_memory(len).await?;
                self.body = Some((BytesMut::with_capacity(len), len, permit));
                continue;
            };
            let missing = *len - bytes.len();
            if missing == 0 {
                let (bytes, _, permit) = self.body.take().expect("checked above");
                self.header_len = 0;
                return Ok(Some((bytes.freeze(), permit)));
            }
            // Only this frame's bytes: the next one is read once its memory is there.
            let read = (&mut self.read)
                .take(missing as u64)
                .read_buf(bytes)
                .await?;
            if read == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    async fn take_memory(&self, len: usize) -> io::Result<FramePermit> {
        if len == 0 {
            return Ok(FramePermit(None));
        }
        // `len` is at most max_frame_bytes, which the configuration keeps within the budget
        // (and u32::MAX, by the length prefix): the wait always ends.
        let wanted = u32::try_from(len).map_err(|_| io::Error::other("frame length"))?;
        let permits = self.memory.permits.clone();
        let permit = match permits.clone().try_acquire_many_owned(wanted) {
            Ok(permit) => permit,
            Err(_) => {
                self.memory.waits.inc();
                permits
                    .acquire_many_owned(wanted)
                    .await
                    .map_err(|_| io::Error::other("request memory closed"))?
            }
        };
        Ok(FramePermit(Some(permit)))
    }
}

#[cfg(test)]
mod tests;
