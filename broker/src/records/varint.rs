//! Kafka's zig-zag varints, read with a bounded number of bytes.

use super::error::RecordError;
use super::source::Source;

/// Longest encodings of a 32- and a 64-bit varint.
const MAX_VARINT: usize = 5;
const MAX_VARLONG: usize = 10;

/// Reads a zig-zag varint (Kafka `ByteUtils.readVarint`).
pub(crate) fn varint(src: &mut impl Source, field: &'static str) -> Result<i32, RecordError> {
    let mut raw = 0u32;
    for i in 0..MAX_VARINT {
        let byte = src.byte(field)?;
        // Bits above 32 in the fifth byte are dropped, as Kafka does.
        raw |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(RecordError::VarintTooLong(MAX_VARINT))
}

/// Reads a zig-zag varlong (Kafka `ByteUtils.readVarlong`).
pub(crate) fn varlong(src: &mut impl Source, field: &'static str) -> Result<i64, RecordError> {
    let mut raw = 0u64;
    for i in 0..MAX_VARLONG {
        let byte = src.byte(field)?;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordError::VarintTooLong(MAX_VARLONG))
}
