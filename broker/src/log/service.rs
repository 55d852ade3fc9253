//! The log as a service, for every protocol path: find (or auto-create) a topic to write,
//! append a partition's batches, wait until they are durable, read a range (hot or cold).
//!
//! The Kafka handlers (`handlers::produce`, `handlers::fetch`) and the one-sided path
//! (`one_sided::handlers`) both call these, so that no path builds another path's wire
//! messages and every path gets the same validation, hardening rules, offsets, flushing and
//! reads. Refusals carry the Kafka error code, the broker's one vocabulary of errors (the
//! one-sided path reports it by name), and a message where there is more to say. The internal
//! log (offsets, groups) writes its own records through the same partition operations
//! ([`Partition::append`], [`wait_durable`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hotcache::{HotSlice, PendingSlice, ReadOutcome};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::durability::{wait_durable, DurableWait};
use crate::handlers::fetch_budget::Held;
use crate::log::partition::{AppendError, Appended, Partition};
use crate::log::record_batch::{check_batches, set_max_timestamp, BatchHeader, CheckedBatch};
use crate::log::topic_config;
use crate::log::topics::Topic;
use crate::log::validate::{validate_batch_within, ProduceLimits, ValidationError};
use crate::metrics::ClientReads;
use crate::producers::SequenceError;

/// Why the log refused a request: the Kafka error, and what more there is to say.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The error code a Kafka client gets.
    pub error: ResponseError,
    /// A message for the client, where the code alone does not say enough.
    pub message: Option<String>,
}

impl Refusal {
    /// A refusal with no more to say than its code.
    pub fn of(error: ResponseError) -> Self {
        Refusal {
            error,
            message: None,
        }
    }

