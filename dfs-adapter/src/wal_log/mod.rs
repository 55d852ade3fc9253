//! The append-only WAL on a local or block device: flush objects as records in preallocated,
//! reused files, so that a flush costs one data write and one `fdatasync`, with no file
//! creation and no directory sync.
//!
//! Layout: `<dir>/<number as 20 digits>.hwl` files of [`WalConfig::file_bytes`] each, plus the
//! run epoch file (see `epoch`). The writer appends records (see `record`) to the current file
//! and moves to a free file (or a new one) when a record does not fit. A file is free once
//! every object in it was deleted (compacted into segments and made obsolete by a checkpoint);
//! free files are reused oldest first. They are kept as long as the WAL recently needed as many
//! (its peak of files in use over the last one or two [`WalConfig::peak_window`]s, at least
//! [`WalConfig::spare_files`]), so that a steady load reuses the files of its previous
//! compaction cycle instead of preparing new ones, and the WAL never takes more disk than it
//! did at its recent peak; those beyond are deleted.
//!
//! A flush object keeps its [`ObjectId`] and its format; only where its bytes live changes, so
//! chunk locations, compaction and the manifest are the same as with one file per object.
//! Records are placed at seal time, in object order, by [`WalLog::place`]; several may be
//! written concurrently (each its own range, each synced), and the pipeline delivers them in
//! order as before. Recovery is in `scan`.

mod epoch;
mod file;
mod owner;
mod record;
mod scan;
mod writers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use opendal::Buffer;
use tracing::{debug, info, warn};

use crate::dirsync::DirSyncer;
use crate::{ObjectId, StorageError};
use file::WalFile;
use record::{footprint, RecordHeader};
use writers::Lineage;

/// WAL file suffix.
const SUFFIX: &str = ".hwl";

/// Largest span [`WalLog::read_many`] reads at once.
const MAX_READ_SPAN: u64 = 8 << 20;

/// Largest gap between two records that [`WalLog::read_many`] reads through rather than
/// reading them apart.
const MAX_READ_GAP: u64 = 256 << 10;

/// How the append-only WAL is laid out.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Directory of the WAL on a local or block device. `None`: `wal/` under an `fs://`
    /// store's root. Given, with an object store: the tiered mode (acknowledged once in this
    /// WAL, uploaded to the store by compaction); the directory is then tied to that store.
    pub dir: Option<std::path::PathBuf>,
    /// Size of each WAL file. A flush object larger than this gets a file of its own size.
    pub file_bytes: u64,
    /// Free files always kept for reuse.
    pub spare_files: usize,
    /// How long a peak of files in use keeps that many free files for reuse (one to two
    /// windows). Zero: only `spare_files` are kept.
    pub peak_window: std::time::Duration,
    /// Told how long each record write waited for a blocking thread and how long its write
    /// and `fdatasync` took (metrics).
    pub observer: Option<WriteObserver>,
}

/// How long one record write took, split where the time goes.
#[derive(Clone, Copy, Debug)]
pub struct WriteTiming {
    /// From submitting the write to a blocking thread until it started.
    pub queued: std::time::Duration,
    /// The write system call(s) and the `fdatasync`.
    pub write_and_sync: std::time::Duration,
}

/// Receives the [`WriteTiming`] of every record write; called on the writing thread, so keep
/// it short.
#[derive(Clone)]
pub struct WriteObserver(pub Arc<dyn Fn(WriteTiming) + Send + Sync>);

impl std::fmt::Debug for WriteObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteObserver")
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            dir: None,
            file_bytes: 64 << 20,
            spare_files: 4,
            peak_window: std::time::Duration::from_secs(600),
            observer: None,
        }
    }
}

