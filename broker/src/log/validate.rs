//! What Kafka checks in a produced batch beyond its header: its size, each record's framing,
//! the record count and offset deltas, and record timestamps (Kafka's `LogValidator`).
//!
//! An uncompressed batch is walked in place (a few varints per record, keys and values skipped
//! by length, so cheaper than the CRC over the same bytes); a compressed one is decompressed as a
//! stream, never whole, and refused once it inflates past [`ProduceLimits::max_decompressed`].

use bytes::Bytes;
use kafka_protocol::ResponseError;
use thiserror::Error;

use super::record_batch::BatchHeader;
use crate::records::{BatchRecords, DecodeOptions, RecordError};

/// Records of a compressed batch may decompress to at most this many times `max.message.bytes`.
/// Kafka bounds only the compressed size; this bounds the work one batch can ask for while
/// leaving room for text and JSON, which compress 5 to 20 times.
pub const DECOMPRESSION_RATIO: u64 = 64;
/// Kafka's `RecordBatch.NO_TIMESTAMP`: exempt from the timestamp bounds.
const NO_TIMESTAMP: i64 = -1;
/// Attributes bit 3: the timestamp type is LogAppendTime.
const LOG_APPEND_TIME: i16 = 1 << 3;

/// The limits a topic puts on produced batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceLimits {
    /// Largest batch, in bytes (Kafka `max.message.bytes`).
    pub max_message_bytes: u64,
    /// How far in the past a CreateTime timestamp may lie (`message.timestamp.before.max.ms`).
    pub timestamp_before_max_ms: i64,
    /// How far in the future it may lie (`message.timestamp.after.max.ms`).
    pub timestamp_after_max_ms: i64,
}

impl ProduceLimits {
    /// Most bytes the records of one compressed batch may decompress to.
    pub fn max_decompressed(&self) -> u64 {
        self.max_message_bytes.saturating_mul(DECOMPRESSION_RATIO)
    }
}

/// Most bytes all the compressed batches of one request (or one stored chunk read) may
/// decompress to together: [`DECOMPRESSION_RATIO`] times its record bytes, plus one batch's
/// worth. Without it a request of many small batches, each just under the per-batch cap, could
/// ask for work out of all proportion to its size (zstd reaches ratios of 30,000).
pub fn decompression_budget(record_bytes: u64, max_message_bytes: u64) -> u64 {
    record_bytes
        .saturating_add(max_message_bytes)
        .saturating_mul(DECOMPRESSION_RATIO)
}

/// Why a batch's contents were refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// The batch is larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge {
        /// Batch size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The records are malformed, miscounted, or decompress past the cap.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// A record's offset delta is not its index.
    #[error("record {index} has offset delta {delta}; offset deltas must run 0, 1, 2, ...")]
    OffsetDelta {
        /// Index of the record.
        index: i32,
        /// Its offset delta.
        delta: i32,
    },
    /// A record's timestamp lies outside the topic's bounds.
    #[error("timestamp {timestamp} of record {index} is out of range [{low}, {high}]")]
    Timestamp {
        /// Index of the record.
        index: i32,
        /// Its timestamp.
        timestamp: i64,
        /// Earliest accepted.
        low: i64,
        /// Latest accepted.
        high: i64,
    },
    /// Clients may not write control batches (transaction markers).
    #[error("clients may not write control batches")]
    ControlBatch,
    /// An idempotent batch (producer id set) without a sequence.
    #[error("producer id {0} with base sequence {1}")]
    Sequence(i64, i32),
    /// The producer set the LogAppendTime type on a record without a timestamp.
    #[error("producers may not set the LogAppendTime timestamp type")]
    LogAppendTime,
}

impl ValidationError {
    /// The Kafka error code a producer gets, as Kafka answers.
    pub fn code(&self) -> ResponseError {
        match self {
            ValidationError::TooLarge { .. }
            | ValidationError::Records(RecordError::TooLarge(_)) => ResponseError::MessageTooLarge,
            ValidationError::Records(RecordError::UnknownCodec(_) | RecordError::Decompress(_)) => {
                ResponseError::CorruptMessage
            }
            ValidationError::Records(_)
            | ValidationError::OffsetDelta { .. }
            | ValidationError::ControlBatch
            | ValidationError::Sequence(..) => ResponseError::InvalidRecord,
            ValidationError::Timestamp { .. } | ValidationError::LogAppendTime => {
                ResponseError::InvalidTimestamp
            }
        }
    }
}

