//! Identifiers shared by the store, the flush pipeline and recovery.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identity of one partition's log in storage.
///
/// Topic ids (not names) so that a deleted and re-created topic never adopts old data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    /// The topic's immutable id (see [`crate::TopicRecord::id`]).
    pub topic_id: uuid::Uuid,
    /// Partition index within the topic.
    pub partition: i32,
}

/// Name of a stored object: a flush object or a compacted segment.
///
/// Flush objects are numbered by a monotonically increasing sequence, key
/// `wal/<seq as 20 digits>.hwf`, so that a lexicographic listing is also the sequence order.
/// Segments (written by compaction, one partition each) have their own sequence, marked by the
/// top bit of the number ([`ObjectId::segment`]), key `seg/<seq as 20 digits>.hws`. Both share
/// one format (see the `format` module), so every reader handles both alike.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ObjectId(pub u64);

/// Directory (prefix) of flush objects.
pub(crate) const WAL_DIR: &str = "wal/";
/// File name suffix of flush objects.
const WAL_SUFFIX: &str = ".hwf";
/// Directory (prefix) of compacted segments.
pub(crate) const SEGMENT_DIR: &str = "seg/";
/// File name suffix of segments.
const SEGMENT_SUFFIX: &str = ".hws";
/// Marks a segment id. Flush sequences never get near it (2^63 objects).
const SEGMENT_BIT: u64 = 1 << 63;
/// Width of the zero-padded sequence number; `u64::MAX` has 20 digits.
const SEQ_DIGITS: usize = 20;

/// Bits of a sequence number (flush object, segment or checkpoint) below the writer epoch: in a
/// cluster, the leader of a shard at epoch `e` numbers everything it writes from `e << 40`, so
/// that a fenced older leader, still writing, never writes a key the new one writes.
pub const EPOCH_SHIFT: u32 = 40;

/// The first sequence number of writer epoch `epoch`.
pub fn epoch_base(epoch: u32) -> u64 {
    u64::from(epoch) << EPOCH_SHIFT
}

/// The writer epoch a sequence number belongs to.
pub fn epoch_of(seq: u64) -> u32 {
    u32::try_from(seq >> EPOCH_SHIFT).unwrap_or(u32::MAX)
}

impl ObjectId {
    /// The id of segment number `seq` (below 2^63).
    pub fn segment(seq: u64) -> ObjectId {
        ObjectId(seq | SEGMENT_BIT)
    }

    /// Whether this names a compacted segment rather than a flush object.
    pub fn is_segment(&self) -> bool {
        self.0 & SEGMENT_BIT != 0
    }

    /// The sequence number within its kind (flush objects or segments).
    pub fn seq(&self) -> u64 {
        self.0 & !SEGMENT_BIT
    }

    /// The object's key relative to the store root: `wal/<seq as 20 digits>.hwf` for flush
    /// objects, `seg/<seq as 20 digits>.hws` for segments.
    pub fn key(&self) -> String {
        let (dir, suffix) = if self.is_segment() {
            (SEGMENT_DIR, SEGMENT_SUFFIX)
        } else {
            (WAL_DIR, WAL_SUFFIX)
        };
        format!("{dir}{:0width$}{suffix}", self.seq(), width = SEQ_DIGITS)
    }

    /// The writer epoch that wrote it (0 outside a cluster).
    pub fn epoch(&self) -> u32 {
        epoch_of(self.seq())
    }

    /// The id following this one.
    ///
    /// Saturates at `u64::MAX`, which no store will ever reach (one object per nanosecond
    /// for 584 years).
    pub fn next(self) -> ObjectId {
        ObjectId(self.0.saturating_add(1))
    }

    /// Parses a file name (`<20 digits>.hwf`, without the `wal/` prefix); `None` for anything
    /// else, so that stray files in `wal/` are ignored rather than misread.
    pub(crate) fn from_file_name(name: &str) -> Option<ObjectId> {
        parse_seq(name, WAL_SUFFIX)
            .filter(|seq| seq & SEGMENT_BIT == 0)
            .map(ObjectId)
    }

    /// Parses a segment file name (`<20 digits>.hws`, without the `seg/` prefix).
    pub(crate) fn from_segment_name(name: &str) -> Option<ObjectId> {
        parse_seq(name, SEGMENT_SUFFIX)
            .filter(|seq| seq & SEGMENT_BIT == 0)
            .map(ObjectId::segment)
    }
}

/// The number in `<20 digits><suffix>`.
fn parse_seq(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Where one partition's contiguous run of batches sits inside one stored object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkLocation {
    /// The partition the batches belong to.
    pub key: PartitionKey,
    /// The flush object holding them.
    pub object: ObjectId,
    /// Byte position of the first batch within the object.
    pub position: u64,
    /// Length in bytes of the run (all batches concatenated).
    pub len: u64,
    /// Base offset of the first batch.
    pub base_offset: i64,
    /// Last offset of the last batch.
    pub last_offset: i64,
    /// Largest `max_timestamp` among the batches.
    pub max_timestamp: i64,
    /// Number of batches in the run.
    pub batches: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_file_name() {
        for seq in [0, 1, 42, (1 << 63) - 1] {
            let id = ObjectId(seq);
            let key = id.key();
            assert!(key.starts_with("wal/"));
            assert_eq!(key.len(), 4 + 20 + 4);
            let name = key.strip_prefix(WAL_DIR).unwrap();
            assert_eq!(ObjectId::from_file_name(name), Some(id));
        }
        assert_eq!(ObjectId(7).key(), "wal/00000000000000000007.hwf");
    }

    #[test]
    fn segment_ids_have_their_own_keys() {
        let id = ObjectId::segment(7);
        assert!(id.is_segment() && !ObjectId(7).is_segment());
        assert_eq!(id.seq(), 7);
        assert_eq!(id.key(), "seg/00000000000000000007.hws");
        assert_eq!(
            ObjectId::from_segment_name("00000000000000000007.hws"),
            Some(id)
        );
        assert_eq!(
            ObjectId::from_segment_name("00000000000000000007.hwf"),
            None
        );
        assert_eq!(ObjectId::from_file_name("00000000000000000007.hws"), None);
    }

    #[test]
    fn stray_names_are_not_objects() {
        for name in [
            "",
            ".hwf",
            "7.hwf",
            "00000000000000000007.hwf.tmp",
            "0000000000000000000a.hwf",
            "+0000000000000000007.hwf",
            "99999999999999999999.hwf", // 20 digits but above u64::MAX
            "09223372036854775808.hwf", // 2^63: the segment bit
            "00000000000000000007.json",
        ] {
            assert_eq!(ObjectId::from_file_name(name), None, "{name:?}");
        }
    }
}
