//! Start-up recovery: find the flush objects that were (or may have been) acknowledged.

use futures::StreamExt;
use tracing::{error, info, warn};

use crate::format::{self, Footer, FOOTER_LEN};
use crate::manifest::{follow_fences, Checkpoint, Fence, ManifestState};
use crate::types::{SEGMENT_DIR, WAL_DIR};
use crate::{ChunkLocation, ObjectId, StorageError, Store};

/// Flush objects read ahead at once during recovery (each at most `flush_max_bytes`).
const VALIDATE_CONCURRENCY: usize = 8;

/// Deletions of superseded objects in flight at once during recovery.
const DELETE_CONCURRENCY: usize = 16;

/// What [`Store::recover`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered {
    /// Every live chunk: first the segments' (by partition, in offset order), then those of
    /// the adopted flush objects, in object order and within an object in write order. Chunks
    /// wholly below their partition's recorded log start are left out.
    pub chunks: Vec<ChunkLocation>,
    /// The newest manifest checkpoint, if the store has one.
    pub manifest: Option<Checkpoint>,
    /// The sequence number the flush pipeline must use next.
    pub next_object: ObjectId,
    /// Number of adopted objects.
    pub objects: usize,
    /// The adopted flush objects, in order (also those of which no chunk is left above its
    /// partition's log start: compaction must still fold them, so that they are deleted).
    pub flush_objects: Vec<ObjectId>,
    /// Objects that were invalid or came after a gap or an invalid object, or that a fenced
    /// writer wrote after its fence; all deleted.
    pub discarded: Vec<ObjectId>,
    /// Set when this store's writer epoch takes the root over from an older one: where the
    /// sequence jumps to the new epoch's ids (the catalog records it in its first checkpoint).
    pub fence: Option<Fence>,
}

