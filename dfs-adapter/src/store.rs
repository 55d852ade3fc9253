//! [`Store`]: an OpenDAL operator opened from a storage URL, plus the few operations every other
//! module builds on (durable object writes, ranged reads, directory syncs).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use opendal::layers::{LoggingLayer, RetryLayer, TimeoutLayer};
use opendal::{Buffer, Operator};
use tracing::{debug, info};

use crate::dirsync::{fsync_dir, DirSyncer};
use crate::lease::LeaseGate;
use crate::manifest::MANIFEST_DIR;
use crate::oplog::TracingInterceptor;
use crate::records::SECURITY_DIR;
use crate::slicing::Slicing;
use crate::storage_url::StorageUrl;
use crate::stream::ShardStream;
use crate::topics::TOPICS_DIR;
use crate::types::{SEGMENT_DIR, WAL_DIR};
use crate::wal_log::{WalConfig, WalLog};
use crate::FlushStream;
use crate::{ObjectId, StorageError};

/// Reads of whole objects [`Store::read_objects`] keeps in flight on a store (not the WAL).
const OBJECT_READS_IN_FLIGHT: usize = 8;

/// Opened storage. Cheap to clone; clones share the operator and the directory syncers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    op: Operator,
    /// Operator for flush-object writes. On `fs` it has no retry layer: OpenDAL's retry would
    /// re-run a failed `close`, which fsyncs the same open file again, and an fsync after a
    /// failed one can succeed although the data never reached the disk. A failed object is
    /// retried by the pipeline instead, as a whole, from a fresh truncating open. On object
    /// stores this is `op` (retrying a PUT or a part is safe).
    write_op: Operator,
    /// Canonical URL for logs (absolute fs path, secrets redacted).
    url: String,
    /// How large writes and reads are split.
    slicing: Slicing,
    /// Present for the local filesystem, where directories need explicit fsyncs.
    local: Option<LocalDirs>,
    /// Requests issued, for the cost metrics.
    counters: Counters,
    /// Set while this store holds its root by a lease: writes consult it.
    lease: std::sync::OnceLock<Arc<LeaseGate>>,
    /// The append-only WAL, once [`Store::use_wal`] opened it: flush objects live there.
    wal: std::sync::OnceLock<Arc<WalLog>>,
    /// A cluster leader's flush stream, once [`Store::use_stream`] attached it: flush objects
    /// are sections of the broker's stream objects.
    stream: std::sync::OnceLock<Arc<ShardStream>>,
    /// In a cluster: the epoch this store writes at and whether it still may.
    writer: std::sync::OnceLock<WriterEpoch>,
}

/// The epoch a cluster leader writes a shard's root at, and the check that it still leads.
#[derive(Clone)]
pub(crate) struct WriterEpoch {
    pub(crate) epoch: u32,
    may_write: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Storage requests issued through this store, as an object store bills them: a sliced write
/// is one CreateMultipartUpload, one UploadPart per slice and one CompleteMultipartUpload; a
/// sliced read one ranged GET per slice. On `fs` the same counts measure file operations.
/// Writes and reads of the append-only WAL are not store requests and are not counted (the
/// flush pipeline's counters cover them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// PUT-class requests (object writes, parts, multipart starts and completions).
    pub put_requests: u64,
    /// GET requests (ranged reads).
    pub get_requests: u64,
    /// DELETE requests.
    pub delete_requests: u64,
    /// Bytes written in objects (flush objects, segments, checkpoints).
    pub bytes_written: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

#[derive(Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    written: AtomicU64,
    read: AtomicU64,
}

/// Directories of an `fs` store whose entries must be fsynced after creation or removal.
struct LocalDirs {
    /// `<root>`, under which object directories are checked before each object write.
    root: PathBuf,
    wal: DirSyncer,
    segments: DirSyncer,
    manifest: DirSyncer,
    topics: DirSyncer,
    security: DirSyncer,
}

