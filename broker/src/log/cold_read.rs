//! Reading durable batches back from storage (data no longer in the hot cache).

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, StorageError, Store};
use thiserror::Error;

use super::record_batch::{check_crc, BatchHeader, BatchIter};
use super::validate::{decompression_budget, DECOMPRESSION_RATIO};
use crate::records::{BatchRecords, DecodeOptions, RecordError};

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

/// The first record at or after `timestamp` in `chunk`, as (offset, timestamp). Records are
/// decoded one at a time, compressed ones through a stream that stops at `max_decompressed`
/// bytes; a batch that does not decode is skipped (see [`skip_batch`]), never fatal.
pub async fn find_by_timestamp(
    store: &Store,
    chunk: &ChunkLocation,
    timestamp: i64,
    max_decompressed: u64,
) -> Result<Option<(i64, i64)>, ColdReadError> {
    let data = read_chunk(store, chunk).await?;
    Ok(scan_by_timestamp(chunk, &data, timestamp, max_decompressed))
}

/// The earliest record carrying the largest timestamp in `chunk`, as (offset, timestamp).
pub async fn find_max_timestamp(
    store: &Store,
    chunk: &ChunkLocation,
    max_decompressed: u64,
) -> Result<Option<(i64, i64)>, ColdReadError> {
    find_by_timestamp(store, chunk, chunk.max_timestamp, max_decompressed).await
}

/// Reads `chunk`'s bytes as stored, unchecked.
pub async fn read_chunk(store: &Store, chunk: &ChunkLocation) -> Result<Bytes, ColdReadError> {
    Ok(store
        .read_range(&chunk.object, chunk.position, chunk.len)
        .await?)
}

/// Logs and counts a stored batch that cannot be used. `offset` is its base offset, when its
/// header could be read.
pub fn skip_batch(chunk: &ChunkLocation, offset: Option<i64>, why: &dyn std::fmt::Display) {
    crate::metrics::skipped_stored_batches().inc();
    tracing::warn!(
        topic_id = %chunk.key.topic_id,
        partition = chunk.key.partition,
        offset,
        object = %chunk.object.key(),
        error = %why,
        "undecodable stored batch skipped"
    );
}

/// [`find_by_timestamp`] over bytes already read. All its batches together decompress to at
/// most [`decompression_budget`] of the chunk's size, each to at most `max_decompressed`.
pub fn scan_by_timestamp(
    chunk: &ChunkLocation,
    data: &Bytes,
    timestamp: i64,
    max_decompressed: u64,
) -> Option<(i64, i64)> {
    let per_batch = max_decompressed / DECOMPRESSION_RATIO;
    let mut budget = decompression_budget(data.len() as u64, per_batch);
    for item in BatchIter::new(data) {
        let (range, header) = match item {
            Ok(item) => item,
            Err(error) => {
                // Without a valid header the next batch cannot be found: the rest is skipped.
                skip_batch(chunk, None, &error);
                return None;
            }
        };
        if header.max_timestamp < timestamp {
            continue;
        }
        let batch = data.slice(range);
        if let Err(error) = check_crc(&batch) {
            skip_batch(chunk, Some(header.base_offset), &error);
            continue;
        }
        let cap = max_decompressed.min(budget);
        match first_at_or_after(&batch, &header, timestamp, cap, &mut budget) {
            Ok(Some(found)) => return Some(found),
            Ok(None) => {}
            Err(error) => skip_batch(chunk, Some(header.base_offset), &error),
        }
    }
    None
}

/// The first record of `batch` whose timestamp is at or after `timestamp`.
fn first_at_or_after(
    batch: &Bytes,
    header: &BatchHeader,
    timestamp: i64,
    max_decompressed: u64,
    budget: &mut u64,
) -> Result<Option<(i64, i64)>, RecordError> {
    let options = DecodeOptions {
        max_decompressed,
        values: false,
    };
    let mut records = BatchRecords::new(batch, header, options)?;
    let found = first_in(&mut records, header, timestamp);
    *budget = budget.saturating_sub(records.decompressed());
    found
}

