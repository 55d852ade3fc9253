//! The broker's shared state: storage, hot cache, topics and the flush pipeline, composed.

use std::sync::Arc;
use std::time::Duration;

use dfs_adapter::{
    Catalog, FlushConfig, FlushPipeline, ObjectId, RootClaim, StorageError, Store, WalConfig,
};
use futures::{StreamExt, TryStreamExt};
use hotcache::{HotCache, HotCacheConfig, HotCacheError};
use thiserror::Error;
use tokio::sync::{watch, Notify};

use crate::cold::{ColdReader, ColdRuntime};
use crate::config::Config;
use crate::durability::{flush_sink, StorageHealth};
use crate::groups::{GroupConfig, GroupCoordinator, GroupSnapshot};
use crate::handlers::fetch_budget::FetchBudget;
use crate::internal::{internal_key, InternalLog, InternalLogError, InternalRecord};
use crate::log::cold_read::ColdReadError;
use crate::log::partition::Partition;
use crate::log::reserve::CacheSpace;
use crate::log::topics::{TopicLimits, TopicRegistry};
use crate::metrics::{Events, Metrics, StateCollector};
use crate::offsets::group_store::{decode_snapshots, InternalGroupStore};
use crate::offsets::{OffsetTable, Offsets};
use crate::producers::recovery::TailWindow;
use crate::producers::{self, ProducerIds};
use crate::security::acl::store::{AclStoreError, StoreAcls};
use crate::security::acl::Acls;
use crate::server::frames::RequestMemory;

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
    /// The internal log (offsets, groups, producer ids) could not be replayed.
    #[error("internal log: {0}")]
    Internal(#[from] InternalLogError),
    /// Producer state could not be rebuilt from stored data.
    #[error("producer state: {0}")]
    Producers(#[from] ColdReadError),
    /// The cold-read runtime could not start.
    #[error("cold-read runtime: {0}")]
    ColdRuntime(std::io::Error),
    /// The stored ACLs could not be read.
    #[error("ACLs: {0}")]
    Acls(#[from] AclStoreError),
}

/// What a broker opened as one shard of a cluster is told.
#[derive(Clone)]
pub struct ShardContext {
    /// The shard.
    pub shard: u32,
    /// The epoch it is led at.
    pub epoch: u32,
    /// Whether this broker still leads the shard at that epoch (its etcd lease surely valid):
    /// asked before every storage write and before any write is acknowledged.
    pub may_write: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The cluster's topics (etcd holds them, not the shard's root).
    pub topics: Vec<dfs_adapter::TopicRecord>,
    /// On an object store, the broker's flush stream: the shard's flush objects become
    /// sections of its stream objects, one PUT per flush for every shard the broker leads.
    pub stream: Option<dfs_adapter::FlushStream>,
    /// The process's cold-read runtime, shared by the shards it leads (see [`ColdRuntime`]).
    pub cold_runtime: Option<Arc<ColdRuntime>>,
    /// The cluster's ACLs (etcd holds them).
    pub acls: Arc<Acls>,
}

/// The shard a broker serves in a cluster, and its epoch.
#[derive(Clone)]
pub struct ShardRole {
    /// The shard.
    pub shard: u32,
    /// The epoch it is led at.
    pub epoch: u32,
    /// See [`ShardContext::may_write`].
    pub may_write: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl ShardRole {
    /// Whether writes may still be acknowledged.
    pub fn may_acknowledge(&self) -> bool {
        (self.may_write)()
    }
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
    /// Hot-cache reservations with backpressure.
    pub space: CacheSpace,
    /// Whether flushes are currently failing.
    pub storage_health: watch::Receiver<StorageHealth>,
    /// Reported in Metadata.
    pub cluster_id: String,
    /// The broker's own durable log.
    pub internal: Arc<InternalLog>,
    /// Committed consumer offsets.
    pub offsets: Arc<Offsets>,
    /// The consumer-group coordinator.
    pub groups: GroupCoordinator,
    /// Producer-id allocation.
    pub producer_ids: ProducerIds,
    /// Catch-up reads, on their own runtime and cache.
    pub cold: Arc<ColdReader>,
    /// Memory all fetch responses in flight may hold together (`fetch_memory_mib`).
    pub fetch_budget: FetchBudget,
    /// What is stored (segments, flush objects, log starts); writes the manifest.
    pub catalog: Arc<Catalog>,
    /// Metrics recorded on the request paths.
    pub events: Events,
    /// Everything a metrics scrape reports.
    pub metrics: Arc<Metrics>,
    /// This process's exclusive claim on the storage root, taken before recovery and held
    /// for the broker's life (see [`RootClaim`]). None for a shard of a cluster, whose writer
    /// is fenced by its epoch instead.
    pub root_claim: Option<RootClaim>,
    /// Set when this broker serves one shard of a cluster.
    pub shard: Option<ShardRole>,
    /// Memory for request frames of all connections (`max_request_memory_mib`).
    pub request_memory: RequestMemory,
    /// One-sided sessions that may still open (`max_one_sided_sessions`), every provider.
    pub one_sided_sessions: Arc<tokio::sync::Semaphore>,
    /// The published partition index of the one-sided path (with a one-sided listener).
    pub published: Option<Arc<crate::one_sided::PublishedIndex>>,
    /// The ACLs in force: the storage root's, or the cluster's.
    pub acls: Arc<Acls>,
}

impl Broker {
    /// Whether writes may be acknowledged now: always alone; in a cluster, while this broker
    /// surely still leads the shard.
    pub fn may_acknowledge(&self) -> bool {
        self.shard
            .as_ref()
            .is_none_or(|role| role.may_acknowledge())
    }

    /// Opens storage, recovers every topic and partition from it, and starts the flush pipeline.
    pub async fn open(config: Config) -> Result<Arc<Self>, StartError> {
        Self::open_with(config, None).await
    }

    /// Opens a broker; with a [`ShardContext`], as the leader of one shard of a cluster: its
    /// writes are fenced by epoch (no root claim; on `fs://` a WAL of its epoch), its topics come from the
    /// cluster, and nothing becomes visible or acknowledged once it no longer leads.
    pub async fn open_with(
        config: Config,
        shard: Option<ShardContext>,
    ) -> Result<Arc<Self>, StartError> {
        let events = Events::default();
        let store = Store::open_with(&config.storage, config.slicing()).await?;
        // Before recovery, which deletes what it judges torn: another broker's in-flight
        // objects look just like that.
        let root_claim = match &shard {
            Some(context) => {
                store.set_writer_epoch(context.epoch, context.may_write.clone())?;
                None
            }
            None => Some(store.claim_root(uuid::Uuid::new_v4()).await?),
        };
        let wal_dir = config
            .wal
            .as_deref()
            .map(dfs_adapter::fs_path)
            .transpose()?;
        // A shard's leader writes a WAL directory of its own epoch, never an older leader's.
        if wal_dir.is_some() || (store.is_local() && config.wal_file_mib > 0) {
            store
                .use_wal(WalConfig {
                    dir: wal_dir,
                    file_bytes: config.wal_file_mib << 20,
                    observer: Some(events.wal_observer()),
                    ..WalConfig::default()
                })
                .await?;
        }
        let stream = shard
            .as_ref()
            .and_then(|c| c.stream.clone().map(|s| (s, c.shard)));
        let streamed = stream.is_some() && config.wal.is_none() && !store.is_local();
        if let (Some((stream, index)), true) = (stream, streamed) {
            store.use_stream(stream, index).await?;
        }
        let records = match &shard {
            Some(context) => context.topics.clone(),
            None => store.list_topics().await?,
        };
        let recovered = store.recover(config.flush_max_in_flight).await?;
        tracing::info!(
            storage = store.url(),
            topics = records.len(),
            objects = recovered.objects,
            chunks = recovered.chunks.len(),
            discarded = recovered.discarded.len(),
            "recovered from storage"
        );
        let catalog = Arc::new(Catalog::open(store.clone(), &recovered).await?);
        let (internal_chunks, chunks): (Vec<_>, Vec<_>) = recovered
            .chunks
            .into_iter()
            .partition(|c| c.key == internal_key());
        let topics = Arc::new(TopicRegistry::recover(
            records,
            chunks,
            TopicLimits::from(&config),
        ));
        producers::sequences::configure(producers::ProducerLimits {
            expiration_ms: i64::try_from(config.producer_id_expiration_ms).unwrap_or(i64::MAX),
            max_producers: config.max_producers_per_partition,
        });
        let internal_partition = Arc::new(Partition::new(internal_key(), internal_chunks));
        topics.register_hidden(internal_partition.clone());
        for (key, log_start) in catalog.state().await.log_starts {
            if let Some(partition) = topics.partition(&key) {
                partition.truncate(log_start);
            }
        }
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
            // With a stream, the stream applies the flush policies once more for all shards
            // together: a shard hands its batches over at once rather than waiting twice.
            group_commit: config
                .flush_group_commit
                .unwrap_or(store.flushes_locally() || streamed),
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
            flush_sink(
                topics.clone(),
                catalog.clone(),
                health_tx,
                events.clone(),
                shard.as_ref().map(|c| c.may_write.clone()),
            ),
        );
        let space = CacheSpace {
            cache: cache.clone(),
            freed: cache_space,
            pipeline: pipeline.clone(),
            health: storage_health.clone(),
            limit: Duration::from_millis(config.produce_backpressure_ms),
            events: events.clone(),
            admission: Default::default(),
        };
        let internal = Arc::new(InternalLog::new(
            internal_partition,
            space.clone(),
            storage_health.clone(),
            catalog.clone(),
        ));
        let history = internal.replay(&store).await?;
        let offsets = Arc::new(Offsets::new(
            OffsetTable::new(config.offset_slots)?,
            internal.clone(),
        ));
        offsets.replay(&history);
        let history: Vec<InternalRecord> = history.into_iter().map(|r| r.record).collect();
        // In a cluster every shard hands out ids from a range of its own.
        let id_floor = shard
            .as_ref()
            .map_or(0, |c| (i64::from(c.shard) + 1) << PRODUCER_ID_SHARD_SHIFT);
        let producer_ids = ProducerIds::with_floor(internal.clone(), &history, id_floor);
        let window = TailWindow {
            since_object: producer_tail_start(
                recovered.next_object,
                recovered.fence,
                config.flush_max_in_flight,
            ),
            min_bytes: PRODUCER_TAIL_BYTES,
        };
        // Several partitions at once: on an object store each tail read is a round trip or
        // more, and a take-over waits for all of them.
        let partitions: Vec<Arc<Partition>> = topics
            .list()
            .iter()
            .flat_map(|topic| topic.partitions.iter().cloned())
            .collect();
        futures::stream::iter(partitions.into_iter().map(|partition| {
            let store = &store;
            async move {
                let states = producers::recovery::rebuild(store, &partition, window).await?;
                partition.restore_producers(states);
                Ok::<(), ColdReadError>(())
            }
        }))
        .buffer_unordered(PRODUCER_REBUILD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        let groups = GroupCoordinator::new(
            GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                max_groups: config.max_groups,
                max_size: config.group_max_size,
                // A shard of a cluster may be taken over from a broker whose clients are
                // mid-rebalance: make them rejoin here.
                rebalance_restored: shard.is_some(),
            },
            Arc::new(InternalGroupStore::new(offsets.clone())),
            restored_groups(history.clone(), &offsets),
        );
        let cold = Arc::new(
            ColdReader::new(
                store.clone(),
                &config,
                shard.as_ref().and_then(|c| c.cold_runtime.clone()),
            )
            .map_err(StartError::ColdRuntime)?,
        );
        let metrics = Arc::new(Metrics::new(
            &events,
            StateCollector {
                hot: cache.clone(),
                cold: cold.clone(),
                pipeline: pipeline.clone(),
                catalog: catalog.clone(),
                internal: internal.clone(),
            },
        ));
        tracing::info!(
            internal_records = history.len(),
            committed_offsets = offsets.table().groups().len(),
            "broker state replayed"
        );
        let acls = match &shard {
            Some(context) => context.acls.clone(),
            None => Arc::new(
                Acls::open(
                    Arc::new(StoreAcls(store.clone())),
                    config.authorizer_settings(),
                    config.acl_authorizer,
                )
                .await?,
            ),
        };
        let fetch_budget = FetchBudget::new(config.fetch_memory_mib);
        let one_sided_sessions =
            Arc::new(tokio::sync::Semaphore::new(config.max_one_sided_sessions));
        let published = if config.rdma_shm_socket.is_some() || config.rdma_verbs_listen.is_some() {
            Some(crate::one_sided::PublishedIndex::new(
                config.rdma_index_partitions,
                config.rdma_index_entries,
            )?)
        } else {
            None
        };
        let request_memory = RequestMemory::new(
            config.max_request_memory_mib.saturating_mul(1 << 20),
            events.request_memory_waits.clone(),
        );
        Ok(Arc::new(Self {
            config,
            store,
            cache,
            topics,
            pipeline,
            space,
            storage_health,
            cluster_id: "hotwire".to_string(),
            internal,
            offsets,
            producer_ids,
            groups,
            cold,
            fetch_budget,
            catalog,
            events,
            metrics,
            root_claim,
            shard: shard.map(|c| ShardRole {
                shard: c.shard,
                epoch: c.epoch,
                may_write: c.may_write,
            }),
            request_memory,
            one_sided_sessions,
            published,
            acls,
        }))
    }

    /// Flushes everything pending; returns once it is durable.
    pub async fn shutdown(&self) {
        self.pipeline.shutdown().await;
    }
}

/// In a cluster, shard `s` hands out producer ids from `(s + 1) << 40`: unique across shards
/// without asking anyone (2^40 ids per shard).
const PRODUCER_ID_SHARD_SHIFT: u32 = 40;

/// Stored data of each partition read back at start to rebuild idempotent producers' state.
const PRODUCER_TAIL_BYTES: u64 = 4 << 20;

/// Partitions whose producer state is rebuilt at once at start-up or take-over.
const PRODUCER_REBUILD_CONCURRENCY: usize = 16;

/// Groups to restore: the last snapshot of every group not deleted since, and an Empty group
/// for every group that only has committed offsets (Kafka lists those too).
fn restored_groups(history: Vec<InternalRecord>, offsets: &Offsets) -> Vec<GroupSnapshot> {
    let mut groups = decode_snapshots(latest_group_snapshots(history));
    for group in offsets.table().groups() {
        if !groups.iter().any(|g| g.group_id == group) {
            groups.push(GroupSnapshot::offsets_only(group));
        }
    }
    groups
}

/// The last snapshot of every group not deleted since, in first-seen order.
pub(crate) fn latest_group_snapshots(history: Vec<InternalRecord>) -> Vec<serde_json::Value> {
    let mut latest: Vec<(String, Option<serde_json::Value>)> = Vec::new();
    for record in history {
        if let InternalRecord::Group { group_id, snapshot } = record {
            match latest.iter_mut().find(|(id, _)| *id == group_id) {
                Some(entry) => entry.1 = snapshot,
                None => latest.push((group_id, snapshot)),
            }
        }
    }
    latest.into_iter().filter_map(|(_, s)| s).collect()
}

/// The first flush object whose batches a client may still retry: the last few the previous
/// run (or, taking a shard over, the previous leader: its objects end at the fence, not at this
/// epoch's first id) wrote, as many as it could have had unacknowledged.
fn producer_tail_start(
    next_object: ObjectId,
    fence: Option<dfs_adapter::Fence>,
    max_in_flight: usize,
) -> ObjectId {
    let end = fence.map_or(next_object, |fence| fence.end);
    ObjectId(end.0.saturating_sub(2 * max_in_flight as u64 + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_tail_of_a_taken_over_shard_is_the_previous_leaders_last_objects() {
        assert_eq!(producer_tail_start(ObjectId(100), None, 4), ObjectId(90));
        let base = dfs_adapter::epoch_base(3);
        let fence = dfs_adapter::Fence {
            end: ObjectId(dfs_adapter::epoch_base(2) + 57),
            resume: ObjectId(base),
        };
        assert_eq!(
            producer_tail_start(ObjectId(base), Some(fence), 4),
            ObjectId(dfs_adapter::epoch_base(2) + 47)
        );
    }
}