impl Store {
    /// Lists flush objects, validates each (footer magic and sizes, index CRC, data CRC), adopts
    /// the longest run of valid objects with consecutive sequence numbers starting at the
    /// lowest present, and deletes everything after the first gap or invalid object, unless
    /// that could destroy acknowledged data (see below).
    ///
    /// `max_in_flight` must be the [`crate::FlushConfig::max_in_flight`] of the pipeline run
    /// that wrote the objects (0 counts as 1, as in the pipeline).
    ///
    /// # Why deleting is safe, and when it is not
    ///
    /// The pipeline keeps a window of sealed but undelivered objects, oldest first, with
    /// consecutive ids; an object takes its slot from sealing until it is delivered (durable
    /// *and* every older object delivered), and a new object is sealed only while the window
    /// holds fewer than `m = max(max_in_flight, 1)` objects. So at any instant the window is
    /// `f ..= f + m - 1` at most, every object below `f` has been acknowledged, and none above
    /// `f + m - 1` has been sealed, let alone written. A crash therefore leaves objects below
    /// `f` intact, and any subset (possibly torn) of the window. The first missing or invalid
    /// object `p` a crash can explain lies in the window (`p >= f`), and nothing exists beyond
    /// `f + m - 1 <= p + m - 1`: at most `m - 1` ids follow `p`, none of them acknowledged
    /// (acknowledgements are given strictly in object order and `p` never was). Deleting `p`
    /// and everything after it is then safe, and the pipeline reuses their sequence numbers.
    ///
    /// If some object exists with an id above `p + m - 1`, the window must have moved past
    /// `p`, so `p` was acknowledged and has been lost or damaged since (bit rot, a bad manual
    /// edit or restore). Then this returns [`StorageError::Corrupt`] naming `p` and deletes
    /// nothing. Damage to an acknowledged object with fewer than `m` objects after it looks
    /// exactly like a crash and cannot be told apart; it is discarded like a torn write. If
    /// `max_in_flight` was lowered since the objects were written, a legitimate crash can be
    /// refused; recovering once with the old value resolves it. A raised value only makes
    /// that one recovery's check looser.
    ///
    /// The deletions are durable before this returns. Files in `wal/` that are not named like
    /// flush objects are ignored (and logged).
    ///
    /// Before that, the newest manifest checkpoint (if any) is read: flush objects below its
    /// `wal_from` are already in segments and are deleted, as are its obsolete objects and any
    /// segment it does not list (written by a compaction that died before its checkpoint), and
    /// the flush objects are replayed from `wal_from` on: a missing `wal_from` is a gap.
    ///
    /// With a writer epoch (see [`Store::set_writer_epoch`]), a root that a newer epoch wrote
    /// (a checkpoint or a flush object) is refused with [`StorageError::Fenced`]; the sequence
    /// follows the checkpoint's fences (objects between a fence's `end` and `resume` were
    /// written by a fenced leader after its fence, and are discarded); and when the adopted
    /// objects end below this epoch's first id, [`Recovered::fence`] says so and the pipeline
    /// continues from that first id.
    pub async fn recover(&self, max_in_flight: usize) -> Result<Recovered, StorageError> {
        let manifest = self.read_manifest().await?;
        let my_epoch = self.writer_epoch();
        if let Some(checkpoint) = manifest.as_ref() {
            let epoch = crate::types::epoch_of(checkpoint.seq);
            if my_epoch > 0 && epoch > my_epoch {
                return Err(newer_writer(epoch, my_epoch));
            }
        }
        let state = manifest
            .as_ref()
            .map(|m| m.state.clone())
            .unwrap_or_default();
        self.delete_unlisted_segments(&state).await?;
        let mut ids = self.list_objects().await?;
        // In a cluster on an object store the shard's objects are sections of its leaders'
        // flush streams: found through the markers, then walked like objects of their own.
        let stream_scan = match self.stream() {
            Some(stream) => {
                // Folded or fenced-out sections are dead: not even their tables are read.
                let live = |id| !crate::stream::section_is_dead(&state, id);
                let scan = stream.scan(self, my_epoch, live).await?;
                for (id, at) in &scan.objects {
                    stream.remember(*id, at.clone());
                    ids.push(*id);
                }
                Some(scan)
            }
            None => None,
        };
        ids.sort_unstable();
        ids.dedup();
        let folded: Vec<ObjectId> = ids
            .iter()
            .copied()
            .filter(|id| *id < state.wal_from)
            .collect();
        self.delete_all(folded.iter().chain(&state.obsolete))
            .await?;
        ids.retain(|id| *id >= state.wal_from);
        if let Some(newest) = ids.iter().find(|id| my_epoch > 0 && id.epoch() > my_epoch) {
            return Err(newer_writer(newest.epoch(), my_epoch));
        }
        let follow_fences = |next: ObjectId| follow_fences(&state.fences, next);
        let mut fenced_out = Vec::new();

        let mut chunks: Vec<ChunkLocation> = state
            .segments
            .iter()
            .flat_map(|s| s.chunks.clone())
            .collect();
        let mut adopted = Vec::new();
        let mut next_object = match &manifest {
            Some(_) => state.wal_from,
            None => ids.first().copied().unwrap_or(ObjectId(0)),
        };
        let mut cut = ids.len();
        // Objects are read ahead, a few at a time, in id order: a leader taking a shard over
        // replays thousands of small flush objects, and one read after another made that most
        // of a take-over. Results come back in order; what the walk does not use is dropped.
        let mut validations = futures::stream::iter(ids.clone())
            .map(|id| async move { self.validate_object(id).await })
            .buffered(VALIDATE_CONCURRENCY);
        for (i, &id) in ids.iter().enumerate() {
            let validated = validations.next().await;
            next_object = follow_fences(next_object);
            if id < next_object {
                // Between a fence's end and resume: a fenced leader's late write.
                fenced_out.push(id);
                continue;
            }
            if id != next_object {
                check_crash_window(next_object, "missing", &ids[i..], max_in_flight)?;
                warn!(missing = %next_object, "gap in flush objects; discarding the rest");
                cut = i;
                break;
            }
            match validated.expect("one validation per id") {
                Ok(found) => {
                    chunks.extend(found);
                    adopted.push(id);
                    next_object = id.next();
                }
                Err(StorageError::Corrupt { object, reason }) => {
                    check_crash_window(id, &reason, &ids[i + 1..], max_in_flight)?;
                    warn!(%object, %reason, "invalid flush object; discarding it and the rest");
                    cut = i;
                    break;
                }
                // Could not even read it: a transient problem must not cost data.
                Err(other) => return Err(other),
            }
        }

        drop(validations);
        // The WAL (when in use) continues where the flush object files end.
        let from_wal = match self.wal() {
            Some(wal) => Some(
                wal.recover(next_object, &state.fences, max_in_flight)
                    .await?,
            ),
            None => None,
        };
        next_object = follow_fences(next_object);
        let mut discarded = ids.split_off(cut);
        if !fenced_out.is_empty() {
            warn!(
                count = fenced_out.len(),
                "discarding flush objects a fenced writer wrote after its fence"
            );
            discarded.splice(0..0, fenced_out);
        }
        // Newest first: if we crash half-way, what is left still starts with an invalid object
        // or a gap, and the next recovery finishes the job.
        for id in discarded.iter().rev() {
            if self.stream().is_some_and(|s| s.forget(id)) {
                continue; // the sweep deletes the stream object once all of it is dead
            }
            self.delete_key(&id.key()).await?;
        }
        if !discarded.is_empty() {
            self.sync_wal_dir().await?;
        }
        if let Some(found) = from_wal {
            for (id, found_chunks) in found.objects {
                chunks.extend(found_chunks);
                adopted.push(id);
            }
            next_object = found.next_object;
            discarded.extend(found.discarded);
        }
        let mut fence = None;
        let first_of_epoch = ObjectId(crate::types::epoch_base(my_epoch));
        if my_epoch > 0 && next_object < first_of_epoch {
            info!(end = %next_object, resume = %first_of_epoch, epoch = my_epoch, "taking the root over at a new writer epoch");
            fence = Some(Fence {
                end: next_object,
                resume: first_of_epoch,
            });
            next_object = first_of_epoch;
        }
        if let (Some(stream), Some(scan)) = (self.stream(), &stream_scan) {
            stream
                .drop_stale_markers(self, my_epoch, &scan.markers, &adopted)
                .await?;
        }
        chunks.retain(|c| {
            state
                .log_start(&c.key)
                .is_none_or(|start| c.last_offset >= start)
        });
        info!(
            objects = adopted.len(),
            chunks = chunks.len(),
            discarded = discarded.len(),
            next = %next_object,
            "recovery finished"
        );
        Ok(Recovered {
            chunks,
            manifest,
            next_object,
            objects: adopted.len(),
            flush_objects: adopted,
            discarded,
            fence,
        })
    }

