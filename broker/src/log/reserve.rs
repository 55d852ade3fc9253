//! Reserving hot-cache space for an append, with bounded backpressure.
//!
//! Reserved bytes stay pinned until their append is submitted, so requests that each reserve
//! part of what they need and then wait for more could fill the cache with pinned halves and
//! starve each other until they all time out. [`CacheSpace::reserve_all`] avoids that: a request
//! takes all its space at once when it is free, and otherwise waits in line, one request at a
//! time; a request that could never fit (more than half the cache) is refused at once.

use std::sync::Arc;
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
    /// The line of requests waiting for space.
    pub admission: Admission,
}

/// Lets one request at a time hold reserved space while it waits for more.
#[derive(Clone, Default)]
pub struct Admission {
    waiting: Arc<tokio::sync::Mutex<()>>,
}

impl CacheSpace {
    /// Reserves room for every batch of one request (their lengths), all or nothing, waiting
    /// up to `limit` in line behind earlier waiting requests. Refused at once with
    /// RECORD_LIST_TOO_LARGE when the batches would need more than half the cache's blocks,
    /// and with MESSAGE_TOO_LARGE when one batch is larger than a block.
    pub async fn reserve_all(&self, lens: &[usize]) -> Result<Vec<PendingSlice>, ResponseError> {
        let (block, blocks) = (self.cache.block_size(), self.cache.block_count());
        if lens.iter().any(|&len| len > block) {
            return Err(ResponseError::MessageTooLarge);
        }
        let needed = blocks_needed(lens, block);
        if needed > (blocks / 2).max(1) {
            tracing::debug!(
                needed,
                blocks,
                "request larger than its share of the hot cache"
            );
            return Err(ResponseError::RecordListTooLarge);
        }
        if let Ok(_alone) = self.admission.waiting.try_lock() {
            if let Some(slices) = self.try_reserve_all(lens)? {
                return Ok(slices);
            }
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let Ok(_turn) = tokio::time::timeout_at(deadline, self.admission.waiting.lock()).await
        else {
            self.events.backpressure_timeouts.inc();
            return Err(self.timed_out());
        };
        let mut slices = Vec::with_capacity(lens.len());
        for &len in lens {
            slices.push(self.reserve_until(len, deadline).await?);
        }
        Ok(slices)
    }

    /// Every slice now, or none (`None`) if the cache is full.
    fn try_reserve_all(&self, lens: &[usize]) -> Result<Option<Vec<PendingSlice>>, ResponseError> {
        let mut slices = Vec::with_capacity(lens.len());
        for &len in lens {
            match self.cache.reserve(len) {
                Ok(slice) => slices.push(slice),
                Err(HotCacheError::Full { .. }) => return Ok(None),
                Err(HotCacheError::TooLarge { .. }) => return Err(ResponseError::MessageTooLarge),
                Err(error) => {
                    tracing::error!(%error, "hot cache reservation failed");
                    return Err(ResponseError::UnknownServerError);
                }
            }
        }
        Ok(Some(slices))
    }

    fn timed_out(&self) -> ResponseError {
        if self.health.borrow().failing {
            ResponseError::KafkaStorageError
        } else {
            ResponseError::RequestTimedOut
        }
    }

    /// Reserves `len` bytes, waiting up to `limit` while unflushed data fills the cache.
    /// Errors are the Kafka codes the producer gets.
    pub async fn reserve(&self, len: usize) -> Result<PendingSlice, ResponseError> {
        self.reserve_until(len, tokio::time::Instant::now() + self.limit)
            .await
    }

    async fn reserve_until(
        &self,
        len: usize,
        deadline: tokio::time::Instant,
    ) -> Result<PendingSlice, ResponseError> {
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
                return Err(self.timed_out());
            }
        }
    }
}

/// Blocks that batches of these lengths fill when packed in order from an empty block (each
/// batch lies within one block).
fn blocks_needed(lens: &[usize], block: usize) -> usize {
    let mut blocks = 0;
    let mut free = 0;
    for &len in lens {
        if len > free || blocks == 0 {
            blocks += 1;
            free = block;
        }
        free -= len.min(free);
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_as_the_cache_packs_them() {
        assert_eq!(blocks_needed(&[], 100), 0);
        assert_eq!(blocks_needed(&[100], 100), 1);
        assert_eq!(blocks_needed(&[50, 50, 1], 100), 2);
        assert_eq!(blocks_needed(&[60, 60, 60], 100), 3);
        assert_eq!(blocks_needed(&[0, 0], 100), 1);
    }
}
