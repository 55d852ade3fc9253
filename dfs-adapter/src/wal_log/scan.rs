//! WAL recovery: follow the chain of records from the first object still needed, adopt every
//! intact one in object order, and prepare the writer to continue right after the last.
//!
//! The chain: records in a file follow each other at aligned positions; when a record did not
//! fit, the next one starts a file of its own (whose first record names it). A record belongs
//! to the chain when its header is intact, it names the next expected object, its epoch is not
//! older than its predecessor's, and the object itself validates (footer, index, data CRC).
//! The first record that fails ends the chain, exactly as the first missing or invalid flush
//! object does with one file per object, and for the same reason (see [`crate::Store::recover`]):
//! only records in the pipeline's in-flight window can be missing or torn after a crash. A
//! record of the window that survived beyond a torn one is left in place and overwritten; the
//! next run's larger epoch keeps it out of any later chain.
//!
//! A cluster leader's chain runs through the directories of the leaders before it (see
//! `writers`): it follows the fences recorded in the checkpoint (skipping what a fenced leader
//! wrote after its fence), runs are ordered by writer epoch first and run epoch second, and
//! what it does not adopt from an older leader's files is deleted, never blanked or reused.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, info, warn};

use super::file::WalFile;
use super::record::{RecordHeader, HEADER_LEN};
use super::writers::foreign_number;
use super::{Placement, WalLog, SUFFIX};
use crate::format::parse_object;
use crate::manifest::{follow_fences, Fence};
use crate::{ChunkLocation, ObjectId, StorageError};

/// Orders runs: a later writer epoch, then a later run of one writer, is newer.
type Run = (u32, u64);

fn run_of(header: &RecordHeader) -> Run {
    (header.object.epoch(), header.epoch)
}

/// What the WAL held.
pub(crate) struct WalRecovered {
    /// Adopted objects in order, with their chunks.
    pub(crate) objects: Vec<(ObjectId, Vec<ChunkLocation>)>,
    /// The id the pipeline uses next.
    pub(crate) next_object: ObjectId,
    /// Records of the crash window that were found and not adopted.
    pub(crate) discarded: Vec<ObjectId>,
}

/// Why the chain ended.
struct ChainEnd {
    /// The expected object that was missing or invalid.
    object: ObjectId,
    /// Why it was not adopted.
    reason: String,
    /// Where the records after it begin, when its header was intact (so they can be checked).
    after: Option<(Arc<WalFile>, u64)>,
}