/// Checks the records of one produced `batch` (CRC and header already checked) against
/// `limits` at `now_ms`; returns the largest record timestamp (-1 if none has one), which the
/// caller writes into the header if the producer's differs, as Kafka does. Decompression is
/// capped per batch only: a request's batches go through [`validate_batch_within`].
pub fn validate_batch(
    batch: &Bytes,
    header: &BatchHeader,
    limits: &ProduceLimits,
    now_ms: i64,
) -> Result<i64, ValidationError> {
    let mut unlimited = u64::MAX;
    validate_batch_within(batch, header, limits, now_ms, &mut unlimited)
}

/// [`validate_batch`], taking what the batch decompresses to from `budget` (see
/// [`decompression_budget`]).
pub fn validate_batch_within(
    batch: &Bytes,
    header: &BatchHeader,
    limits: &ProduceLimits,
    now_ms: i64,
    budget: &mut u64,
) -> Result<i64, ValidationError> {
    let size = batch.len() as u64;
    if size > limits.max_message_bytes {
        return Err(ValidationError::TooLarge {
            size,
            max: limits.max_message_bytes,
        });
    }
    if header.is_control() {
        return Err(ValidationError::ControlBatch);
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(ValidationError::Sequence(
            header.producer_id,
            header.base_sequence,
        ));
    }
    let options = DecodeOptions {
        max_decompressed: limits.max_decompressed().min(*budget),
        values: false,
    };
    let mut records = BatchRecords::new(batch, header, options)?;
    let result = check_records(&mut records, header, limits, now_ms);
    *budget = budget.saturating_sub(records.decompressed());
    result
}

