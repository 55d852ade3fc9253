//! The published partition index: what a one-sided reader needs to fetch with READ alone.
//!
//! The broker keeps, in one registered read-only region, a slot per subscribed partition: a
//! header (high watermark, log start, how many entries were published, the slot's
//! incarnation) and a ring of the partition's most recent hot batches, each entry saying where
//! its bytes are in the cache region (position, length, block, block generation) and which
//! offsets it holds. A reader READs the high watermark word to tail (no message to the
//! broker), READs the entries that follow its position, then the batches and their blocks'
//! generations, exactly as after a `Locate`.
//!
//! Nothing read here is trusted: an entry carries its publication number and a CRC-32C over
//! its fields, the slot and the slot's incarnation, so an entry torn by a concurrent
//! publication, overwritten by a later one, or left by a partition that used the slot before
//! fails the check; the batch it names is then checked as every one-sided read is (generation,
//! batch CRC, base offset). Words are in the broker's byte order (the generation words are
//! too): reader and broker share an architecture's endianness.
//!
//! Layout of a slot (`IndexLayout::slot_bytes`): 8 header words, then `entries` entries of 8
//! words: `[seq + 1, base_offset, last_offset, position, len << 32 | block, generation, crc,
//! 0]`.

use crate::control::BatchLocation;

/// Bytes of a slot's header.
pub const HEADER_BYTES: u64 = 64;
/// Bytes of one entry.
pub const ENTRY_BYTES: u64 = 64;
/// Words of one entry.
pub const ENTRY_WORDS: usize = (ENTRY_BYTES / 8) as usize;
/// Header word: the partition's high watermark (what may be read).
pub const HIGH_WATERMARK: usize = 0;
/// Header word: the first offset still held.
pub const LOG_START: usize = 1;
/// Header word: entries published so far (entry `n` is at ring position `n % entries`).
pub const HEAD: usize = 2;
/// Header word: changes each time the slot is given to a partition.
pub const INCARNATION: usize = 3;

/// Sizes of the index region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexLayout {
    /// Entries in each slot's ring.
    pub entries: u64,
}

impl IndexLayout {
    /// Bytes of one slot.
    pub fn slot_bytes(&self) -> u64 {
        HEADER_BYTES + self.entries * ENTRY_BYTES
    }

    /// Byte offset of `slot` in the region.
    pub fn slot_offset(&self, slot: u32) -> u64 {
        u64::from(slot) * self.slot_bytes()
    }

    /// Byte offset of header word `word` of `slot`.
    pub fn header_word(&self, slot: u32, word: usize) -> u64 {
        self.slot_offset(slot) + word as u64 * 8
    }

    /// Byte offset of the ring position entry `seq` of `slot` is published at.
    pub fn entry_offset(&self, slot: u32, seq: u64) -> u64 {
        self.slot_offset(slot) + HEADER_BYTES + (seq % self.entries.max(1)) * ENTRY_BYTES
    }
}

/// The words of entry `seq` of `slot` (at `incarnation`) for the batch at `at`.
pub fn encode_entry(slot: u32, incarnation: u64, seq: u64, at: &BatchLocation) -> [u64; 8] {
    let mut words = [
        seq + 1,
        at.base_offset as u64,
        at.last_offset as u64,
        at.position,
        u64::from(at.len) << 32 | u64::from(at.block),
        at.generation,
        0,
        0,
    ];
    words[6] = u64::from(checksum(slot, incarnation, &words));
    words
}

/// The batch entry `seq` of `slot` names, if `bytes` (one entry, as READ) is that entry,
/// whole, published for this incarnation of the slot.
pub fn decode_entry(slot: u32, incarnation: u64, seq: u64, bytes: &[u8]) -> Option<BatchLocation> {
    let bytes: &[u8; ENTRY_BYTES as usize] = bytes.try_into().ok()?;
    let mut words = [0u64; ENTRY_WORDS];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_ne_bytes(chunk.try_into().ok()?);
    }
    if words[0] != seq + 1 || words[6] != u64::from(checksum(slot, incarnation, &words)) {
        return None;
    }
    let at = BatchLocation {
        base_offset: words[1] as i64,
        last_offset: words[2] as i64,
        position: words[3],
        len: (words[4] >> 32) as u32,
        block: words[4] as u32,
        generation: words[5],
    };
    (at.last_offset >= at.base_offset && at.len > 0).then_some(at)
}

/// CRC-32C of an entry's fields (not its CRC word), its slot and the slot's incarnation.
fn checksum(slot: u32, incarnation: u64, words: &[u64; 8]) -> u32 {
    let mut crc = crc32c::crc32c(&slot.to_ne_bytes());
    crc = crc32c::crc32c_append(crc, &incarnation.to_ne_bytes());
    for word in &words[..6] {
        crc = crc32c::crc32c_append(crc, &word.to_ne_bytes());
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> BatchLocation {
        BatchLocation {
            position: 4096,
            len: 300,
            block: 1,
            generation: 7,
            base_offset: 40,
            last_offset: 49,
        }
    }

    fn bytes(words: &[u64; 8]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn an_entry_reads_back_only_as_itself() {
        let words = encode_entry(3, 9, 12, &at());
        assert_eq!(decode_entry(3, 9, 12, &bytes(&words)), Some(at()));
        // Another publication number (overwritten, or not yet written), another slot, a slot
        // given to another partition since: refused.
        assert_eq!(decode_entry(3, 9, 13, &bytes(&words)), None);
        assert_eq!(decode_entry(4, 9, 12, &bytes(&words)), None);
        assert_eq!(decode_entry(3, 10, 12, &bytes(&words)), None);
        // Torn: any field from another write.
        for field in 1..6 {
            let mut torn = words;
            torn[field] ^= 1 << 20;
            assert_eq!(decode_entry(3, 9, 12, &bytes(&torn)), None, "field {field}");
        }
        assert_eq!(decode_entry(3, 9, 12, &bytes(&words)[..40]), None);
        assert_eq!(decode_entry(3, 9, 12, &[0u8; 64]), None, "never written");
    }

    #[test]
    fn entries_wrap_around_their_slot() {
        let layout = IndexLayout { entries: 4 };
        assert_eq!(layout.slot_bytes(), 64 + 4 * 64);
        assert_eq!(layout.slot_offset(2), 2 * 320);
        assert_eq!(layout.entry_offset(2, 0), 640 + 64);
        assert_eq!(layout.entry_offset(2, 5), 640 + 64 + 64);
        assert_eq!(layout.header_word(1, HEAD), 320 + 16);
    }
}
