//! One preallocated, reusable WAL file and the blocking I/O on it.
//!
//! A file is zero-filled ahead of the records written into it ("prepared"), so that a record
//! overwrites blocks that already exist and `fdatasync` commits data only: no block
//! allocation, no size change, no journal commit. Preparing is what costs a metadata commit,
//! once per file: a spare file is prepared whole in the background before the writer needs
//! it, and a reused file is prepared already. Only when the writer outruns the spare does it
//! prepare its file [`PREPARE_STEP`] at a time, ahead of itself.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use opendal::Buffer;
use tokio::sync::{Mutex, OnceCell};

use super::record::{RecordHeader, ALIGN, HEADER_LEN};

/// A file is prepared (zero-filled and synced) this much at a time.
pub(crate) const PREPARE_STEP: u64 = 4 << 20;
/// Preparing ahead starts when the writer comes this close to the prepared end.
const PREPARE_LOW_WATER: u64 = 2 << 20;
/// A spare file is zero-filled at most this fast (64 MiB in about a second): a burst of
/// writeback, and its syncs, delayed the records' `fdatasync` by milliseconds every time a new
/// file was prepared at full speed.
const SPARE_PACE_BYTES_PER_S: u64 = 64 << 20;
/// Records up to this size are copied into one buffer and written with one system call.
const COALESCE_BYTES: usize = 256 << 10;
/// Zeros are written in pieces of this size.
const ZERO_CHUNK: usize = 1 << 20;

/// A WAL file: `wal/<number as 20 digits>.hwl`.
#[derive(Debug)]
pub(crate) struct WalFile {
    pub(crate) number: u64,
    pub(crate) path: PathBuf,
    /// Bytes it may hold; records never cross it.
    pub(crate) capacity: u64,
    /// Opened (created, for a new file) on first use.
    handle: OnceCell<Arc<std::fs::File>>,
    /// Bytes from 0 known to be written and synced. Held while preparing more.
    prepared: Mutex<u64>,
    /// Incremented each time the file is taken for reuse: a read that started before checks
    /// it afterwards, and never returns bytes of a later use.
    reuse: AtomicU64,
}

impl WalFile {
    /// A file not created yet (created by the first write).
    pub(crate) fn new(number: u64, path: PathBuf, capacity: u64) -> WalFile {
        WalFile {
            number,
            path,
            capacity,
            handle: OnceCell::new(),
            prepared: Mutex::new(0),
            reuse: AtomicU64::new(0),
        }
    }

    /// An existing file of `len` bytes, opened for reading and writing.
    pub(crate) fn existing(
        number: u64,
        path: PathBuf,
        file: std::fs::File,
        len: u64,
        capacity: u64,
    ) -> WalFile {
        let prepared = len - len % ALIGN;
        WalFile {
            number,
            path,
            capacity: capacity.max(prepared),
            handle: OnceCell::new_with(Some(Arc::new(file))),
            prepared: Mutex::new(prepared),
            reuse: AtomicU64::new(0),
        }
    }

    pub(crate) fn reuse_generation(&self) -> u64 {
        self.reuse.load(Ordering::Acquire)
    }

