//! What the internal log holds, and how it is framed as record batches.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::record_batch::BatchIter;
use crate::records::{BatchRecords, DecodeOptions};

/// Internal batches are written uncompressed; a compressed one read back may still decompress
/// to at most this much.
const MAX_DECOMPRESSED: u64 = 64 << 20;

/// One committed offset, as OffsetFetch returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The offset.
    pub offset: i64,
    /// Leader epoch the consumer saw, or -1.
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: Option<String>,
    /// When it was committed (ms since the epoch).
    pub commit_timestamp: i64,
}

/// One entry of the internal log. Later entries override earlier ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InternalRecord {
    /// A group's committed offset for a partition, or (`None`) its deletion.
    Offset {
        /// Consumer group.
        group: String,
        /// Topic id (not name: a re-created topic starts with no commits).
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The commit, or `None` when deleted.
        commit: Option<CommittedOffset>,
        /// Set on a one-sided commit made durable by the broker: the internal-log offset of the
        /// last commit the slot held when its word was read. Such a record holds only if no
        /// later commit of the slot was written before it (see `Offsets::persist_slot`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        based_on: Option<i64>,
    },
    /// A group's metadata (the coordinator's snapshot, kept opaque here), or (`None`) the
    /// deletion of the group and all its offsets.
    Group {
        /// Consumer group.
        group_id: String,
        /// The snapshot, or `None` when deleted.
        snapshot: Option<serde_json::Value>,
    },
    /// Producer ids below `end` may have been handed out.
    ProducerIdBlock {
        /// First id not yet reserved.
        end: i64,
    },
    /// Opens a snapshot of the live state (see `snapshot`): the records up to `SnapshotEnd`
    /// restate everything written before this one.
    SnapshotStart,
    /// One live entry restated by a snapshot.
    Restated {
        /// Where the restated record was first written.
        at: i64,
        /// The record.
        record: Box<InternalRecord>,
    },
    /// Closes the snapshot opened at `start`, which restated `count` records.
    SnapshotEnd {
        /// Offset of its `SnapshotStart`.
        start: i64,
        /// Restated records between the two.
        count: u64,
    },
}

/// Encodes records as one v2 batch (offsets are assigned when appended).
pub fn encode_batch(records: &[InternalRecord], now_ms: i64) -> Result<Vec<u8>, String> {
    let records = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
            let i = i32::try_from(i).map_err(|e| e.to_string())?;
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder starts a new batch whenever offset - sequence changes.
                sequence: i,
                timestamp: now_ms,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

/// A decoded internal record, or why its value did not decode.
pub type DecodedRecord = Result<InternalRecord, String>;

/// Decodes every record in `batches`, with its offset. Undecodable values are reported, not
/// fatal: one bad record must not keep the broker from starting.
pub fn decode_batches(batches: Bytes) -> Result<Vec<(i64, DecodedRecord)>, String> {
    // Bounded decoding: counts and lengths read from storage are never trusted (see `records`).
    let options = DecodeOptions {
        max_decompressed: MAX_DECOMPRESSED,
        values: true,
    };
    let mut decoded = Vec::new();
    for item in BatchIter::new(&batches) {
        let (range, header) = item.map_err(|e| e.to_string())?;
        let batch = batches.slice(range);
        for record in BatchRecords::new(&batch, &header, options).map_err(|e| e.to_string())? {
            let record = record.map_err(|e| format!("batch at {}: {e}", header.base_offset))?;
            let offset = header
                .base_offset
                .saturating_add(i64::from(record.offset_delta));
            let value = record.value.unwrap_or_default();
            let value = serde_json::from_slice(&value).map_err(|e| format!("offset {offset}: {e}"));
            decoded.push((offset, value));
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::check_batches;

    #[test]
    fn records_round_trip_through_one_valid_batch() {
        let records = vec![
            InternalRecord::ProducerIdBlock { end: 1000 },
            InternalRecord::Offset {
                group: "g".into(),
                topic_id: Uuid::new_v4(),
                partition: 3,
                commit: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 0,
                    metadata: Some("m".into()),
                    commit_timestamp: 7,
                }),
                based_on: Some(5),
            },
            InternalRecord::Group {
                group_id: "g".into(),
                snapshot: None,
            },
        ];
        let batch = encode_batch(&records, 1).unwrap();
        let checked = check_batches(&batch).unwrap();
        assert_eq!(checked.len(), 1);
        assert_eq!(checked[0].header.record_count, 3);
        let decoded: Vec<_> = decode_batches(Bytes::from(batch))
            .unwrap()
            .into_iter()
            .map(|(_, record)| record.unwrap())
            .collect();
        assert_eq!(decoded, records);
    }
}