fn check_records(
    records: &mut BatchRecords,
    header: &BatchHeader,
    limits: &ProduceLimits,
    now_ms: i64,
) -> Result<i64, ValidationError> {
    let low = now_ms.saturating_sub(limits.timestamp_before_max_ms);
    let high = now_ms.saturating_add(limits.timestamp_after_max_ms);
    let mut max_timestamp = NO_TIMESTAMP;
    for (index, record) in (0..).zip(records) {
        let record = record?;
        if record.offset_delta != index {
            return Err(ValidationError::OffsetDelta {
                index,
                delta: record.offset_delta,
            });
        }
        let timestamp = record.timestamp;
        if timestamp != NO_TIMESTAMP {
            if !(low..=high).contains(&timestamp) {
                return Err(ValidationError::Timestamp {
                    index,
                    timestamp,
                    low,
                    high,
                });
            }
        } else if header.attributes & LOG_APPEND_TIME != 0 {
            return Err(ValidationError::LogAppendTime);
        }
        max_timestamp = max_timestamp.max(timestamp);
    }
    Ok(max_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::tests::encoded_batch;

    const LIMITS: ProduceLimits = ProduceLimits {
        max_message_bytes: 1_048_588,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
    };

    fn check(batch: Vec<u8>, limits: &ProduceLimits, now: i64) -> Result<i64, ValidationError> {
        let header = BatchHeader::parse(&batch).unwrap();
        validate_batch(&Bytes::from(batch), &header, limits, now)
    }

    #[test]
    fn an_honest_batch_passes_with_its_true_max_timestamp() {
        assert_eq!(check(encoded_batch(5, 1000), &LIMITS, 2000), Ok(1004));
    }

    #[test]
    fn sizes_and_timestamps_are_bounded() {
        let small = ProduceLimits {
            max_message_bytes: 50,
            ..LIMITS
        };
        let error = check(encoded_batch(5, 1000), &small, 2000).unwrap_err();
        assert_eq!(error.code(), ResponseError::MessageTooLarge);
        // Record 3 lies more than an hour ahead of `now`.
        let error = check(encoded_batch(5, 1000), &LIMITS, 1002 - 3_600_000).unwrap_err();
        assert_eq!(error.code(), ResponseError::InvalidTimestamp);
        assert!(matches!(error, ValidationError::Timestamp { index: 3, .. }));
        let recent = ProduceLimits {
            timestamp_before_max_ms: 10,
            ..LIMITS
        };
        let error = check(encoded_batch(5, 1000), &recent, 1020).unwrap_err();
        assert!(matches!(error, ValidationError::Timestamp { index: 0, .. }));
    }

    #[test]
    fn control_batches_and_idempotent_batches_without_a_sequence_are_refused() {
        let mut control = encoded_batch(1, 1000);
        control[22] |= 1 << 5;
        crate::log::record_batch::tests::fix_crc(&mut control);
        assert_eq!(
            check(control, &LIMITS, 2000),
            Err(ValidationError::ControlBatch)
        );
        let mut unsequenced = encoded_batch(1, 1000);
        unsequenced[43..51].copy_from_slice(&7i64.to_be_bytes());
        unsequenced[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        crate::log::record_batch::tests::fix_crc(&mut unsequenced);
        assert_eq!(
            check(unsequenced, &LIMITS, 2000),
            Err(ValidationError::Sequence(7, -1))
        );
    }

    #[test]
    fn compressed_batches_draw_on_one_budget() {
        let mut buf = bytes::BytesMut::new();
        let records: Vec<_> = (0..100)
            .map(|i| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1000,
                key: None,
                value: Some(Bytes::from(vec![0u8; 1000])),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let options = kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::Gzip,
        };
        kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        let batch = buf.freeze();
        let header = BatchHeader::parse(&batch).unwrap();
        // About 100 KB decompressed each: the budget holds one, not two.
        let mut budget = 150_000;
        assert_eq!(
            validate_batch_within(&batch, &header, &LIMITS, 2000, &mut budget),
            Ok(1000)
        );
        assert!(budget < 50_000, "{budget}");
        let error = validate_batch_within(&batch, &header, &LIMITS, 2000, &mut budget).unwrap_err();
        assert_eq!(error.code(), ResponseError::MessageTooLarge);
        assert_eq!(decompression_budget(1000, 10), 64 * 1010);
    }

    #[test]
    fn every_refusal_has_kafkas_code() {
        let codes = [
            (
                ValidationError::Records(RecordError::TrailingBytes(1)),
                ResponseError::InvalidRecord,
            ),
            (
                ValidationError::OffsetDelta { index: 1, delta: 5 },
                ResponseError::InvalidRecord,
            ),
            (
                ValidationError::Records(RecordError::TooLarge(1)),
                ResponseError::MessageTooLarge,
            ),
            (
                ValidationError::Records(RecordError::Decompress("x".into())),
                ResponseError::CorruptMessage,
            ),
            (
                ValidationError::LogAppendTime,
                ResponseError::InvalidTimestamp,
            ),
            (ValidationError::ControlBatch, ResponseError::InvalidRecord),
            (
                ValidationError::Sequence(1, -1),
                ResponseError::InvalidRecord,
            ),
        ];
        for (error, code) in codes {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    /// Cost of validating an uncompressed batch against the CRC-32C the broker computes over
    /// the same bytes anyway. Meaningful only optimised:
    /// `cargo test -p hotwire-broker --release --lib validate::tests::cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn cost_against_the_crc() {
        for (count, size) in [(1000, 1024), (100, 100), (10_000, 10)] {
            let records: Vec<_> = (0..count)
                .map(|i| kafka_protocol::records::Record {
                    transactional: false,
                    control: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: kafka_protocol::records::TimestampType::Creation,
                    offset: i,
                    sequence: i as i32,
                    timestamp: 1000 + i,
                    key: None,
                    value: Some(Bytes::from(vec![7u8; size])),
                    headers: Default::default(),
                    delete_horizon: false,
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            let options = kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: kafka_protocol::records::Compression::None,
            };
            kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &records, &options)
                .unwrap();
            let batch = buf.freeze();
            let header = BatchHeader::parse(&batch).unwrap();
            let limits = ProduceLimits {
                max_message_bytes: u64::MAX / 128,
                ..LIMITS
            };
            let rounds = 200;
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let max = validate_batch(&batch, &header, &limits, 5000);
                std::hint::black_box(max.unwrap());
            }
            let walk = start.elapsed() / rounds;
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(crc32c::crc32c(&batch[21..]));
            }
            let crc = start.elapsed() / rounds;
            println!(
                "{count} records of {size} B ({} bytes): validation {walk:?}, CRC {crc:?}",
                batch.len()
            );
        }
    }
}
