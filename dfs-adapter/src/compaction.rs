//! Compaction: folds the oldest flush objects into per-partition segments.
//!
//! A round takes the oldest delivered flush objects, and for each partition in them writes
//! segments of up to the target size: its batches from those objects, appended to its newest
//! segment when that one is still small (below an eighth of the target), so a quiet partition
//! does not leave one small object per round, while a large segment is never rewritten. Chunks are merged up to a chunk size, so a catch-up read is a few large range reads.
//! Then one checkpoint records the new segments, moves `wal_from` past the sources and lists
//! the replaced segments as obsolete; they and the sources are deleted a period later. Until that
//! checkpoint is durable nothing refers to the new segments, and a crash leaves them as
//! orphans that recovery deletes; after it, recovery deletes the sources. Produce never waits
//! on any of it.

use std::collections::BTreeMap;

use bytes::Bytes;
use opendal::Buffer;
use tracing::{info, warn};

use crate::catalog::{Catalog, WalObject};
use crate::format::encode_trailer;
use crate::manifest::Segment;
use crate::{ChunkLocation, ObjectId, PartitionKey, StorageError};

/// A partition's newest segment is rewritten with new data only while it is below this
/// fraction of the target size.
const MERGE_FRACTION: u64 = 8;

/// When and how compaction runs.
#[derive(Clone, Debug)]
pub struct CompactionConfig {
    /// A round starts when at least this many flush objects are waiting...
    pub min_objects: usize,
    /// ... holding at least this many bytes (0: any). With a WAL in front of an object store
    /// this makes every round an upload of about this size, so that the store receives few,
    /// large objects.
    pub min_bytes: u64,
    /// ... or when the oldest has waited this long (so a quiet topic is compacted, and its
    /// retention applies, too).
    pub max_wait: std::time::Duration,
    /// At most this many flush objects per round.
    pub max_objects: usize,
    /// At most about this many bytes of flush objects per round (at least one object).
    pub max_bytes: u64,
    /// Segments roll at this size; a partition's newest segment below an eighth of it is
    /// rewritten together with new data.
    pub segment_target_bytes: u64,
    /// Consecutive chunks are merged up to this size (a cold read's unit).
    pub chunk_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            min_objects: 16,
            min_bytes: 0,
            max_wait: std::time::Duration::from_secs(600),
            max_objects: 256,
            max_bytes: 128 << 20,
            segment_target_bytes: 64 << 20,
            chunk_bytes: 4 << 20,
        }
    }
}

/// What a round did.
#[derive(Clone, Debug, PartialEq)]
pub struct Compacted {
    /// Flush objects folded in (now obsolete).
    pub sources: Vec<ObjectId>,
    /// Segments written, each replacing its partition's chunks in the offset range it covers.
    pub segments: Vec<Segment>,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Bytes written to storage.
    pub bytes_written: u64,
}

/// One partition's share of a round: batches in offset order, with where each run came from.
struct Pieces {
    /// The newest segment, rewritten with the new data (if it was small).
    base: Option<Segment>,
    runs: Vec<(ChunkLocation, Bytes)>,
}

