//! The stream object format: several shards' flush objects in one stored object.
//!
//! ```text
//! [section][section]...[table][footer]
//! ```
//!
//! - **Sections**: complete flush objects (see the crate's `format` module), each exactly as it
//!   would be stored alone, back to back. A section is validated by its own footer, index and
//!   data CRC, so a reader trusts the table only to find it.
//! - **Table**: one 28-byte entry per section, in position order: shard `u32`, flush object id
//!   `u64`, position `u64`, length `u64`.
//! - **Footer** (20 bytes): entry count `u32`, table CRC-32C `u32`, format version `u32`, magic
//!   `HWSTRM01`.
//!
//! All integers are little-endian. [`decode_table`] returns an error on malformed input and
//! never panics or allocates more than the bytes it was given justify.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ObjectId;

const MAGIC: [u8; 8] = *b"HWSTRM01";
const VERSION: u32 = 1;
/// Size of the footer in bytes.
pub(crate) const FOOTER_LEN: u64 = 20;
const ENTRY_LEN: u64 = 28;

/// Where one shard's flush object lies in a stream object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The shard whose flush object it is.
    pub(crate) shard: u32,
    /// The flush object's id in that shard's sequence.
    pub(crate) object: ObjectId,
    /// First byte of the section in the stream object.
    pub(crate) position: u64,
    /// Length of the section.
    pub(crate) len: u64,
}

/// The table and footer for `entries` (which must lie back to back from position 0).
pub(crate) fn encode_trailer(entries: &[Entry]) -> Bytes {
    let mut table = BytesMut::with_capacity(entries.len() * ENTRY_LEN as usize);
    for entry in entries {
        table.put_u32_le(entry.shard);
        table.put_u64_le(entry.object.0);
        table.put_u64_le(entry.position);
        table.put_u64_le(entry.len);
    }
    let crc = crc32c::crc32c(&table);
    table.put_u32_le(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    table.put_u32_le(crc);
    table.put_u32_le(VERSION);
    table.put_slice(&MAGIC);
    table.freeze()
}

/// Bytes of table and footer at the end of an object of `size` bytes whose footer is `footer`
/// (the last [`FOOTER_LEN`] bytes).
pub(crate) fn trailer_len(footer: &[u8], size: u64) -> Result<u64, String> {
    let (count, _) = decode_footer(footer)?;
    let trailer = u64::from(count) * ENTRY_LEN + FOOTER_LEN;
    if trailer > size {
        return Err(format!("{count} table entries do not fit in {size} bytes"));
    }
    Ok(trailer)
}

fn decode_footer(footer: &[u8]) -> Result<(u32, u32), String> {
    if footer.len() as u64 != FOOTER_LEN {
        return Err(format!("footer of {} bytes", footer.len()));
    }
    let mut buf = footer;
    let count = buf.get_u32_le();
    let crc = buf.get_u32_le();
    let version = buf.get_u32_le();
    if buf != MAGIC {
        return Err("no stream object magic".into());
    }
    if version != VERSION {
        return Err(format!("stream format version {version}"));
    }
    Ok((count, crc))
}

/// Decodes the table from the object's last bytes `trailer` (table and footer; more bytes
/// before them are fine) of an object of `size` bytes, checking that the sections lie back to
/// back from position 0 up to the table.
pub(crate) fn decode_table(trailer: &[u8], size: u64) -> Result<Vec<Entry>, String> {
    let footer_start = trailer
        .len()
        .checked_sub(FOOTER_LEN as usize)
        .ok_or("shorter than a footer")?;
    let (count, crc) = decode_footer(&trailer[footer_start..])?;
    let table_len = u64::from(count) * ENTRY_LEN;
    let table_start = (footer_start as u64)
        .checked_sub(table_len)
        .ok_or_else(|| format!("{count} table entries, fewer bytes read"))?;
    let table = &trailer[table_start as usize..footer_start];
    if crc32c::crc32c(table) != crc {
        return Err("table CRC mismatch".into());
    }
    let data_end = size
        .checked_sub(table_len + FOOTER_LEN)
        .ok_or("table larger than the object")?;
    let mut entries = Vec::with_capacity(count as usize);
    let mut buf = table;
    let mut expected = 0u64;
    while buf.has_remaining() {
        let entry = Entry {
            shard: buf.get_u32_le(),
            object: ObjectId(buf.get_u64_le()),
            position: buf.get_u64_le(),
            len: buf.get_u64_le(),
        };
        if entry.position != expected {
            return Err(format!(
                "section at {} where {expected} was expected",
                entry.position
            ));
        }
        expected = entry
            .position
            .checked_add(entry.len)
            .filter(|end| *end <= data_end)
            .ok_or_else(|| format!("section {} runs past the sections' end", entry.object))?;
        entries.push(entry);
    }
    if expected != data_end {
        return Err(format!(
            "sections end at {expected}, the table starts at {data_end}"
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                shard: 3,
                object: ObjectId(7),
                position: 0,
                len: 100,
            },
            Entry {
                shard: 1,
                object: ObjectId(1 << 41),
                position: 100,
                len: 50,
            },
        ]
    }

    #[test]
    fn a_table_round_trips() {
        let trailer = encode_trailer(&entries());
        let size = 150 + trailer.len() as u64;
        let footer = &trailer[trailer.len() - FOOTER_LEN as usize..];
        assert_eq!(trailer_len(footer, size).unwrap(), trailer.len() as u64);
        let mut object = vec![0u8; 150];
        object.extend_from_slice(&trailer);
        assert_eq!(decode_table(&object, size).unwrap(), entries());
        assert_eq!(decode_table(&trailer, size).unwrap(), entries());
    }

    #[test]
    fn damaged_tables_are_refused() {
        let trailer = encode_trailer(&entries()).to_vec();
        let size = 150 + trailer.len() as u64;
        for i in 0..trailer.len() {
            let mut bad = trailer.clone();
            bad[i] ^= 0x40;
            assert!(decode_table(&bad, size).is_err(), "byte {i} flipped");
        }
        assert!(
            decode_table(&trailer, size + 1).is_err(),
            "sections must reach the table"
        );
        assert!(decode_table(&trailer[1..], size).is_err());
        assert!(decode_table(&[], 0).is_err());
        let mut huge = trailer.clone();
        let n = huge.len() - FOOTER_LEN as usize;
        huge[n..n + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(trailer_len(&huge[n..], size).is_err());
        assert!(decode_table(&huge, size).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode_table(&bytes, len as u64);
            let _ = decode_table(&bytes, u64::MAX);
        }
    }
}