    /// Deletes segments the manifest does not list (or lists as obsolete).
    async fn delete_unlisted_segments(&self, state: &ManifestState) -> Result<(), StorageError> {
        let entries = self
            .op()
            .list(SEGMENT_DIR)
            .await
            .map_err(StorageError::backend(format!("list {SEGMENT_DIR}")))?;
        let mut unlisted = Vec::new();
        for entry in entries {
            if entry.path() == SEGMENT_DIR || !entry.metadata().is_file() {
                continue;
            }
            match ObjectId::from_segment_name(entry.name()) {
                Some(id) if !state.segments.iter().any(|s| s.id == id) => unlisted.push(id),
                Some(_) => {}
                None => warn!(object = %entry.path(), "ignoring stray entry in seg/"),
            }
        }
        if !unlisted.is_empty() {
            warn!(
                count = unlisted.len(),
                "deleting segments no checkpoint lists (interrupted compaction)"
            );
        }
        self.delete_all(unlisted.iter()).await
    }

    /// Deletes objects (absent ones are fine) and makes the deletions durable.
    ///
    /// Many at once and each directory synced once at the end: a leader taking a shard over
    /// deletes what the last leader's compaction superseded before it serves, and one fsync per
    /// file made that seconds (1.6 s for a few hundred objects, measured). A crash before the
    /// syncs only leaves objects the next recovery deletes again.
    async fn delete_all(&self, ids: impl Iterator<Item = &ObjectId>) -> Result<(), StorageError> {
        use futures::stream::{self, TryStreamExt};
        let ids: Vec<ObjectId> = ids.copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        stream::iter(ids.iter().map(Ok::<_, StorageError>))
            .try_for_each_concurrent(DELETE_CONCURRENCY, |id| async move {
                match self.wal_holding(id) {
                    Some(wal) => wal.delete(*id).await,
                    None if self.stream().is_some_and(|s| s.forget(id)) => Ok(()),
                    None => self.delete_key(&id.key()).await,
                }
            })
            .await?;
        for dir_of in [ObjectId(0), ObjectId::segment(0)] {
            if ids.iter().any(|id| id.is_segment() == dir_of.is_segment()) {
                self.sync_dir_of(&dir_of.key()).await?;
            }
        }
        info!(
            count = ids.len(),
            "deleted objects superseded by the manifest"
        );
        Ok(())
    }

