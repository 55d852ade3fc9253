//! Reading durable batches back from storage (data no longer in the hot cache).

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, StorageError, Store};
use kafka_protocol::records::RecordBatchDecoder;
use thiserror::Error;

use super::record_batch::{check_crc, BatchHeader, BatchIter};

/// Why stored data could not be served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ColdReadError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The bytes read back are not the batches the index promised.
    #[error("corrupt stored data in {object}: {reason}")]
    Corrupt {
        /// Object key.
        object: String,
        /// What was wrong.
        reason: String,
    },
    /// The read was abandoned (the broker is shutting down).
    #[error("cold read abandoned: {0}")]
    Aborted(String),
}

/// Reads `chunk` from storage and checks every batch in it (header, length, CRC-32C), so that
/// what is cached and served later needs no further check.
pub async fn load_chunk(store: &Store, chunk: &ChunkLocation) -> Result<Bytes, ColdReadError> {
    let data = read_chunk(store, chunk).await?;
    let mut batches = 0u32;
    for item in BatchIter::new(&data) {
        let (range, _) = item.map_err(|e| corrupt(chunk, e.to_string()))?;
        check_crc(&data[range]).map_err(|e| corrupt(chunk, e.to_string()))?;
        batches += 1;
    }
    if batches != chunk.batches {
        return Err(corrupt(
            chunk,
            format!("{batches} batches read, the index says {}", chunk.batches),
        ));
    }
    Ok(data)
}

/// Batches of a loaded (checked) `chunk` from the one holding `offset`, up to `max_bytes`, as
/// one contiguous slice of `data`, and the offset after the last. With `at_least_one` the first
/// batch is taken even if it is larger than `max_bytes` (as Kafka does for a fetch's first
/// batch, so that a consumer always progresses); without it the slice may be empty.
pub fn batches_from(
    chunk: &ChunkLocation,
    data: &Bytes,
    offset: i64,
    max_bytes: usize,
    at_least_one: bool,
) -> Result<(Bytes, i64), ColdReadError> {
    let mut start = None;
    let mut end = 0;
    let mut next_offset = offset;
    for item in BatchIter::new(data) {
        let (range, header) = item.map_err(|e| corrupt(chunk, e.to_string()))?;
        if header.last_offset() < offset {
            continue;
        }
        let first = *start.get_or_insert(range.start);
        if (end > first || !at_least_one) && range.end - first > max_bytes {
            end = end.max(first);
            break;
        }
        end = range.end;
        next_offset = header.last_offset() + 1;
    }
    match start {
        Some(first) => Ok((data.slice(first..end), next_offset)),
        None => Err(corrupt(
            chunk,
            format!("offset {offset} is not in its chunk"),
        )),
    }
}

/// The first record at or after `timestamp` in `chunk`, as (offset, timestamp).
pub async fn find_by_timestamp(
    store: &Store,
    chunk: &ChunkLocation,
    timestamp: i64,
) -> Result<Option<(i64, i64)>, ColdReadError> {
    let data = read_chunk(store, chunk).await?;
    for item in BatchIter::new(&data) {
        let (range, header) = item.map_err(|e| corrupt(chunk, e.to_string()))?;
        if header.max_timestamp < timestamp {
            continue;
        }
        let found = records_of(chunk, data.slice(range), &header)?
            .into_iter()
            .find(|&(_, ts)| ts >= timestamp);
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The earliest record carrying the largest timestamp in `chunk`, as (offset, timestamp).
pub async fn find_max_timestamp(
    store: &Store,
    chunk: &ChunkLocation,
) -> Result<Option<(i64, i64)>, ColdReadError> {
    find_by_timestamp(store, chunk, chunk.max_timestamp).await
}

async fn read_chunk(store: &Store, chunk: &ChunkLocation) -> Result<Bytes, ColdReadError> {
    Ok(store
        .read_range(&chunk.object, chunk.position, chunk.len)
        .await?)
}

/// Decodes (decompressing if needed) one batch into (offset, timestamp) pairs.
fn records_of(
    chunk: &ChunkLocation,
    mut batch: Bytes,
    header: &BatchHeader,
) -> Result<Vec<(i64, i64)>, ColdReadError> {
    let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| corrupt(chunk, e.to_string()))?;
    Ok(set
        .records
        .iter()
        .map(|r| (r.offset, r.timestamp))
        .filter(|&(offset, _)| offset >= header.base_offset)
        .collect())
}

fn corrupt(chunk: &ChunkLocation, reason: String) -> ColdReadError {
    ColdReadError::Corrupt {
        object: chunk.object.key(),
        reason,
    }
}
