//! Reserving hot-cache space for an append, with bounded backpressure.

use std::time::Duration;

use dfs_adapter::FlushPipeline;
use hotcache::{HotCache, HotCacheError, PendingSlice};
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};

use crate::durability::StorageHealth;
use crate::metrics::Events;

/// What an append needs to wait for cache space.
#[derive(Clone)]
pub struct CacheSpace {
    /// The cache.
    pub cache: HotCache,
    /// Woken when blocks may have been released.
    pub freed: std::sync::Arc<Notify>,
    /// Nudged to flush (and so unpin) sooner while waiting.
    pub pipeline: FlushPipeline,
    /// Tells a slow store from a failing one in the error.
    pub health: watch::Receiver<StorageHealth>,
    /// Longest wait.
    pub limit: Duration,
    /// Counts waits and refusals.
    pub events: Events,
}

impl CacheSpace {
    /// Reserves `len` bytes, waiting up to `limit` while unflushed data fills the cache.
    /// Errors are the Kafka codes the producer gets.
    pub async fn reserve(&self, len: usize) -> Result<PendingSlice, ResponseError> {
        let deadline = tokio::time::Instant::now() + self.limit;
        let mut waited = false;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.cache.reserve(len) {
                Ok(slice) => return Ok(slice),
                Err(HotCacheError::TooLarge { .. }) => return Err(ResponseError::MessageTooLarge),
                Err(HotCacheError::Full { .. }) => {}
                Err(error) => {
                    tracing::error!(%error, "hot cache reservation failed");
                    return Err(ResponseError::UnknownServerError);
                }
            }
            self.pipeline.flush_now();
            if !waited {
                waited = true;
                self.events.backpressure_waits.inc();
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                self.events.backpressure_timeouts.inc();
                tracing::warn!(len, "append waited too long for hot-cache space");
                return Err(if self.health.borrow().failing {
                    ResponseError::KafkaStorageError
                } else {
                    ResponseError::RequestTimedOut
                });
            }
        }
    }
}
