//! Finding a shard's flush objects in streams: markers in the shard's root, the tables of the
//! streams they name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use super::format::{self, Entry, FOOTER_LEN};
use super::{
    lock, marker_key, parse_marker_name, parse_object_name, FlushStream, Located, ShardStream,
    STREAMS_DIR,
};
use crate::{ObjectId, StorageError, Store};

/// Tables read at once.
const TABLE_READS: usize = 16;
/// Bytes read from an object's end at first: the footer and, nearly always, the whole table.
const TAIL_GUESS: u64 = 16 << 10;

/// A marker found in a shard's root.
pub(crate) struct FoundMarker {
    pub(crate) epoch: u32,
    pub(crate) stream: String,
}

/// What a shard's recovery found in streams.
pub(crate) struct ShardScan {
    /// The shard's flush objects, each once (of two copies, the later stream object's).
    pub(crate) objects: BTreeMap<ObjectId, Located>,
    pub(crate) markers: Vec<FoundMarker>,
}

impl ShardStream {
    /// Records in the shard's root that its leader at `epoch` writes this stream, durably,
    /// before any of its writes: recovery finds the shard's objects through these markers.
    pub(crate) async fn mark(&self, shard_root: &Store, epoch: u32) -> Result<(), StorageError> {
        let name = self.stream.name();
        let body = opendal::Buffer::from(name.as_bytes().to_vec());
        shard_root.write_key(&marker_key(epoch, name), body).await
    }

    /// Lists the markers of the shard's root and collects the shard's sections from the
    /// streams they name. A marker of an epoch newer than `my_epoch` is refused (`Fenced`).
    pub(crate) async fn scan(
        &self,
        shard_root: &Store,
        my_epoch: u32,
    ) -> Result<ShardScan, StorageError> {
        let markers = read_markers(shard_root).await?;
        if let Some(newer) = markers.iter().find(|m| m.epoch > my_epoch) {
            return Err(StorageError::Fenced(format!(
                "writer epoch {} has marked this shard; this leader's epoch {my_epoch} is older",
                newer.epoch
            )));
        }
        let streams: BTreeSet<&str> = markers.iter().map(|m| m.stream.as_str()).collect();
        let mut objects = BTreeMap::new();
        for name in streams {
            for (key, entries) in self.stream.tables(name).await? {
                for entry in entries.iter().filter(|e| e.shard == self.shard) {
                    // Keys sort by sequence: a later copy (a retried write whose first attempt
                    // was stored after all) replaces an earlier one; both hold the same bytes.
                    objects.insert(
                        entry.object,
                        Located {
                            key: key.clone(),
                            position: entry.position,
                            len: entry.len,
                        },
                    );
                }
            }
        }
        Ok(ShardScan { objects, markers })
    }