impl WalLog {
    /// Recovers the chain starting at object `start` (records of older objects are skipped:
    /// they are in segments already), jumping over `fences`. `max_in_flight` is the pipeline's, as for
    /// [`crate::Store::recover`]: if records reach further past the first missing or invalid
    /// one than a crash can explain, nothing is changed and this fails with
    /// [`StorageError::Corrupt`].
    pub(crate) async fn recover(
        self: &Arc<Self>,
        start: ObjectId,
        fences: &[Fence],
        max_in_flight: usize,
    ) -> Result<WalRecovered, StorageError> {
        let (files, older_dirs) = self.open_files().await?;
        let mut heads: Vec<(RecordHeader, Arc<WalFile>)> = Vec::new();
        for file in &files {
            if let Some(head) = file.header_at(0).await.map_err(io(file))? {
                heads.push((head, file.clone()));
            }
        }
        heads.sort_by_key(|(h, f)| (h.object, h.epoch, f.number));

        let mut expected = follow_fences(fences, start);
        let mut last: Run = (0, 0);
        let mut objects: Vec<(ObjectId, Vec<ChunkLocation>)> = Vec::new();
        let mut placements: Vec<(ObjectId, Placement)> = Vec::new();
        let mut chain: HashSet<u64> = HashSet::new();
        let mut tail: Option<(Arc<WalFile>, u64)> = None;
        let mut end: Option<ChainEnd> = None;
        let mut current = heads
            .iter()
            .rev()
            .find(|(h, _)| h.object <= expected)
            .map(|(_, f)| f.clone());
        'files: while let Some(file) = current.take() {
            let mut offset = 0u64;
            loop {
                let Some(header) = file.header_at(offset).await.map_err(io(&file))? else {
                    break;
                };
                let next = header
                    .footprint()
                    .and_then(|n| offset.checked_add(n))
                    .filter(|n| *n <= file.capacity);
                let Some(next) = next else { break };
                if run_of(&header) < last {
                    break;
                }
                if header.object < expected && objects.is_empty() {
                    // Folded into segments already (or, in a fenced leader's file, written
                    // after its fence).
                    last = run_of(&header);
                    offset = next;
                    continue;
                }
                if header.object != expected {
                    break;
                }
                let parsed = match file.read_at(offset + HEADER_LEN, header.len).await {
                    Ok(bytes) => parse_object(expected, &bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        Err("the file ends inside the record".to_string())
                    }
                    Err(e) => return Err(io(&file)(e)),
                };
                match parsed {
                    Ok(chunks) => {
                        placements.push((
                            expected,
                            Placement {
                                file: file.clone(),
                                offset,
                                len: header.len,
                                reuse: file.reuse_generation(),
                            },
                        ));
                        objects.push((expected, chunks));
                        chain.insert(file.number);
                        last = run_of(&header);
                        expected = follow_fences(fences, expected.next());
                        offset = next;
                        tail = Some((file.clone(), next));
                    }
                    Err(reason) => {
                        end = Some(ChainEnd {
                            object: expected,
                            reason,
                            after: Some((file.clone(), next)),
                        });
                        break 'files;
                    }
                }
            }
            current = heads
                .iter()
                .filter(|(h, f)| {
                    h.object == expected && run_of(h) >= last && f.number != file.number
                })
                .max_by_key(|(h, _)| run_of(h))
                .map(|(_, f)| f.clone());
        }
        let end = end.unwrap_or(ChainEnd {
            object: expected,
            reason: "missing".into(),
            after: None,
        });
        let discarded = self
            .check_crash_window(&end, &heads, last, max_in_flight)
            .await?;
        if !discarded.is_empty() {
            warn!(first = %end.object, reason = %end.reason, count = discarded.len(),
                "WAL records after the first missing or invalid one discarded");
        }

