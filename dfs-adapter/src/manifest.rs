//! The manifest: the durable record of which segments exist, where the flush-object log
//! starts, and each partition's log start offset.
//!
//! It is a checkpoint plus an incremental log, where the log is the flush objects themselves:
//! every checkpoint `manifest/<seq, 20 digits>.json` holds the full state at one point (small:
//! segments and offsets, no record data), and flush objects from `wal_from` on are the edits
//! made since, replayed by [`crate::Store::recover`] as before. A new checkpoint is written only
//! when that state changes other than by a flush: compaction, retention, DeleteRecords, a topic
//! deletion, and once at every start (which claims the storage root).
//!
//! Checkpoints are created, never overwritten, with `if_not_exists` where the service offers it
//! (fs: `O_EXCL`; S3: `If-None-Match: *`), so two brokers cannot both write checkpoint `n` on a
//! store that enforces the condition; the loser gets [`StorageError::Fenced`]. Each file ends in
//! a CRC-32C line so that a torn file (fs) is recognised and ignored rather than misread.

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::{ChunkLocation, ObjectId, PartitionKey, StorageError, Store};

/// Directory (prefix) of manifest checkpoints.
pub(crate) const MANIFEST_DIR: &str = "manifest/";
const MANIFEST_SUFFIX: &str = ".json";
const CRC_PREFIX: &str = "\ncrc32c:";
/// Version of the checkpoint layout; readers refuse others.
const MANIFEST_FORMAT: u32 = 1;
/// Checkpoints kept besides the newest (older ones are deleted after each write).
const KEEP_OLDER: u64 = 1;

/// One compacted segment: a contiguous range of one partition's batches in a stored object.
///
/// The object is the segment's own, or shared with other partitions' segments (an upload of
/// many small partitions at once, listed in [`ManifestState::shared`]); either way the
/// segment's chunks lie back to back in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The object holding it ([`ObjectId::is_segment`]); shared objects hold several segments.
    pub id: ObjectId,
    /// The partition it holds.
    pub key: PartitionKey,
    /// Its chunks, in offset order.
    pub chunks: Vec<ChunkLocation>,
}

impl Segment {
    /// Bytes of record data it holds.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.len).sum()
    }

    /// Base offset of its first batch.
    pub fn base_offset(&self) -> i64 {
        self.chunks.first().map_or(0, |c| c.base_offset)
    }

    /// Last offset of its last batch.
    pub fn last_offset(&self) -> i64 {
        self.chunks.last().map_or(-1, |c| c.last_offset)
    }

    /// Largest record timestamp in it.
    pub fn max_timestamp(&self) -> i64 {
        self.chunks
            .iter()
            .map(|c| c.max_timestamp)
            .max()
            .unwrap_or(-1)
    }

    /// What tells it from every other segment: its object, partition and base offset.
    pub fn identity(&self) -> (ObjectId, PartitionKey, i64) {
        (self.id, self.key, self.base_offset())
    }

    /// Where its data lies in its object: `(position, len)`.
    pub fn span(&self) -> (u64, u64) {
        let start = self.chunks.first().map_or(0, |c| c.position);
        let end = self.chunks.last().map_or(0, |c| c.position + c.len);
        (start, end.saturating_sub(start))
    }
}

/// Everything a checkpoint records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestState {
    /// Flush objects below this id are folded into segments (or were dropped): recovery
    /// replays flush objects from here on, and deletes older ones it still finds.
    pub wal_from: ObjectId,
    /// Sequence number of the next segment to write.
    pub next_segment: u64,
    /// Live segments, each partition's in offset order.
    pub segments: Vec<Segment>,
    /// Log start offsets moved by retention or DeleteRecords (partitions not listed start at
    /// their first stored batch).
    pub log_starts: Vec<(PartitionKey, i64)>,
    /// Objects replaced or deleted by this state but perhaps still in the store (deleted a
    /// while after the checkpoint, so that reads in flight finish first).
    pub obsolete: Vec<ObjectId>,
    /// Objects holding segments of several partitions, with the bytes of record data each was
    /// written with: an object goes only when its last segment does, and one whose live part
    /// fell below half is emptied by the next compaction round. (Absent from checkpoints
    /// written before shared objects existed: none then.)
    #[serde(default)]
    pub shared: Vec<(ObjectId, u64)>,
    /// Where the flush objects of one writer epoch end and the next epoch's begin (written by
    /// a cluster leader when it takes a shard over). Recovery follows the sequence from `end`
    /// to `resume`: objects between them are what a fenced leader wrote after its fence, never
    /// acknowledged, and are discarded. (Absent outside a cluster and in older checkpoints.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fences: Vec<Fence>,
}