    /// Marks the start of a new use; reads of the previous one fail from now on.
    pub(crate) fn begin_reuse(&self) -> u64 {
        self.reuse.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The open file, creating it (and syncing its directory through `on_create`) first.
    async fn handle(&self, dir_sync: &crate::dirsync::DirSyncer) -> io::Result<Arc<std::fs::File>> {
        self.handle
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let file = tokio::task::spawn_blocking(move || {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path)
                })
                .await
                .map_err(io::Error::other)??;
                dir_sync.sync().await.map_err(io::Error::other)?;
                Ok(Arc::new(file))
            })
            .await
            .cloned()
    }

    /// Writes one record (header and object) at `offset` and makes it durable with
    /// `fdatasync`.
    pub(crate) async fn write_record(
        self: &Arc<Self>,
        dir_sync: &crate::dirsync::DirSyncer,
        offset: u64,
        header: RecordHeader,
        data: Buffer,
        observer: Option<super::WriteObserver>,
    ) -> io::Result<()> {
        let end = offset + HEADER_LEN + data.len() as u64;
        let file = self.handle(dir_sync).await?;
        self.prepare(&file, end, false).await?;
        let encoded = header.encode();
        let submitted = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            if data.len() <= COALESCE_BYTES {
                // A flush of many small batches: one write system call, not one per batch.
                let mut record = Vec::with_capacity(encoded.len() + data.len());
                record.extend_from_slice(&encoded);
                for chunk in data {
                    record.extend_from_slice(&chunk);
                }
                file.write_all_at(&record, offset)?;
            } else {
                file.write_all_at(&encoded, offset)?;
                let mut position = offset + HEADER_LEN;
                for chunk in data {
                    file.write_all_at(&chunk, position)?;
                    position += chunk.len() as u64;
                }
            }
            file.sync_data()?;
            if let Some(observer) = observer {
                (observer.0)(super::WriteTiming {
                    queued: started.duration_since(submitted),
                    write_and_sync: started.elapsed(),
                });
            }
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(io::Error::other)??;
        self.prepare_ahead(end);
        Ok(())
    }

    /// Makes sure bytes `..end` exist on disk (zero-filled where not written yet), synced.
    /// `paced`: for a spare nobody waits for, at most [`SPARE_PACE_BYTES_PER_S`], so that its
    /// writeback takes a small share of the disk beside the records' syncs.
    async fn prepare(&self, file: &Arc<std::fs::File>, end: u64, paced: bool) -> io::Result<()> {
        let mut prepared = self.prepared.lock().await;
        if *prepared >= end {
            return Ok(());
        }
        let target = end
            .max(*prepared + PREPARE_STEP)
            .min(self.capacity.max(end));
        let from = *prepared;
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            let zeros = vec![0u8; ZERO_CHUNK];
            let mut at = from;
            while at < target {
                let n = (target - at).min(ZERO_CHUNK as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
                if paced {
                    std::thread::sleep(std::time::Duration::from_secs_f64(
                        n as f64 / SPARE_PACE_BYTES_PER_S as f64,
                    ));
                }
                // Written back a step at a time, so that a whole file's zeros never reach the
                // disk queue at once, ahead of the records' syncs.
                if at % PREPARE_STEP == 0 && at < target {
                    file.sync_data()?;
                }
            }
            // The size changed: this sync commits metadata.
            file.sync_data()
        })
        .await
        .map_err(io::Error::other)??;
        *prepared = target;
        Ok(())
    }

    /// Creates the file if needed and prepares all of it: a spare made ready before the
    /// writer needs it, so that the write path never allocates.
    pub(crate) async fn prepare_fully(
        &self,
        dir_sync: &crate::dirsync::DirSyncer,
    ) -> io::Result<()> {
        let file = self.handle(dir_sync).await?;
        self.prepare(&file, self.capacity, true).await
    }

    /// Prepares the next step in the background when the writer at `end` comes close.
    fn prepare_ahead(self: &Arc<Self>, end: u64) {
        let this = self.clone();
        let Ok(prepared) = this.prepared.try_lock().map(|p| *p) else {
            return; // someone is preparing already
        };
        if prepared >= this.capacity || prepared >= end + PREPARE_LOW_WATER {
            return;
        }
        tokio::spawn(async move {
            let Some(file) = this.handle.get().cloned() else {
                return;
            };
            let target = (end + PREPARE_LOW_WATER).min(this.capacity);
            if let Err(error) = this.prepare(&file, target, false).await {
                // The next write prepares for itself and reports it then.
                tracing::debug!(file = %this.path.display(), %error, "preparing ahead failed");
            }
        });
    }

    /// Reads exactly `len` bytes at `offset`.
    pub(crate) async fn read_at(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let Some(file) = self.handle.get().cloned() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "WAL file not created yet",
            ));
        };
        let len = usize::try_from(len).map_err(|_| io::Error::other("read too large"))?;
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Reads the record header at `offset`, if an intact one is there.
    pub(crate) async fn header_at(&self, offset: u64) -> io::Result<Option<RecordHeader>> {
        if offset.saturating_add(HEADER_LEN) > self.capacity {
            return Ok(None);
        }
        match self.read_at(offset, HEADER_LEN).await {
            Ok(bytes) => Ok(RecordHeader::decode(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Overwrites the first header with zeros, durably: the file no longer looks like the
    /// continuation of anything.
    pub(crate) async fn invalidate(&self) -> io::Result<()> {
        let Some(file) = self.handle.get().cloned() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            file.write_all_at(&[0u8; HEADER_LEN as usize], 0)?;
            file.sync_data()
        })
        .await
        .map_err(io::Error::other)?
    }
}