    fn with(error: ResponseError, message: String) -> Self {
        Refusal {
            error,
            message: Some(message),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (Kafka error {})", self.error, self.error.code())?;
        match &self.message {
            Some(message) => write!(f, ": {message}"),
            None => Ok(()),
        }
    }
}

/// The topic `name`, created with the default partitions if it does not exist and
/// `auto_create_topics` allows it.
pub async fn topic_to_write(broker: &Broker, name: &str) -> Result<Arc<Topic>, Refusal> {
    if let Some(topic) = broker.topics.get(name) {
        return Ok(topic);
    }
    if !broker.config.auto_create_topics {
        return Err(Refusal::of(ResponseError::UnknownTopicOrPartition));
    }
    broker
        .topics
        .get_or_create(&broker.store, name, broker.config.default_partitions)
        .await
        .map_err(|error| {
            tracing::warn!(topic = name, %error, "auto-create on produce failed");
            Refusal::of(ResponseError::UnknownTopicOrPartition)
        })
}

/// Validates `records` (one partition's batches: CRC, sizes, records, timestamps, no
/// transactions), copies them once into the hot cache and appends them (offsets, producer
/// sequences, the flush pipeline). Decompression for validation draws on `budget` (see
/// `validate::decompression_budget`). Not durable yet: see [`until_durable`].
pub async fn append(
    broker: &Broker,
    topic: &Topic,
    index: i32,
    records: Bytes,
    budget: &mut u64,
) -> Result<(Arc<Partition>, Appended), Refusal> {
    let Some(partition) = topic.partition(index) else {
        return Err(Refusal::of(ResponseError::UnknownTopicOrPartition));
    };
    let batches = check_batches(&records).map_err(|error| {
        tracing::debug!(topic = topic.name, index, %error, "corrupt batch refused");
        Refusal::with(ResponseError::CorruptMessage, error.to_string())
    })?;
    let limits = topic_config::produce_limits(&topic.configs, &broker.config);
    let max_timestamps = validate_all(&records, &batches, &limits, budget).map_err(|error| {
        tracing::debug!(topic = topic.name, index, %error, "invalid batch refused");
        Refusal::with(error.code(), error.to_string())
    })?;
    if let Some(batch) = batches.iter().find(|b| b.header.is_transactional()) {
        let message = format!(
            "transactional batches are not supported (producer id {})",
            batch.header.producer_id
        );
        return Err(Refusal::with(
            ResponseError::TransactionalIdAuthorizationFailed,
            message,
        ));
    }
    // In a cluster, a leader whose lease is in doubt (etcd out of reach) refuses writes until
    // it is sure again; batches pipelined behind a refused one then wait for it (see
    // ProducerStates::refuse), as they do behind one refused for want of cache space.
    if !broker.may_acknowledge() {
        partition.refuse(batches.iter().map(|b| &b.header));
        let message = "this broker's lease on the partition is in doubt".to_string();
        return Err(Refusal::with(ResponseError::NotLeaderOrFollower, message));
    }
    // Room for all the batches at once, so a request never holds part of the cache while it
    // waits for the rest (see CacheSpace::reserve_all).
    let lens: Vec<usize> = batches.iter().map(|b| b.range.len()).collect();
    let mut slices = match broker.space.reserve_all(&lens).await {
        Ok(slices) => slices.into_iter(),
        Err(error) => {
            if matches!(
                error,
                ResponseError::RequestTimedOut | ResponseError::KafkaStorageError
            ) {
                partition.refuse(batches.iter().map(|b| &b.header));
            }
            return Err(Refusal::of(error));
        }
    };
    let mut copied: Vec<(PendingSlice, BatchHeader)> = Vec::with_capacity(batches.len());
    for (batch, max_timestamp) in batches.into_iter().zip(max_timestamps) {
        let bytes = &records[batch.range.clone()];
        let mut slice = slices
            .next()
            .ok_or(Refusal::of(ResponseError::UnknownServerError))?;
        slice.copy_from_slice(bytes);
        let mut header = batch.header;
        if header.max_timestamp != max_timestamp {
            // As Kafka does: the index and timestamp lookups trust this field.
            set_max_timestamp(&mut slice, max_timestamp);
            header.max_timestamp = max_timestamp;
        }
        copied.push((slice, header));
    }
    match partition.append(copied, &broker.cache, &broker.pipeline) {
        Ok(appended) => Ok((partition.clone(), appended)),
        Err(AppendError::Sequence(error)) => {
            // Rare outside a move, and what a stalled idempotent producer needs explained.
            tracing::info!(topic = %topic.name, index, %error, "batch refused by its sequence");
            let code = match error {
                SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
                // Retriable and "not persisted": the client waits for its requests in flight
                // and resends from the refused batch, with the same sequences.
                SequenceError::AfterRefused { .. } | SequenceError::GapAfterRecovery { .. } => {
                    ResponseError::NotLeaderOrFollower
                }
                _ => ResponseError::OutOfOrderSequenceNumber,
            };
            Err(Refusal::with(code, error.to_string()))
        }
        Err(error) => Err(Refusal::with(
            ResponseError::KafkaStorageError,
            error.to_string(),
        )),
    }
}

/// Validates the records of every batch (see `validate_batch_within`); the largest record
/// timestamp of each. Synchronous, so no decoder lives across an await.
fn validate_all(
    records: &Bytes,
    batches: &[CheckedBatch],
    limits: &ProduceLimits,
    budget: &mut u64,
) -> Result<Vec<i64>, ValidationError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    batches
        .iter()
        .map(|batch| {
            let bytes = records.slice(batch.range.clone());
            validate_batch_within(&bytes, &batch.header, limits, now_ms, budget)
        })
        .collect()
}

/// Waits until what `appended` holds is durable (acks=all), for at most `limit`.
pub async fn until_durable(
    broker: &Broker,
    partition: &Partition,
    appended: Appended,
    limit: Duration,
) -> Result<(), Refusal> {
    let health = broker.storage_health.clone();
    match wait_durable(partition, appended.last_offset + 1, health, limit).await {
        DurableWait::Durable => Ok(()),
        DurableWait::TimedOut => Err(Refusal::of(ResponseError::RequestTimedOut)),
        DurableWait::StorageFailed(why) => Err(Refusal::with(
            ResponseError::KafkaStorageError,
            format!("storage write failed: {why}"),
        )),
    }
}

/// What a read of one partition may take.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// Record bytes at most (the first batch may exceed it when `first`).
    pub max_bytes: usize,
    /// Nothing was read before in this response: the first batch is served whatever its
    /// size (so a reader always progresses), and the memory budget may be waited for.
    pub first: bool,
    /// Until when to wait for the memory budget.
    pub deadline: Instant,
}

/// What a read found.
pub enum Read {
    /// Durable batches from the one holding the offset (none at the high watermark), and the
    /// fetch memory they hold.
    Records(Bytes, Held),
    /// The fetch memory budget had nothing for this read (not the first): no records.
    NoBudget,
}

