//! [`Catalog`]: the live view of what is stored, and the only writer of manifest checkpoints.
//!
//! It holds the last checkpoint's [`ManifestState`] and the flush objects delivered since
//! (the incremental part). Compaction, retention, DeleteRecords and topic deletion change the
//! state through it; each change is durable in a new checkpoint before it is applied in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{debug, info};

use crate::manifest::{ManifestState, Segment};
use crate::{ChunkLocation, ObjectId, PartitionKey, Recovered, StorageError, Store};

/// The live storage catalog of one broker. See the module docs.
pub struct Catalog {
    pub(crate) store: Store,
    /// This broker process, named in its checkpoints.
    writer: uuid::Uuid,
    /// Flush objects at or after `wal_from`, delivered (durable, in order), with their chunks.
    pub(crate) wal: Mutex<BTreeMap<ObjectId, WalObject>>,
    /// The last checkpoint written. Held across the write of the next one, which serialises
    /// all changes.
    pub(crate) committed: tokio::sync::Mutex<Committed>,
    /// Next segment number to hand out (ahead of the checkpoint's while a compaction runs).
    pub(crate) next_segment: AtomicU64,
    /// Live segments in the last checkpoint (readable without the async lock).
    segments: AtomicUsize,
    /// Obsolete objects seen at the previous [`Catalog::delete_obsolete`]: deleted at the next,
    /// so that reads that started before they became obsolete have time to finish.
    ripe: Mutex<Vec<ObjectId>>,
    /// Flush objects folded into segments (below `wal_from`) and not deleted yet, with the same
    /// one-period delay (`.1` is the part seen at the previous pass). Not in the checkpoints:
    /// recovery deletes flush objects below `wal_from` by itself, and under group commit a
    /// round folds tens of thousands of them, which a checkpoint need not list.
    folded: Mutex<(Vec<ObjectId>, Vec<ObjectId>)>,
    /// Held for a whole compaction round: rounds pick the oldest flush objects, so two at once
    /// (the periodic one and a leader's last before a hand-over) would fold the same ones.
    pub(crate) compacting: tokio::sync::Mutex<()>,
}

/// A delivered flush object awaiting compaction.
#[derive(Clone)]
pub(crate) struct WalObject {
    /// Shared: a compaction round picks tens of thousands under the lock the flush sink
    /// also takes, and cloning an `Arc` keeps that short.
    pub(crate) chunks: Arc<Vec<ChunkLocation>>,
    /// When this catalog learned of it (at open, for recovered objects).
    pub(crate) added: Instant,
}

/// A written checkpoint.
pub(crate) struct Committed {
    pub(crate) seq: u64,
    pub(crate) state: ManifestState,
}

impl Catalog {
    /// Builds the catalog from what recovery found and writes a first checkpoint, which claims
    /// the storage root for this broker (a store enforcing conditional writes then fences any
    /// broker still running on it at its next checkpoint).
    pub async fn open(store: Store, recovered: &Recovered) -> Result<Catalog, StorageError> {
        let (seq, mut state) = match &recovered.manifest {
            Some(checkpoint) => (checkpoint.seq + 1, checkpoint.state.clone()),
            None => (0, ManifestState::default()),
        };
        // A cluster leader numbers its checkpoints and segments in its epoch's range, and
        // records where the flush objects jump to it.
        let first_of_epoch = crate::types::epoch_base(store.writer_epoch());
        let seq = seq.max(first_of_epoch);
        state.next_segment = state.next_segment.max(first_of_epoch);
        if let Some(fence) = recovered.fence {
            state.fences.push(fence);
        }
        let wal_from = state.wal_from;
        state.fences.retain(|f| f.resume > wal_from);
        // Recovery deleted every obsolete object and every flush object below `wal_from`.
        state.obsolete.clear();
        let mut by_object: BTreeMap<ObjectId, Vec<ChunkLocation>> = BTreeMap::new();
        for chunk in recovered.chunks.iter().filter(|c| !c.object.is_segment()) {
            by_object
                .entry(chunk.object)
                .or_default()
                .push(chunk.clone());
        }
        // An adopted object whose every chunk lies below its partition's log start is kept
        // (empty) for compaction to fold and delete like any other.
        for id in &recovered.flush_objects {
            by_object.entry(*id).or_default();
        }
        let now = Instant::now();
        let wal: BTreeMap<ObjectId, WalObject> = by_object
            .into_iter()
            .map(|(id, chunks)| {
                let object = WalObject {
                    chunks: Arc::new(chunks),
                    added: now,
                };
                (id, object)
            })
            .collect();
        if state.wal_from.0 == 0 {
            state.wal_from = wal.keys().next().copied().unwrap_or(recovered.next_object);
        }
        let writer = uuid::Uuid::new_v4();
        store.write_manifest(seq, writer, &state).await?;
        info!(%writer, checkpoint = seq, segments = state.segments.len(), "storage root claimed");
        Ok(Catalog {
            store,
            writer,
            wal: Mutex::new(wal),
            next_segment: AtomicU64::new(state.next_segment),
            segments: AtomicUsize::new(state.segments.len()),
            committed: tokio::sync::Mutex::new(Committed { seq, state }),
            ripe: Mutex::new(Vec::new()),
            folded: Mutex::new((Vec::new(), Vec::new())),
            compacting: tokio::sync::Mutex::new(()),
        })
    }

