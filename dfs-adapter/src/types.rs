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

/// Name of a flush object: a monotonically increasing sequence number.
///
/// Its key in storage is `wal/<seq as 20 digits>.hwf`, so that a lexicographic listing is also
/// the sequence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(pub u64);

/// Directory (prefix) of flush objects.
pub(crate) const WAL_DIR: &str = "wal/";
/// File name suffix of flush objects.
const WAL_SUFFIX: &str = ".hwf";
/// Width of the zero-padded sequence number; `u64::MAX` has 20 digits.
const SEQ_DIGITS: usize = 20;

impl ObjectId {
    /// The object's key relative to the store root: `wal/<seq as 20 digits>.hwf`.
    pub fn key(&self) -> String {
        format!(
            "{WAL_DIR}{:0width$}{WAL_SUFFIX}",
            self.0,
            width = SEQ_DIGITS
        )
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
        let digits = name.strip_suffix(WAL_SUFFIX)?;
        if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(ObjectId)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Where one partition's contiguous run of batches sits inside one flush object.
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
        for seq in [0, 1, 42, u64::MAX] {
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
    fn stray_names_are_not_objects() {
        for name in [
            "",
            ".hwf",
            "7.hwf",
            "00000000000000000007.hwf.tmp",
            "0000000000000000000a.hwf",
            "+0000000000000000007.hwf",
            "99999999999999999999.hwf", // 20 digits but above u64::MAX
            "00000000000000000007.json",
        ] {
            assert_eq!(ObjectId::from_file_name(name), None, "{name:?}");
        }
    }
}
