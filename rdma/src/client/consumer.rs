//! Fetching by one-sided READ from the broker's cache, with detection of reads that raced
//! with the reuse of a block.
//!
//! A consumer subscribes its partition to the broker's published index once (see
//! [`crate::published`]); from then on a poll is READs alone: the high watermark word and the
//! slot's incarnation (all an idle tailing poll does), the index entries after its position, the batches they name and
//! their blocks' generations. Only what the index cannot answer (a position older than its
//! ring, a batch whose block was reused, a broker without an index) goes over the control
//! channel: `Locate`, then `Fetch` (a copy) after repeated races.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::client::batch::{split_batches, Batch};
use crate::client::Session;
use crate::control::{BatchLocation, RegionRole, Request, Response};
use crate::published::{
    self, IndexLayout, ENTRY_BYTES, HEAD, HIGH_WATERMARK, INCARNATION, LOG_START,
};
use crate::{words, RdmaError, RemoteRegion};

/// READ attempts of one poll before it falls back to a copy over the control channel.
const ATTEMPTS: u32 = 3;
/// Index entries READ at once.
const ENTRIES_PER_READ: u64 = 16;
/// How long after a refused `Subscribe` the consumer asks again.
const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);

/// What a consumer did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Batches read one-sided from the cache.
    pub read_batches: u64,
    /// Reads thrown away because the block was reused or the CRC failed.
    pub torn_reads: u64,
    /// Polls answered by a copy over the control channel (not hot, or too many races).
    pub copied_polls: u64,
    /// Polls answered from the published index by READ alone (idle ones included).
    pub published_polls: u64,
    /// Polls that asked the broker to `Locate`.
    pub located_polls: u64,
}

/// The consumer's slot in the published index.
struct Subscription {
    region: RemoteRegion,
    slot: u32,
    incarnation: u64,
    layout: IndexLayout,
    /// The publication number of the entry holding the consumer's position, once known.
    next_seq: Option<u64>,
}

