//! One flush stream per broker: the flush objects of every shard a broker leads, written as one
//! stored object per flush.
//!
//! In a cluster each shard keeps its own flush pipeline, ids, manifest, fences and recovery
//! (every crash rule of the single-broker store holds per shard unchanged); only where a flush
//! object's bytes live changes. Instead of one PUT per shard per flush, a shard's pipeline hands
//! its sealed object to the broker's [`FlushStream`], which packs the objects of all shards that
//! arrive together into one stream object (see `format`), so that an object store sees one
//! request per flush per broker, as it does from a single broker.
//!
//! Layout, relative to the cluster's storage root:
//!
//! ```text
//! streams/<stream>/<seq, 20 digits>-<shard>.<id hex>_....hfs   stream objects: sections of
//!                                              several shards, named in the key (up to 32)
//! shards/<k>/streams/<epoch, 10 digits>-<stream>.marker  the leader at that epoch writes it
//! ```
//!
//! A stream's name is its broker's node id and process incarnation, so no two processes ever
//! write one key. A shard's leader records its stream in the shard's root (the marker) before
//! its first write, and recovery reads the markers to find the streams that may hold the shard's
//! objects: the sections of this shard found there are its flush objects, validated and adopted
//! (or discarded) exactly as objects of their own would be.
//!
//! A stream object is deleted by [`FlushStream::sweep`] once every section in it is dead: below
//! its shard's `wal_from` (folded into segments) or inside one of its shard's fences (written
//! by a fenced leader), as the shard's newest checkpoint says, and still so after a grace
//! period for reads in flight.

mod format;
mod scan;
mod sweep;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opendal::Buffer;
use tokio::sync::{mpsc, oneshot};

use crate::{ObjectId, StorageError, Store};
use format::Entry;
pub(crate) use sweep::section_is_dead;
pub use sweep::SweepReport;

/// Directory (prefix) of stream objects under the cluster root, and of markers under a shard's
/// root.
pub(crate) const STREAMS_DIR: &str = "streams/";
const OBJECT_SUFFIX: &str = ".hfs";

/// How a flush stream packs and writes.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Group commit: with no object being written, pending sections are written at once. Off,
    /// they wait for one of the limits below, as a single broker's flushes do on an object
    /// store, where every object is a billed request.
    pub group_commit: bool,
    /// Pending sections wait at most this long (while objects are being written, with group
    /// commit).
    pub max_delay: Duration,
    /// ... or until this many bytes are pending.
    pub max_bytes: usize,
    /// Stream objects written at once.
    pub max_in_flight: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            group_commit: false,
            max_delay: Duration::from_millis(5),
            max_bytes: 8 << 20,
            max_in_flight: 4,
        }
    }
}

/// What a stream has written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Stream objects written.
    pub objects: u64,
    /// Sections (shards' flush objects) in them.
    pub sections: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Where a shard's flush object lies: a byte range of a stream object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) key: Arc<str>,
    pub(crate) position: u64,
    pub(crate) len: u64,
}

/// A broker's flush stream (cheap to clone; the writer task stops when the last clone goes).
#[derive(Clone)]
pub struct FlushStream {
    inner: Arc<StreamInner>,
    sections: mpsc::UnboundedSender<writer::Section>,
}

pub(crate) struct StreamInner {
    /// The cluster's storage root.
    store: Store,
    name: String,
    config: StreamConfig,
    seq: AtomicU64,
    /// Tables of stream objects read or written, by key (immutable once written).
    tables: Mutex<HashMap<Arc<str>, Arc<Vec<Entry>>>>,
    /// When each stream object was first seen dead by a sweep.
    dead_since: Mutex<HashMap<Arc<str>, std::time::Instant>>,
    stats: Mutex<StreamStats>,
}

