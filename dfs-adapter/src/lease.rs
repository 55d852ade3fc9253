//! The lease that claims an object-store root (see [`crate::RootClaim`]).
//!
//! `lease.json` at the root names its owner (a random id per broker process) and counts its
//! renewals. The holder rewrites it every quarter of the time to live. A starting broker that
//! finds someone else's lease watches it on its own monotonic clock, so no two machines' clocks
//! need agree: renewed meanwhile means alive (refuse to start); unchanged for a whole time to
//! live means dead (take it over). A lease written by a process on this same machine that no
//! longer runs is taken over at once (see [`crate::process_identity`]): a broker restarted
//! after `kill -9` or a crash does not wait out its predecessor's lease.
//!
//! A holder never gives the root up because the store is unreachable (an outage must not stop
//! the broker): it keeps retrying its renewal, and loses the root only when it *sees* another
//! owner's lease (or its own deleted). Meanwhile, once its last successful renewal is older
//! than three quarters of the time to live, its object and checkpoint writes wait (they fail
//! as retryable) until a renewal succeeds again, so that it never writes after a takeover it
//! has not yet seen. On a graceful stop the lease is deleted, so a restart need not wait.
//!
//! How strong this is depends on the store. Where the service enforces conditional writes
//! (AWS S3 and moto honour `If-None-Match: *` and `If-Match`), creation and takeover are atomic
//! and two brokers starting together cannot both win. Where it does not (Garage 2.5 ignores
//! both), a starting broker writes, waits [`LeaseConfig::settle`] and reads back: the last
//! writer wins and the other refuses, which holds unless the two writes land more than the
//! settle time apart *and* both read back before either lands. Either way a lease is about
//! liveness, not fencing: a holder paused (stopped, swapped out) for longer than the time to
//! live can wake up after another broker took over and write once more before it notices.
//! The manifest checkpoints' create-only writes fence that on stores that enforce them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::process_identity::ProcessIdentity;
use crate::{StorageError, Store};

/// Key of the lease object, relative to the root.
pub(crate) const LEASE_KEY: &str = "lease.json";
/// The longest time to live honoured from a lease file (bytes from storage are not trusted).
const MAX_TTL: Duration = Duration::from_secs(600);
/// Larger lease files are not ours: read no more.
const MAX_LEASE_BYTES: usize = 4096;

/// Timing of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lives unrenewed. A broker that crashed keeps its successor waiting up
    /// to this long; a holder that could not renew for three quarters of it holds back its
    /// writes until it can.
    pub ttl: Duration,
    /// How long a new holder waits before reading its lease back (stores that ignore
    /// conditional writes; see the module docs).
    pub settle: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(10),
            settle: Duration::from_secs(1),
        }
    }
}

/// The lease file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LeaseFile {
    owner: uuid::Uuid,
    pid: u32,
    renewals: u64,
    ttl_ms: u64,
    written_unix_ms: u64,
    /// The holder's process, where the platform tells it (absent in older leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<ProcessIdentity>,
}

/// A lease read back: parsed when it parses, and its raw bytes and etag.
struct Seen {
    file: Option<LeaseFile>,
    raw: Vec<u8>,
    etag: Option<String>,
}

impl Seen {
    fn owner(&self) -> Option<uuid::Uuid> {
        self.file.as_ref().map(|f| f.owner)
    }

    fn describe(&self) -> String {
        match &self.file {
            Some(f) => format!(
                "lease {LEASE_KEY} of broker {} (pid {}), renewed {} times",
                f.owner, f.pid, f.renewals
            ),
            None => format!("an unreadable lease {LEASE_KEY}"),
        }
    }
}

/// Renews a held lease in the background until dropped.
#[derive(Debug)]
pub(crate) struct LeaseHolder {
    task: JoinHandle<()>,
    store: Store,
    owner: uuid::Uuid,
}

/// What a store's writes consult while it holds a lease.
#[derive(Debug)]
pub(crate) struct LeaseGate {
    /// When the lease was last written successfully.
    renewed: std::sync::Mutex<Instant>,
    /// Writes wait once `renewed` is older than this.
    stale_after: Duration,
    /// Set, with the reason, once the lease is seen lost.
    lost: std::sync::OnceLock<String>,
}