/// Reads one partition from an offset on.
pub struct Consumer<'a> {
    session: &'a Session,
    topic: String,
    partition: i32,
    offset: i64,
    stats: ConsumerStats,
    subscription: Option<Subscription>,
    /// When a `Subscribe` was last refused (the topic did not exist yet, the index was full).
    refused_at: Option<Instant>,
    /// Whether it may use the published index (see [`Consumer::without_index`]).
    use_index: bool,
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
            subscription: None,
            refused_at: None,
            use_index: true,
        }
    }

    /// The same consumer, locating every batch through the control channel (`Locate`) instead
    /// of the published index: what a broker without an index gives, kept for comparisons.
    pub fn without_index(mut self) -> Self {
        self.use_index = false;
        self
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
        if let Some(batches) = self.poll_published(max_bytes)? {
            self.stats.published_polls += 1;
            return Ok(batches);
        }
        self.poll_located(max_bytes)
    }

    /// A poll by READ alone, if the published index can answer it.
    fn poll_published(&mut self, max_bytes: u32) -> Result<Option<Vec<Batch>>, RdmaError> {
        if !self.subscribed()? {
            return Ok(None);
        }
        let endpoint = self.session.endpoint();
        let Some(sub) = self.subscription.as_mut() else {
            return Ok(None);
        };
        // One word, read whole: what is durable; then the slot's incarnation, so that a
        // watermark read from a slot given to another partition since (its topic deleted) is
        // never trusted. Tailing at the end costs these two READs.
        let hw_at = sub.layout.header_word(sub.slot, HIGH_WATERMARK);
        let high_watermark = words::read_word(endpoint, sub.region.id, hw_at)? as i64;
        let incarnation_at = sub.layout.header_word(sub.slot, INCARNATION);
        if words::read_word(endpoint, sub.region.id, incarnation_at)? != sub.incarnation {
            // Subscribe again (the broker says if the partition is gone); Locate this time.
            self.subscription = None;
            return Ok(None);
        }
        if self.offset >= high_watermark {
            return Ok(Some(Vec::new()));
        }
        let log_start_at = sub.layout.header_word(sub.slot, LOG_START);
        let log_start = words::read_word(endpoint, sub.region.id, log_start_at)? as i64;
        let head_at = sub.layout.header_word(sub.slot, HEAD);
        let head = words::read_word(endpoint, sub.region.id, head_at)?;
        if self.offset < log_start {
            // Below the log start: the broker says so (OFFSET_OUT_OF_RANGE) through Locate.
            return Ok(None);
        }
        let seq = match sub.next_seq {
            Some(seq) => seq,
            None => match find(endpoint, sub, head, self.offset)? {
                Some(seq) => seq,
                None => return Ok(None),
            },
        };
        let oldest = head.saturating_sub(sub.layout.entries);
        if seq < oldest || seq >= head {
            // Overwritten (the consumer fell a ring behind), or not published yet.
            sub.next_seq = None;
            return Ok(None);
        }
        // The entries from `seq` on, up to the ring's end (one READ), that chain from the
        // consumer's position and are durable, until `max_bytes`.
        let ring_left = sub.layout.entries - seq % sub.layout.entries;
        let count = (head - seq).min(ENTRIES_PER_READ).min(ring_left);
        let mut bytes = vec![0u8; (count * ENTRY_BYTES) as usize];
        endpoint.read(
            sub.region.id,
            sub.layout.entry_offset(sub.slot, seq),
            &mut bytes,
        )?;
        let mut located = Vec::new();
        let (mut expected, mut total) = (self.offset, 0u64);
        for (i, entry) in bytes.chunks_exact(ENTRY_BYTES as usize).enumerate() {
            let Some(at) =
                published::decode_entry(sub.slot, sub.incarnation, seq + i as u64, entry)
            else {
                break;
            };
            if at.base_offset != expected || at.last_offset >= high_watermark {
                break;
            }
            expected = at.last_offset + 1;
            total += u64::from(at.len);
            located.push(at);
            if total >= u64::from(max_bytes) {
                break;
            }
        }
        if located.is_empty() {
            sub.next_seq = None;
            return Ok(None);
        }
        let count = located.len() as u64;
        match self.read_all(&located)? {
            Some(read) => {
                if let Some(sub) = self.subscription.as_mut() {
                    sub.next_seq = Some(seq + count);
                }
                Ok(Some(self.advance(read)))
            }
            None => {
                // A block was reused under the batch: the control channel takes over.
                self.stats.torn_reads += 1;
                if let Some(sub) = self.subscription.as_mut() {
                    sub.next_seq = None;
                }
                Ok(None)
            }
        }
    }

    /// Whether the consumer holds a slot in the published index, asking for one if it may:
    /// the session must have the index region, and a refusal is asked again after
    /// [`SUBSCRIBE_RETRY`].
    fn subscribed(&mut self) -> Result<bool, RdmaError> {
        if self.subscription.is_some() {
            return Ok(true);
        }
        if !self.use_index {
            return Ok(false);
        }
        let Ok(region) = self.session.region(RegionRole::Index) else {
            return Ok(false);
        };
        if self
            .refused_at
            .is_some_and(|at| at.elapsed() < SUBSCRIBE_RETRY)
        {
            return Ok(false);
        }
        let request = Request::Subscribe {
            topic: self.topic.clone(),
            partition: self.partition,
        };
        match self.session.call(&request) {
            Ok((
                Response::Subscribed {
                    slot,
                    incarnation,
                    entries,
                },
                _,
            )) if entries > 0 => {
                self.subscription = Some(Subscription {
                    region,
                    slot,
                    incarnation,
                    layout: IndexLayout { entries },
                    next_seq: None,
                });
                Ok(true)
            }
            Ok((other, _)) => Err(unexpected(other)),
            Err(RdmaError::Refused(_)) => {
                self.refused_at = Some(Instant::now());
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// A poll through the control channel: `Locate` and READ, or a copy.
    fn poll_located(&mut self, max_bytes: u32) -> Result<Vec<Batch>, RdmaError> {
        self.stats.located_polls += 1;
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

/// The publication number of the entry whose batch starts at `offset`, found by READing the
/// slot's whole ring once (after a subscription, or when the consumer lost its place).
fn find(
    endpoint: &dyn crate::OneSided,
    sub: &Subscription,
    head: u64,
    offset: i64,
) -> Result<Option<u64>, RdmaError> {
    let entries = sub.layout.entries.min(head);
    if entries == 0 {
        return Ok(None);
    }
    let mut ring = vec![0u8; (sub.layout.entries * ENTRY_BYTES) as usize];
    endpoint.read(
        sub.region.id,
        sub.layout.entry_offset(sub.slot, 0),
        &mut ring,
    )?;
    let found = (head - entries..head).find(|&seq| {
        let at = (seq % sub.layout.entries * ENTRY_BYTES) as usize;
        let entry = &ring[at..at + ENTRY_BYTES as usize];
        published::decode_entry(sub.slot, sub.incarnation, seq, entry)
            .is_some_and(|located| located.base_offset == offset)
    });
    Ok(found)
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
