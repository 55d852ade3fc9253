//! The little of the Kafka record batch format the client needs: lengths, offsets, CRC.

use crate::RdmaError;

/// Bytes before a v2 batch's CRC-covered part (base offset .. crc).
const CRC_START: usize = 21;
const HEADER_LEN: usize = 61;

/// One record batch, as stored (Kafka v2 format, offsets assigned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// First offset.
    pub base_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// The whole batch.
    pub bytes: Vec<u8>,
}

impl Batch {
    /// Parses and checks one whole batch: length field, magic 2, CRC-32C.
    pub fn parse(bytes: Vec<u8>) -> Result<Batch, RdmaError> {
        let bad = |why: &str| RdmaError::Protocol(format!("bad record batch: {why}"));
        if bytes.len() < HEADER_LEN {
            return Err(bad("shorter than a batch header"));
        }
        let be32 = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let length = be32(8) as usize;
        if 12 + length != bytes.len() {
            return Err(bad("length field disagrees with the size"));
        }
        if bytes[16] != 2 {
            return Err(bad("magic is not 2"));
        }
        if crc32c::crc32c(&bytes[CRC_START..]) != be32(17) {
            return Err(bad("CRC-32C mismatch"));
        }
        let base_offset = i64::from_be_bytes(bytes[0..8].try_into().unwrap_or_default());
        let last_offset = base_offset + i64::from(be32(23) as i32);
        Ok(Batch {
            base_offset,
            last_offset,
            bytes,
        })
    }
}

/// Splits concatenated batches (a `Fetch` answer) and checks each.
pub fn split_batches(mut bytes: &[u8]) -> Result<Vec<Batch>, RdmaError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err(RdmaError::Protocol("truncated batch".into()));
        }
        let length = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let total = 12 + length;
        if total > bytes.len() {
            return Err(RdmaError::Protocol("truncated batch".into()));
        }
        out.push(Batch::parse(bytes[..total].to_vec())?);
        bytes = &bytes[total..];
    }
    Ok(out)
}