impl LeaseGate {
    fn renewed_now(&self) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// `Ok` while writes may go ahead: the lease is ours and was renewed recently.
    pub(crate) fn check(&self) -> Result<(), StorageError> {
        if let Some(reason) = self.lost.get() {
            return Err(StorageError::Fenced(format!(
                "the storage root lease was lost: {reason}"
            )));
        }
        let age = self
            .renewed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if age >= self.stale_after {
            return Err(StorageError::Io {
                context: format!(
                    "storage root lease not renewed for {age:?}; writes wait until it is"
                ),
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
        Ok(())
    }
}

impl LeaseHolder {
    /// Stops renewing and deletes the lease if it is still ours, so that the next broker
    /// starts at once.
    pub(crate) async fn release(&self) {
        self.task.abort();
        if let Ok(Some(seen)) = read(&self.store).await {
            if seen.owner() == Some(self.owner) {
                match self.store.delete_key(LEASE_KEY).await {
                    Ok(()) => info!("storage root lease released"),
                    Err(e) => {
                        warn!(error = %e, "could not delete the lease; the next broker waits for it to expire")
                    }
                }
            }
        }
    }
}

impl Drop for LeaseHolder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaseHolder {
    /// Takes the lease for `owner` (see the module docs) and starts renewing it. The receiver
    /// turns `Some(reason)` if the lease is lost.
    pub(crate) async fn acquire(
        store: Store,
        owner: uuid::Uuid,
        config: LeaseConfig,
    ) -> Result<(LeaseHolder, watch::Receiver<Option<String>>), StorageError> {
        if config.ttl < Duration::from_millis(100) {
            return Err(StorageError::InvalidArgument(format!(
                "lease time to live {:?} is too short",
                config.ttl
            )));
        }
        let held = |detail: String| StorageError::RootHeld {
            root: store.url().to_string(),
            detail,
        };
        let found = wait_until_free(&store, config, &held).await?;
        let mut file = LeaseFile {
            owner,
            pid: std::process::id(),
            renewals: 0,
            ttl_ms: millis(config.ttl),
            written_unix_ms: now_ms(),
            process: ProcessIdentity::current(),
        };
        let written = write(&store, &file, found.as_ref()).await;
        if let Err(error) = written {
            return Err(match error {
                WriteError::Raced => held("another broker took the lease at the same time".into()),
                WriteError::Storage(e) => e,
            });
        }
        tokio::time::sleep(config.settle).await;
        let back = read(&store).await?;
        if back.as_ref().and_then(Seen::owner) != Some(owner) {
            let detail = back.map_or("the lease vanished".into(), |s| s.describe());
            return Err(held(format!("lost the race for the lease to {detail}")));
        }
        info!(%owner, ttl = ?config.ttl, "storage root lease taken");
        let gate = std::sync::Arc::new(LeaseGate {
            renewed: std::sync::Mutex::new(Instant::now()),
            stale_after: config.ttl * 3 / 4,
            lost: std::sync::OnceLock::new(),
        });
        store.set_lease_gate(gate.clone());
        let (tx, rx) = watch::channel(None);
        let renewing = store.clone();
        let task = tokio::spawn(async move {
            let reason = renew_loop(&renewing, &mut file, config, &gate).await;
            warn!(%reason, "storage root lease lost");
            let _ = gate.lost.set(reason.clone());
            let _ = tx.send(Some(reason));
        });
        Ok((LeaseHolder { task, store, owner }, rx))
    }
}

/// Waits until no live lease of someone else remains; returns the dead one it saw, if any.
async fn wait_until_free(
    store: &Store,
    config: LeaseConfig,
    held: &impl Fn(String) -> StorageError,
) -> Result<Option<Seen>, StorageError> {
    let Some(first) = read(store).await? else {
        return Ok(None);
    };
    let ttl = first
        .file
        .as_ref()
        .map_or(config.ttl, |f| Duration::from_millis(f.ttl_ms))
        .clamp(config.ttl, MAX_TTL.max(config.ttl));
    if let Some(f) = &first.file {
        if f.process.as_ref().is_some_and(|p| p.has_exited(f.pid)) {
            info!(lease = %first.describe(), "the lease holder ran on this machine and has exited; taking the lease over");
            return Ok(Some(first));
        }
    }
    let since = Instant::now();
    warn!(lease = %first.describe(), ?ttl, "another lease on the storage root; waiting to see whether it is renewed");
    loop {
        let left = ttl.saturating_sub(since.elapsed());
        if left.is_zero() {
            warn!(lease = %first.describe(), "the lease was not renewed in its time to live; taking it over");
            return Ok(Some(first));
        }
        tokio::time::sleep(left.min(config.ttl / 8)).await;
        match read(store).await? {
            None => return Ok(None),
            Some(now) if now.raw == first.raw => {}
            Some(now) => {
                return Err(held(format!(
                    "{} is live (renewed while this broker waited)",
                    now.describe()
                )))
            }
        }
    }
}

/// Renews until the lease is seen lost; returns why. Failures to reach the store are retried
/// for as long as they last (the gate holds writes back meanwhile).
async fn renew_loop(
    store: &Store,
    file: &mut LeaseFile,
    config: LeaseConfig,
    gate: &LeaseGate,
) -> String {
    loop {
        tokio::time::sleep(config.ttl / 4).await;
        let outcome = match read(store).await {
            Ok(Some(seen)) if seen.owner() == Some(file.owner) => {
                file.renewals += 1;
                file.written_unix_ms = now_ms();
                write(store, file, Some(&seen)).await
            }
            Ok(Some(seen)) => return format!("taken over: {}", seen.describe()),
            Ok(None) => return format!("{LEASE_KEY} was deleted"),
            Err(e) => Err(WriteError::Storage(e)),
        };
        match outcome {
            Ok(()) => gate.renewed_now(),
            Err(WriteError::Raced) => return "another broker wrote the lease".into(),
            Err(WriteError::Storage(e)) => warn!(error = %e, "could not renew the lease; retrying"),
        }
    }
}

enum WriteError {
    /// A conditional write found someone else's lease.
    Raced,
    Storage(StorageError),
}

/// Writes `file`, conditionally where the service can: create-only when `over` is `None`,
/// replace-if-unchanged otherwise.
async fn write(store: &Store, file: &LeaseFile, over: Option<&Seen>) -> Result<(), WriteError> {
    let body = serde_json::to_vec(file)
        .map_err(|e| WriteError::Storage(StorageError::InvalidArgument(e.to_string())))?;
    let caps = store.op().info().capability();
    let mut request = store.op().write_with(LEASE_KEY, body);
    match over {
        None => request = request.if_not_exists(caps.write_with_if_not_exists),
        Some(seen) => {
            if let (true, Some(etag)) = (caps.write_with_if_match, seen.etag.as_deref()) {
                request = request.if_match(etag);
            }
        }
    }
    store.count_put(1, 0);
    match request.await {
        Ok(_) => Ok(()),
        Err(e) if crate::manifest::is_already_there(&e) => Err(WriteError::Raced),
        Err(e) => Err(WriteError::Storage(StorageError::backend(format!(
            "write {LEASE_KEY}"
        ))(e))),
    }
}

/// Reads the lease, if there is one.
async fn read(store: &Store) -> Result<Option<Seen>, StorageError> {
    let meta = match store.op().stat(LEASE_KEY).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::backend(format!("stat {LEASE_KEY}"))(e)),
    };
    let len = usize::try_from(meta.content_length()).unwrap_or(usize::MAX);
    let raw = if len > MAX_LEASE_BYTES {
        Vec::new()
    } else {
        match store.op().read(LEASE_KEY).await {
            Ok(buffer) => buffer.to_vec(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::backend(format!("read {LEASE_KEY}"))(e)),
        }
    };
    store.count_get(1, raw.len() as u64);
    Ok(Some(Seen {
        file: serde_json::from_slice(&raw).ok(),
        etag: meta.etag().map(str::to_string),
        raw,
    }))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}
