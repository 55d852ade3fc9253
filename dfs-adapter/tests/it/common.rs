//! Helpers shared by the integration tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dfs_adapter::{
    ChunkLocation, FlushConfig, FlushEvent, FlushPipeline, ObjectId, PartitionKey, PendingBatch,
    Store,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// How long a test waits for an event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    (dir, store)
}

pub fn key(partition: i32) -> PartitionKey {
    PartitionKey {
        topic_id: uuid::Uuid::from_u128(0xfeed_0000_0000_0000_0000_0000_0000_0001),
        partition,
    }
}

/// A batch of `records` records at `base`, whose payload names it (so reads can be checked).
pub fn batch(partition: i32, base: i64, records: i64) -> PendingBatch {
    let payload = format!("[p{partition} {base}..{}]", base + records - 1);
    PendingBatch {
        key: key(partition),
        base_offset: base,
        last_offset: base + records - 1,
        max_timestamp: 1_000 + base,
        data: Bytes::from(payload),
    }
}

/// A batch whose buffer reports when it is freed, like an arena block would.
pub fn tracked_batch(partition: i32, base: i64, freed: Arc<AtomicBool>) -> PendingBatch {
    struct Owner(Vec<u8>, Arc<AtomicBool>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }
    PendingBatch {
        data: Bytes::from_owner(Owner(b"tracked".to_vec(), freed)),
        ..batch(partition, base, 1)
    }
}

/// The tests' pipeline write window, also what they pass to `Store::recover`.
pub const MAX_IN_FLIGHT: usize = 4;

/// Config whose policies never fire on their own in a test's lifetime, without group commit.
pub fn lazy_config() -> FlushConfig {
    FlushConfig {
        group_commit: false,
        max_delay: Duration::from_secs(3600),
        max_bytes: usize::MAX,
        max_batches: usize::MAX,
        max_in_flight: MAX_IN_FLIGHT,
        retry_backoff: Duration::from_millis(20),
    }
}

/// Receives the pipeline's events.
pub struct Events(mpsc::UnboundedReceiver<FlushEvent>);

impl Events {
    pub async fn next(&mut self) -> FlushEvent {
        tokio::time::timeout(EVENT_TIMEOUT, self.0.recv())
            .await
            .expect("timed out waiting for a flush event")
            .expect("pipeline sink dropped")
    }

    /// Next `Durable` event as (object, chunks); panics on `Failed`.
    pub async fn durable(&mut self) -> (ObjectId, Vec<ChunkLocation>) {
        match self.next().await {
            FlushEvent::Durable { object, chunks, .. } => (object, chunks),
            FlushEvent::Failed { object, error, .. } => panic!("{object} failed: {error}"),
        }
    }

    /// Whether an event arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.0.recv()).await.is_err()
    }

    pub fn try_next(&mut self) -> Option<FlushEvent> {
        self.0.try_recv().ok()
    }
}

pub fn start(store: &Store, config: FlushConfig, first: ObjectId) -> (FlushPipeline, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pipeline = FlushPipeline::start(store.clone(), config, first, move |event| {
        let _ = tx.send(event);
    });
    (pipeline, Events(rx))
}

/// Total batches described by `chunks`.
pub fn batch_count(chunks: &[ChunkLocation]) -> u32 {
    chunks.iter().map(|c| c.batches).sum()
}
