//! A broker process in a cluster: one engine (a [`Broker`] over the shard's storage root) per
//! shard it leads, opened when the controller gives it the shard and closed when it loses or
//! hands the shard over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use super::member::Member;
use super::model::ShardAssignment;
use super::reconcile::{reconcile_steps, Step};
use super::shards;
use crate::broker::{Broker, ShardContext};
use crate::cold::ColdRuntime;
use crate::config::Config;
use crate::maintenance;
use crate::metrics::Events;
use crate::security::acl::Acls;
use crate::server::frames::RequestMemory;

/// Each led shard's epoch and bytes flushed so far.
type FlushedBytes = BTreeMap<u32, (i32, u64)>;

/// How often each shard's load is measured and published.
const LOAD_PERIOD: Duration = Duration::from_secs(5);

/// How long a planned hand-over waits for the shard's pending data to become durable.
const HANDOVER_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// How long a leader asked to hand a shard over may spend compacting it first (while it still
/// serves): what it folds, the next leader does not replay.
const HANDOVER_COMPACT_LIMIT: Duration = Duration::from_secs(10);

/// One shard this broker leads.
pub struct Engine {
    /// The shard.
    pub shard: u32,
    /// The epoch it leads the shard at.
    pub epoch: i32,
    /// The shard's broker.
    pub broker: Arc<Broker>,
    stop: CancellationToken,
}

impl Engine {
    /// Whether this engine's broker may still acknowledge writes.
    pub fn may_acknowledge(&self) -> bool {
        self.broker.may_acknowledge()
    }
}

/// A hand-over or take-over, as measured.
#[derive(Clone, Debug)]
pub struct Handover {
    /// The shard.
    pub shard: u32,
    /// The epoch it was opened at.
    pub epoch: i32,
    /// From this broker seeing the assignment to the shard serving.
    pub opened_in: Duration,
}

/// The engines of this broker process and the membership that decides them.
pub struct Node {
    /// Membership in the cluster.
    pub member: Arc<Member>,
    /// The process's configuration (each engine gets a copy with its shard's storage).
    pub config: Config,
    /// Memory for request frames of all connections (shared by every engine's requests).
    pub request_memory: RequestMemory,
    /// Connection-level metrics.
    pub events: Events,
    engines: RwLock<BTreeMap<u32, Arc<Engine>>>,
    /// Shards being opened or closed (never both at once for one shard).
    busy: Mutex<BTreeSet<u32>>,
    /// The last hand-overs, newest last (bounded).
    handovers: Mutex<Vec<Handover>>,
    /// The view revision and engines the topics were last applied to.
    /// Held for a whole pass, so that passes (the poll loop's, a topic request's) apply views
    /// in the order they were read, never an older one over a newer one.
    synced: tokio::sync::Mutex<(i64, Vec<(u32, i32)>)>,
    /// When load was last measured, and each shard's epoch and flushed bytes then.
    load: Mutex<(Instant, FlushedBytes)>,
    /// On an object store: the flush stream every engine writes (set once `run` starts).
    stream: std::sync::OnceLock<Option<dfs_adapter::FlushStream>>,
    /// The cold-read runtime every engine shares (started with the first engine; it outlives
    /// them all: see `ColdRuntime`).
    cold_runtime: Mutex<Option<Arc<ColdRuntime>>>,
    /// The cluster's ACLs, reread from etcd every [`ACL_REFRESH`].
    pub acls: Arc<Acls>,
}

/// How often a broker rereads the cluster's ACLs: a change made through another broker counts
/// here within this (Kafka's brokers also apply ACL changes asynchronously).
pub const ACL_REFRESH: Duration = Duration::from_secs(1);

impl Node {
    /// A node for `member` with the process configuration `config` and the cluster's `acls`.
    pub fn new(member: Arc<Member>, config: Config, acls: Arc<Acls>) -> Arc<Self> {
        let events = Events::default();
        let request_memory = RequestMemory::new(
            config.max_request_memory_mib.saturating_mul(1 << 20),
            events.request_memory_waits.clone(),
        );
        Arc::new(Self {
            member,
            config,
            request_memory,
            events,
            engines: RwLock::default(),
            busy: Mutex::default(),
            handovers: Mutex::default(),
            synced: tokio::sync::Mutex::default(),
            load: Mutex::new((Instant::now(), BTreeMap::new())),
            stream: std::sync::OnceLock::new(),
            cold_runtime: Mutex::default(),
            acls,
        })
    }

    /// The cluster's shard count.
    pub fn shards(&self) -> u32 {
        self.member.settings().shards
    }