    /// Ids of all flush objects in `wal/`, unordered.
    async fn list_objects(&self) -> Result<Vec<ObjectId>, StorageError> {
        let entries = self
            .op()
            .list(WAL_DIR)
            .await
            .map_err(StorageError::backend(format!("list {WAL_DIR}")))?;
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.path() == WAL_DIR {
                continue; // some backends list the directory itself
            }
            match ObjectId::from_file_name(entry.name()) {
                Some(id) if entry.metadata().is_file() => ids.push(id),
                _ if crate::wal_log::owns(entry.name()) => {}
                _ => warn!(object = %entry.path(), "ignoring stray entry in wal/"),
            }
        }
        Ok(ids)
    }

    /// Reads and checks one object: footer (one ranged read of the tail), index, data CRC.
    ///
    /// An object in a flush stream is its section of the stream object, read whole (its
    /// length is known from the stream's table) and checked in memory.
    async fn validate_object(&self, id: ObjectId) -> Result<Vec<ChunkLocation>, StorageError> {
        if let Some((stream, at)) = self.stream_holding(&id) {
            let bytes = stream.stream.read(&at, 0, at.len).await?;
            return format::parse_object(id, &bytes)
                .map_err(|reason| StorageError::corrupt(at.key.to_string(), reason));
        }
        let key = id.key();
        let corrupt = |reason: String| StorageError::corrupt(&key, reason);
        let size = self
            .op()
            .stat(&key)
            .await
            .map_err(StorageError::backend(format!("stat {key}")))?
            .content_length();
        let footer_start = size
            .checked_sub(FOOTER_LEN)
            .ok_or_else(|| corrupt(format!("{size} bytes is shorter than a footer")))?;
        let tail = self.read_buffer(&key, footer_start, FOOTER_LEN).await?;
        let footer = Footer::decode(&tail.to_bytes(), id, size).map_err(corrupt)?;
        let range = footer.index_range();
        let index = self
            .read_buffer(&key, range.start, range.end - range.start)
            .await?;
        let chunks = format::decode_index(&index.to_bytes(), &footer, id).map_err(corrupt)?;
        // Reads the whole data region; compaction will keep recovery's object count small.
        let data = self.read_buffer(&key, 0, footer.data_len).await?;
        format::check_data(data, &footer).map_err(corrupt)?;
        Ok(chunks)
    }
}

fn newer_writer(found: u32, mine: u32) -> StorageError {
    StorageError::Fenced(format!(
        "writer epoch {found} has written this root; this leader's epoch {mine} is older"
    ))
}

/// Refuses (with nothing deleted yet) when objects after the first missing or invalid object
/// `bad` reach further than a crash with `max_in_flight` objects in flight can leave behind,
/// i.e. beyond `bad + max_in_flight - 1`; then `bad` was acknowledged (see [`Store::recover`]).
///
/// `later` holds the ids present after `bad`, ascending.
fn check_crash_window(
    bad: ObjectId,
    problem: &str,
    later: &[ObjectId],
    max_in_flight: usize,
) -> Result<(), StorageError> {
    let window = max_in_flight.max(1);
    let allowed = u64::try_from(window - 1).unwrap_or(u64::MAX);
    let Some(&last) = later.last() else {
        return Ok(());
    };
    if last.0.saturating_sub(bad.0) <= allowed {
        return Ok(());
    }
    let reason = format!(
        "{problem}; yet {count} later object(s) exist, up to {last}, further than a crash with \
         flush max_in_flight = {max_in_flight} can leave (at most {allowed} id(s) after the \
         first missing or invalid object), so this object had been acknowledged and was lost \
         or damaged afterwards. Recovery stopped to protect acknowledged data and deleted \
         nothing. Restore the object from a backup; if max_in_flight was lowered since these \
         objects were written, start once with the old value; only to give up the acknowledged \
         data in and after it, delete this object and every later one by hand",
        count = later.len(),
    );
    error!(object = %bad, %reason, "refusing to discard flush objects");
    Err(StorageError::corrupt(bad.key(), reason))
}