    /// Deletes the markers of epochs before `my_epoch` whose streams hold none of `kept`
    /// (the objects recovery adopted): nothing there is this shard's any more.
    pub(crate) async fn drop_stale_markers(
        &self,
        shard_root: &Store,
        my_epoch: u32,
        markers: &[FoundMarker],
        kept: &[ObjectId],
    ) -> Result<(), StorageError> {
        let in_use: BTreeSet<String> = kept
            .iter()
            .filter_map(|id| self.locate(id))
            .filter_map(|at| stream_of(&at.key).map(str::to_string))
            .collect();
        for marker in markers {
            if marker.epoch < my_epoch && !in_use.contains(&marker.stream) {
                info!(epoch = marker.epoch, stream = %marker.stream, "dropping a stale stream marker");
                shard_root
                    .delete_key(&marker_key(marker.epoch, &marker.stream))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The stream a stream object's key belongs to.
pub(crate) fn stream_of(key: &str) -> Option<&str> {
    key.strip_prefix(STREAMS_DIR)?.split('/').next()
}

async fn read_markers(shard_root: &Store) -> Result<Vec<FoundMarker>, StorageError> {
    let entries = match shard_root.op().list(STREAMS_DIR).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::backend(format!("list {STREAMS_DIR}"))(e)),
    };
    let mut markers = Vec::new();
    for entry in entries {
        if entry.path() == STREAMS_DIR || !entry.metadata().is_file() {
            continue;
        }
        // The name says it all: the content (the stream's name again) is for people.
        match parse_marker_name(entry.name()) {
            Some((epoch, stream)) => markers.push(FoundMarker {
                epoch,
                stream: stream.to_string(),
            }),
            None => warn!(
                key = entry.path(),
                "ignoring stray entry among stream markers"
            ),
        }
    }
    markers.sort_by_key(|m| m.epoch);
    Ok(markers)
}

async fn stat_len(store: &Store, key: &str) -> Result<u64, StorageError> {
    Ok(store
        .op()
        .stat(key)
        .await
        .map_err(StorageError::backend(format!("stat {key}")))?
        .content_length())
}

impl FlushStream {
    /// The tables of every object of stream `name`, in sequence order; objects whose table
    /// cannot be read as a table (torn on `fs`, foreign) are skipped with a warning.
    pub(crate) async fn tables(
        &self,
        name: &str,
    ) -> Result<Vec<(Arc<str>, Arc<Vec<Entry>>)>, StorageError> {
        let _one_at_a_time = self.inner.scanning.lock().await;
        let dir = format!("{STREAMS_DIR}{name}/");
        let root = &self.inner.store;
        let entries = match root.op().list(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::backend(format!("list {dir}"))(e)),
        };
        let mut keys: Vec<(Arc<str>, u64)> = entries
            .iter()
            .filter(|e| e.path() != dir && e.metadata().is_file())
            .filter(|e| parse_object_name(e.name()).is_some())
            .map(|e| (Arc::from(e.path()), e.metadata().content_length()))
            .collect();
        keys.sort();
        let missing: Vec<(Arc<str>, u64)> = {
            let tables = lock(&self.inner.tables);
            keys.iter()
                .filter(|(key, _)| !tables.contains_key(key))
                .cloned()
                .collect()
        };
        let read: Vec<(Arc<str>, Option<Vec<Entry>>)> = futures::stream::iter(missing)
            .map(|(key, size)| async move {
                let table = read_table(root, &key, size).await?;
                Ok::<_, StorageError>((key, table))
            })
            .buffered(TABLE_READS)
            .try_collect()
            .await?;
        let mut tables = lock(&self.inner.tables);
        for (key, table) in read {
            if let Some(table) = table {
                tables.insert(key, Arc::new(table));
            }
        }
        Ok(keys
            .into_iter()
            .filter_map(|(key, _)| tables.get(&key).map(|t| (key, t.clone())))
            .collect())
    }
}

/// Reads the table of stream object `key` (`size` from the listing, 0 if it did not say).
/// `None` when the object is not a valid stream object, or is gone: only a sweep deletes stream
/// objects, and only dead ones, so one deleted between the listing and the read held nothing
/// anyone needs.
pub(crate) async fn read_table(
    root: &Store,
    key: &str,
    size: u64,
) -> Result<Option<Vec<Entry>>, StorageError> {
    match read_table_of(root, key, size).await {
        Err(e) if e.is_not_found() => {
            debug!(%key, "stream object swept meanwhile");
            Ok(None)
        }
        other => other,
    }
}

async fn read_table_of(
    root: &Store,
    key: &str,
    size: u64,
) -> Result<Option<Vec<Entry>>, StorageError> {
    let size = match size {
        0 => stat_len(root, key).await?,
        size => size,
    };
    let skip = |reason: String| {
        warn!(%key, %reason, "ignoring an unreadable stream object");
        Ok(None)
    };
    if size < FOOTER_LEN {
        return skip(format!("{size} bytes"));
    }
    let guess = size.min(TAIL_GUESS);
    let mut tail = root.read_buffer(key, size - guess, guess).await?.to_bytes();
    let footer = &tail[tail.len() - FOOTER_LEN as usize..];
    let trailer = match format::trailer_len(footer, size) {
        Ok(len) => len,
        Err(reason) => return skip(reason),
    };
    if trailer > guess {
        tail = root
            .read_buffer(key, size - trailer, trailer)
            .await?
            .to_bytes();
    }
    match format::decode_table(&tail, size) {
        Ok(entries) => Ok(Some(entries)),
        Err(reason) => skip(reason),
    }
}