fn first_in(
    records: &mut BatchRecords,
    header: &BatchHeader,
    timestamp: i64,
) -> Result<Option<(i64, i64)>, RecordError> {
    for record in records {
        let record = record?;
        if record.offset_delta < 0 {
            return Err(RecordError::Invalid {
                field: "offset delta",
                value: record.offset_delta.into(),
            });
        }
        if record.timestamp >= timestamp {
            let offset = header
                .base_offset
                .saturating_add(i64::from(record.offset_delta));
            return Ok(Some((offset, record.timestamp)));
        }
    }
    Ok(None)
}

fn corrupt(chunk: &ChunkLocation, reason: String) -> ColdReadError {
    ColdReadError::Corrupt {
        object: chunk.object.key(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use dfs_adapter::{ObjectId, PartitionKey};

    use super::*;
    use crate::log::record_batch::tests::encoded_batch;
    use crate::log::record_batch::{assign_offset, set_max_timestamp};

    fn chunk(data: &[u8]) -> ChunkLocation {
        ChunkLocation {
            key: PartitionKey {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
            },
            object: ObjectId(1),
            position: 0,
            len: data.len() as u64,
            base_offset: 0,
            last_offset: 0,
            max_timestamp: i64::MAX,
            batches: 2,
        }
    }

    /// A stored batch (written before produce validated records) whose header lies, followed by
    /// an honest one at offset 100 with timestamps 2000, 2001, 2002.
    fn with_honest_after(mut lying: Vec<u8>) -> Bytes {
        let mut honest = encoded_batch(3, 2000);
        assign_offset(&mut honest, 100, 0);
        lying.extend(honest);
        Bytes::from(lying)
    }

    fn skipped() -> u64 {
        crate::metrics::skipped_stored_batches().get()
    }

    #[test]
    fn a_stored_batch_claiming_two_billion_records_is_skipped() {
        // One real record (timestamp 1000); recordCount 2^31-1, maxTimestamp i64::MAX.
        let mut lying = encoded_batch(1, 1000);
        lying[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        set_max_timestamp(&mut lying, i64::MAX);
        let data = with_honest_after(lying);
        let before = skipped();
        // The lying batch's one record is too early; the count lie is found, not allocated.
        assert_eq!(
            scan_by_timestamp(&chunk(&data), &data, 1500, 1 << 20),
            Some((100, 2000))
        );
        assert!(skipped() > before);
        // A matching record before the lie is still found.
        assert_eq!(
            scan_by_timestamp(&chunk(&data), &data, 1000, 1 << 20),
            Some((0, 1000))
        );
    }

    #[test]
    fn a_stored_gzip_bomb_is_skipped_at_the_cap() {
        // One record of 8 MiB of zeros, gzip, under a 1 MiB cap.
        let len = 8 << 20;
        let mut record = vec![];
        let mut body = vec![0u8, 0, 0, 1];
        put_varint(&mut body, len as i64);
        put_varint(&mut record, (body.len() + len + 1) as i64);
        record.extend(body);
        record.resize(record.len() + len, 0);
        record.push(0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&record).unwrap();
        let compressed = gz.finish().unwrap();
        let mut bomb = encoded_batch(1, 1000)[..61].to_vec();
        bomb.extend(compressed);
        let batch_length = (bomb.len() - 12) as i32;
        bomb[8..12].copy_from_slice(&batch_length.to_be_bytes());
        bomb[21..23].copy_from_slice(&1i16.to_be_bytes());
        set_max_timestamp(&mut bomb, 5000);
        let data = with_honest_after(bomb);
        let before = skipped();
        assert_eq!(
            scan_by_timestamp(&chunk(&data), &data, 1500, 1 << 20),
            Some((100, 2000))
        );
        assert!(skipped() > before);
    }

    fn put_varint(out: &mut Vec<u8>, value: i64) {
        let mut raw = ((value << 1) ^ (value >> 63)) as u64;
        while raw >= 0x80 {
            out.push((raw as u8) | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
    }
}