impl Catalog {
    /// Runs one compaction round if enough flush objects wait; `keep` says which partitions
    /// still exist (the batches of others are dropped). Returns `None` when there was nothing
    /// to do, or when a concurrent change (retention) invalidated the round, which is then
    /// retried later.
    pub async fn compact(
        &self,
        config: &CompactionConfig,
        keep: &(dyn Fn(&PartitionKey) -> bool + Sync),
    ) -> Result<Option<Compacted>, StorageError> {
        let sources = self.pick_sources(config);
        if sources.is_empty() {
            return Ok(None);
        }
        let state = self.state().await;
        let mut bytes_read = 0u64;
        let mut parts: BTreeMap<PartitionKey, Pieces> = BTreeMap::new();
        let wanted: Vec<(ObjectId, u64)> = sources
            .iter()
            .map(|(object, chunks)| {
                let data_len = chunks.iter().map(|c| c.position + c.len).max().unwrap_or(0);
                (*object, data_len)
            })
            .collect();
        let read = self.store.read_objects(&wanted).await?;
        for ((_, chunks), data) in sources.iter().zip(read) {
            bytes_read += data.len() as u64;
            for chunk in chunks.iter() {
                let log_start = state.log_start(&chunk.key).unwrap_or(i64::MIN);
                if !keep(&chunk.key) || chunk.last_offset < log_start {
                    continue;
                }
                let bytes = slice(&data, chunk)?;
                parts
                    .entry(chunk.key)
                    .or_insert_with(|| Pieces {
                        base: None,
                        runs: Vec::new(),
                    })
                    .runs
                    .push((chunk.clone(), bytes));
            }
        }
        for (key, pieces) in parts.iter_mut() {
            let newest = state.segments.iter().rfind(|s| s.key == *key);
            // Only a small newest segment is rewritten: merging into a large one would rewrite
            // up to the target size every round (write amplification).
            let small = config.segment_target_bytes / MERGE_FRACTION;
            if let Some(base) = newest.filter(|s| s.bytes() < small) {
                let data_len = base
                    .chunks
                    .iter()
                    .map(|c| c.position + c.len)
                    .max()
                    .unwrap_or(0);
                let data = self.store.read_range(&base.id, 0, data_len).await?;
                bytes_read += data_len;
                let mut runs = Vec::with_capacity(base.chunks.len() + pieces.runs.len());
                for chunk in &base.chunks {
                    runs.push((chunk.clone(), slice(&data, chunk)?));
                }
                runs.append(&mut pieces.runs);
                pieces.runs = runs;
                pieces.base = Some(base.clone());
            }
        }

        let mut segments = Vec::with_capacity(parts.len());
        let mut bytes_written = 0u64;
        for (key, pieces) in &parts {
            // Segments roll at the target size, as Kafka's log segments roll at segment.bytes,
            // so that retention can delete the oldest part of a partition.
            for runs in split_at(&pieces.runs, config.segment_target_bytes) {
                let segment = self.write_segment(*key, runs, config.chunk_bytes).await?;
                bytes_written += segment.bytes();
                segments.push(segment);
            }
        }
        let replaced: Vec<ObjectId> = parts
            .values()
            .filter_map(|p| p.base.as_ref().map(|b| b.id))
            .collect();
        let source_ids: Vec<ObjectId> = sources.iter().map(|(id, _)| *id).collect();
        let Some(last_source) = source_ids.last().copied() else {
            return Ok(None);
        };

        let mut committed = self.committed.lock().await;
        let live = &committed.state.segments;
        if let Some(gone) = replaced
            .iter()
            .find(|id| !live.iter().any(|s| s.id == **id))
        {
            // Retention retired a segment this round rewrote: drop the round.
            warn!(segment = %gone, "compaction raced with retention; round abandoned");
            drop(committed);
            for segment in &segments {
                let _ = self.store.op().delete(&segment.id.key()).await;
            }
            return Ok(None);
        }
        let mut next = committed.state.clone();
        next.wal_from = last_source.next();
        next.next_segment = self.next_segment.load(std::sync::atomic::Ordering::Relaxed);
        next.segments.retain(|s| !replaced.contains(&s.id));
        // The sources are below the new `wal_from`: recovery deletes such flush objects by
        // itself, so the checkpoint need not list them (see `Catalog::retire_folded`).
        next.obsolete.extend(replaced.iter().copied());
        for segment in &segments {
            // A topic deleted, or records deleted, while the round ran: such a segment is born
            // obsolete.
            let log_start = next.log_start(&segment.key).unwrap_or(i64::MIN);
            if keep(&segment.key) && segment.last_offset() >= log_start {
                next.segments.push(segment.clone());
            } else {
                next.obsolete.push(segment.id);
            }
        }
        next.segments.sort_by_key(|s| (s.key, s.base_offset()));
        self.commit(&mut committed, next).await?;
        drop(committed);
        {
            // The sources are the oldest objects: one split, not a removal each.
            let mut wal = self.lock_wal();
            let rest = wal.split_off(&last_source.next());
            *wal = rest;
        }
        self.retire_folded(&source_ids);
        info!(
            sources = source_ids.len(),
            segments = segments.len(),
            bytes_read,
            bytes_written,
            "compaction round done"
        );
        Ok(Some(Compacted {
            sources: source_ids,
            segments,
            bytes_read,
            bytes_written,
        }))
    }

