//! RecordBatch (magic 2) headers: parsing, validation and the in-place offset rewrite.
//!
//! The broker never decompresses a batch to store or serve it. It checks the header, the CRC-32C
//! (which covers `attributes..end`, so rewriting the base offset and the leader epoch needs no new
//! CRC) and that `recordCount == lastOffsetDelta + 1`, then assigns offsets by rewriting the first
//! eight bytes.

use std::ops::Range;

use thiserror::Error;

/// Size of the v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts from.
const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

/// Why a batch was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a header or than the batch length says.
    #[error("batch truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header claims.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Not a v2 batch.
    #[error("unsupported record batch magic {0} (only 2 is accepted)")]
    Magic(i8),
    /// Length field out of range.
    #[error("invalid batch length {0}")]
    Length(i32),
    /// CRC-32C mismatch.
    #[error("CRC-32C mismatch: header says {expected:#010x}, data gives {actual:#010x}")]
    Crc {
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// `recordCount` disagrees with `lastOffsetDelta`.
    #[error("record count {count} does not match last offset delta {delta}")]
    Count {
        /// Header record count.
        count: i32,
        /// Header last offset delta.
        delta: i32,
    },
    /// A request carried no batch at all.
    #[error("no record batch in the records field")]
    Empty,
}

/// The fields of a v2 batch header that the broker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset (as stored; clients send 0).
    pub base_offset: i64,
    /// Length of everything after the length field.
    pub batch_length: i32,
    /// Attributes: codec in bits 0-2, timestamp type bit 3, transactional bit 4, control bit 5.
    pub attributes: i16,
    /// Offset of the last record relative to the base.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads a header from the start of `buf` (checks size and magic only).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: buf.len(),
            });
        }
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let header = Self {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, 8),
            attributes: i16::from_be_bytes([buf[21], buf[22]]),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16::from_be_bytes([buf[51], buf[52]]),
            base_sequence: i32_at(buf, 53),
            record_count: i32_at(buf, 57),
        };
        if (header.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Length(header.batch_length));
        }
        Ok(header)
    }

    /// Bytes the whole batch takes.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Last offset in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & (1 << 4) != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
}

/// One checked batch inside a records blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedBatch {
    /// Its bytes in the blob.
    pub range: Range<usize>,
    /// Its header.
    pub header: BatchHeader,
}

/// Splits a produce request's records field into batches, checking each fully.
pub fn check_batches(records: &[u8]) -> Result<Vec<CheckedBatch>, BatchError> {
    let mut batches = Vec::new();
    for item in BatchIter::new(records) {
        let (range, header) = item?;
        let batch = &records[range.clone()];
        check_crc(batch)?;
        if header.record_count != header.last_offset_delta.wrapping_add(1)
            || header.record_count <= 0
        {
            return Err(BatchError::Count {
                count: header.record_count,
                delta: header.last_offset_delta,
            });
        }
        batches.push(CheckedBatch { range, header });
    }
    if batches.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(batches)
}

/// Verifies the CRC-32C of one whole batch.
pub fn check_crc(batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() < HEADER_SIZE {
        return Err(BatchError::Truncated {
            needed: HEADER_SIZE,
            available: batch.len(),
        });
    }
    let expected = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if expected != actual {
        return Err(BatchError::Crc { expected, actual });
    }
    Ok(())
}

/// Rewrites the base offset and partition leader epoch of a batch in place.
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Rewrites the max timestamp of a whole batch in place and recomputes its CRC-32C (which
/// covers the field).
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Walks consecutive batches, checking headers and lengths (not CRCs).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    /// Iterates the batches in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, position: 0 }
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(Range<usize>, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.position..).filter(|r| !r.is_empty())?;
        let result = BatchHeader::parse(rest).and_then(|header| {
            let len = header.total_len();
            if len > rest.len() {
                return Err(BatchError::Truncated {
                    needed: len,
                    available: rest.len(),
                });
            }
            Ok((self.position..self.position + len, header))
        });
        match &result {
            Ok((range, _)) => self.position = range.end,
            Err(_) => self.position = self.buf.len(),
        }
        Some(result)
    }
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes a real batch of `count` records with kafka-protocol's encoder.
    pub(crate) fn encoded_batch(count: i32, first_timestamp: i64) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: i,
                timestamp: first_timestamp + i64::from(i),
                key: Some(format!("k{i}").into()),
                value: Some(format!("value-{i}").into()),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    /// Recomputes the CRC of a whole batch after a test changed it.
    pub(crate) fn fix_crc(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn a_real_batch_passes_and_reports_its_header() {
        let batch = encoded_batch(3, 1000);
        let checked = check_batches(&batch).unwrap();
        assert_eq!(checked.len(), 1);
        let header = checked[0].header;
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1002);
        assert_eq!(checked[0].range, 0..batch.len());
    }

    #[test]
    fn two_batches_back_to_back_are_split() {
        let mut blob = encoded_batch(2, 0);
        let first = blob.len();
        blob.extend(encoded_batch(5, 10));
        let checked = check_batches(&blob).unwrap();
        assert_eq!(checked[1].range, first..blob.len());
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut batch = encoded_batch(3, 0);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(check_batches(&batch), Err(BatchError::Crc { .. })));
    }

    #[test]
    fn offset_rewrite_keeps_the_crc_valid() {
        let mut batch = encoded_batch(3, 0);
        assign_offset(&mut batch, 12345, 7);
        let checked = check_batches(&batch).unwrap();
        assert_eq!(checked[0].header.base_offset, 12345);
        assert_eq!(checked[0].header.last_offset(), 12347);
    }

    #[test]
    fn truncation_and_bad_magic_are_errors() {
        let batch = encoded_batch(3, 0);
        assert!(matches!(
            check_batches(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut old = batch.clone();
        old[16] = 1;
        assert_eq!(check_batches(&old), Err(BatchError::Magic(1)));
        assert_eq!(check_batches(&[]), Err(BatchError::Empty));
    }

    #[test]
    fn a_rewritten_max_timestamp_keeps_the_crc_valid() {
        let mut batch = encoded_batch(3, 1000);
        set_max_timestamp(&mut batch, 5000);
        let checked = check_batches(&batch).unwrap();
        assert_eq!(checked[0].header.max_timestamp, 5000);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = check_batches(&data);
            for item in BatchIter::new(&data) { let _ = item; }
        }

        #[test]
        fn corrupting_a_valid_batch_is_detected_or_harmless(at in 0usize..100, bit in 0u8..8) {
            let mut batch = encoded_batch(2, 0);
            let at = at % batch.len();
            batch[at] ^= 1 << bit;
            // Bytes outside the CRC (offset, length, epoch, magic) may still parse; nothing panics
            // and a changed CRC-covered byte is always caught.
            let result = check_batches(&batch);
            if at >= CRC_START { proptest::prop_assert!(result.is_err()); }
        }
    }
}
