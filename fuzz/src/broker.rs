//! Targets in the broker: Kafka requests, record batches and records.

use bytes::Bytes;
use dfs_adapter::{ChunkLocation, ObjectId, PartitionKey};
use hotwire_broker::log::cold_read::scan_by_timestamp;
use hotwire_broker::log::record_batch::{check_batches, BatchIter};
use hotwire_broker::log::validate::{validate_batch, ProduceLimits};
use hotwire_broker::records::{BatchRecords, DecodeOptions};

use super::input::{fix_batch_crcs, split_mode};

/// `kafka_request`: a request frame (after the length prefix), as every connection decodes it.
pub fn kafka_request(data: &[u8]) {
    let _ = hotwire_broker::protocol::decode_request(Bytes::copy_from_slice(data));
}

/// Mode byte (bit 0: repair the batch CRCs), then record batches.
fn batches_of(data: &[u8]) -> Option<Vec<u8>> {
    let (mode, batches) = split_mode(data)?;
    let mut batches = batches.to_vec();
    if mode & 1 == 1 {
        fix_batch_crcs(&mut batches);
    }
    Some(batches)
}

/// `record_batches`: a produce request's records field through the header, length, CRC and
/// count checks.
pub fn record_batches(data: &[u8]) {
    let Some(records) = batches_of(data) else {
        return;
    };
    if let Ok(batches) = check_batches(&records) {
        // What check_batches accepts is one contiguous run of batches the iterator agrees on.
        let walked: Vec<_> = BatchIter::new(&records).map(|b| b.unwrap()).collect();
        assert_eq!(walked.len(), batches.len());
        assert_eq!(batches.last().unwrap().range.end, records.len());
    }
}

/// Small limits keep decompression bombs cheap; the decoder must stop at them.
const LIMITS: ProduceLimits = ProduceLimits {
    max_message_bytes: 64 << 10,
    timestamp_before_max_ms: i64::MAX,
    timestamp_after_max_ms: i64::MAX,
};

/// `produce_records`: a records field all the way through the produce checks (batch checks,
/// then each batch's records with the bounded decoder: framing, count, offset deltas,
/// timestamps, capped decompression), and every record's value read back.
pub fn produce_records(data: &[u8]) {
    let Some(records) = batches_of(data) else {
        return;
    };
    let records = Bytes::from(records);
    let Ok(batches) = check_batches(&records) else {
        return;
    };
    for checked in batches {
        let batch = records.slice(checked.range);
        let _ = validate_batch(&batch, &checked.header, &LIMITS, 1_700_000_000_000);
        let options = DecodeOptions {
            max_decompressed: LIMITS.max_decompressed(),
            values: true,
        };
        if let Ok(decoded) = BatchRecords::new(&batch, &checked.header, options) {
            let mut read = 0u64;
            for record in decoded {
                let Ok(record) = record else { break };
                read += record.value.map_or(0, |v| v.len() as u64);
            }
            assert!(read <= LIMITS.max_decompressed().max(batch.len() as u64));
        }
    }
}

/// `stored_batches`: a partition's chunk as read back from storage, scanned by
/// ListOffsets-by-timestamp (undecodable batches are skipped). Mode byte, the timestamp looked
/// for (8 bytes), then the chunk.
pub fn stored_batches(data: &[u8]) {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    let Some((timestamp, stored)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let mut stored = stored.to_vec();
    if mode & 1 == 1 {
        fix_batch_crcs(&mut stored);
    }
    let chunk = ChunkLocation {
        key: PartitionKey {
            topic_id: Default::default(),
            partition: 0,
        },
        object: ObjectId(7),
        position: 0,
        len: stored.len() as u64,
        base_offset: 0,
        last_offset: 0,
        max_timestamp: i64::MAX,
        batches: 1,
    };
    let timestamp = i64::from_be_bytes(*timestamp);
    let _ = scan_by_timestamp(&chunk, &Bytes::from(stored), timestamp, 4 << 20);
}

/// `internal_records`: the internal log's batches (committed offsets, groups, producer ids),
/// read back from storage and replayed at every start.
pub fn internal_records(data: &[u8]) {
    if let Some(batches) = batches_of(data) {
        let _ = hotwire_broker::internal::record::decode_batches(Bytes::from(batches));
    }
}
