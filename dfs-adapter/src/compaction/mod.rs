//! Compaction: folds the oldest flush objects into segments, uploading few large objects.
//!
//! A round takes the oldest delivered flush objects and writes their batches out again by
//! partition. A partition that gathers [`CompactionConfig::own_object_bytes`] (its new data and
//! its tail of earlier small segments, see [`plan`]) gets objects of its own, rolled at the
//! segment target size as Kafka's log segments roll at `segment.bytes`; every other partition's
//! new data goes, one segment each, into a single shared object for the round. So an upload to
//! an object store is a few large objects whatever the number of partitions, and a small
//! partition's bytes are uploaded twice at most (once shared, once in its own object). Chunks
//! are merged up to a chunk size, so a catch-up read is a few large range reads.
//!
//! Then one checkpoint records the new segments, moves `wal_from` past the sources and lists as
//! obsolete every object no live segment refers to any more; they and the sources are deleted a
//! period later. Until that checkpoint is durable nothing refers to the new objects, and a crash
//! leaves them as orphans that recovery deletes; after it, recovery deletes the sources.
//! Produce never waits on any of it.

mod plan;
mod write;

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tracing::{info, warn};

use crate::catalog::{Catalog, WalObject};
use crate::manifest::Segment;
use crate::{ChunkLocation, ObjectId, PartitionKey, StorageError};
use write::{bytes_of, slice, split_at, Run};

/// Reads of tails to rewrite in flight at once.
const TAIL_READS_IN_FLIGHT: usize = 8;

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
    /// Segments roll at this size; a partition gets objects of its own once it has a quarter
    /// of it to write (see [`CompactionConfig::own_object_bytes`]).
    pub segment_target_bytes: u64,
    /// Consecutive chunks are merged up to this size (a cold read's unit).
    pub chunk_bytes: u64,
}

impl CompactionConfig {
    /// A partition's data goes to objects of its own, rather than into the round's shared
    /// object, once its new data and its tail of shared segments reach this: a quarter of the
    /// segment target, so that an object of its own is rarely small.
    pub fn own_object_bytes(&self) -> u64 {
        (self.segment_target_bytes / 4).max(1)
    }
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
    /// Objects written (each partition's own, and at most one shared).
    pub objects_written: usize,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Bytes written to storage.
    pub bytes_written: u64,
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
        let _round = self.compacting.lock().await;
        let sources = self.pick_sources(config);
        let Some(last_source) = sources.last().map(|(id, _)| *id) else {
            return Ok(None);
        };
        let state = self.state().await;
        let (mut new_runs, mut bytes_read) = self.read_sources(&sources, &state, keep).await?;
        let new_bytes: BTreeMap<PartitionKey, u64> = new_runs
            .iter()
            .map(|(key, runs)| (*key, bytes_of(runs)))
            .collect();
        let mut rewrite = plan::tails_to_rewrite(&state, &new_bytes, config);
        rewrite.retain(|key, _| keep(key));
        let (mut tail_runs, tail_bytes) = self.read_tails(&rewrite).await?;
        bytes_read += tail_bytes;

