//! The stored object format: flush objects (`wal/<seq>.hwf`) and segments (`seg/<seq>.hws`).
//!
//! ```text
//! [data region][index][footer]
//! ```
//!
//! - **Data region**: for each partition present, its batches concatenated in offset order, the
//!   partitions in [`PartitionKey`] order. One partition's run is therefore one contiguous byte
//!   range: a fetch needs one ranged read.
//! - **Index**: `u32` chunk count, then one 64-byte entry per partition run:
//!
//!   | bytes | field                                   |
//!   |-------|-----------------------------------------|
//!   | 16    | topic id (UUID bytes, big-endian)       |
//!   | 4     | partition (`i32`)                       |
//!   | 8     | position within the object (`u64`)      |
//!   | 8     | length (`u64`)                          |
//!   | 8     | base offset (`i64`)                     |
//!   | 8     | last offset (`i64`)                     |
//!   | 8     | max timestamp (`i64`)                   |
//!   | 4     | batch count (`u32`)                     |
//!
//!   Entries are in position order, contiguous from 0, cover the data region exactly and are in
//!   partition key order; entries of one partition (several in a segment, one in a flush
//!   object) have increasing offsets. The object id is implied by the key and not stored.
//! - **Footer** (40 bytes, fixed, at the very end so that one ranged read of the last bytes finds
//!   it): object sequence `u64` (guards against a renamed or misplaced file), data region length
//!   `u64`, index length `u32`, index CRC-32C `u32`, data region CRC-32C `u32`, format version
//!   `u16`, flags `u16` (must be 0), magic `HWFLUSH1`.
//!
//! All integers are little-endian. Every decoder here returns an error on malformed input; none
//! of them panics, whatever the bytes.

use std::ops::Range;

use bytes::{Buf, Bytes};

use crate::{ChunkLocation, ObjectId, PartitionKey};

/// Trailing magic; its last digit doubles as a human-visible format generation.
pub(crate) const MAGIC: [u8; 8] = *b"HWFLUSH1";
/// Version written into the footer; readers reject others.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Size of the footer in bytes.
pub(crate) const FOOTER_LEN: u64 = 40;
const INDEX_HEADER_LEN: u64 = 4;
const INDEX_ENTRY_LEN: u64 = 64;

/// The fixed-size trailer of a flush object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) object: u64,
    pub(crate) data_len: u64,
    pub(crate) index_len: u32,
    pub(crate) index_crc: u32,
    pub(crate) data_crc: u32,
}

impl Footer {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(FOOTER_LEN as usize);
        out.extend_from_slice(&self.object.to_le_bytes());
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&self.index_len.to_le_bytes());
        out.extend_from_slice(&self.index_crc.to_le_bytes());
        out.extend_from_slice(&self.data_crc.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&MAGIC);
        Bytes::from(out)
    }

    /// Decodes the last [`FOOTER_LEN`] bytes of an object of `object_len` bytes named `object`,
    /// checking that the sizes it declares add up to `object_len`.
    pub(crate) fn decode(
        bytes: &[u8],
        object: ObjectId,
        object_len: u64,
    ) -> Result<Footer, String> {
        if bytes.len() as u64 != FOOTER_LEN {
            return Err(format!(
                "footer is {} bytes, expected {FOOTER_LEN}",
                bytes.len()
            ));
        }
        let mut r = Reader(bytes);
        let footer = Footer {
            object: r.u64()?,
            data_len: r.u64()?,
            index_len: r.u32()?,
            index_crc: r.u32()?,
            data_crc: r.u32()?,
        };
        let version = r.u16()?;
        let flags = r.u16()?;
        let magic = r.take::<8>()?;
        if magic != MAGIC {
            return Err("bad magic (not a flush object, or truncated)".into());
        }
        if version != FORMAT_VERSION {
            return Err(format!("unsupported format version {version}"));
        }
        if flags != 0 {
            return Err(format!("unknown flags {flags:#06x}"));
        }
        if footer.object != object.0 {
            return Err(format!("footer names object {}", footer.object));
        }
        let declared = footer
            .data_len
            .checked_add(u64::from(footer.index_len))
            .and_then(|n| n.checked_add(FOOTER_LEN));
        if declared != Some(object_len) {
            return Err(format!(
                "object is {object_len} bytes but footer declares data {} + index {} + footer {FOOTER_LEN}",
                footer.data_len, footer.index_len
            ));
        }
        Ok(footer)
    }

    /// Byte range of the index within the object.
    pub(crate) fn index_range(&self) -> Range<u64> {
        self.data_len..self.data_len + u64::from(self.index_len)
    }
}

/// Builds the index and the footer that follow a data region of `data_len` bytes with CRC-32C
/// `data_crc`, laid out as `chunks` describe.
pub(crate) fn encode_trailer(
    object: ObjectId,
    chunks: &[ChunkLocation],
    data_len: u64,
    data_crc: u32,
) -> (Bytes, Bytes) {
    let index = encode_index(chunks);
    let footer = Footer {
        object: object.0,
        data_len,
        // An index over u32::MAX bytes would need 67 million partitions in one object.
        index_len: u32::try_from(index.len()).unwrap_or(u32::MAX),
        index_crc: crc32c::crc32c(&index),
        data_crc,
    };
    (index, footer.encode())
}

