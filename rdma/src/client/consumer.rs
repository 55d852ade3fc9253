//! Fetching by one-sided READ from the broker's cache, with detection of reads that raced
//! with the reuse of a block.

use std::sync::atomic::{fence, Ordering};

use crate::client::batch::{split_batches, Batch};
use crate::client::Session;
use crate::control::{BatchLocation, RegionRole, Request, Response};
use crate::RdmaError;

/// READ attempts of one poll before it falls back to a copy over the control channel.
const ATTEMPTS: u32 = 3;

/// What a consumer did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Batches read one-sided from the cache.
    pub read_batches: u64,
    /// Reads thrown away because the block was reused or the CRC failed.
    pub torn_reads: u64,
    /// Polls answered by a copy over the control channel (not hot, or too many races).
    pub copied_polls: u64,
}

/// Reads one partition from an offset on.
pub struct Consumer<'a> {
    session: &'a Session,
    topic: String,
    partition: i32,
    offset: i64,
    stats: ConsumerStats,
}

impl<'a> Consumer<'a> {
    /// A consumer of `topic`/`partition` starting at `offset`.
    pub fn new(session: &'a Session, topic: &str, partition: i32, offset: i64) -> Self {
        Consumer {
            session,
            topic: topic.to_string(),
            partition,
            offset,
            stats: ConsumerStats::default(),
        }
    }

    /// The next offset it will read.
    pub fn position(&self) -> i64 {
        self.offset
    }

    /// What it did so far.
    pub fn stats(&self) -> ConsumerStats {
        self.stats
    }

    /// The next batches (up to about `max_bytes`; at least one if any is there), or none when
    /// the consumer is at the end of the durable log. Wrong bytes are never returned: every
    /// batch passed the generation check and its CRC-32C.
    pub fn poll(&mut self, max_bytes: u32) -> Result<Vec<Batch>, RdmaError> {
        for _ in 0..ATTEMPTS {
            let located = self.session.call(&Request::Locate {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.offset,
                max_bytes,
            })?;
            let (batches, hot) = match located.0 {
                Response::Located { batches, hot, .. } => (batches, hot),
                other => return Err(unexpected(other)),
            };
            if !hot {
                break;
            }
            match self.read_all(&batches)? {
                Some(read) => return Ok(self.advance(read)),
                None => self.stats.torn_reads += 1,
            }
        }
        self.stats.copied_polls += 1;
        let (response, binary) = self.session.call(&Request::Fetch {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            max_bytes,
        })?;
        match response {
            Response::Fetched { .. } => Ok(self.advance(split_batches(&binary)?)),
            other => Err(unexpected(other)),
        }
    }

    /// READs every located batch; `None` if any of them raced with reuse.
    fn read_all(&mut self, located: &[BatchLocation]) -> Result<Option<Vec<Batch>>, RdmaError> {
        let cache = self.session.region(RegionRole::Cache)?;
        let generations = self.session.region(RegionRole::Generations)?;
        let endpoint = self.session.endpoint();
        let mut out = Vec::with_capacity(located.len());
        for at in located {
            let mut bytes = vec![0u8; at.len as usize];
            endpoint.read(cache.id, at.position, &mut bytes)?;
            // Seqlock read side: the copy, then the generation. The broker publishes a new
            // generation before it writes anything into a reused block.
            fence(Ordering::SeqCst);
            let mut word = [0u8; 8];
            endpoint.read(generations.id, u64::from(at.block) * 8, &mut word)?;
            match validate(at, bytes, u64::from_ne_bytes(word)) {
                Some(batch) => out.push(batch),
                None => return Ok(None),
            }
        }
        self.stats.read_batches += out.len() as u64;
        Ok(Some(out))
    }

    fn advance(&mut self, batches: Vec<Batch>) -> Vec<Batch> {
        if let Some(last) = batches.last() {
            self.offset = last.last_offset + 1;
        }
        batches
    }
}

/// The batch READ at `at`, if it is whole: its block still at the located generation after
/// the copy (`generation_after`), its CRC-32C right, and its base offset the one located.
fn validate(at: &BatchLocation, bytes: Vec<u8>, generation_after: u64) -> Option<Batch> {
    if generation_after != at.generation {
        return None;
    }
    Batch::parse(bytes)
        .ok()
        .filter(|batch| batch.base_offset == at.base_offset)
}

fn unexpected(response: Response) -> RdmaError {
    RdmaError::Protocol(format!("unexpected response {response:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch header with `records` offsets from `base`, empty body, CRC filled in.
    fn batch(base: i64) -> Vec<u8> {
        let mut b = vec![0u8; 61];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&49u32.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&4i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn at(base: i64, generation: u64) -> BatchLocation {
        BatchLocation {
            position: 0,
            len: 61,
            block: 0,
            generation,
            base_offset: base,
            last_offset: base + 4,
        }
    }

    #[test]
    fn a_read_that_raced_with_reuse_is_never_returned() {
        assert_eq!(validate(&at(10, 3), batch(10), 3).unwrap().last_offset, 14);
        assert!(
            validate(&at(10, 3), batch(10), 4).is_none(),
            "block reused after locate"
        );
        let mut torn = batch(10);
        torn[40] ^= 1;
        assert!(
            validate(&at(10, 3), torn, 3).is_none(),
            "torn copy fails the CRC"
        );
        assert!(
            validate(&at(10, 3), batch(99), 3).is_none(),
            "another batch now sits there"
        );
        assert!(validate(&at(10, 3), batch(10)[..30].to_vec(), 3).is_none());
    }
}
