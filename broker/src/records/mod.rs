//! Bounded decoding of the records inside v2 record batches.
//!
//! Nothing here trusts a count or a length read from the bytes: records are read one at a time
//! from the batch (or from a streaming decompressor), every length is checked against the bytes
//! its record declares before anything is skipped or copied, and decompression stops with
//! [`RecordError::TooLarge`] once it has produced more than the caller's cap. Memory per decoder
//! is a small read buffer plus, when values are asked for, one value at a time; work is linear in
//! the batch's bytes (uncompressed) or in the capped decompressed bytes.

mod codec;
mod error;
mod reader;
mod source;
mod varint;

#[cfg(test)]
mod tests;

pub use codec::Codec;
pub use error::RecordError;
pub use reader::{BatchRecords, DecodeOptions, RecordInfo};