/// Encodes the index of `chunks` (whose `object` field is not stored).
fn encode_index(chunks: &[ChunkLocation]) -> Bytes {
    let capacity = INDEX_HEADER_LEN + INDEX_ENTRY_LEN * chunks.len() as u64;
    let mut out = Vec::with_capacity(capacity as usize);
    // The pipeline caps objects far below 2^32 chunks (one per partition present).
    let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for c in chunks {
        out.extend_from_slice(c.key.topic_id.as_bytes());
        out.extend_from_slice(&c.key.partition.to_le_bytes());
        out.extend_from_slice(&c.position.to_le_bytes());
        out.extend_from_slice(&c.len.to_le_bytes());
        out.extend_from_slice(&c.base_offset.to_le_bytes());
        out.extend_from_slice(&c.last_offset.to_le_bytes());
        out.extend_from_slice(&c.max_timestamp.to_le_bytes());
        out.extend_from_slice(&c.batches.to_le_bytes());
    }
    Bytes::from(out)
}

/// Decodes and validates the index of `object`, given its already validated footer.
pub(crate) fn decode_index(
    bytes: &[u8],
    footer: &Footer,
    object: ObjectId,
) -> Result<Vec<ChunkLocation>, String> {
    if bytes.len() as u64 != u64::from(footer.index_len) {
        return Err(format!(
            "index is {} bytes, footer says {}",
            bytes.len(),
            footer.index_len
        ));
    }
    if crc32c::crc32c(bytes) != footer.index_crc {
        return Err("index checksum mismatch".into());
    }
    let mut r = Reader(bytes);
    let count = r.u32()?;
    if INDEX_HEADER_LEN + INDEX_ENTRY_LEN * u64::from(count) != bytes.len() as u64 {
        return Err(format!(
            "index of {} bytes cannot hold {count} entries",
            bytes.len()
        ));
    }
    let mut chunks: Vec<ChunkLocation> = Vec::with_capacity(count as usize);
    let mut expected_position = 0u64;
    for i in 0..count {
        let chunk = ChunkLocation {
            key: PartitionKey {
                topic_id: uuid::Uuid::from_bytes(r.take::<16>()?),
                partition: r.i32()?,
            },
            object,
            position: r.u64()?,
            len: r.u64()?,
            base_offset: r.i64()?,
            last_offset: r.i64()?,
            max_timestamp: r.i64()?,
            batches: r.u32()?,
        };
        if chunk.position != expected_position {
            return Err(format!(
                "chunk {i} starts at {}, expected {expected_position}",
                chunk.position
            ));
        }
        if chunk.len == 0 || chunk.batches == 0 || chunk.base_offset > chunk.last_offset {
            return Err(format!("chunk {i} is malformed: {chunk:?}"));
        }
        if chunks.last().is_some_and(|prev| {
            prev.key > chunk.key || (prev.key == chunk.key && prev.last_offset >= chunk.base_offset)
        }) {
            return Err(format!("chunk {i} is out of partition or offset order"));
        }
        expected_position = chunk
            .position
            .checked_add(chunk.len)
            .filter(|end| *end <= footer.data_len)
            .ok_or_else(|| format!("chunk {i} extends past the data region"))?;
        chunks.push(chunk);
    }
    if expected_position != footer.data_len {
        return Err(format!(
            "chunks cover {expected_position} of {} data bytes",
            footer.data_len
        ));
    }
    Ok(chunks)
}

/// Checks the data region (possibly split in several chunks) against the footer's CRC.
pub(crate) fn check_data(mut data: impl Buf, footer: &Footer) -> Result<(), String> {
    if data.remaining() as u64 != footer.data_len {
        return Err(format!(
            "data region is {} bytes, footer says {}",
            data.remaining(),
            footer.data_len
        ));
    }
    let mut crc = 0;
    while data.has_remaining() {
        let chunk = data.chunk();
        crc = crc32c::crc32c_append(crc, chunk);
        let n = chunk.len();
        data.advance(n);
    }
    if crc != footer.data_crc {
        return Err("data checksum mismatch".into());
    }
    Ok(())
}

/// Validates a whole object held in memory and returns its chunks.
pub(crate) fn parse_object(object: ObjectId, bytes: &[u8]) -> Result<Vec<ChunkLocation>, String> {
    let len = bytes.len() as u64;
    let footer_start = len
        .checked_sub(FOOTER_LEN)
        .ok_or_else(|| format!("object of {len} bytes is shorter than a footer"))?;
    let footer = Footer::decode(&bytes[footer_start as usize..], object, len)?;
    let index = footer.index_range();
    let chunks = decode_index(
        &bytes[index.start as usize..index.end as usize],
        &footer,
        object,
    )?;
    check_data(&bytes[..footer.data_len as usize], &footer)?;
    Ok(chunks)
}

/// Bounds-checked little-endian reads from a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let Some((head, tail)) = self.0.split_first_chunk::<N>() else {
            return Err("unexpected end of input".into());
        };
        self.0 = tail;
        Ok(*head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.take().map(u32::from_le_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