        // Files that could pass for a continuation later are blanked before anything new is
        // written; the rest of the non-chain files are free. An older writer's are deleted:
        // never written by this one (it may still hold them).
        let mut free = Vec::new();
        let mut retired = Vec::new();
        for file in &files {
            if chain.contains(&file.number) {
                continue;
            }
            if super::writers::is_foreign(file.number) {
                retired.push(file.clone());
                continue;
            }
            let head = heads.iter().find(|(_, f)| f.number == file.number);
            if head.is_some_and(|(h, _)| h.object >= expected) {
                file.invalidate().await.map_err(io(file))?;
            }
            free.push(file.clone());
        }
        let next_file = files
            .iter()
            .filter(|f| !super::writers::is_foreign(f.number))
            .map(|f| f.number + 1)
            .max()
            .unwrap_or(0);
        // Appends continue in this writer's own last file only.
        let tail = tail.filter(|(file, _)| !super::writers::is_foreign(file.number));
        let surplus = {
            let mut state = self.lock();
            state.next_file = next_file;
            for (id, placement) in placements {
                *state.live.entry(placement.file.number).or_default() += 1;
                state.placements.insert(id, placement);
            }
            state.current = tail;
            state.free = free.into();
            let keep = self.config.spare_files;
            let surplus = state.free.len().saturating_sub(keep);
            let surplus: Vec<_> = state.free.drain(..surplus).collect();
            if state.free.is_empty() {
                self.prepare_spare(&mut state);
            }
            surplus
        };
        for file in &surplus {
            self.remove_file(file).await?;
        }
        if let Some(lineage) = &self.lineage {
            for file in &retired {
                lineage.retire(&file.path).await?;
            }
            for dir in &older_dirs {
                lineage.retire_dir_if_empty(dir).await?;
            }
        }
        info!(adopted = objects.len(), files = files.len(), next = %expected, epoch = self.epoch,
            "WAL recovered");
        Ok(WalRecovered {
            objects,
            next_object: expected,
            discarded,
        })
    }

    /// Opens every WAL file of this writer's directory (for reading and writing) and, with a
    /// writer epoch, of older writers' directories (for reading only; those directories are
    /// returned too). Stray names are left alone.
    async fn open_files(&self) -> Result<(Vec<Arc<WalFile>>, Vec<PathBuf>), StorageError> {
        let mut files = self.open_dir(&self.dir, None).await?;
        let mut older_dirs = Vec::new();
        if let Some(lineage) = &self.lineage {
            for (epoch, dir) in lineage.predecessors().await? {
                files.extend(self.open_dir(&dir, Some(epoch)).await?);
                if dir != lineage.base {
                    older_dirs.push(dir);
                }
            }
        }
        files.sort_by_key(|f| f.number);
        Ok((files, older_dirs))
    }

    /// Opens the WAL files of `dir`: this writer's own, or (`older`: its epoch) an older
    /// writer's, read-only and numbered apart.
    async fn open_dir(
        &self,
        dir: &Path,
        older: Option<u32>,
    ) -> Result<Vec<Arc<WalFile>>, StorageError> {
        let dir_io = |source| StorageError::Io {
            context: format!("list {}", dir.display()),
            source,
        };
        let mut entries = tokio::fs::read_dir(dir).await.map_err(dir_io)?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(dir_io)? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(mut number) = parse_name(name) else {
                continue;
            };
            if let Some(epoch) = older {
                let Some(foreign) = foreign_number(epoch, number) else {
                    warn!(file = %entry.path().display(), "ignoring an older writer's WAL file numbered beyond range");
                    continue;
                };
                number = foreign;
            }
            let path = entry.path();
            let opened = tokio::task::spawn_blocking({
                let path = path.clone();
                move || -> std::io::Result<(std::fs::File, u64)> {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(older.is_none())
                        .open(&path)?;
                    let len = file.metadata()?.len();
                    Ok((file, len))
                }
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|source| StorageError::Io {
                context: format!("open {}", path.display()),
                source,
            })?;
            let (file, len) = opened;
            files.push(Arc::new(WalFile::existing(
                number,
                path,
                file,
                len,
                self.config.file_bytes,
            )));
        }
        Ok(files)
    }

    /// Refuses when records reach further past `end.object` than a crash with
    /// `max_in_flight` objects in flight can leave (then `end.object` had been acknowledged and
    /// was lost afterwards); otherwise returns the ids of the window's records found.
    async fn check_crash_window(
        &self,
        end: &ChainEnd,
        heads: &[(RecordHeader, Arc<WalFile>)],
        last: Run,
        max_in_flight: usize,
    ) -> Result<Vec<ObjectId>, StorageError> {
        let mut later: Vec<ObjectId> = Vec::new();
        // Records after the bad one in its file, and in files that begin after it, while
        // their headers are intact.
        let mut runs: Vec<(Arc<WalFile>, u64)> = Vec::new();
        if let Some(after) = end.after.clone() {
            later.push(end.object);
            runs.push(after);
        }
        runs.extend(
            heads
                .iter()
                .filter(|(h, _)| h.object > end.object && run_of(h) >= last)
                .map(|(_, f)| (f.clone(), 0)),
        );
        for (file, mut offset) in runs {
            let mut previous = end.object;
            while let Some(header) = file.header_at(offset).await.map_err(io(&file))? {
                if run_of(&header) < last || header.object <= previous {
                    break;
                }
                later.push(header.object);
                previous = header.object;
                match header.footprint().and_then(|n| offset.checked_add(n)) {
                    Some(next) => offset = next,
                    None => break,
                }
            }
        }
        later.sort_unstable();
        later.dedup();
        let allowed = u64::try_from(max_in_flight.max(1) - 1).unwrap_or(u64::MAX);
        if let Some(&last) = later.last() {
            if last.0.saturating_sub(end.object.0) > allowed {
                let reason = format!(
                    "{}; yet WAL records up to {last} exist, further than a crash with flush \
                     max_in_flight = {max_in_flight} can leave, so this object had been \
                     acknowledged and was lost or damaged afterwards. Recovery stopped and \
                     changed nothing. Restore the WAL from a backup, or start once with the \
                     old max_in_flight if it was lowered",
                    end.reason
                );
                error!(object = %end.object, %reason, "refusing to discard WAL records");
                return Err(StorageError::corrupt(end.object.key(), reason));
            }
        }
        Ok(later)
    }
}

fn io(file: &WalFile) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        context: format!("WAL file {}", file.path.display()),
        source,
    }
}

/// The number in `<20 digits>.hwl`.
pub(super) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
