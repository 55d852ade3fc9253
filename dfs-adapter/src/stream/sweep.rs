//! Deleting stream objects nothing needs any more.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::format::Entry;
use super::scan::read_table;
use super::{lock, parse_object_name, FlushStream, STREAMS_DIR};
use crate::manifest::ManifestState;
use crate::{StorageError, Store};

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
        let listed = match root.op().list_with(STREAMS_DIR).recursive(true).await {
            Ok(listed) => listed,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError::backend(format!("list {STREAMS_DIR}"))(e)),
        };
        let objects: Vec<(Arc<str>, u64)> = listed
            .iter()
            .filter(|e| e.metadata().is_file() && parse_object_name(e.name()).is_some())
            .map(|e| (Arc::from(e.path()), e.metadata().content_length()))
            .collect();
        let mut report = SweepReport {
            objects: objects.len(),
            ..SweepReport::default()
        };
        let mut tables: Vec<(Arc<str>, Arc<Vec<Entry>>)> = Vec::with_capacity(objects.len());
        for (key, size) in &objects {
            let cached = lock(&self.inner.tables).get(key).cloned();
            let table = match cached {
                Some(table) => table,
                None => match read_table(root, key, *size).await? {
                    Some(table) => {
                        let table = Arc::new(table);
                        lock(&self.inner.tables).insert(key.clone(), table.clone());
                        table
                    }
                    None => continue, // not (yet) a whole stream object: kept
                },
            };
            tables.push((key.clone(), table));
        }
        let referenced: std::collections::BTreeSet<u32> = tables
            .iter()
            .flat_map(|(_, t)| t.iter().map(|e| e.shard))
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
            let listed: HashSet<&Arc<str>> = objects.iter().map(|(k, _)| k).collect();
            dead_since.retain(|key, _| listed.contains(key));
            for (key, table) in &tables {
                let dead = table.iter().all(|entry| {
                    states
                        .get(&entry.shard)
                        .and_then(Option::as_ref)
                        .is_some_and(|state| section_is_dead(state, entry))
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
        for key in &deletable {
            root.delete_key(key).await?;
            lock(&self.inner.tables).remove(key);
            lock(&self.inner.dead_since).remove(key);
            debug!(%key, "deleted a dead stream object");
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
        let listed: HashSet<Arc<str>> = objects.into_iter().map(|(k, _)| k).collect();
        lock(&self.inner.tables).retain(|key, _| listed.contains(key));
        Ok(report)
    }
}

/// Whether a section is no longer anyone's: folded into segments, or written by a leader after
/// its fence.
fn section_is_dead(state: &ManifestState, entry: &Entry) -> bool {
    entry.object < state.wal_from
        || state
            .fences
            .iter()
            .any(|fence| fence.end <= entry.object && entry.object < fence.resume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fence, ObjectId};

    fn entry(id: u64) -> Entry {
        Entry {
            shard: 0,
            object: ObjectId(id),
            position: 0,
            len: 1,
        }
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
        assert!(section_is_dead(&state, &entry(9)));
        assert!(!section_is_dead(&state, &entry(10)));
        assert!(!section_is_dead(&state, &entry(11)));
        assert!(section_is_dead(&state, &entry(12)));
        assert!(section_is_dead(&state, &entry(19)));
        assert!(!section_is_dead(&state, &entry(20)));
    }
}
