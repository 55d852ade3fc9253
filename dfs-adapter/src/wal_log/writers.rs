//! One WAL directory per writer epoch. In a cluster the leader of a shard at epoch `E` writes
//! only `w<E as 10 digits>/` under the root's `wal/`, and only reads the directories of older
//! epochs (the leaders it took the shard over from), deleting their files as compaction makes
//! their objects obsolete; it never reuses them. A fenced leader that still runs (paused, cut
//! off from etcd, with a write in flight) can then only append to or reuse files of its own
//! directory, which hold nothing the new leader acknowledges, and the new leader never writes
//! into a file an older one may still have open or locked. What an older leader wrote after its
//! fence is skipped by the fences that recovery follows, as with one file per object.
//!
//! Without a writer epoch (a single broker) the WAL is `wal/` itself, as before; its files are
//! read like an older epoch's by a leader that finds them.

use std::path::{Path, PathBuf};

use crate::dirsync::fsync_dir;
use crate::StorageError;

/// The directory name of writer epoch `epoch`'s WAL.
pub(crate) fn dir_name(epoch: u32) -> String {
    format!("w{epoch:010}")
}

/// The writer epoch a WAL directory name stands for (a listing may end it with `/`).
pub(crate) fn parse_dir_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix('/').unwrap_or(name).strip_prefix('w')?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Set in the in-memory number of a file of an older epoch's directory.
const FOREIGN: u64 = 1 << 63;
/// Bits of such a number that hold the file's own number.
const FILE_BITS: u32 = 30;

/// A number for file `number` of epoch `epoch`'s directory that no file of this writer's own
/// directory, nor of another epoch's, has (`None` beyond a billion files in one directory).
pub(crate) fn foreign_number(epoch: u32, number: u64) -> Option<u64> {
    (number < 1 << FILE_BITS).then(|| FOREIGN | u64::from(epoch) << FILE_BITS | number)
}

/// Whether a file number was given by [`foreign_number`].
pub(crate) fn is_foreign(number: u64) -> bool {
    number & FOREIGN != 0
}

/// Where one writer epoch's WAL lives among its predecessors'.
#[derive(Clone, Debug)]
pub(crate) struct Lineage {
    /// `wal/` (or the WAL directory given): holds the epoch directories, and the WAL files of
    /// a broker that ran without an epoch.
    pub(crate) base: PathBuf,
    /// This writer's epoch (above 0).
    pub(crate) epoch: u32,
}

impl Lineage {
    /// This writer's own directory.
    pub(crate) fn own_dir(&self) -> PathBuf {
        self.base.join(dir_name(self.epoch))
    }

    /// The directories of older writers, with their epochs (0: `base` itself). Fails with
    /// [`StorageError::Fenced`] when a newer writer's directory exists: a newer leader took
    /// the shard over, and this one must not write.
    pub(crate) async fn predecessors(&self) -> Result<Vec<(u32, PathBuf)>, StorageError> {
        let io = |source| StorageError::Io {
            context: format!("list {}", self.base.display()),
            source,
        };
        let mut found = vec![(0, self.base.clone())];
        let mut entries = tokio::fs::read_dir(&self.base).await.map_err(io)?;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name();
            let Some(epoch) = name.to_str().and_then(parse_dir_name) else {
                continue;
            };
            if epoch > self.epoch {
                return Err(StorageError::Fenced(format!(
                    "writer epoch {epoch} has written the WAL in {}; this leader's epoch {} is \
                     older",
                    self.base.display(),
                    self.epoch
                )));
            }
            if epoch < self.epoch {
                found.push((epoch, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Deletes an older writer's WAL file, and its directory once no WAL file is left in it
    /// (never `base` itself), durably.
    pub(crate) async fn retire(&self, path: &Path) -> Result<(), StorageError> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StorageError::Io {
                    context: format!("delete {}", path.display()),
                    source,
                })
            }
        }
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        fsync_dir(dir).await?;
        if dir != self.base {
            self.retire_dir_if_empty(dir).await?;
        }
        Ok(())
    }

    /// Deletes an older writer's directory if it holds no WAL file (only its lock, epoch and
    /// the like).
    pub(crate) async fn retire_dir_if_empty(&self, dir: &Path) -> Result<(), StorageError> {
        let io = |source| StorageError::Io {
            context: format!("retire {}", dir.display()),
            source,
        };
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name();
            if name.to_str().and_then(super::scan::parse_name).is_some() {
                return Ok(());
            }
        }
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        tracing::info!(dir = %dir.display(), "older writer's WAL directory retired");
        fsync_dir(&self.base).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_round_trip() {
        assert_eq!(dir_name(7), "w0000000007");
        assert_eq!(parse_dir_name("w0000000007"), Some(7));
        assert_eq!(parse_dir_name("w0000000007/"), Some(7));
        assert_eq!(parse_dir_name(&dir_name(u32::MAX)), Some(u32::MAX));
        for stray in ["w7", "x0000000007", "w000000000a", "w00000000007", "epoch"] {
            assert_eq!(parse_dir_name(stray), None, "{stray}");
        }
    }

    #[test]
    fn foreign_numbers_never_meet_own_or_each_other() {
        let a = foreign_number(1, 5).unwrap();
        let b = foreign_number(2, 5).unwrap();
        assert_ne!(a, b);
        assert!(is_foreign(a) && is_foreign(b) && !is_foreign(5));
        assert_eq!(
            foreign_number(u32::MAX, (1 << 30) - 1).map(is_foreign),
            Some(true)
        );
        assert_eq!(foreign_number(1, 1 << 30), None);
    }

    #[tokio::test]
    async fn a_newer_writer_directory_fences_an_older_writer() {
        let dir = tempfile::tempdir().unwrap();
        for epoch in [2, 5] {
            std::fs::create_dir(dir.path().join(dir_name(epoch))).unwrap();
        }
        let lineage = |epoch| Lineage {
            base: dir.path().to_path_buf(),
            epoch,
        };
        let found = lineage(5).predecessors().await.unwrap();
        assert_eq!(
            found,
            vec![
                (0, dir.path().to_path_buf()),
                (2, dir.path().join(dir_name(2)))
            ]
        );
        let refused = lineage(4).predecessors().await.unwrap_err();
        assert!(matches!(refused, StorageError::Fenced(_)), "{refused}");
    }

    #[tokio::test]
    async fn a_directory_goes_with_its_last_file() {
        let dir = tempfile::tempdir().unwrap();
        let lineage = Lineage {
            base: dir.path().to_path_buf(),
            epoch: 3,
        };
        let old = dir.path().join(dir_name(1));
        std::fs::create_dir(&old).unwrap();
        let (a, b) = (
            old.join(format!("{:020}.hwl", 0)),
            old.join(format!("{:020}.hwl", 1)),
        );
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        std::fs::write(old.join("LOCK"), b"").unwrap();
        lineage.retire(&a).await.unwrap();
        assert!(old.exists());
        lineage.retire(&b).await.unwrap();
        assert!(!old.exists());
        // Files of a broker that ran without an epoch go; `wal/` itself stays.
        let plain = dir.path().join(format!("{:020}.hwl", 4));
        std::fs::write(&plain, b"x").unwrap();
        lineage.retire(&plain).await.unwrap();
        assert!(!plain.exists() && dir.path().exists());
    }
}
