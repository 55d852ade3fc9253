//! Finding a shard's flush objects in streams: markers in the shard's root, the tables of the
//! streams they name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use super::format::{self, Entry, FOOTER_LEN};
use super::{
    lock, marker_key, parse_marker_name, parse_object_name, FlushStream, Located, ObjectName,
    ShardStream, STREAMS_DIR,
};
use crate::{ObjectId, StorageError, Store};

/// Tables read at once.
const TABLE_READS: usize = 16;
/// Bytes read from an object's end at first: the footer and, nearly always, the whole table.
const TAIL_GUESS: u64 = 16 << 10;

/// A stream object's table, shared.
type Table = Arc<Vec<Entry>>;

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

    /// Lists the markers of the shard's root and collects the shard's sections that `wanted`
    /// selects (recovery leaves out those folded into segments or inside fences) from the
    /// streams the markers name. A marker of an epoch newer than `my_epoch` is refused
    /// (`Fenced`). Only the tables of objects holding a wanted section are read (their names
    /// say which; an object whose name does not list its sections is read too).
    pub(crate) async fn scan(
        &self,
        shard_root: &Store,
        my_epoch: u32,
        wanted: impl Fn(ObjectId) -> bool,
    ) -> Result<ShardScan, StorageError> {
        let markers = read_markers(shard_root).await?;
        if let Some(newer) = markers.iter().find(|m| m.epoch > my_epoch) {
            return Err(StorageError::Fenced(format!(
                "writer epoch {} has marked this shard; this leader's epoch {my_epoch} is older",
                newer.epoch
            )));
        }
        let streams: BTreeSet<&str> = markers.iter().map(|m| m.stream.as_str()).collect();
        let mut candidates = Vec::new();
        for name in streams {
            for listed in self.stream.list_stream(name).await? {
                let holds_wanted = listed.name.named.as_ref().is_none_or(|named| {
                    named
                        .iter()
                        .any(|(shard, id)| *shard == self.shard && wanted(*id))
                });
                if holds_wanted {
                    candidates.push(listed);
                }
            }
        }
        let stream = &self.stream;
        let tables: Vec<(Arc<str>, Option<Table>)> = futures::stream::iter(candidates)
            .map(|listed| async move {
                let table = stream.table(&listed.key, listed.size).await?;
                Ok::<_, StorageError>((listed.key, table))
            })
            .buffered(TABLE_READS)
            .try_collect()
            .await?;
        let mut objects = BTreeMap::new();
        for (key, table) in tables {
            let Some(table) = table else { continue };
            for entry in table
                .iter()
                .filter(|e| e.shard == self.shard && wanted(e.object))
            {
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

/// A stream object as listed.
pub(crate) struct Listed {
    pub(crate) key: Arc<str>,
    /// From the listing; 0 when the service did not say.
    pub(crate) size: u64,
    pub(crate) name: ObjectName,
}

/// The stream objects under `dir`, in sequence order (recursively: every stream's, when `dir`
/// is the streams directory itself).
pub(crate) async fn list_objects(
    root: &Store,
    dir: &str,
    recursive: bool,
) -> Result<Vec<Listed>, StorageError> {
    let entries = match root.op().list_with(dir).recursive(recursive).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::backend(format!("list {dir}"))(e)),
    };
    let mut listed: Vec<Listed> = entries
        .iter()
        .filter(|e| e.path() != dir && e.metadata().is_file())
        .filter_map(|e| {
            parse_object_name(e.name()).map(|name| Listed {
                key: Arc::from(e.path()),
                size: e.metadata().content_length(),
                name,
            })
        })
        .collect();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listed)
}

impl FlushStream {
    /// The objects of stream `name`, in sequence order.
    pub(crate) async fn list_stream(&self, name: &str) -> Result<Vec<Listed>, StorageError> {
        list_objects(&self.inner.store, &format!("{STREAMS_DIR}{name}/"), false).await
    }

    /// The table of stream object `key` (cached: objects never change), `None` when it is
    /// not a valid stream object or is gone.
    pub(crate) async fn table(
        &self,
        key: &Arc<str>,
        size: u64,
    ) -> Result<Option<Arc<Vec<Entry>>>, StorageError> {
        if let Some(table) = lock(&self.inner.tables).get(key) {
            return Ok(Some(table.clone()));
        }
        let Some(table) = read_table(&self.inner.store, key, size).await? else {
            return Ok(None);
        };
        let table = Arc::new(table);
        lock(&self.inner.tables).insert(key.clone(), table.clone());
        Ok(Some(table))
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