        // Lay the round out: objects of their own for partitions with enough, one shared
        // object for every other partition's data.
        let mut own: Vec<(PartitionKey, Vec<Run>)> = Vec::new();
        let mut shared: Vec<(PartitionKey, Vec<Run>)> = Vec::new();
        let keys: std::collections::BTreeSet<PartitionKey> =
            new_runs.keys().chain(rewrite.keys()).copied().collect();
        for key in keys {
            let mut runs = tail_runs.remove(&key).unwrap_or_default();
            runs.extend(new_runs.remove(&key).unwrap_or_default());
            if !rewrite.contains_key(&key) {
                shared.push((key, runs));
                continue;
            }
            let pieces = split_at(&runs, config.segment_target_bytes);
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                // The remainder after the last full segment waits in the shared object.
                let remainder = i + 1 == count && bytes_of(piece) < config.own_object_bytes();
                let target = if remainder { &mut shared } else { &mut own };
                target.push((key, piece.to_vec()));
            }
        }
        let mut written = Vec::with_capacity(own.len() + 1);
        for part in own {
            written.push(self.write_parts(&[part], config.chunk_bytes).await?);
        }
        let mut shared_object = None;
        if !shared.is_empty() {
            let object = self.write_parts(&shared, config.chunk_bytes).await?;
            shared_object = Some((object.id, object.bytes));
            written.push(object);
        }
        let bytes_written: u64 = written.iter().map(|w| w.bytes).sum();
        let segments: Vec<Segment> = written
            .iter()
            .flat_map(|w| w.segments.iter().cloned())
            .collect();
        let replaced: Vec<&Segment> = rewrite.values().flatten().collect();

        let mut committed = self.committed.lock().await;
        let live = &committed.state.segments;
        if let Some(gone) = replaced.iter().find(|s| !live.contains(s)) {
            // Retention retired a segment this round rewrote: drop the round.
            warn!(segment = %gone.id, "compaction raced with retention; round abandoned");
            drop(committed);
            for object in &written {
                let _ = self.store.delete_key(&object.id.key()).await;
            }
            return Ok(None);
        }
        let mut next = committed.state.clone();
        next.wal_from = last_source.next();
        next.next_segment = self.next_segment.load(std::sync::atomic::Ordering::Relaxed);
        let replaced_ids: std::collections::HashSet<(ObjectId, PartitionKey, i64)> =
            replaced.iter().map(|s| s.identity()).collect();
        next.segments
            .retain(|s| !replaced_ids.contains(&s.identity()));
        // The sources are below the new `wal_from`: recovery deletes such flush objects by
        // itself, so the checkpoint need not list them (see `Catalog::retire_folded`).
        let mut unreferenced: Vec<ObjectId> = replaced.iter().map(|s| s.id).collect();
        for segment in &segments {
            // A topic deleted, or records deleted, while the round ran: such a segment is born
            // obsolete.
            let log_start = next.log_start(&segment.key).unwrap_or(i64::MIN);
            if keep(&segment.key) && segment.last_offset() >= log_start {
                next.segments.push(segment.clone());
            } else {
                unreferenced.push(segment.id);
            }
        }
        if let Some(object) = shared_object {
            next.shared.push(object);
        }
        next.drop_unreferenced(unreferenced);
        next.segments.sort_by_key(|s| (s.key, s.base_offset()));
        self.commit(&mut committed, next).await?;
        drop(committed);
        {
            // The sources are the oldest objects: one split, not a removal each.
            let mut wal = self.lock_wal();
            let rest = wal.split_off(&last_source.next());
            *wal = rest;
        }
        let source_ids: Vec<ObjectId> = sources.iter().map(|(id, _)| *id).collect();
        self.retire_folded(&source_ids);
        info!(
            sources = source_ids.len(),
            segments = segments.len(),
            objects = written.len(),
            rewritten = replaced.len(),
            bytes_read,
            bytes_written,
            "compaction round done"
        );
        Ok(Some(Compacted {
            sources: source_ids,
            segments,
            objects_written: written.len(),
            bytes_read,
            bytes_written,
        }))
    }

    /// This round's batches by partition, read from its flush objects (those of partitions
    /// gone, or below their log start, left out), and the bytes read.
    async fn read_sources(
        &self,
        sources: &[(ObjectId, std::sync::Arc<Vec<ChunkLocation>>)],
        state: &crate::manifest::ManifestState,
        keep: &(dyn Fn(&PartitionKey) -> bool + Sync),
    ) -> Result<(BTreeMap<PartitionKey, Vec<Run>>, u64), StorageError> {
        let wanted: Vec<(ObjectId, u64)> = sources
            .iter()
            .map(|(object, chunks)| {
                let data_len = chunks.iter().map(|c| c.position + c.len).max().unwrap_or(0);
                (*object, data_len)
            })
            .collect();
        let read = self.store.read_objects(&wanted).await?;
        let mut bytes_read = 0u64;
        let mut parts: BTreeMap<PartitionKey, Vec<Run>> = BTreeMap::new();
        for ((_, chunks), data) in sources.iter().zip(read) {
            bytes_read += data.len() as u64;
            for chunk in chunks.iter() {
                let log_start = state.log_start(&chunk.key).unwrap_or(i64::MIN);
                if !keep(&chunk.key) || chunk.last_offset < log_start {
                    continue;
                }
                let bytes = slice(&data, 0, chunk)?;
                parts
                    .entry(chunk.key)
                    .or_default()
                    .push((chunk.clone(), bytes));
            }
        }
        Ok((parts, bytes_read))
    }

    /// The batches of the tails to rewrite, by partition in offset order, and the bytes read.
    async fn read_tails(
        &self,
        rewrite: &BTreeMap<PartitionKey, Vec<Segment>>,
    ) -> Result<(BTreeMap<PartitionKey, Vec<Run>>, u64), StorageError> {
        let segments: Vec<&Segment> = rewrite.values().flatten().collect();
        // Owned arguments: the futures must be Send for any borrow's lifetime.
        let spans: Vec<(ObjectId, u64, u64)> = segments
            .iter()
            .map(|s| {
                let (position, len) = s.span();
                (s.id, position, len)
            })
            .collect();
        let read: Vec<Bytes> =
            futures::stream::iter(spans.into_iter().map(|(id, position, len)| {
                let store = self.store.clone();
                async move { store.read_range(&id, position, len).await }
            }))
            .buffered(TAIL_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut bytes_read = 0u64;
        let mut runs: BTreeMap<PartitionKey, Vec<Run>> = BTreeMap::new();
        for (segment, data) in segments.iter().zip(read) {
            bytes_read += data.len() as u64;
            let (position, _) = segment.span();
            let entry = runs.entry(segment.key).or_default();
            for chunk in &segment.chunks {
                entry.push((chunk.clone(), slice(&data, position, chunk)?));
            }
        }
        Ok((runs, bytes_read))
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
}
