//! Why the records of a batch could not be decoded.

use thiserror::Error;

/// A batch's records are malformed, or decode past a limit.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The records end inside a record.
    #[error("records end inside a record ({0})")]
    Truncated(&'static str),
    /// A varint runs over its longest encoding.
    #[error("varint longer than {0} bytes")]
    VarintTooLong(usize),
    /// A length or count field holds a value no record can have.
    #[error("invalid {field} {value}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A record's fields do not take the bytes its length declares.
    #[error("record {index} declares {declared} bytes but its fields take {read}")]
    RecordSize {
        /// Index of the record in its batch.
        index: i32,
        /// Declared length.
        declared: i64,
        /// Bytes its fields took (so far, when they overran).
        read: u64,
    },
    /// Fewer records than the header counts ("premature EOF" in Kafka's words).
    #[error(
        "incorrect declared batch size: {declared} records declared, the data ends after {found}"
    )]
    MissingRecords {
        /// The header's record count.
        declared: i32,
        /// Records actually present.
        found: i32,
    },
    /// Bytes left over after the declared number of records.
    #[error("incorrect declared batch size: records remain after the declared {0}")]
    TrailingBytes(i32),
    /// Decompressed records exceed the cap.
    #[error("records decompress to more than {0} bytes")]
    TooLarge(u64),
    /// Attributes name a codec that does not exist.
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    /// The compressed stream is corrupt.
    #[error("decompression failed: {0}")]
    Decompress(String),
}

impl RecordError {
    /// The error behind an `io::Error` from a decompressing reader.
    pub(crate) fn from_io(error: std::io::Error) -> Self {
        if let Some(inner) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<RecordError>())
        {
            return inner.clone();
        }
        RecordError::Decompress(error.to_string())
    }
}