/// A jump in the flush-object sequence at a change of writer epoch (see
/// [`ManifestState::fences`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The first id after the last object the new leader adopted from older epochs.
    pub end: ObjectId,
    /// The first id of the new epoch.
    pub resume: ObjectId,
}

/// Where the flush-object sequence continues at `next`: across every fence that ends there,
/// to its `resume`.
pub(crate) fn follow_fences(fences: &[Fence], mut next: ObjectId) -> ObjectId {
    while let Some(fence) = fences.iter().find(|f| f.end == next && f.resume > next) {
        next = fence.resume;
    }
    next
}

impl ManifestState {
    /// The recorded log start of `key`, if one was ever moved.
    pub fn log_start(&self, key: &PartitionKey) -> Option<i64> {
        self.log_starts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, offset)| *offset)
    }

    /// Removes the segments `gone` selects, and lists as obsolete each of their objects that no
    /// live segment still refers to.
    pub fn retire_segments(&mut self, gone: impl Fn(&Segment) -> bool) {
        let (gone, kept): (Vec<Segment>, Vec<Segment>) = std::mem::take(&mut self.segments)
            .into_iter()
            .partition(|s| gone(s));
        self.segments = kept;
        self.drop_unreferenced(gone.iter().map(|s| s.id));
    }

    /// Lists as obsolete each of `candidates` that no live segment refers to (once each), and
    /// forgets it as a shared object.
    pub fn drop_unreferenced(&mut self, candidates: impl IntoIterator<Item = ObjectId>) {
        let live: std::collections::HashSet<ObjectId> =
            self.segments.iter().map(|s| s.id).collect();
        for id in candidates {
            if !live.contains(&id) && !self.obsolete.contains(&id) {
                self.obsolete.push(id);
                self.shared.retain(|(shared, _)| *shared != id);
            }
        }
    }

    /// Sets the log start of `key` (never moving it backwards).
    pub fn set_log_start(&mut self, key: PartitionKey, offset: i64) {
        match self.log_starts.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = entry.1.max(offset),
            None => self.log_starts.push((key, offset)),
        }
    }
}

/// The on-storage checkpoint, before its CRC line.
#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    format: u32,
    seq: u64,
    /// Id of the broker process that wrote it (for operators and fencing messages).
    writer: uuid::Uuid,
    written_unix_ms: u64,
    state: ManifestState,
}

/// A checkpoint read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Its sequence number.
    pub seq: u64,
    /// Who wrote it.
    pub writer: uuid::Uuid,
    /// What it records.
    pub state: ManifestState,
}

fn checkpoint_key(seq: u64) -> String {
    format!("{MANIFEST_DIR}{seq:020}{MANIFEST_SUFFIX}")
}

fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(MANIFEST_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn encode(
    seq: u64,
    writer: uuid::Uuid,
    state: &ManifestState,
) -> Result<Vec<u8>, StorageError> {
    let file = CheckpointFile {
        format: MANIFEST_FORMAT,
        seq,
        writer,
        written_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        state: state.clone(),
    };
    let mut body = serde_json::to_vec(&file)
        .map_err(|e| StorageError::InvalidArgument(format!("cannot encode manifest: {e}")))?;
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(format!("{CRC_PREFIX}{crc:08x}\n").as_bytes());
    Ok(body)
}

/// Parses a checkpoint file; `Err` says why it is not a valid one.
pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<Checkpoint, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let at = text
        .rfind(CRC_PREFIX)
        .ok_or("no checksum line (torn write?)")?;
    let (body, tail) = text.split_at(at);
    let hex = tail[CRC_PREFIX.len()..].trim_end_matches('\n');
    let crc = u32::from_str_radix(hex, 16).map_err(|_| format!("bad checksum line {hex:?}"))?;
    if crc32c::crc32c(body.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    let file: CheckpointFile = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if file.format != MANIFEST_FORMAT {
        return Err(format!("unsupported manifest format {}", file.format));
    }
    if file.seq != seq {
        return Err(format!("file names checkpoint {}", file.seq));
    }
    Ok(Checkpoint {
        seq,
        writer: file.writer,
        state: file.state,
    })
}

/// Whether `bytes` end in a well-formed checksum line, as every completely written checkpoint
/// does (whatever else is wrong with it).
fn has_checksum_line(bytes: &[u8]) -> bool {
    let Some(line) = bytes
        .len()
        .checked_sub(CRC_PREFIX.len() + 9)
        .map(|at| &bytes[at..])
    else {
        return false;
    };
    let (prefix, rest) = line.split_at(CRC_PREFIX.len());
    prefix == CRC_PREFIX.as_bytes()
        && rest[..8].iter().all(u8::is_ascii_hexdigit)
        && rest[8] == b'\n'
}

/// The error that stops recovery at an invalid checkpoint that was not a torn write.
fn refuse(key: &str, reason: &str, torn: Option<&str>) -> StorageError {
    let after = torn.map_or(String::new(), |t| {
        format!(" (after the torn newest checkpoint {t}, which a single crash cannot explain)")
    });
    let reason = format!(
        "invalid manifest checkpoint: {reason}{after}. It was completely written, so later \
         deletions may rest on it: falling back to an older checkpoint could delete segments it \
         lists. Recovery stopped and deleted nothing. Restore it from a backup; only to give up \
         what it alone records, move it out of manifest/ by hand"
    );
    error!(checkpoint = %key, %reason, "refusing to recover");
    StorageError::corrupt(key, reason)
}

impl Store {
    /// The newest valid checkpoint, or `None` on a store that never had one.
    ///
    /// # Which checkpoint, and why falling back is rarely safe
    ///
    /// Every action a checkpoint records (deleting compacted flush objects, dropping segments)
    /// waits until that checkpoint is durable, and checkpoint `n + 1` is only written once `n`
    /// is. So a crash can leave at most one unfinished checkpoint, the newest, and nothing
    /// acted on it. Falling back past it to the one before is safe; falling back past a
    /// checkpoint that was *complete* is not: recovery would then delete the segments only the
    /// newer one lists, and replay flush objects the newer one already folded away.
    ///
    /// The rule: the newest checkpoint is used if it is valid. If it is invalid, it is skipped
    /// (and deleted) only when it is a torn write: on `fs` (where a crash can leave a
    /// prefix of the file) and without the complete checksum line every checkpoint ends with;
    /// then the next one must be valid. Any other invalid checkpoint (complete but failing its
    /// checksum or its format, an object store's checkpoint, which is never published half
    /// written, or a second invalid one) stops recovery with [`StorageError::Corrupt`] and
    /// nothing is deleted.
    pub async fn read_manifest(&self) -> Result<Option<Checkpoint>, StorageError> {
        let mut seqs = self.list_checkpoints().await?;
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        let mut torn: Option<String> = None;
        for (newest, seq) in seqs.into_iter().enumerate().map(|(i, s)| (i == 0, s)) {
            let key = checkpoint_key(seq);
            let bytes = self
                .op()
                .read(&key)
                .await
                .map_err(StorageError::backend(format!("read {key}")))?
                .to_vec();
            match decode(seq, &bytes) {
                Ok(checkpoint) => {
                    if let Some(torn) = torn {
                        self.delete_key(&torn).await?;
                        self.sync_dir_of(&torn).await?;
                    }
                    return Ok(Some(checkpoint));
                }
                Err(reason) if newest && self.is_local() && !has_checksum_line(&bytes) => {
                    warn!(checkpoint = %key, %reason, "torn manifest checkpoint (a crash while writing it); using the previous one");
                    torn = Some(key);
                }
                Err(reason) => return Err(refuse(&key, &reason, torn.as_deref())),
            }
        }
        if let Some(torn) = torn {
            self.delete_key(&torn).await?;
            self.sync_dir_of(&torn).await?;
        }
        Ok(None)
    }

    /// Creates checkpoint `seq`; durable when it returns. Fails with [`StorageError::Fenced`]
    /// when a different valid checkpoint `seq` exists (another broker wrote it).
    pub async fn write_manifest(
        &self,
        seq: u64,
        writer: uuid::Uuid,
        state: &ManifestState,
    ) -> Result<(), StorageError> {
        self.check_lease()?;
        let key = checkpoint_key(seq);
        let body = encode(seq, writer, state)?;
        let conditional = self.op().info().capability().write_with_if_not_exists;
        self.count_put(1, body.len() as u64);
        let written = self
            .write_op()
            .write_with(&key, body.clone())
            .if_not_exists(conditional)
            .await;
        match written {
            Ok(_) => {}
            Err(e) if is_already_there(&e) => self.settle_conflict(seq, &key, &body).await?,
            Err(e) => {
                // A partial file left behind on fs would block the retry: remove it.
                if self.is_local() {
                    let _ = self.op().delete(&key).await;
                }
                return Err(StorageError::backend(format!("write {key}"))(e));
            }
        }
        self.sync_dir_of(&key).await?;
        if seq > KEEP_OLDER {
            let old = checkpoint_key(seq - KEEP_OLDER - 1);
            if let Err(e) = self.delete_key(&old).await {
                warn!(checkpoint = %old, error = %e, "could not delete an old checkpoint");
            }
        }
        info!(checkpoint = %key, segments = state.segments.len(), wal_from = %state.wal_from, "manifest written");
        Ok(())
    }

    /// `key` already exists: it is ours (an earlier attempt whose answer was lost), a torn
    /// leftover (deleted, then written again), another writer's (fenced), or complete but
    /// corrupt (refused, kept).
    async fn settle_conflict(&self, seq: u64, key: &str, body: &[u8]) -> Result<(), StorageError> {
        let existing = self
            .op()
            .read(key)
            .await
            .map_err(StorageError::backend(format!("read {key}")))?
            .to_vec();
        if existing == body {
            return Ok(());
        }
        match decode(seq, &existing) {
            Ok(other) => Err(StorageError::Fenced(format!(
                "manifest checkpoint {key} was written by broker {} meanwhile: another broker \
                 runs on this storage root",
                other.writer
            ))),
            // Complete but invalid: not ours to replace (see `read_manifest`).
            Err(reason) if has_checksum_line(&existing) => Err(refuse(key, &reason, None)),
            Err(reason) => {
                warn!(checkpoint = %key, %reason, "replacing a torn manifest checkpoint");
                self.op()
                    .delete(key)
                    .await
                    .map_err(StorageError::backend(format!("delete {key}")))?;
                self.write_op()
                    .write_with(key, body.to_vec())
                    .if_not_exists(self.op().info().capability().write_with_if_not_exists)
                    .await
                    .map_err(StorageError::backend(format!("write {key}")))?;
                Ok(())
            }
        }
    }

    async fn list_checkpoints(&self) -> Result<Vec<u64>, StorageError> {
        let entries = self
            .op()
            .list(MANIFEST_DIR)
            .await
            .map_err(StorageError::backend(format!("list {MANIFEST_DIR}")))?;
        Ok(entries
            .iter()
            .filter(|e| e.metadata().is_file())
            .filter_map(|e| parse_checkpoint_name(e.name()))
            .collect())
    }
}

pub(crate) fn is_already_there(e: &opendal::Error) -> bool {
    matches!(
        e.kind(),
        opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ManifestState {
        let key = PartitionKey {
            topic_id: uuid::Uuid::from_u128(9),
            partition: 2,
        };
        ManifestState {
            wal_from: ObjectId(17),
            next_segment: 3,
            segments: vec![Segment {
                id: ObjectId::segment(2),
                key,
                chunks: vec![ChunkLocation {
                    key,
                    object: ObjectId::segment(2),
                    position: 0,
                    len: 100,
                    base_offset: 0,
                    last_offset: 9,
                    max_timestamp: 5,
                    batches: 2,
                }],
            }],
            log_starts: vec![(key, 4)],
            obsolete: vec![ObjectId(3)],
            shared: vec![(ObjectId::segment(9), 4096)],
            fences: vec![Fence {
                end: ObjectId(12),
                resume: ObjectId(crate::types::epoch_base(2)),
            }],
        }
    }

    #[test]
    fn a_state_written_before_shared_objects_reads_as_having_none() {
        let mut old = serde_json::to_value(state()).unwrap();
        old.as_object_mut().unwrap().remove("shared");
        let back: ManifestState = serde_json::from_value(old).unwrap();
        assert_eq!(
            back,
            ManifestState {
                shared: Vec::new(),
                ..state()
            }
        );
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let writer = uuid::Uuid::from_u128(1);
        let bytes = encode(5, writer, &state()).unwrap();
        let back = decode(5, &bytes).unwrap();
        assert_eq!((back.seq, back.writer, back.state), (5, writer, state()));
        assert!(decode(6, &bytes).is_err(), "wrong name");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 3] {
            assert!(decode(5, &bytes[..cut]).is_err(), "torn at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(decode(5, &flipped).is_err());
    }

    #[test]
    fn torn_and_complete_checkpoints_are_told_apart() {
        let bytes = encode(5, uuid::Uuid::from_u128(1), &state()).unwrap();
        assert!(has_checksum_line(&bytes));
        for cut in [0, 1, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(!has_checksum_line(&bytes[..cut]), "torn at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(has_checksum_line(&flipped), "complete, though corrupt");
        let mut zeroed = bytes.clone();
        let n = zeroed.len();
        zeroed[n - 20..].fill(0);
        assert!(!has_checksum_line(&zeroed), "a zero-filled tail is torn");
    }

    #[test]
    fn log_start_only_moves_forward() {
        let mut s = state();
        let key = s.log_starts[0].0;
        s.set_log_start(key, 2);
        assert_eq!(s.log_start(&key), Some(4));
        s.set_log_start(key, 8);
        assert_eq!(s.log_start(&key), Some(8));
    }

    #[test]
    fn names() {
        assert_eq!(checkpoint_key(7), "manifest/00000000000000000007.json");
        assert_eq!(parse_checkpoint_name("00000000000000000007.json"), Some(7));
        assert_eq!(parse_checkpoint_name("7.json"), None);
    }
}