/// Durable batches of `partition` from the one holding `offset`: from the hot cache when
/// there, else from storage through the cold cache. `OFFSET_OUT_OF_RANGE` outside the log.
pub async fn read(
    broker: &Broker,
    reads: &ClientReads,
    partition: &Arc<Partition>,
    offset: i64,
    limits: ReadLimits,
) -> Result<Read, Refusal> {
    let high_watermark = partition.high_watermark();
    if offset < partition.log_start() || offset > high_watermark {
        return Err(Refusal::of(ResponseError::OffsetOutOfRange));
    }
    let limit = limits.max_bytes;
    if offset == high_watermark || limit == 0 {
        return Ok(Read::Records(Bytes::new(), Held::default()));
    }
    // Charge the memory budget before reading: the first partition with data may wait for it
    // (within its deadline); a later one answers without data rather than wait.
    let fetches = &broker.fetch_budget;
    let mut held = Held::default();
    let charged = if limits.first {
        fetches.charge(&mut held, limit, limits.deadline).await
    } else {
        fetches.try_charge(&mut held, limit)
    };
    if !charged {
        broker.events.fetch_budget_waits.inc();
        return Ok(Read::NoBudget);
    }
    // No more than was charged (the whole budget is less than one request may ask).
    let limit = limit.min(held.bytes());
    let records = match partition.read_hot(&broker.cache, offset, limit) {
        ReadOutcome::Hit(mut slices) => {
            reads.hot();
            if !limits.first {
                slices.truncate(batches_within(slices.iter().map(|s| s.len()), limit));
            }
            join(slices)
        }
        ReadOutcome::Miss => {
            let Some(chunk) = partition.stored_chunk(offset) else {
                tracing::warn!(offset, high_watermark, "durable offset found nowhere");
                return Err(Refusal::of(ResponseError::KafkaStorageError));
            };
            reads.cold();
            match broker.cold.read(partition, chunk, offset, limit).await {
                Ok(mut bytes) => {
                    if !limits.first {
                        bytes.truncate(stored_batches_within(&bytes, limit));
                    }
                    bytes
                }
                Err(error) => {
                    broker.events.cold_read_errors.inc();
                    tracing::warn!(%error, offset, "cold read failed");
                    return Err(Refusal::of(ResponseError::KafkaStorageError));
                }
            }
        }
    };
    if records.len() > held.bytes() {
        // A first batch larger than the limit: charged if the budget allows, served anyway.
        let more = records.len() - held.bytes();
        let _ = fetches.try_charge(&mut held, more);
    }
    held.keep(records.len());
    Ok(Read::Records(records, held))
}

/// How many of the batches with these lengths fit in `limit` together.
fn batches_within(lens: impl Iterator<Item = usize>, limit: usize) -> usize {
    let mut total = 0usize;
    lens.take_while(|len| {
        total = total.saturating_add(*len);
        total <= limit
    })
    .count()
}

/// The length of the longest run of whole batches at the start of `records` that fits in
/// `limit` (batches are framed by their 8-byte base offset and 4-byte length).
fn stored_batches_within(records: &[u8], limit: usize) -> usize {
    let mut at = 0usize;
    while let Some(head) = records.get(at + 8..at + 12) {
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|len| (at + 12).checked_add(len))
        else {
            break;
        };
        if end > limit || end > records.len() {
            break;
        }
        at = end;
    }
    at
}

/// One slice is handed out without copying; several are joined into one buffer.
fn join(mut slices: Vec<HotSlice>) -> Bytes {
    if slices.len() == 1 {
        return Bytes::from_owner(slices.remove(0));
    }
    let mut buf = BytesMut::with_capacity(slices.iter().map(|s| s.len()).sum());
    for slice in &slices {
        buf.extend_from_slice(slice);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(lens: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &len in lens {
            out.extend_from_slice(&0i64.to_be_bytes());
            out.extend_from_slice(&(len as i32).to_be_bytes());
            out.extend(std::iter::repeat_n(7u8, len));
        }
        out
    }

    #[test]
    fn later_partitions_get_only_whole_batches_that_fit() {
        assert_eq!(batches_within([600, 600].into_iter(), 1000), 1);
        assert_eq!(batches_within([600, 400].into_iter(), 1000), 2);
        assert_eq!(batches_within([1200].into_iter(), 1000), 0);
        let records = framed(&[100, 200, 300]);
        assert_eq!(stored_batches_within(&records, 111), 0);
        assert_eq!(stored_batches_within(&records, 112), 112);
        assert_eq!(stored_batches_within(&records, 400), 324);
        assert_eq!(stored_batches_within(&records, usize::MAX), records.len());
        // A length that runs past the data (or is negative) ends the walk.
        let mut broken = framed(&[10]);
        broken.extend_from_slice(&0i64.to_be_bytes());
        broken.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(stored_batches_within(&broken, usize::MAX), 22);
    }
}