impl FlushStream {
    /// Starts the stream `name` (letters, digits, `-` and `_`; unique per broker process, e.g.
    /// node id and incarnation) writing under `streams/<name>/` of `root`, the cluster's
    /// storage root. Call within a Tokio runtime.
    pub fn start(
        root: Store,
        name: &str,
        config: StreamConfig,
    ) -> Result<FlushStream, StorageError> {
        if !valid_name(name) {
            return Err(StorageError::InvalidArgument(format!(
                "stream name {name:?}: use letters, digits, '-' and '_'"
            )));
        }
        let inner = Arc::new(StreamInner {
            store: root,
            name: name.to_string(),
            config,
            seq: AtomicU64::new(0),
            tables: Mutex::default(),
            dead_since: Mutex::default(),
            stats: Mutex::default(),
        });
        let (sections, receiver) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(inner.clone(), receiver));
        Ok(FlushStream { inner, sections })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What it has written so far.
    pub fn stats(&self) -> StreamStats {
        *lock(&self.inner.stats)
    }

    /// Writes flush object `object` of `shard` as a section of the next stream object and
    /// returns once that object is durable.
    pub(crate) async fn write(
        &self,
        shard: u32,
        object: ObjectId,
        data: Buffer,
    ) -> Result<Located, StorageError> {
        let (done, outcome) = oneshot::channel();
        self.sections
            .send(writer::Section {
                shard,
                object,
                data,
                done,
            })
            .map_err(|_| StorageError::Closed)?;
        outcome.await.map_err(|_| StorageError::Closed)?
    }

    /// Reads `len` bytes at `position` of a section.
    pub(crate) async fn read(
        &self,
        at: &Located,
        position: u64,
        len: u64,
    ) -> Result<bytes::Bytes, StorageError> {
        if position.checked_add(len).is_none_or(|end| end > at.len) {
            return Err(StorageError::corrupt(
                at.key.to_string(),
                format!(
                    "range {position}+{len} lies outside its section of {} bytes",
                    at.len
                ),
            ));
        }
        let buffer = self
            .inner
            .store
            .read_buffer(&at.key, at.position + position, len)
            .await?;
        Ok(buffer.to_bytes())
    }
}

impl StreamInner {
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The key of stream object `seq` holding `entries`: their shards and object ids are in
    /// the name (when there are at most [`MAX_NAMED`]), so that a listing alone tells a
    /// recovering shard which objects hold its sections and a sweep which are dead.
    fn object_key(&self, seq: u64, entries: &[Entry]) -> String {
        let mut key = format!("{STREAMS_DIR}{}/{seq:020}", self.name);
        if entries.len() <= MAX_NAMED {
            for (i, entry) in entries.iter().enumerate() {
                let separator = if i == 0 { '-' } else { '_' };
                key.push_str(&format!("{separator}{}.{:x}", entry.shard, entry.object.0));
            }
        }
        key.push_str(OBJECT_SUFFIX);
        key
    }

    fn record_written(&self, key: &Arc<str>, entries: &[Entry], bytes: u64) {
        lock(&self.tables).insert(key.clone(), Arc::new(entries.to_vec()));
        let mut stats = lock(&self.stats);
        stats.objects += 1;
        stats.sections += entries.len() as u64;
        stats.bytes += bytes;
    }
}

/// A shard's use of its leader's stream, held by the shard's [`Store`].
pub(crate) struct ShardStream {
    pub(crate) stream: FlushStream,
    pub(crate) shard: u32,
    /// Where each of the shard's live flush objects in streams lies.
    located: Mutex<HashMap<ObjectId, Located>>,
}

impl ShardStream {
    pub(crate) fn new(stream: FlushStream, shard: u32) -> Self {
        ShardStream {
            stream,
            shard,
            located: Mutex::default(),
        }
    }

    /// Where `object` lies, if it is one of this shard's objects in a stream.
    pub(crate) fn locate(&self, object: &ObjectId) -> Option<Located> {
        lock(&self.located).get(object).cloned()
    }