impl Store {
    /// Opens the storage at `url`.
    ///
    /// Accepted: `fs:///abs/path`, `fs:/abs/path`, `fs://./relative` (made absolute against the
    /// current directory) and `s3://bucket/prefix?endpoint=...&region=...`, where further query
    /// keys name OpenDAL `S3Config` fields and credentials come from the environment
    /// (`AWS_ACCESS_KEY_ID`, ...). Unknown schemes or options give
    /// [`StorageError::InvalidUrl`].
    ///
    /// For `fs` it creates the root, `wal/` and `topics/` and makes them durable. For object
    /// stores nothing is contacted yet: the first list or write reports connectivity problems.
    ///
    /// Large objects are written and read in slices as [`Slicing::default`] says; see
    /// [`Store::open_with`].
    pub async fn open(url: &str) -> Result<Store, StorageError> {
        Self::open_with(url, Slicing::default()).await
    }

    /// [`Store::open`] with the given slicing of large writes and reads.
    pub async fn open_with(url: &str, slicing: Slicing) -> Result<Store, StorageError> {
        slicing.validate()?;
        let parsed = StorageUrl::parse(url)?;
        let canonical = parsed.display();
        let (op, local) = match &parsed {
            StorageUrl::Fs { root } => {
                prepare_fs_root(root).await?;
                let root_str = root.to_str().ok_or_else(|| {
                    StorageError::InvalidUrl(format!("{url:?}: path is not valid UTF-8"))
                })?;
                let op = Operator::new(opendal::services::Fs::default().root(root_str))
                    .map_err(StorageError::backend(format!("open {canonical}")))?;
                let local = LocalDirs {
                    root: root.clone(),
                    wal: DirSyncer::new(root.join(WAL_DIR)),
                    segments: DirSyncer::new(root.join(SEGMENT_DIR)),
                    manifest: DirSyncer::new(root.join(MANIFEST_DIR)),
                    topics: DirSyncer::new(root.join(TOPICS_DIR)),
                    security: DirSyncer::new(root.join(SECURITY_DIR)),
                };
                (op, Some(local))
            }
            StorageUrl::S3 {
                bucket,
                root,
                options,
            } => {
                let mut config = options.clone();
                config.insert("bucket".into(), bucket.clone());
                config.insert("root".into(), root.clone());
                let op = Operator::from_iter::<opendal::services::S3>(config)
                    .map_err(StorageError::backend(format!("open {canonical}")))?;
                (op, None)
            }
            StorageUrl::Service {
                url_scheme,
                scheme,
                options,
            } => {
                let op = Operator::via_iter(*scheme, options.clone()).map_err(|e| {
                    StorageError::InvalidUrl(format!(
                        "{canonical}: {e} (is dfs-adapter built with its `{url_scheme}` feature?)"
                    ))
                })?;
                (op, None)
            }
        };
        // Timeout inside retry so that each attempt is timed out and retried, as OpenDAL's docs
        // require; logging outermost records what the caller finally sees.
        let timed = op.layer(TimeoutLayer::new());
        let op = timed
            .clone()
            .layer(RetryLayer::new().with_jitter())
            .layer(LoggingLayer::new(TracingInterceptor));
        // Flush objects on fs: no retry layer (see `Inner::write_op`).
        let write_op = if local.is_some() {
            timed.layer(LoggingLayer::new(TracingInterceptor))
        } else {
            op.clone()
        };
        info!(url = %canonical, "storage opened");
        Ok(Store {
            inner: Arc::new(Inner {
                op,
                write_op,
                url: canonical,
                slicing,
                local,
                counters: Counters::default(),
                lease: std::sync::OnceLock::new(),
                wal: std::sync::OnceLock::new(),
                stream: std::sync::OnceLock::new(),
                writer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The storage URL in canonical form: absolute path for `fs`, secrets redacted for `s3`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Reads `len` bytes at `position` of a flush object (as concurrent ranged reads when it
    /// is more than one slice).
    ///
    /// Used by fetches of data no longer in the hot cache, with positions taken from a
    /// [`crate::ChunkLocation`]. A read that comes back short is reported as
    /// [`StorageError::Corrupt`]: the object is smaller than its index promised.
    pub async fn read_range(
        &self,
        object: &ObjectId,
        position: u64,
        len: u64,
    ) -> Result<Bytes, StorageError> {
        // WAL reads and writes are local file operations, not store requests: not counted.
        if let Some(wal) = self.wal_holding(object) {
            return wal.read(*object, position, len).await;
        }
        if let Some((stream, at)) = self.stream_holding(object) {
            return stream.stream.read(&at, position, len).await;
        }
        let key = object.key();
        let buffer = self.read_buffer(&key, position, len).await?;
        Ok(buffer.to_bytes())
    }

    /// Reads the first `len` bytes of each object of `wanted` (compaction's sources), in that
    /// order: objects in the WAL with few large reads, others with a few reads in flight at
    /// once.
    pub async fn read_objects(
        &self,
        wanted: &[(ObjectId, u64)],
    ) -> Result<Vec<Bytes>, StorageError> {
        use futures::{StreamExt, TryStreamExt};
        let mut held = Vec::new();
        let mut elsewhere = Vec::new();
        let mut in_wal = Vec::with_capacity(wanted.len());
        for &(id, len) in wanted {
            let is_held = self.wal_holding(&id).is_some();
            in_wal.push(is_held);
            if is_held {
                held.push((id, len));
            } else {
                elsewhere.push((id, len));
            }
        }
        let from_wal = match self.wal() {
            Some(wal) if !held.is_empty() => wal.read_many(&held).await?,
            _ => Vec::new(),
        };
        let reads = elsewhere
            .into_iter()
            .map(|(id, len)| async move { self.read_range(&id, 0, len).await });
        let from_store: Vec<Bytes> = futures::stream::iter(reads)
            .buffered(OBJECT_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let (mut from_wal, mut from_store) = (from_wal.into_iter(), from_store.into_iter());
        Ok(in_wal
            .into_iter()
            .map(|is_held| {
                let next = if is_held {
                    from_wal.next()
                } else {
                    from_store.next()
                };
                next.unwrap_or_default()
            })
            .collect())
    }

    /// Writes flush objects into an append-only WAL of preallocated, reused files (see
    /// [`WalConfig`]) instead of one object each: a flush then costs one data write and one
    /// `fdatasync`, with no file creation and no directory sync. Call it once, after
    /// [`Store::claim_root`] or [`Store::set_writer_epoch`] and before [`Store::recover`]
    /// (which then recovers the WAL too). With a writer epoch, the WAL is a directory of that
    /// epoch's own under the one named below, and older epochs' are only read and retired.
    ///
    /// - `fs://` store, no [`WalConfig::dir`]: the WAL is `wal/` under the root. Flush objects
    ///   written as files before stay readable and are recovered, compacted and deleted as
    ///   before.
    /// - any store with [`WalConfig::dir`]: the WAL lives there (a local or block device),
    ///   tied to this store; on an object store this is the tiered mode: a flush is
    ///   acknowledged once the WAL holds it, and compaction uploads it into segments, after
    ///   which the WAL space is reused.
    pub async fn use_wal(&self, config: WalConfig) -> Result<(), StorageError> {
        let (dir, owner) = match (&config.dir, self.local_root()) {
            (Some(dir), _) => (dir.clone(), Some(self.url())),
            (None, Some(root)) => (root.join(WAL_DIR), None),
            (None, None) => {
                return Err(StorageError::InvalidArgument(format!(
                    "{}: an object store needs a WAL directory on a local filesystem",
                    self.url()
                )))
            }
        };
        let wal = WalLog::open(&dir, config, owner, self.writer_epoch()).await?;
        self.inner
            .wal
            .set(Arc::new(wal))
            .map_err(|_| StorageError::InvalidArgument("the WAL is already in use".into()))
    }

    /// Writes this shard's flush objects as sections of `stream`, the flush stream of the
    /// broker that leads it as shard number `shard` (see [`FlushStream`]). Call it once, after
    /// [`Store::set_writer_epoch`] and before [`Store::recover`] (which then also finds the
    /// shard's objects in the streams of earlier leaders). It first records, durably, in this
    /// root that this epoch's leader writes that stream.
    pub async fn use_stream(&self, stream: FlushStream, shard: u32) -> Result<(), StorageError> {
        let epoch = self.writer_epoch();
        if epoch == 0 {
            return Err(StorageError::InvalidArgument(
                "a flush stream needs a writer epoch (a cluster leader)".into(),
            ));
        }
        if self.wal().is_some() {
            return Err(StorageError::InvalidArgument(
                "a store writes either the WAL or a flush stream".into(),
            ));
        }
        self.check_lease()?;
        let attached = Arc::new(ShardStream::new(stream, shard));
        attached.mark(self, epoch).await?;
        self.inner
            .stream
            .set(attached)
            .map_err(|_| StorageError::InvalidArgument("a flush stream is already in use".into()))
    }

    /// The flush stream, when in use.
    pub(crate) fn stream(&self) -> Option<&Arc<ShardStream>> {
        self.inner.stream.get()
    }

    /// The stream and the place of `object`, if it is one of this shard's objects there.
    pub(crate) fn stream_holding(
        &self,
        object: &ObjectId,
    ) -> Option<(&Arc<ShardStream>, crate::stream::Located)> {
        let stream = self.stream()?;
        stream.locate(object).map(|at| (stream, at))
    }

    /// Whether flushes are made durable on a local device (an `fs://` store, or a WAL in
    /// front of an object store), so that many small ones cost little.
    pub fn flushes_locally(&self) -> bool {
        self.is_local() || self.wal().is_some()
    }

    /// Number of append-only WAL files (0 without the WAL): live, being written and spare.
    pub fn wal_files(&self) -> usize {
        self.wal().map_or(0, |wal| wal.files())
    }

    /// The WAL, when in use.
    pub(crate) fn wal(&self) -> Option<&Arc<WalLog>> {
        self.inner.wal.get()
    }

    /// The WAL, if `object` is one of its live objects.
    pub(crate) fn wal_holding(&self, object: &ObjectId) -> Option<&Arc<WalLog>> {
        self.wal().filter(|wal| wal.holds(*object))
    }

    /// Reserves the WAL position of flush object `object` of `len` bytes; objects must be
    /// placed in id order, before their first write. A no-op without the WAL.
    pub(crate) fn place_flush_object(&self, object: ObjectId, len: u64) {
        if let Some(wal) = self.wal() {
            wal.place(object, len);
        }
    }

    /// Deletes a stored object (absent is fine) durably: a WAL object is forgotten (its file
    /// is reused once nothing in it is live), anything else is deleted and its directory
    /// synced.
    pub(crate) async fn delete_object(&self, object: &ObjectId) -> Result<(), StorageError> {
        self.check_lease()?;
        if let Some(wal) = self.wal_holding(object) {
            return wal.delete(*object).await;
        }
        if self.stream().is_some_and(|s| s.forget(object)) {
            return Ok(()); // the sweep deletes the stream object once all of it is dead
        }
        let key = object.key();
        self.delete_key(&key).await?;
        self.sync_dir_of(&key).await
    }

    /// Reads an exact byte range, keeping OpenDAL's possibly non-contiguous buffer.
    pub(crate) async fn read_buffer(
        &self,
        key: &str,
        position: u64,
        len: u64,
    ) -> Result<Buffer, StorageError> {
        if len == 0 {
            return Ok(Buffer::new());
        }
        let end = position.checked_add(len).ok_or_else(|| {
            StorageError::InvalidArgument(format!("range {position}+{len} of {key} overflows"))
        })?;
        let mut request = self.inner.op.read_with(key).range(position..end);
        let mut gets = 1;
        if let Some((chunk, concurrent)) = self.inner.slicing.for_len(len) {
            request = request.chunk(chunk).concurrent(concurrent);
            gets = len.div_ceil(chunk as u64);
        }
        self.count_get(gets, len);
        let buffer = request.await.map_err(StorageError::backend(format!(
            "read {key} bytes {position}..{end}"
        )))?;
        if buffer.len() as u64 != len {
            return Err(StorageError::corrupt(
                key,
                format!(
                    "short read: wanted {len} bytes at {position}, got {}",
                    buffer.len()
                ),
            ));
        }
        Ok(buffer)
    }

    /// Writes a whole stored object (flush object or segment) and returns once it is durable. An object of more than one
    /// slice goes as concurrent slices: a multipart upload on object stores, parallel
    /// positioned writes and one fsync on `fs`.
    ///
    /// The object is written under its final key (no temporary name and rename): a torn write
    /// is caught by the footer checks in recovery, and object stores publish a key only when
    /// the upload completes.
    ///
    /// Every call is a complete attempt that replaces whatever an earlier, failed attempt at
    /// the same object left (the content is identical by construction). On `fs`, OpenDAL opens
    /// the file with `O_CREAT | O_TRUNC` (never `O_EXCL`: no `if_not_exists`, no
    /// `atomic_write_dir`), writes it whole and fsyncs it on close; this crate then checks the
    /// size and fsyncs `wal/`. Nothing inside OpenDAL retries a step of it (see
    /// `Inner::write_op`), and `wal/` must still be a directory: OpenDAL would otherwise try to
    /// create it, failing with a misleading `AlreadyExists` (`mkdir`'s `EEXIST`) where a file
    /// stands in its place, or creating it afresh, without the root's fsync, where it vanished.
    pub(crate) async fn write_object(
        &self,
        object: ObjectId,
        data: Buffer,
    ) -> Result<(), StorageError> {
        let key = object.key();
        self.check_lease()?;
        if let Some(wal) = self.wal_holding(&object) {
            return wal.write(object, data).await;
        }
        if let (Some(stream), false) = (self.stream(), object.is_segment()) {
            return stream.write(object, data).await;
        }
        if let Some(local) = &self.inner.local {
            let dir = if object.is_segment() {
                SEGMENT_DIR
            } else {
                WAL_DIR
            };
            check_dir(&local.root.join(dir)).await?;
        }
        self.put(&key, data).await?;
        self.sync_dir_of(&key).await
    }

    /// Writes `key` whole (see [`Store::write_object`]) and, on `fs`, checks its size.
    async fn put(&self, key: &str, data: Buffer) -> Result<(), StorageError> {
        let expected = data.len() as u64;
        let mut request = self.inner.write_op.writer_with(key);
        let mut puts = 1;
        if let Some((chunk, concurrent)) = self.inner.slicing.for_len(expected) {
            request = request.chunk(chunk).concurrent(concurrent);
            puts = expected.div_ceil(chunk as u64) + 2;
        }
        self.count_put(puts, expected);
        let mut writer = request
            .await
            .map_err(StorageError::backend(format!("create {key}")))?;
        if let Err(source) = writer.write(data).await {
            // Best effort: releases multipart state on object stores. Not on fs, which cannot
            // abort (the next attempt truncates instead): the lazily opened fs writer would only
            // try to open the file once more.
            if self.inner.local.is_none() {
                if let Err(e) = writer.abort().await {
                    debug!(%key, error = %e, "abort after failed write");
                }
            }
            return Err(StorageError::backend(format!("write {key}"))(source));
        }
        let meta = writer
            .close()
            .await
            .map_err(StorageError::backend(format!("close {key}")))?;
        if self.inner.local.is_some() {
            // The file size is the cheap proof that the truncating open replaced whatever an
            // earlier attempt left, and that every byte was written.
            if meta.content_length() != expected {
                return Err(StorageError::corrupt(
                    key,
                    format!("wrote {} bytes, expected {expected}", meta.content_length()),
                ));
            }
        }
        Ok(())
    }

    /// Writes an object at any `key` whole and durably: on `fs` its directory is created (and
    /// made durable) first when missing, and synced after the write.
    pub(crate) async fn write_key(&self, key: &str, data: Buffer) -> Result<(), StorageError> {
        let dir = match &self.inner.local {
            Some(local) => {
                let dir = match key.rsplit_once('/') {
                    Some((parent, _)) => local.root.join(parent),
                    None => local.root.clone(),
                };
                ensure_dir(&local.root, &dir).await?;
                Some(dir)
            }
            None => None,
        };
        self.put(key, data).await?;
        match dir {
            Some(dir) => crate::dirsync::fsync_dir(&dir).await,
            None => Ok(()),
        }
    }

    /// Requests issued so far.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            put_requests: c.puts.load(Ordering::Relaxed),
            get_requests: c.gets.load(Ordering::Relaxed),
            delete_requests: c.deletes.load(Ordering::Relaxed),
            bytes_written: c.written.load(Ordering::Relaxed),
            bytes_read: c.read.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_put(&self, requests: u64, bytes: u64) {
        self.inner
            .counters
            .puts
            .fetch_add(requests, Ordering::Relaxed);
        self.inner
            .counters
            .written
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn count_get(&self, requests: u64, bytes: u64) {
        self.inner
            .counters
            .gets
            .fetch_add(requests, Ordering::Relaxed);
        self.inner.counters.read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Deletes `key` (absent is fine), counted.
    pub(crate) async fn delete_key(&self, key: &str) -> Result<(), StorageError> {
        self.check_lease()?;
        self.inner.counters.deletes.fetch_add(1, Ordering::Relaxed);
        self.op()
            .delete(key)
            .await
            .map_err(StorageError::backend(format!("delete {key}")))
    }

    /// Deletes `keys` with as few requests as the store allows (S3: DeleteObjects, up to 1,000
    /// keys each: callers pass at most that many), so that a sweep of hundreds of objects costs
    /// one request, not hundreds.
    pub(crate) async fn delete_keys(&self, keys: &[Arc<str>]) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.check_lease()?;
        // One DeleteObjects request (the sweep passes at most 1,000 keys).
        self.inner.counters.deletes.fetch_add(1, Ordering::Relaxed);
        let paths: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        self.op()
            .delete_iter(paths)
            .await
            .map_err(StorageError::backend(format!(
                "delete {} keys from {}",
                keys.len(),
                keys[0]
            )))
    }

    /// The underlying operator (with retry, timeout and logging layers).
    pub(crate) fn op(&self) -> &Operator {
        &self.inner.op
    }

    /// The operator for writes that must not be retried step by step (see `Inner::write_op`).
    pub(crate) fn write_op(&self) -> &Operator {
        &self.inner.write_op
    }

    /// Makes writes consult `gate` (the first lease taken through this store).
    pub(crate) fn set_lease_gate(&self, gate: Arc<LeaseGate>) {
        let _ = self.inner.lease.set(gate);
    }

    /// Fails while a lease held through this store is lost or not recently renewed, and once
    /// the writer epoch's check (see [`Store::set_writer_epoch`]) says this broker no longer
    /// leads: every write and deletion asks first.
    pub(crate) fn check_lease(&self) -> Result<(), StorageError> {
        if let Some(writer) = self.inner.writer.get() {
            if !(writer.may_write)() {
                return Err(StorageError::Fenced(format!(
                    "no longer the writer of this root at epoch {}",
                    writer.epoch
                )));
            }
        }
        self.inner.lease.get().map_or(Ok(()), |gate| gate.check())
    }

    /// Makes this store write as the leader of a shard at `epoch`, before recovery: every
    /// object, segment and checkpoint it creates is numbered from `epoch << 40` (never a key an
    /// older epoch's leader writes, even one still running), recovery refuses a root a newer
    /// epoch writes and ignores what older epochs wrote after their fence (see
    /// [`Store::recover`]), and every write or deletion first asks `may_write`, which must turn
    /// false before another broker may take the shard over. Set once.
    pub fn set_writer_epoch(
        &self,
        epoch: u32,
        may_write: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Result<(), StorageError> {
        if epoch == 0 || crate::types::epoch_base(epoch) >= 1 << 63 {
            return Err(StorageError::InvalidUrl(format!(
                "writer epoch {epoch} out of range"
            )));
        }
        self.inner
            .writer
            .set(WriterEpoch { epoch, may_write })
            .map_err(|_| StorageError::Fenced("the writer epoch is set already".into()))
    }

    /// The writer epoch (0 outside a cluster).
    pub fn writer_epoch(&self) -> u32 {
        self.inner.writer.get().map_or(0, |w| w.epoch)
    }

    /// The root directory, for the local filesystem.
    pub(crate) fn local_root(&self) -> Option<&Path> {
        self.inner.local.as_ref().map(|l| l.root.as_path())
    }

    /// Whether this is the local filesystem.
    pub fn is_local(&self) -> bool {
        self.inner.local.is_some()
    }

    /// Makes creations and removals of `key` durable: fsyncs its directory on `fs` (one of
    /// `wal/`, `seg/`, `manifest/`, `topics/`); a no-op on object stores.
    pub(crate) async fn sync_dir_of(&self, key: &str) -> Result<(), StorageError> {
        let Some(local) = &self.inner.local else {
            return Ok(());
        };
        let syncer = if key.starts_with(SEGMENT_DIR) {
            &local.segments
        } else if key.starts_with(MANIFEST_DIR) {
            &local.manifest
        } else if key.starts_with(TOPICS_DIR) {
            &local.topics
        } else if key.starts_with(SECURITY_DIR) {
            &local.security
        } else {
            &local.wal
        };
        syncer.sync().await
    }

    /// Creates or replaces the small object `key` atomically and durably: on backends that can
    /// rename, through `temp` (written, renamed into place, directory fsynced), so a crash
    /// leaves the old or the new object, never a torn one; object stores publish a PUT
    /// atomically.
    pub(crate) async fn replace_small(
        &self,
        key: &str,
        temp: &str,
        body: Vec<u8>,
    ) -> Result<(), StorageError> {
        if self.can_rename() {
            self.op()
                .write(temp, body)
                .await
                .map_err(StorageError::backend(format!("write {temp}")))?;
            self.op()
                .rename(temp, key)
                .await
                .map_err(StorageError::backend(format!("rename {temp} to {key}")))?;
        } else {
            self.op()
                .write(key, body)
                .await
                .map_err(StorageError::backend(format!("write {key}")))?;
        }
        self.sync_dir_of(key).await
    }

    /// Whether the backend can rename (used for atomic replacement of small objects).
    pub(crate) fn can_rename(&self) -> bool {
        self.inner.op.info().capability().rename
    }

    /// Makes creations and removals in `wal/` durable; a no-op on object stores.
    pub(crate) async fn sync_wal_dir(&self) -> Result<(), StorageError> {
        match &self.inner.local {
            Some(local) => local.wal.sync().await,
            None => Ok(()),
        }
    }

    /// Makes creations and removals in `topics/` durable; a no-op on object stores.
    pub(crate) async fn sync_topics_dir(&self) -> Result<(), StorageError> {
        match &self.inner.local {
            Some(local) => local.topics.sync().await,
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.inner.url)
            .finish()
    }
}

/// Fails unless `dir` exists and is a directory (following symlinks).
async fn check_dir(dir: &Path) -> Result<(), StorageError> {
    let source = match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => std::io::Error::from(std::io::ErrorKind::NotADirectory),
        Err(source) => source,
    };
    Err(StorageError::Io {
        context: format!("flush object directory {}", dir.display()),
        source,
    })
}

/// Creates `dir` (below `root`) when missing, and makes each directory it created durable in
/// its parent.
async fn ensure_dir(root: &Path, dir: &Path) -> Result<(), StorageError> {
    if tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let mut created = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| p.starts_with(root) && *p != root) {
        if tokio::fs::metadata(path).await.is_ok() {
            break;
        }
        created.push(path.to_path_buf());
        at = path.parent();
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| StorageError::Io {
            context: format!("create directory {}", dir.display()),
            source,
        })?;
    for path in created.iter().rev() {
        if let Some(parent) = path.parent() {
            fsync_dir(parent).await?;
        }
    }
    Ok(())
}

/// Creates the root with its object directories and fsyncs every directory whose entries changed,
/// so the layout survives a crash right after open.
async fn prepare_fs_root(root: &Path) -> Result<(), StorageError> {
    for sub in [WAL_DIR, SEGMENT_DIR, MANIFEST_DIR, TOPICS_DIR, SECURITY_DIR] {
        let dir = root.join(sub);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| StorageError::Io {
                context: format!("create directory {}", dir.display()),
                source,
            })?;
    }
    // The root holds the object directories; its parent holds the root itself. Ancestors above that
    // existed before us in any realistic deployment.
    fsync_dir(root).await?;
    if let Some(parent) = root.parent().map(PathBuf::from) {
        fsync_dir(&parent).await?;
    }
    Ok(())
}
