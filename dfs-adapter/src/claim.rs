//! [`RootClaim`]: one broker process per storage root.
//!
//! Recovery deletes what it judges torn or orphaned (flush objects past a gap, segments no
//! checkpoint lists). Run by a second broker on a root that another one is writing, the same
//! judgement destroys the first one's in-flight objects, which it may then acknowledge. So a
//! broker claims the root before it recovers, and holds the claim for its whole life:
//!
//! - `fs`: an exclusive `flock(2)` on `<root>/LOCK`. The kernel drops it when the process exits,
//!   however it exits (`kill -9` included), so a restart never waits. The file itself stays; its
//!   content (pid and owner) is only for operators.
//! - object stores: a lease object (see the `lease` module), checked at start and renewed while
//!   the broker runs.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use tokio::sync::watch;
use tracing::info;

use crate::lease::{LeaseConfig, LeaseHolder};
use crate::{StorageError, Store};

/// Name of the lock file in an `fs` root.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Proof that this process owns a storage root; the claim lasts as long as this value.
///
/// Keep it for the life of the process. Dropping it releases the root (the file lock at once,
/// a lease once it expires, since renewals stop).
#[derive(Debug)]
pub struct RootClaim {
    /// Held for its lock; never read.
    _lock: Option<File>,
    /// Renews the lease while it lives; never read.
    _lease: Option<LeaseHolder>,
    /// Becomes `Some(reason)` when the claim is lost (a lease not renewed in time).
    lost: watch::Receiver<Option<String>>,
    /// Keeps `lost` open when there is no lease task.
    _never: Option<watch::Sender<Option<String>>>,
}

impl RootClaim {
    /// Gives the root up at a graceful stop: deletes a lease (so that the next broker need
    /// not wait for it to expire); a file lock goes with the process anyway.
    pub async fn release(&self) {
        if let Some(lease) = &self._lease {
            lease.release().await;
        }
    }

    /// Resolves with the reason once the claim is lost; never, for a file lock (the kernel
    /// keeps it until the process exits). A broker must stop writing when this fires.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        loop {
            if let Some(reason) = lost.borrow_and_update().clone() {
                return reason;
            }
            if lost.changed().await.is_err() {
                // The lease task ended without a verdict (only at drop): wait forever.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Store {
    /// Claims the storage root for this process (see the module docs): call it before
    /// [`Store::recover`] and keep the claim until the process exits.
    ///
    /// On `fs` the claim is a file lock and fails at once with [`StorageError::RootHeld`] while
    /// another process holds it. On object stores it is a lease (see [`Store::acquire_lease`]
    /// with [`LeaseConfig::default`]).
    pub async fn claim_root(&self, owner: uuid::Uuid) -> Result<RootClaim, StorageError> {
        match self.local_root() {
            Some(root) => {
                let root = root.to_path_buf();
                let lock = tokio::task::spawn_blocking(move || lock_dir(&root, owner))
                    .await
                    .map_err(|e| StorageError::Io {
                        context: "lock the storage root".into(),
                        source: std::io::Error::other(e),
                    })??;
                let (never, lost) = watch::channel(None);
                Ok(RootClaim {
                    _lock: Some(lock),
                    _lease: None,
                    lost,
                    _never: Some(never),
                })
            }
            None => self.acquire_lease(owner, LeaseConfig::default()).await,
        }
    }

    /// Claims the root with a lease object, on any store (`fs` included, for tests): refuses
    /// with [`StorageError::RootHeld`] while another owner's lease is renewed, takes it over
    /// once it has gone unrenewed for its whole time to live, and renews it in the background
    /// until the claim is dropped.
    pub async fn acquire_lease(
        &self,
        owner: uuid::Uuid,
        config: LeaseConfig,
    ) -> Result<RootClaim, StorageError> {
        let (holder, lost) = LeaseHolder::acquire(self.clone(), owner, config).await?;
        Ok(RootClaim {
            _lock: None,
            _lease: Some(holder),
            lost,
            _never: None,
        })
    }
}

/// Takes the exclusive lock on `<root>/LOCK` without waiting.
pub(crate) fn lock_dir(root: &Path, owner: uuid::Uuid) -> Result<File, StorageError> {
    let path: PathBuf = root.join(LOCK_FILE);
    let io = |context: &str| {
        let context = format!("{context} {}", path.display());
        move |source| StorageError::Io { context, source }
    };
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("open lock file"))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StorageError::RootHeld {
                root: root.display().to_string(),
                detail: format!(
                    "{} is locked{}",
                    path.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" by {holder}")
                    }
                ),
            });
        }
        Err(errno) => return Err(io("lock")(errno.into())),
    }
    // Only for operators who wonder who holds it; the lock, not the content, is the claim.
    let note = format!("pid {} (owner {owner})\n", std::process::id());
    file.set_len(0).map_err(io("truncate lock file"))?;
    file.rewind().map_err(io("rewind lock file"))?;
    file.write_all(note.as_bytes())
        .map_err(io("write lock file"))?;
    info!(lock = %path.display(), "storage root locked");
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path(), uuid::Uuid::from_u128(1)).unwrap();
        // flock conflicts between open file descriptions, even within one process.
        let err = lock_dir(dir.path(), uuid::Uuid::from_u128(2)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("another broker holds"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(!err.is_retryable());
        drop(first);
        lock_dir(dir.path(), uuid::Uuid::from_u128(2)).unwrap();
    }
}