    /// The cluster's fixed settings (shard count and placement).
    pub fn settings(&self) -> super::model::ClusterSettings {
        self.member.settings()
    }

    /// The engine of `shard`, if this broker leads it now.
    pub fn engine(&self, shard: u32) -> Option<Arc<Engine>> {
        self.engines.read().get(&shard).cloned()
    }

    /// Every open engine.
    pub fn engines(&self) -> Vec<Arc<Engine>> {
        self.engines.read().values().cloned().collect()
    }

    /// The flush stream every engine writes, on an object store.
    pub fn stream(&self) -> Option<&dfs_adapter::FlushStream> {
        self.stream.get().and_then(Option::as_ref)
    }

    /// The last hand-overs this broker took (for metrics and tests).
    pub fn handovers(&self) -> Vec<Handover> {
        self.handovers.lock().clone()
    }

    /// Opens and closes engines as the cluster view says, until `shutdown`; then flushes and
    /// closes every engine and leaves the cluster.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let stream =
            match super::stream::open(&self.config, self.member.node_id(), self.shards()).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "no flush stream: each shard writes objects of its own");
                    None
                }
            };
        if let Some(stream) = &stream {
            // The live broker with the lowest node id sweeps.
            let member = self.member.clone();
            let is_sweeper = Box::new(move || {
                let view = member.view();
                let lowest = view.brokers.iter().map(|b| b.info.node_id).min();
                lowest == Some(member.node_id())
            });
            tokio::spawn(super::stream::sweep(
                stream.clone(),
                self.config.clone(),
                self.shards(),
                is_sweeper,
                shutdown.child_token(),
            ));
        }
        let _ = self.stream.set(stream);
        tokio::spawn(refresh_acls(self.acls.clone(), shutdown.child_token()));
        let mut views = self.member.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.cluster_poll_ms));
        loop {
            self.reconcile();
            self.sync_topics().await;
            if let Some(load) = self.measure_load() {
                self.member.publish_load(load).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = views.changed() => if changed.is_err() { break },
                _ = tick.tick() => {}
            }
        }
        let engines: Vec<Arc<Engine>> = std::mem::take(&mut *self.engines.write())
            .into_values()
            .collect();
        for engine in engines {
            close(&engine, true).await;
        }
        self.member.leave().await;
    }

    /// One pass: opens what this broker should lead and does not, closes what it leads and
    /// should not, hands over what it is asked to move.
    fn reconcile(self: &Arc<Self>) {
        // Assignments under the current lease, valid or not: a lease merely out of reach of
        // etcd keeps its engines (they stop acknowledging on their own); a lost one does not.
        let wanted: BTreeMap<u32, ShardAssignment> = match self.member.lease() {
            Some(lease) if lease.alive => {
                self.member.view().led_by(self.member.node_id(), lease.id)
            }
            _ => BTreeMap::new(),
        };
        let open: BTreeMap<u32, i32> = self
            .engines
            .read()
            .values()
            .map(|e| (e.shard, e.epoch))
            .collect();
        for step in reconcile_steps(&wanted, &open) {
            match step {
                Step::Open(shard, assignment) => self.spawn_open(shard, assignment),
                Step::HandOver(shard) => self.spawn_close(shard, true, true),
                Step::Close(shard) => self.spawn_close(shard, false, false),
                Step::ReleaseUnopened(shard, epoch) => self.spawn_release_unopened(shard, epoch),
            }
        }
    }

    fn spawn_open(self: &Arc<Self>, shard: u32, assignment: ShardAssignment) {
        if !self.busy.lock().insert(shard) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let seen = Instant::now();
            match node.open(shard, assignment).await {
                Ok(engine) => {
                    let handover = Handover {
                        shard,
                        epoch: assignment.epoch,
                        opened_in: seen.elapsed(),
                    };
                    tracing::info!(
                        shard,
                        epoch = assignment.epoch,
                        opened_ms = handover.opened_in.as_millis() as u64,
                        "leading shard"
                    );
                    // Topics created or changed while the shard opened, before a request
                    // reaches it (the next `sync_topics` would be up to a poll period late).
                    for record in node.member.view().topics.values() {
                        engine.broker.topics.adopt(record);
                    }
                    node.engines.write().insert(shard, engine);
                    let mut handovers = node.handovers.lock();
                    handovers.push(handover);
                    if handovers.len() > 1024 {
                        handovers.remove(0);
                    }
                }
                Err(error) => {
                    tracing::error!(shard, epoch = assignment.epoch, %error, "cannot open shard; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            node.busy.lock().remove(&shard);
        });
    }

    fn spawn_close(self: &Arc<Self>, shard: u32, planned: bool, release: bool) {
        if !self.busy.lock().insert(shard) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            if planned && release {
                if let Some(engine) = node.engine(shard) {
                    let started = Instant::now();
                    let rounds = maintenance::compact_before_handover(
                        &engine.broker,
                        HANDOVER_COMPACT_LIMIT,
                    )
                    .await;
                    tracing::info!(
                        shard,
                        rounds,
                        ms = started.elapsed().as_millis() as u64,
                        "compacted before the hand-over"
                    );
                    if !node.still_moving(shard, engine.epoch) {
                        // The move was cancelled (its target went away) or the shard was lost
                        // meanwhile: the next pass decides again.
                        node.busy.lock().remove(&shard);
                        return;
                    }
                }
            }
            // Out of the map first: requests for the shard are refused from here on.
            let engine = node.engines.write().remove(&shard);
            if let Some(engine) = engine {
                tracing::info!(shard, epoch = engine.epoch, planned, "closing shard");
                close(&engine, planned).await;
                if release {
                    match node.member.release(shard, engine.epoch).await {
                        Ok(true) => {
                            tracing::info!(shard, epoch = engine.epoch, "shard handed over")
                        }
                        Ok(false) => tracing::warn!(shard, "shard changed before its release"),
                        Err(error) => tracing::warn!(shard, %error, "cannot release shard"),
                    }
                }
            }
            node.busy.lock().remove(&shard);
        });
    }

    /// Releases a shard this broker was asked to move before it ever opened it (the move was
    /// decided before this broker read the assignment that gave it the shard): it wrote
    /// nothing at this epoch, so there is nothing to flush, and without the release the move's
    /// target would wait for it forever.
    fn spawn_release_unopened(self: &Arc<Self>, shard: u32, epoch: i32) {
        if !self.busy.lock().insert(shard) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            // An open that finished before the busy mark was taken is handed over the usual way
            // at the next pass.
            if !node.engines.read().contains_key(&shard) && node.still_moving(shard, epoch) {
                match node.member.release(shard, epoch).await {
                    Ok(true) => {
                        tracing::info!(shard, epoch, "shard handed over without opening it")
                    }
                    Ok(false) => tracing::warn!(shard, "shard changed before its release"),
                    Err(error) => tracing::warn!(shard, %error, "cannot release shard"),
                }
            }
            node.busy.lock().remove(&shard);
        });
    }

    /// The process's cold-read runtime (`None` with `cold_isolation` off), started on first use.
    fn cold_runtime(&self) -> std::io::Result<Option<Arc<ColdRuntime>>> {
        if !self.config.cold_isolation {
            return Ok(None);
        }
        let mut runtime = self.cold_runtime.lock();
        if runtime.is_none() {
            *runtime = Some(Arc::new(ColdRuntime::start(
                self.config.cold_read_threads,
                self.config.cold_read_nice,
            )?));
        }
        Ok(runtime.clone())
    }

    /// Whether this broker still leads `shard` at `epoch` under a live lease and is asked to
    /// hand it over.
    fn still_moving(&self, shard: u32, epoch: i32) -> bool {
        match self.member.lease() {
            Some(lease) if lease.alive => self
                .member
                .view()
                .led_by(self.member.node_id(), lease.id)
                .get(&shard)
                .is_some_and(|a| a.epoch == epoch && a.moving_to.is_some()),
            _ => false,
        }
    }

    async fn open(&self, shard: u32, assignment: ShardAssignment) -> anyhow::Result<Arc<Engine>> {
        let epoch = assignment.epoch;
        let member = self.member.clone();
        let may_write: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || member.may_acknowledge(shard, epoch));
        if !may_write() {
            anyhow::bail!("no longer assigned at epoch {epoch}");
        }
        let mut config = self.config.clone();
        config.storage = shards::storage_url(&self.config.storage, shard);
        // A WAL beside the store lives on one host's disk, where the next leader cannot read
        // it; the WAL inside an `fs://` root is shared like the root (one directory per epoch).
        config.wal = None;
        config.auto_create_topics = false;
        config.metrics_listen = None;
        config.rdma_shm_socket = None;
        config.rdma_verbs_listen = None;
        // The process's memory budgets are shared by the shards it may lead: its share of them.
        let share = self.expected_shards();
        config.hot_cache_mib = (self.config.hot_cache_mib / share).max(32);
        config.cold_cache_mib = (self.config.cold_cache_mib / share).max(16);
        config.fetch_memory_mib = (self.config.fetch_memory_mib / share).max(16);
        // Likewise the WAL's files (each shard keeps a few spares prepared): 0 stays 0.
        if self.config.wal_file_mib > 0 {
            config.wal_file_mib = (self.config.wal_file_mib / share as u64).max(4);
        }
        let context = ShardContext {
            shard,
            epoch: u32::try_from(epoch).unwrap_or(0),
            may_write,
            topics: self.member.view().topics.values().cloned().collect(),
            stream: self.stream.get().cloned().flatten(),
            cold_runtime: self.cold_runtime()?,
            acls: self.acls.clone(),
        };
        let broker = Broker::open_with(config, Some(context)).await?;
        let stop = CancellationToken::new();
        tokio::spawn({
            let broker = broker.clone();
            let stop = stop.clone();
            async move {
                if let Err(error) = maintenance::run(broker, stop).await {
                    tracing::warn!(shard, %error, "shard maintenance stopped");
                }
            }
        });
        Ok(Arc::new(Engine {
            shard,
            epoch,
            broker,
            stop,
        }))
    }

    /// Bytes per second flushed for each shard led, over the last `LOAD_PERIOD` (`None` until
    /// a period has passed). A shard led for only part of the period (at this epoch) is left
    /// out rather than reported low: the controller moves nothing for load until its leader
    /// has measured every shard.
    fn measure_load(&self) -> Option<BTreeMap<u32, u64>> {
        let mut last = self.load.lock();
        let elapsed = last.0.elapsed();
        if elapsed < LOAD_PERIOD {
            return None;
        }
        let now: FlushedBytes = self
            .engines()
            .iter()
            .map(|e| (e.shard, (e.epoch, e.broker.pipeline.stats().bytes_written)))
            .collect();
        let rates = now
            .iter()
            .filter_map(|(shard, (epoch, bytes))| {
                let (then_epoch, before) = last.1.get(shard)?;
                (then_epoch == epoch).then(|| {
                    let rate = bytes.saturating_sub(*before) as f64 / elapsed.as_secs_f64();
                    (*shard, rate as u64)
                })
            })
            .collect();
        *last = (Instant::now(), now);
        Some(rates)
    }

    /// How many shards this broker may expect to lead: its share of the cluster's.
    fn expected_shards(&self) -> usize {
        let brokers = self.member.view().brokers.len().max(1);
        (self.shards() as usize).div_ceil(brokers).max(1)
    }

    /// Applies the cluster's topics to every engine: adds new ones, forgets deleted ones (and
    /// retires their data).
    pub async fn sync_topics(&self) {
        let mut synced = self.synced.lock().await;
        // Read under the lock: the view only moves forward, so each pass applies one at least
        // as new as the last pass did.
        let view = self.member.view();
        let engines = self.engines();
        let state: (i64, Vec<(u32, i32)>) = (
            view.revision,
            engines.iter().map(|e| (e.shard, e.epoch)).collect(),
        );
        if *synced == state {
            return; // nothing changed since the last pass
        }
        let topics = view.topics.clone();
        for engine in engines {
            for record in topics.values() {
                engine.broker.topics.adopt(record);
            }
            for topic in engine.broker.topics.list() {
                if topics.get(&topic.name).is_none_or(|r| r.id != topic.id) {
                    if let Some(gone) = engine.broker.topics.forget(&topic.name, topic.id) {
                        if let Err(error) = engine.broker.catalog.drop_topic(gone.id).await {
                            tracing::warn!(%error, topic = %gone.name, "data of a deleted topic not retired yet");
                        }
                    }
                }
            }
        }
        *synced = state;
    }
}

/// Closes an engine: planned, it flushes what is pending first (its data stays the shard's);
/// lost, it gives up at once (its writes would be refused anyway).
async fn close(engine: &Engine, planned: bool) {
    engine.stop.cancel();
    let pipeline = &engine.broker.pipeline;
    if planned {
        if tokio::time::timeout(HANDOVER_FLUSH_LIMIT, pipeline.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                shard = engine.shard,
                "pending data not durable in time; given up"
            );
            pipeline.abandon().await;
        }
    } else {
        pipeline.abandon().await;
    }
}

/// Rereads the ACLs every [`ACL_REFRESH`] until `stop` (keeping the last set while etcd is
/// out of reach).
async fn refresh_acls(acls: Arc<Acls>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(ACL_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = acls.refresh().await {
            tracing::debug!(%error, "cannot reread the ACLs; keeping the last ones");
        }
    }
}
