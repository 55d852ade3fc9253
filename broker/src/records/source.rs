//! Where record bytes come from: the batch itself, or a capped decompressing stream.

use std::io::Read;

use bytes::Bytes;

use super::error::RecordError;

/// Read buffer of a stream source; also the most a capped stream can overshoot its cap by.
const STREAM_BUFFER: usize = 16 << 10;
/// A value copied out of a stream starts with at most this much room and grows as bytes arrive,
/// so a declared length never becomes an allocation by itself.
const INITIAL_VALUE_CAPACITY: usize = 64 << 10;

/// Sequential access to record bytes.
pub(crate) trait Source {
    /// The next byte; [`RecordError::Truncated`] naming `field` at the end.
    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError>;
    /// Skips `n` bytes.
    fn skip(&mut self, n: usize, field: &'static str) -> Result<(), RecordError>;
    /// The next `n` bytes.
    fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, RecordError>;
    /// True when no byte is left.
    fn at_end(&mut self) -> Result<bool, RecordError>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
}

/// The records of an uncompressed batch: every operation is O(1) but reading a byte.
pub(crate) struct SliceSource {
    data: Bytes,
    at: usize,
}

impl SliceSource {
    pub(crate) fn new(data: Bytes) -> Self {
        Self { data, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }
}

impl Source for SliceSource {
    #[inline]
    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError> {
        let byte = *self
            .data
            .get(self.at)
            .ok_or(RecordError::Truncated(field))?;
        self.at += 1;
        Ok(byte)
    }

    fn skip(&mut self, n: usize, field: &'static str) -> Result<(), RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated(field));
        }
        self.at += n;
        Ok(())
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated(field));
        }
        let bytes = self.data.slice(self.at..self.at + n);
        self.at += n;
        Ok(bytes)
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        Ok(self.remaining() == 0)
    }

    fn position(&self) -> u64 {
        self.at as u64
    }
}

/// Decompressed records, read through a small buffer; fails once more than `cap` bytes came out.
pub(crate) struct StreamSource {
    inner: Box<dyn Read + Send>,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    produced: u64,
    cap: u64,
    consumed: u64,
}

impl StreamSource {
    pub(crate) fn new(inner: Box<dyn Read + Send>, cap: u64) -> Self {
        Self {
            inner,
            buffer: vec![0; STREAM_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            produced: 0,
            cap,
            consumed: 0,
        }
    }

    /// Bytes the decompressor has produced so far.
    pub(crate) fn produced(&self) -> u64 {
        self.produced
    }

    /// Makes sure the buffer holds a byte; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, RecordError> {
        if self.start < self.end {
            return Ok(true);
        }
        let n = loop {
            match self.inner.read(&mut self.buffer) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RecordError::from_io(e)),
            }
        };
        self.produced += n as u64;
        if self.produced > self.cap {
            return Err(RecordError::TooLarge(self.cap));
        }
        self.start = 0;
        self.end = n;
        Ok(n > 0)
    }

    /// Consumes up to `n` buffered bytes (at least one unless the stream ended), returning them.
    fn chunk(&mut self, n: usize, field: &'static str) -> Result<&[u8], RecordError> {
        if !self.fill()? {
            return Err(RecordError::Truncated(field));
        }
        let len = n.min(self.end - self.start);
        let at = self.start;
        self.start += len;
        self.consumed += len as u64;
        Ok(&self.buffer[at..at + len])
    }
}

impl Source for StreamSource {
    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError> {
        Ok(self.chunk(1, field)?[0])
    }

    fn skip(&mut self, mut n: usize, field: &'static str) -> Result<(), RecordError> {
        while n > 0 {
            n -= self.chunk(n, field)?.len();
        }
        Ok(())
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, RecordError> {
        let mut out = Vec::with_capacity(n.min(INITIAL_VALUE_CAPACITY));
        while out.len() < n {
            let want = n - out.len();
            out.extend_from_slice(self.chunk(want, field)?);
        }
        Ok(Bytes::from(out))
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        Ok(!self.fill()?)
    }

    fn position(&self) -> u64 {
        self.consumed
    }
}
