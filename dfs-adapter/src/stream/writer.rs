//! The stream's writer task: sections from every shard in, one stored object per flush out.
//!
//! It applies the flush policies one level up: pending sections wait at most `max_delay` or
//! until `max_bytes` are pending (with group commit, not at all while no object is being
//! written), and at most `max_in_flight` objects are written at once. A failed write fails every section in it: each shard's pipeline retries its
//! own flush object (same id, same bytes), which then rides a later stream object.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use opendal::Buffer;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::format::{encode_trailer, Entry};
use super::{Located, StreamInner};
use crate::{ObjectId, StorageError};

/// One shard's flush object waiting for a stream object.
pub(super) struct Section {
    pub(super) shard: u32,
    pub(super) object: ObjectId,
    pub(super) data: Buffer,
    pub(super) done: oneshot::Sender<Result<Located, StorageError>>,
}

struct Pending {
    sections: Vec<Section>,
    bytes: u64,
    since: Option<Instant>,
}

pub(super) async fn run(inner: Arc<StreamInner>, mut sections: mpsc::UnboundedReceiver<Section>) {
    let mut pending = Pending {
        sections: Vec::new(),
        bytes: 0,
        since: None,
    };
    let mut writes = FuturesUnordered::new();
    let mut open = true;
    let config = inner.config.clone();
    loop {
        // Seal while there is room and the policies say so.
        while !pending.sections.is_empty() && writes.len() < config.max_in_flight.max(1) {
            let due = (config.group_commit && writes.is_empty())
                || pending.bytes >= config.max_bytes as u64
                || pending
                    .since
                    .is_some_and(|t| t.elapsed() >= config.max_delay)
                || !open;
            if !due {
                break;
            }
            let batch = std::mem::take(&mut pending.sections);
            pending.bytes = 0;
            pending.since = None;
            writes.push(write(inner.clone(), batch));
        }
        if !open && writes.is_empty() && pending.sections.is_empty() {
            return;
        }
        let deadline = pending
            .since
            .map(|t| tokio::time::Instant::from_std(t + config.max_delay));
        tokio::select! {
            section = sections.recv(), if open => match section {
                Some(section) => {
                    pending.bytes += section.data.len() as u64;
                    pending.since.get_or_insert_with(Instant::now);
                    pending.sections.push(section);
                }
                None => open = false,
            },
            Some(()) = writes.next(), if !writes.is_empty() => {}
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes one stream object holding `batch` and tells every section's shard the outcome.
async fn write(inner: Arc<StreamInner>, batch: Vec<Section>) {
    let seq = inner.next_seq();
    let mut entries = Vec::with_capacity(batch.len());
    let mut parts = Vec::with_capacity(batch.len() + 1);
    let mut position = 0u64;
    for section in &batch {
        let len = section.data.len() as u64;
        entries.push(Entry {
            shard: section.shard,
            object: section.object,
            position,
            len,
        });
        position += len;
        parts.extend(section.data.clone());
    }
    parts.push(encode_trailer(&entries));
    let key = inner.object_key(seq, &entries);
    let data = Buffer::from(parts);
    let size = data.len() as u64;
    debug!(%key, sections = batch.len(), bytes = size, "writing stream object");
    let result = inner.store.write_key(&key, data).await;
    let key: Arc<str> = Arc::from(key);
    match &result {
        Ok(()) => {
            inner.record_written(&key, &entries, size);
        }
        Err(error) => {
            warn!(%key, %error, sections = batch.len(), "stream object write failed");
        }
    }
    for (section, entry) in batch.into_iter().zip(entries) {
        let outcome = match &result {
            Ok(()) => Ok(Located {
                key: key.clone(),
                position: entry.position,
                len: entry.len,
            }),
            Err(error) => Err(StorageError::Backend {
                context: format!("write {key} (stream object)"),
                source: opendal::Error::new(opendal::ErrorKind::Unexpected, error.to_string())
                    .set_temporary(),
            }),
        };
        // The shard may have gone (closed): nothing waits then.
        let _ = section.done.send(outcome);
    }
}