    /// The oldest flush objects to fold in this round (empty: not enough waiting).
    fn pick_sources(
        &self,
        config: &CompactionConfig,
    ) -> Vec<(ObjectId, std::sync::Arc<Vec<ChunkLocation>>)> {
        let wal = self.lock_wal();
        let waited_long = wal
            .values()
            .next()
            .is_some_and(|oldest| oldest.added.elapsed() >= config.max_wait);
        let enough = wal.len() >= config.min_objects.max(1)
            && (config.min_bytes == 0
                || wal
                    .values()
                    .flat_map(|o| o.chunks.iter().map(|c| c.len))
                    .sum::<u64>()
                    >= config.min_bytes);
        if wal.is_empty() || !(enough || waited_long) {
            return Vec::new();
        }
        let mut picked = Vec::new();
        let mut bytes = 0u64;
        for (id, WalObject { chunks, .. }) in wal.iter() {
            let len: u64 = chunks.iter().map(|c| c.len).sum();
            if picked.len() >= config.max_objects.max(1)
                || (!picked.is_empty() && bytes + len > config.max_bytes)
            {
                break;
            }
            bytes += len;
            picked.push((*id, chunks.clone()));
        }
        picked
    }

    /// Writes one partition's runs as a new segment, merging consecutive runs up to
    /// `chunk_bytes`.
    async fn write_segment(
        &self,
        key: PartitionKey,
        runs: &[(ChunkLocation, Bytes)],
        chunk_bytes: u64,
    ) -> Result<Segment, StorageError> {
        let id = self.take_segment_id();
        let mut chunks: Vec<ChunkLocation> = Vec::new();
        let mut parts: Vec<Bytes> = Vec::with_capacity(runs.len() + 2);
        let mut position = 0u64;
        let mut crc = 0u32;
        for (run, bytes) in runs {
            let len = bytes.len() as u64;
            crc = crc32c::crc32c_append(crc, bytes);
            match chunks.last_mut() {
                Some(chunk) if chunk.len + len <= chunk_bytes => {
                    chunk.len += len;
                    chunk.last_offset = run.last_offset;
                    chunk.max_timestamp = chunk.max_timestamp.max(run.max_timestamp);
                    chunk.batches = chunk.batches.saturating_add(run.batches);
                }
                _ => chunks.push(ChunkLocation {
                    key,
                    object: id,
                    position,
                    ..run.clone()
                }),
            }
            position += len;
            parts.push(bytes.clone());
        }
        let (index, footer) = encode_trailer(id, &chunks, position, crc);
        parts.push(index);
        parts.push(footer);
        self.store.write_object(id, Buffer::from(parts)).await?;
        Ok(Segment { id, key, chunks })
    }
}

/// Consecutive groups of `runs` of at most `limit` bytes each (a larger run alone).
fn split_at(runs: &[(ChunkLocation, Bytes)], limit: u64) -> Vec<&[(ChunkLocation, Bytes)]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, (_, data)) in runs.iter().enumerate() {
        let len = data.len() as u64;
        if i > start && bytes + len > limit {
            groups.push(&runs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < runs.len() {
        groups.push(&runs[start..]);
    }
    groups
}

/// The bytes of `chunk` within its object's data region `data`.
fn slice(data: &Bytes, chunk: &ChunkLocation) -> Result<Bytes, StorageError> {
    let start = usize::try_from(chunk.position).ok();
    let end = start.and_then(|s| s.checked_add(usize::try_from(chunk.len).ok()?));
    match (start, end) {
        (Some(start), Some(end)) if end <= data.len() => Ok(data.slice(start..end)),
        _ => Err(StorageError::corrupt(
            chunk.object.key(),
            format!(
                "chunk {}+{} outside the data read",
                chunk.position, chunk.len
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartitionKey;

    fn runs(lens: &[usize]) -> Vec<(ChunkLocation, Bytes)> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let chunk = ChunkLocation {
                    key: PartitionKey {
                        topic_id: uuid::Uuid::nil(),
                        partition: 0,
                    },
                    object: ObjectId(i as u64),
                    position: 0,
                    len: len as u64,
                    base_offset: i as i64,
                    last_offset: i as i64,
                    max_timestamp: 0,
                    batches: 1,
                };
                (chunk, Bytes::from(vec![0u8; len]))
            })
            .collect()
    }

    #[test]
    fn segments_roll_at_the_target_size() {
        let all = runs(&[4, 4, 4, 20, 1, 1]);
        let sizes: Vec<Vec<usize>> = split_at(&all, 10)
            .iter()
            .map(|g| g.iter().map(|(_, b)| b.len()).collect())
            .collect();
        assert_eq!(sizes, vec![vec![4, 4], vec![4], vec![20], vec![1, 1]]);
        assert!(split_at(&[], 10).is_empty());
    }
}
