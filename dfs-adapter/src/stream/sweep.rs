//! Deleting stream objects nothing needs any more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::scan::list_objects;
use super::{lock, FlushStream, STREAMS_DIR};
use crate::manifest::ManifestState;
use crate::{ObjectId, StorageError, Store};

/// Keys per delete request (S3's DeleteObjects takes up to 1,000).
const DELETE_BATCH: usize = 1000;

/// The (shard, object id) of each section of a stream object.
type Sections = Vec<(u32, ObjectId)>;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Stream objects listed.
    pub objects: usize,
    /// Of which dead (every section folded or fenced out).
    pub dead: usize,
    /// Deleted (dead for at least the grace period).
    pub deleted: usize,
}

impl FlushStream {
    /// Deletes the stream objects (of every stream under the cluster root, this broker's and
    /// others', live or gone) of which every section is dead by its shard's newest checkpoint
    /// and was already at a sweep at least `grace` earlier, so that reads that started before
    /// finish first. `shards` opens each shard's root (for its checkpoint); a section of a
    /// shard it does not know, or that has no checkpoint, keeps its object.
    ///
    /// Several brokers may sweep at once: a section's death is final (`wal_from` and fences
    /// only grow), so they agree, and deleting twice is harmless.
    pub async fn sweep(
        &self,
        shards: &BTreeMap<u32, Store>,
        grace: Duration,
    ) -> Result<SweepReport, StorageError> {
        let root = &self.inner.store;
        let objects = list_objects(root, STREAMS_DIR, true).await?;
        let mut report = SweepReport {
            objects: objects.len(),
            ..SweepReport::default()
        };
        // What each object holds: from its name, else from its table.
        let mut tables: Vec<(Arc<str>, Sections)> = Vec::with_capacity(objects.len());
        for listed in &objects {
            let sections = match &listed.name.named {
                Some(named) => named.clone(),
                None => match self.table(&listed.key, listed.size).await? {
                    Some(table) => table.iter().map(|e| (e.shard, e.object)).collect(),
                    None => continue, // not (yet) a whole stream object: kept
                },
            };
            tables.push((listed.key.clone(), sections));
        }
        let referenced: std::collections::BTreeSet<u32> = tables
            .iter()
            .flat_map(|(_, t)| t.iter().map(|(shard, _)| *shard))
            .collect();
        let mut states: HashMap<u32, Option<ManifestState>> = HashMap::new();
        for shard in referenced {
            let state = match shards.get(&shard) {
                Some(store) => store.read_manifest().await?.map(|c| c.state),
                None => None,
            };
            states.insert(shard, state);
        }
        let now = Instant::now();
        let mut deletable = Vec::new();
        {
            let mut dead_since = lock(&self.inner.dead_since);
            let listed: HashSet<&Arc<str>> = objects.iter().map(|o| &o.key).collect();
            dead_since.retain(|key, _| listed.contains(key));
            for (key, table) in &tables {
                let dead = table.iter().all(|(shard, id)| {
                    states
                        .get(shard)
                        .and_then(Option::as_ref)
                        .is_some_and(|state| section_is_dead(state, *id))
                });
                if !dead {
                    continue;
                }
                report.dead += 1;
                let since = *dead_since.entry(key.clone()).or_insert(now);
                if now.duration_since(since) >= grace {
                    deletable.push(key.clone());
                }
            }
        }
        for batch in deletable.chunks(DELETE_BATCH) {
            root.delete_keys(batch).await?;
            for key in batch {
                lock(&self.inner.tables).remove(key);
                lock(&self.inner.dead_since).remove(key);
                debug!(%key, "deleted a dead stream object");
            }
        }
        report.deleted = deletable.len();
        if report.deleted > 0 {
            info!(
                deleted = report.deleted,
                listed = report.objects,
                "swept stream objects"
            );
        }
        // Tables of objects gone (swept by another broker) leave the cache; one written since
        // the listing is read again by the next sweep.
        let listed: HashSet<Arc<str>> = objects.into_iter().map(|o| o.key).collect();
        lock(&self.inner.tables).retain(|key, _| listed.contains(key));
        Ok(report)
    }
}

/// Whether a section is no longer anyone's: folded into segments, or written by a leader after
/// its fence.
pub(crate) fn section_is_dead(state: &ManifestState, object: ObjectId) -> bool {
    object < state.wal_from
        || state
            .fences
            .iter()
            .any(|fence| fence.end <= object && object < fence.resume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fence;

    fn entry(id: u64) -> ObjectId {
        ObjectId(id)
    }

    #[test]
    fn sections_die_below_wal_from_and_inside_fences() {
        let state = ManifestState {
            wal_from: ObjectId(10),
            fences: vec![Fence {
                end: ObjectId(12),
                resume: ObjectId(20),
            }],
            ..ManifestState::default()
        };
        assert!(section_is_dead(&state, entry(9)));
        assert!(!section_is_dead(&state, entry(10)));
        assert!(!section_is_dead(&state, entry(11)));
        assert!(section_is_dead(&state, entry(12)));
        assert!(section_is_dead(&state, entry(19)));
        assert!(!section_is_dead(&state, entry(20)));
    }
}