/// The WAL of one store. See the module docs.
pub(crate) struct WalLog {
    dir: PathBuf,
    config: WalConfig,
    /// This run's epoch, written into every record.
    epoch: u64,
    dir_sync: DirSyncer,
    state: Mutex<State>,
    /// A spare file is being created and prepared in the background.
    preparing: AtomicBool,
    /// With a writer epoch: `dir` is that epoch's own directory, beside older epochs' (see
    /// `writers`).
    lineage: Option<Lineage>,
    /// The exclusive lock on `<dir>/LOCK`, held for the WAL's life.
    _lock: std::fs::File,
}

/// Where flush objects are and where the next one goes.
#[derive(Default)]
struct State {
    /// Live objects (placed and not deleted).
    placements: BTreeMap<ObjectId, Placement>,
    /// The file being appended to, and the offset of its next record.
    current: Option<(Arc<WalFile>, u64)>,
    /// Live objects per file number.
    live: HashMap<u64, usize>,
    /// Files holding nothing live, oldest first.
    free: VecDeque<Arc<WalFile>>,
    /// Number of the next new file.
    next_file: u64,
    /// Recent peaks of files in use.
    peak: PeakFiles,
}

/// The most files in use in the current window and in the one before it.
#[derive(Default)]
struct PeakFiles {
    window_start: Option<std::time::Instant>,
    current: usize,
    previous: usize,
}

impl PeakFiles {
    fn observe(&mut self, in_use: usize, window: std::time::Duration) {
        let now = std::time::Instant::now();
        let start = *self.window_start.get_or_insert(now);
        if now.duration_since(start) >= window {
            self.previous = self.current;
            self.current = 0;
            self.window_start = Some(now);
        }
        self.current = self.current.max(in_use);
    }

    fn recent(&self) -> usize {
        self.current.max(self.previous)
    }
}

impl State {
    /// Files holding live objects or being appended to.
    fn in_use(&self) -> usize {
        let current_unlisted = self
            .current
            .as_ref()
            .is_some_and(|(file, _)| !self.live.contains_key(&file.number));
        self.live.len() + usize::from(current_unlisted)
    }
}

/// Where one flush object's record is.
#[derive(Clone)]
struct Placement {
    file: Arc<WalFile>,
    /// Start of the record (its header).
    offset: u64,
    /// Length of the object.
    len: u64,
    /// The file's reuse generation when the object was placed.
    reuse: u64,
}

