//! The broker's shared state: storage, hot cache, topics and the flush pipeline, composed.

use std::sync::Arc;
use std::time::Duration;

use dfs_adapter::{FlushConfig, FlushPipeline, StorageError, Store};
use hotcache::{HotCache, HotCacheConfig, HotCacheError};
use thiserror::Error;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::durability::{flush_sink, StorageHealth};
use crate::log::topics::TopicRegistry;

/// Why the broker could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage could not be opened or recovered.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The hot cache could not be created.
    #[error("hot cache: {0}")]
    HotCache(#[from] HotCacheError),
}

/// Everything request handlers share.
pub struct Broker {
    /// Effective configuration.
    pub config: Config,
    /// Durable storage.
    pub store: Store,
    /// Off-heap cache of produced batches.
    pub cache: HotCache,
    /// Topics and partitions.
    pub topics: Arc<TopicRegistry>,
    /// Where produced batches go to become durable.
    pub pipeline: FlushPipeline,
    /// Woken whenever hot-cache blocks may have been released.
    pub cache_space: Arc<Notify>,
    /// Whether flushes are currently failing.
    pub storage_health: watch::Receiver<StorageHealth>,
    /// Reported in Metadata.
    pub cluster_id: String,
}

impl Broker {
    /// Opens storage, recovers every topic and partition from it, and starts the flush pipeline.
    pub async fn open(config: Config) -> Result<Arc<Self>, StartError> {
        let store = Store::open(&config.storage).await?;
        let records = store.list_topics().await?;
        let recovered = store.recover(config.flush_max_in_flight).await?;
        tracing::info!(
            storage = store.url(),
            topics = records.len(),
            objects = recovered.objects,
            chunks = recovered.chunks.len(),
            discarded = recovered.discarded.len(),
            "recovered from storage"
        );
        let topics = Arc::new(TopicRegistry::recover(records, recovered.chunks));
        let cache = HotCache::new(HotCacheConfig {
            capacity: config.hot_cache_mib << 20,
            block_size: config.hot_block_kib << 10,
        })?;
        let cache_space = Arc::new(Notify::new());
        {
            let space = cache_space.clone();
            cache.set_space_listener(move || space.notify_waiters());
        }
        let (health_tx, storage_health) = watch::channel(StorageHealth::default());
        let flush = FlushConfig {
            max_delay: config.flush_interval(),
            max_bytes: config.flush_max_bytes,
            max_batches: config.flush_max_batches,
            max_in_flight: config.flush_max_in_flight,
            ..FlushConfig::default()
        };
        let pipeline = FlushPipeline::start(
            store.clone(),
            flush,
            recovered.next_object,
            flush_sink(topics.clone(), health_tx),
        );
        Ok(Arc::new(Self {
            config,
            store,
            cache,
            topics,
            pipeline,
            cache_space,
            storage_health,
            cluster_id: "hotwire".to_string(),
        }))
    }

    /// Flushes everything pending; returns once it is durable.
    pub async fn shutdown(&self) {
        self.pipeline.shutdown().await;
    }

    /// How long a produce may wait for hot-cache space.
    pub fn backpressure_limit(&self) -> Duration {
        Duration::from_millis(self.config.produce_backpressure_ms)
    }
}