    pub(crate) fn remember(&self, object: ObjectId, at: Located) {
        lock(&self.located).insert(object, at);
    }

    /// Forgets `object` (the sweep deletes the stream object once all its sections are dead);
    /// whether it was one of this shard's stream objects.
    pub(crate) fn forget(&self, object: &ObjectId) -> bool {
        lock(&self.located).remove(object).is_some()
    }

    /// Writes `object` through the stream and remembers where it went.
    pub(crate) async fn write(&self, object: ObjectId, data: Buffer) -> Result<(), StorageError> {
        let at = self.stream.write(self.shard, object, data).await?;
        self.remember(object, at);
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Poisoning only follows a panic elsewhere; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key, in a shard's root, of the marker saying that its leader at `epoch` writes
/// `stream` (the same epoch's engine reopened by another process would add a second one).
fn marker_key(epoch: u32, stream: &str) -> String {
    format!("{STREAMS_DIR}{epoch:010}-{stream}{MARKER_SUFFIX}")
}

const MARKER_SUFFIX: &str = ".marker";

/// The epoch and stream of a marker's file name.
fn parse_marker_name(name: &str) -> Option<(u32, &str)> {
    let (digits, stream) = name.strip_suffix(MARKER_SUFFIX)?.split_once('-')?;
    let epoch = (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()?;
    valid_name(stream).then_some((epoch, stream))
}

/// Sections named in an object's key at most (keys stay well below S3's 1,024 bytes).
const MAX_NAMED: usize = 32;

/// A stream object's name: its sequence number, and the (shard, object id) of its sections
/// when the name lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjectName {
    pub(crate) seq: u64,
    pub(crate) named: Option<Vec<(u32, ObjectId)>>,
}

fn parse_object_name(name: &str) -> Option<ObjectName> {
    let stem = name.strip_suffix(OBJECT_SUFFIX)?;
    let (digits, list) = match stem.split_once('-') {
        Some((digits, list)) => (digits, Some(list)),
        None => (stem, None),
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = digits.parse().ok()?;
    let named = match list {
        None => None,
        Some(list) => {
            let mut sections = Vec::new();
            for item in list.split('_') {
                let (shard, id) = item.split_once('.')?;
                if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                sections.push((
                    shard.parse().ok()?,
                    ObjectId(u64::from_str_radix(id, 16).ok()?),
                ));
            }
            Some(sections)
        }
    };
    Some(ObjectName { seq, named })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_refuse_strays() {
        assert_eq!(
            parse_marker_name("0000000007-n1-ab.marker"),
            Some((7, "n1-ab"))
        );
        assert_eq!(parse_marker_name("7-n1.marker"), None);
        assert_eq!(parse_marker_name("000000000x-n1.marker"), None);
        assert_eq!(parse_marker_name("0000000007-.marker"), None);
        assert_eq!(parse_marker_name("0000000007-a b.marker"), None);
        assert_eq!(
            parse_object_name("00000000000000000012.hfs"),
            Some(ObjectName {
                seq: 12,
                named: None
            })
        );
        assert_eq!(
            parse_object_name("00000000000000000012-3.1f_10.20000000000.hfs"),
            Some(ObjectName {
                seq: 12,
                named: Some(vec![(3, ObjectId(0x1f)), (10, ObjectId(1 << 41))])
            })
        );
        for bad in [
            "00000000000000000012.hwf",
            "00000000000000000012-.hfs",
            "00000000000000000012-3.hfs",
            "00000000000000000012-3.zz.hfs",
            "00000000000000000012-x.1.hfs",
            "0000000000000000012-3.1.hfs",
        ] {
            assert_eq!(parse_object_name(bad), None, "{bad}");
        }
        assert_eq!(marker_key(7, "n1-ab"), "streams/0000000007-n1-ab.marker");
        assert!(valid_name("n1-0a1b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }
}
