//! Directory fsync with group commit.
//!
//! OpenDAL's fs writer fsyncs a file on close but never its directory, so a freshly created file
//! could vanish in a crash even after `close()` returned. Every completed object therefore needs
//! a directory fsync before it is reported durable. Several writers finishing at about the same
//! time share one fsync: a caller whose request was already covered by an fsync that *started*
//! after the request returns without issuing another.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::StorageError;

/// Fsyncs one directory on request, merging concurrent requests.
#[derive(Debug)]
pub(crate) struct DirSyncer {
    dir: PathBuf,
    /// Number of sync requests ever made; each request's ticket is its position in this count.
    requested: AtomicU64,
    /// Highest ticket known to be covered by a completed fsync. Holding the lock also serialises
    /// fsyncs, which is what lets later requests ride on an earlier one.
    completed: Mutex<u64>,
}

impl DirSyncer {
    pub(crate) fn new(dir: PathBuf) -> Self {
        DirSyncer {
            dir,
            requested: AtomicU64::new(0),
            completed: Mutex::new(0),
        }
    }

    /// Makes every directory entry created before this call durable.
    pub(crate) async fn sync(&self) -> Result<(), StorageError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut completed = self.completed.lock().await;
        if *completed >= ticket {
            // An fsync that started after our request (it read `requested` >= ticket before
            // starting) has completed.
            return Ok(());
        }
        // Everything requested up to now is covered by the fsync we are about to start.
        let covers = self.requested.load(Ordering::SeqCst);
        fsync_dir(&self.dir).await?;
        *completed = covers;
        Ok(())
    }
}

/// Fsyncs a directory on a blocking thread.
pub(crate) async fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    let owned = dir.to_path_buf();
    let result = tokio::task::spawn_blocking(move || std::fs::File::open(&owned)?.sync_all())
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join)));
    result.map_err(|source| StorageError::Io {
        context: format!("fsync directory {}", dir.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_requests_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Arc::new(DirSyncer::new(dir.path().to_path_buf()));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let syncer = syncer.clone();
                tokio::spawn(async move { syncer.sync().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(*syncer.completed.lock().await, 16);
    }

    #[tokio::test]
    async fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = DirSyncer::new(dir.path().join("absent"));
        let err = syncer.sync().await.unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
    }
}