    /// Records a flush object just delivered (in delivery order).
    pub fn add_flush(&self, object: ObjectId, chunks: &[ChunkLocation]) {
        let entry = WalObject {
            chunks: Arc::new(chunks.to_vec()),
            added: Instant::now(),
        };
        self.lock_wal().insert(object, entry);
    }

    /// Number of flush objects not yet compacted.
    pub fn flush_objects(&self) -> usize {
        self.lock_wal().len()
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Number of live segments.
    pub fn segment_count(&self) -> usize {
        self.segments.load(Ordering::Relaxed)
    }

    /// A copy of the current state.
    pub async fn state(&self) -> ManifestState {
        self.committed.lock().await.state.clone()
    }

    /// Live segments of `key`, in offset order.
    pub async fn segments_of(&self, key: &PartitionKey) -> Vec<Segment> {
        let committed = self.committed.lock().await;
        committed
            .state
            .segments
            .iter()
            .filter(|s| s.key == *key)
            .cloned()
            .collect()
    }

    /// Moves the log start of `key` to `offset` (never backwards) and retires the segments
    /// wholly below it (their objects once no other partition's segment is in them); durable
    /// when it returns.
    pub async fn truncate(&self, key: PartitionKey, offset: i64) -> Result<(), StorageError> {
        self.change(|state| {
            state.set_log_start(key, offset);
            state.retire_segments(|s| s.key == key && s.last_offset() < offset);
        })
        .await
    }

    /// Retires every segment and log start of a deleted topic; durable when it returns. Its
    /// batches still in flush objects are left out by the next compaction.
    pub async fn drop_topic(&self, topic_id: uuid::Uuid) -> Result<(), StorageError> {
        self.change(|state| {
            state.retire_segments(|s| s.key.topic_id == topic_id);
            state.log_starts.retain(|(k, _)| k.topic_id != topic_id);
        })
        .await
    }

    /// Deletes the objects that were already obsolete at the previous call, and returns how
    /// many. Run periodically; an object is thus kept for at least one period after it stopped
    /// being referenced, for reads in flight.
    pub async fn delete_obsolete(&self) -> Result<usize, StorageError> {
        let ripe = std::mem::take(&mut *self.lock_ripe());
        let ripe_folded = std::mem::take(&mut self.lock_folded().1);
        for (i, id) in ripe.iter().chain(&ripe_folded).enumerate() {
            self.store.delete_object(id).await?;
            debug!(object = %id, "deleted obsolete object");
            // WAL deletions complete without waiting: let the runtime's other tasks (this runs
            // on the network threads) in between, however many a round folded.
            if i % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
        }
        if !ripe.is_empty() {
            let gone: std::collections::HashSet<ObjectId> = ripe.iter().copied().collect();
            self.change(|state| state.obsolete.retain(|id| !gone.contains(id)))
                .await?;
        }
        let next = self.committed.lock().await.state.obsolete.clone();
        *self.lock_ripe() = next;
        {
            let mut folded = self.lock_folded();
            folded.1 = std::mem::take(&mut folded.0);
        }
        Ok(ripe.len() + ripe_folded.len())
    }

    /// Queues flush objects just folded into segments (their checkpoint is durable) for
    /// deletion one period later.
    pub(crate) fn retire_folded(&self, ids: &[ObjectId]) {
        self.lock_folded().0.extend_from_slice(ids);
    }

    /// Applies `edit` to a copy of the state, writes it as the next checkpoint, then makes it
    /// current. On error nothing changed.
    pub(crate) async fn change(
        &self,
        edit: impl FnOnce(&mut ManifestState),
    ) -> Result<(), StorageError> {
        let mut committed = self.committed.lock().await;
        let mut next = committed.state.clone();
        edit(&mut next);
        self.commit(&mut committed, next).await
    }

    /// Writes `next` as checkpoint `seq + 1` and installs it.
    pub(crate) async fn commit(
        &self,
        committed: &mut Committed,
        next: ManifestState,
    ) -> Result<(), StorageError> {
        if next == committed.state {
            return Ok(());
        }
        let seq = committed.seq + 1;
        self.store.write_manifest(seq, self.writer, &next).await?;
        committed.seq = seq;
        self.segments.store(next.segments.len(), Ordering::Relaxed);
        committed.state = next;
        Ok(())
    }

    pub(crate) fn lock_wal(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectId, WalObject>> {
        // A panic while holding it cannot leave the map half-updated (single insert/remove).
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_ripe(&self) -> std::sync::MutexGuard<'_, Vec<ObjectId>> {
        self.ripe.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_folded(&self) -> std::sync::MutexGuard<'_, (Vec<ObjectId>, Vec<ObjectId>)> {
        self.folded.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn take_segment_id(&self) -> ObjectId {
        ObjectId::segment(self.next_segment.fetch_add(1, Ordering::Relaxed))
    }
}
