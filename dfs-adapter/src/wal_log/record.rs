//! The header in front of every flush object in a WAL file.
//!
//! ```text
//! [header, 40 bytes][flush object: data, index, footer][zero or stale bytes up to 4 KiB]
//! ```
//!
//! | bytes | field                                                   |
//! |-------|---------------------------------------------------------|
//! | 8     | magic `HWWALREC`                                        |
//! | 8     | epoch of the broker run that wrote it (`u64`)           |
//! | 8     | flush object id (`u64`)                                 |
//! | 8     | flush object length (`u64`)                             |
//! | 4     | format version (`u16`) and flags (`u16`, must be 0)     |
//! | 4     | CRC-32C of the 36 bytes before it                       |
//!
//! Records start at multiples of [`ALIGN`], so that a record never shares a page with another:
//! a torn write of one flush can never damage an earlier, acknowledged one. The object itself
//! carries its own checks (footer with its id and sizes, index and data CRCs); the header only
//! says where it is and which run wrote it. Little-endian throughout.

use crate::ObjectId;

/// Records start at multiples of this (the page size of every platform we run on).
pub(crate) const ALIGN: u64 = 4096;
/// Size of the encoded header.
pub(crate) const HEADER_LEN: u64 = 40;
const MAGIC: [u8; 8] = *b"HWWALREC";
const VERSION: u16 = 1;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// The run that wrote it: a later run always has a larger epoch.
    pub(crate) epoch: u64,
    /// The flush object that follows.
    pub(crate) object: ObjectId,
    /// Its length in bytes (footer included).
    pub(crate) len: u64,
}

impl RecordHeader {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        out[16..24].copy_from_slice(&self.object.0.to_le_bytes());
        out[24..32].copy_from_slice(&self.len.to_le_bytes());
        out[32..34].copy_from_slice(&VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&out[..36]);
        out[36..40].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a header; `None` for anything that is not an intact header of this version
    /// (zeros, a torn write, stale bytes from an earlier use of the file).
    pub(crate) fn decode(bytes: &[u8]) -> Option<RecordHeader> {
        let bytes = bytes.get(..HEADER_LEN as usize)?;
        if bytes[0..8] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(bytes[36..40].try_into().ok()?);
        if crc32c::crc32c(&bytes[..36]) != crc {
            return None;
        }
        let version = u16::from_le_bytes(bytes[32..34].try_into().ok()?);
        let flags = u16::from_le_bytes(bytes[34..36].try_into().ok()?);
        if version != VERSION || flags != 0 {
            return None;
        }
        let len = u64::from_le_bytes(bytes[24..32].try_into().ok()?);
        if len == 0 {
            return None;
        }
        Some(RecordHeader {
            epoch: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            object: ObjectId(u64::from_le_bytes(bytes[16..24].try_into().ok()?)),
            len,
        })
    }

    /// Bytes the record takes in its file, padding included (`None` on overflow).
    pub(crate) fn footprint(&self) -> Option<u64> {
        footprint(self.len)
    }
}

/// Bytes a record holding an object of `len` bytes takes, padded to [`ALIGN`].
pub(crate) fn footprint(len: u64) -> Option<u64> {
    HEADER_LEN.checked_add(len)?.checked_next_multiple_of(ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
        RecordHeader {
            epoch: 7,
            object: ObjectId(42),
            len: 5000,
        }
    }

    #[test]
    fn round_trips() {
        let h = header();
        assert_eq!(RecordHeader::decode(&h.encode()), Some(h));
        assert_eq!(h.footprint(), Some(8192));
        assert_eq!(footprint(ALIGN - HEADER_LEN), Some(ALIGN));
        assert_eq!(footprint(u64::MAX), None);
    }

    #[test]
    fn rejects_anything_else() {
        assert_eq!(RecordHeader::decode(&[0u8; 40]), None);
        assert_eq!(RecordHeader::decode(&header().encode()[..39]), None);
        for i in 0..HEADER_LEN as usize {
            let mut bytes = header().encode();
            bytes[i] ^= 0x10;
            assert_eq!(RecordHeader::decode(&bytes), None, "flip in byte {i}");
        }
        let empty = RecordHeader { len: 0, ..header() };
        assert_eq!(RecordHeader::decode(&empty.encode()), None);
    }
}