impl WalLog {
    /// Opens the WAL in `dir` (created if missing), locks it and raises the run epoch. Call
    /// once the store's root is claimed, then [`WalLog::recover`] before writing. With
    /// `owner` (a WAL beside, not inside, its store), the directory is tied to that store URL:
    /// a WAL must never be replayed into another store. With a `writer_epoch` above 0 (a
    /// cluster leader), this writer's files go to a directory of that epoch's own under `dir`
    /// and older epochs' are only read (see `writers`).
    pub(crate) async fn open(
        dir: &Path,
        config: WalConfig,
        owner: Option<&str>,
        writer_epoch: u32,
    ) -> Result<WalLog, StorageError> {
        if config.file_bytes < record::ALIGN * 2 {
            return Err(StorageError::InvalidArgument(format!(
                "WAL file size {} is below the minimum of {} bytes",
                config.file_bytes,
                record::ALIGN * 2
            )));
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StorageError::Io {
                context: format!("create WAL directory {}", dir.display()),
                source,
            })?;
        let lineage = (writer_epoch > 0).then(|| Lineage {
            base: dir.to_path_buf(),
            epoch: writer_epoch,
        });
        let dir = match &lineage {
            Some(lineage) => {
                let own = lineage.own_dir();
                tokio::fs::create_dir_all(&own)
                    .await
                    .map_err(|source| StorageError::Io {
                        context: format!("create WAL directory {}", own.display()),
                        source,
                    })?;
                crate::dirsync::fsync_dir(dir).await?;
                own
            }
            None => dir.to_path_buf(),
        };
        let lock = crate::claim::lock_dir(&dir, uuid::Uuid::new_v4())?;
        if let Some(store) = owner {
            // Under the lock: two stores starting on one directory cannot both record.
            owner::check_or_record(lineage.as_ref().map_or(dir.as_path(), |l| &l.base), store)
                .await?;
        }
        let epoch = epoch::advance(&dir).await?;
        info!(dir = %dir.display(), epoch, writer_epoch, "WAL opened");
        Ok(WalLog {
            dir_sync: DirSyncer::new(dir.clone()),
            dir,
            config,
            epoch,
            state: Mutex::new(State::default()),
            preparing: AtomicBool::new(false),
            lineage,
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}{SUFFIX}"))
    }

    /// Reserves room for object `id` of `len` bytes after every object placed before it.
    /// Synchronous and cheap: a new file is only named here, and created by its first write.
    pub(crate) fn place(self: &Arc<Self>, id: ObjectId, len: u64) {
        // An object held in memory is far below u64::MAX bytes.
        let need = footprint(len).unwrap_or(u64::MAX);
        let mut state = self.lock();
        let fits = state
            .current
            .as_ref()
            .is_some_and(|(file, next)| next.saturating_add(need) <= file.capacity);
        if !fits {
            self.switch_file(&mut state, need);
        }
        let Some((file, next)) = state.current.as_mut() else {
            unreachable!("switch_file sets a current file");
        };
        let placement = Placement {
            file: file.clone(),
            offset: *next,
            len,
            reuse: file.reuse_generation(),
        };
        *next += need;
        let number = file.number;
        *state.live.entry(number).or_default() += 1;
        state.placements.insert(id, placement);
        let in_use = state.in_use();
        state.peak.observe(in_use, self.config.peak_window);
        if state.free.is_empty() {
            self.prepare_spare(&mut state);
        }
    }

    /// Creates and prepares one spare file in the background (unless one is on its way), so
    /// that the next file the writer needs is ready. Needs a tokio runtime.
    fn prepare_spare(self: &Arc<Self>, state: &mut State) {
        if self.preparing.swap(true, Ordering::AcqRel) {
            return;
        }
        let number = state.next_file;
        state.next_file += 1;
        let file = Arc::new(WalFile::new(
            number,
            self.file_path(number),
            self.config.file_bytes,
        ));
        let wal = self.clone();
        tokio::spawn(async move {
            match file.prepare_fully(&wal.dir_sync).await {
                Ok(()) => {
                    debug!(file = %file.path.display(), "spare WAL file prepared");
                    let unneeded = {
                        let mut state = wal.lock();
                        // Files were freed meanwhile: keep no more spares than allowed.
                        if state.free.len() >= wal.spare_cap(&state).max(1) {
                            true
                        } else {
                            state.free.push_back(file.clone());
                            false
                        }
                    };
                    if unneeded {
                        let _ = wal.remove_file(&file).await;
                    }
                }
                // The writer creates and prepares its next file itself then.
                Err(error) => {
                    warn!(file = %file.path.display(), %error, "could not prepare a spare WAL file");
                }
            }
            wal.preparing.store(false, Ordering::Release);
        });
    }

    /// How many free files to keep: `spare_files`, or the recent peak of files in use.
    fn spare_cap(&self, state: &State) -> usize {
        if self.config.peak_window.is_zero() {
            self.config.spare_files
        } else {
            self.config.spare_files.max(state.peak.recent())
        }
    }

    /// Makes a free file (or a new one) of at least `need` bytes current.
    fn switch_file(&self, state: &mut State, need: u64) {
        if let Some((old, _)) = state.current.take() {
            if state.live.get(&old.number).copied().unwrap_or(0) == 0 {
                state.free.push_back(old);
            }
        }
        let reused = match state.free.front() {
            Some(file) if file.capacity >= need => state.free.pop_front(),
            _ => None,
        };
        let file = match reused {
            Some(file) => {
                file.begin_reuse();
                debug!(file = %file.path.display(), "reusing WAL file");
                file
            }
            None => {
                let number = state.next_file;
                state.next_file += 1;
                let capacity = self.config.file_bytes.max(need);
                Arc::new(WalFile::new(number, self.file_path(number), capacity))
            }
        };
        state.current = Some((file, 0));
    }

    /// Writes placed object `id` and returns once it is durable. Re-writing it after a failed
    /// attempt writes the same bytes to the same place.
    pub(crate) async fn write(&self, id: ObjectId, data: Buffer) -> Result<(), StorageError> {
        let placement = self.placement(id)?;
        if placement.len != data.len() as u64 {
            return Err(StorageError::InvalidArgument(format!(
                "{id} was placed for {} bytes, got {}",
                placement.len,
                data.len()
            )));
        }
        let header = RecordHeader {
            epoch: self.epoch,
            object: id,
            len: placement.len,
        };
        placement
            .file
            .write_record(
                &self.dir_sync,
                placement.offset,
                header,
                data,
                self.config.observer.clone(),
            )
            .await
            .map_err(|source| StorageError::Io {
                context: format!(
                    "write {id} at {} of {}",
                    placement.offset,
                    placement.file.path.display()
                ),
                source,
            })
    }

    /// Reads `len` bytes at `position` of live object `id`.
    pub(crate) async fn read(
        &self,
        id: ObjectId,
        position: u64,
        len: u64,
    ) -> Result<Bytes, StorageError> {
        let placement = self.placement(id)?;
        let in_bounds = position
            .checked_add(len)
            .is_some_and(|end| end <= placement.len);
        if !in_bounds {
            return Err(StorageError::corrupt(
                id.key(),
                format!(
                    "short read: wanted {len} bytes at {position} of a {}-byte object",
                    placement.len
                ),
            ));
        }
        let at = placement.offset + record::HEADER_LEN + position;
        let bytes = placement
            .file
            .read_at(at, len)
            .await
            .map_err(|source| StorageError::Io {
                context: format!("read {id} from {}", placement.file.path.display()),
                source,
            })?;
        // The object was deleted and its file reused while the read ran: what was read may
        // belong to another object.
        if placement.file.reuse_generation() != placement.reuse {
            return Err(gone(id));
        }
        Ok(bytes)
    }

    /// Reads the first `len` bytes of each object of `wanted`, in that order, with as few
    /// reads as the records' places allow: records that lie close together in one file are
    /// read as one span (at most [`MAX_READ_SPAN`]) and cut apart. Compaction reads thousands
    /// of small flush objects a round; one read each cost a system call and a thread hand-off
    /// apiece.
    pub(crate) async fn read_many(
        &self,
        wanted: &[(ObjectId, u64)],
    ) -> Result<Vec<Bytes>, StorageError> {
        let mut placed = Vec::with_capacity(wanted.len());
        for &(id, len) in wanted {
            let placement = self.placement(id)?;
            if len > placement.len {
                return Err(StorageError::corrupt(
                    id.key(),
                    format!(
                        "short read: wanted {len} bytes of a {}-byte object",
                        placement.len
                    ),
                ));
            }
            placed.push((id, len, placement));
        }
        let mut order: Vec<usize> = (0..placed.len()).collect();
        order.sort_by_key(|&i| (placed[i].2.file.number, placed[i].2.offset));
        let mut out = vec![Bytes::new(); placed.len()];
        let mut at = 0;
        while at < order.len() {
            let first = &placed[order[at]].2;
            let start = first.offset;
            let mut end = start;
            let mut next = at;
            while let Some(&i) = order.get(next) {
                let (_, len, placement) = &placed[i];
                let record_end = placement.offset + record::HEADER_LEN + len;
                let joins = Arc::ptr_eq(&placement.file, &first.file)
                    && placement.offset <= end.saturating_add(MAX_READ_GAP)
                    && record_end - start <= MAX_READ_SPAN;
                if next > at && !joins {
                    break;
                }
                end = end.max(record_end);
                next += 1;
            }
            let span = first
                .file
                .read_at(start, end - start)
                .await
                .map_err(|source| StorageError::Io {
                    context: format!("read from {}", first.file.path.display()),
                    source,
                })?;
            for &i in &order[at..next] {
                let (id, len, placement) = &placed[i];
                // Deleted and its file reused while the read ran: the bytes may be another's.
                if placement.file.reuse_generation() != placement.reuse {
                    return Err(gone(*id));
                }
                let from = (placement.offset + record::HEADER_LEN - start) as usize;
                // Copied out: a span also holds padding and other objects' bytes.
                out[i] = Bytes::copy_from_slice(&span[from..from + *len as usize]);
            }
            at = next;
        }
        Ok(out)
    }

    /// Whether `id` is a live object of this WAL (rather than, say, a flush object written as a
    /// file of its own before the WAL was in use).
    pub(crate) fn holds(&self, id: ObjectId) -> bool {
        self.lock().placements.contains_key(&id)
    }

    fn placement(&self, id: ObjectId) -> Result<Placement, StorageError> {
        self.lock()
            .placements
            .get(&id)
            .cloned()
            .ok_or_else(|| gone(id))
    }

    /// Forgets deleted object `id`; a file left with nothing live becomes free (or is
    /// deleted, beyond the spare files; an older writer's is always deleted).
    pub(crate) async fn delete(&self, id: ObjectId) -> Result<(), StorageError> {
        let mut retired = None;
        let surplus = {
            let mut state = self.lock();
            let Some(placement) = state.placements.remove(&id) else {
                return Ok(());
            };
            let number = placement.file.number;
            let count = state.live.entry(number).or_default();
            *count = count.saturating_sub(1);
            let emptied = *count == 0;
            let is_current = state
                .current
                .as_ref()
                .is_some_and(|(file, _)| file.number == number);
            if emptied {
                state.live.remove(&number);
                if writers::is_foreign(number) {
                    retired = Some(placement.file);
                } else if !is_current {
                    state.free.push_back(placement.file);
                }
            }
            if state.free.len() > self.spare_cap(&state) {
                state.free.pop_front()
            } else {
                None
            }
        };
        if let Some(file) = surplus {
            self.remove_file(&file).await?;
        }
        if let (Some(file), Some(lineage)) = (retired, &self.lineage) {
            lineage.retire(&file.path).await?;
        }
        Ok(())
    }

    async fn remove_file(&self, file: &WalFile) -> Result<(), StorageError> {
        // A read still running on it holds its own handle and finds the reuse generation
        // unchanged: the bytes it reads are the deleted object's own, which is fine.
        match tokio::fs::remove_file(&file.path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                warn!(file = %file.path.display(), error = %source, "could not delete WAL file");
                return Err(StorageError::Io {
                    context: format!("delete {}", file.path.display()),
                    source,
                });
            }
        }
        debug!(file = %file.path.display(), "deleted spare WAL file");
        self.dir_sync.sync().await
    }

    /// Number of WAL files (live, current and free), for tests and metrics.
    pub(crate) fn files(&self) -> usize {
        let state = self.lock();
        let mut numbers: std::collections::BTreeSet<u64> = state.live.keys().copied().collect();
        numbers.extend(state.free.iter().map(|f| f.number));
        if let Some((file, _)) = &state.current {
            numbers.insert(file.number);
        }
        numbers.len()
    }
}

/// Whether a file name in the WAL directory belongs to the WAL (its files and epoch), so that
/// the listing of flush object files leaves it alone.
pub(crate) fn owns(name: &str) -> bool {
    scan::parse_name(name).is_some()
        || epoch::owns(name)
        || owner::owns(name)
        || writers::parse_dir_name(name).is_some()
        || name == crate::claim::LOCK_FILE
}

fn gone(id: ObjectId) -> StorageError {
    StorageError::Io {
        context: format!("read {id}: the object is no longer stored (compacted and deleted)"),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}
