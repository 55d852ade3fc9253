//! This broker as a member of the cluster: its registration, the controller role when it wins
//! it, and the shards it leads.

mod controller;
mod shared_reads;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::etcd::{Compare, Etcd, EtcdError, Op};
use super::lease::{Lease, LeaseState};
use super::model::{BrokerInfo, ClusterSettings, Keys, ShardAssignment};
use super::view::ClusterView;
use super::{ClusterConfig, ClusterError};

/// How long [`Member::fresh_view`] waits for etcd before answering from the latest view.
pub const FRESH_READ_LIMIT: Duration = Duration::from_millis(250);

/// A broker's membership: registered under a lease, reading the cluster every poll period,
/// and acting as the controller while it holds that role.
pub struct Member {
    etcd: Arc<Etcd>,
    keys: Keys,
    name: String,
    info: BrokerInfo,
    settings: ClusterSettings,
    /// The lease of the current registration (none between a lost lease and the next one).
    lease: Mutex<Option<Arc<Lease>>>,
    view: watch::Sender<Arc<ClusterView>>,
    stop: CancellationToken,
    /// Stopped by [`Member::halt`]: the lease's last state stays, as a stopped process's would.
    halted: std::sync::atomic::AtomicBool,
    /// As controller: when shards move for load alone (`None`: never).
    load_rule: Option<super::plan::LoadRule>,
    /// As controller: when shards last moved for load alone.
    last_load_move: Mutex<Option<std::time::Instant>>,
    /// [`Member::fresh_view`]'s reads, shared by concurrent callers.
    fresh_reads: shared_reads::SharedReads,
}

impl Member {
    /// Joins the cluster described by `config` as `info`: creates the cluster's settings if
    /// this is its first broker, then registers and starts taking part. Returns once registered
    /// (it waits while an earlier run of the same node id still holds the registration).
    pub async fn join(config: &ClusterConfig, info: BrokerInfo) -> Result<Arc<Self>, ClusterError> {
        let etcd = Arc::new(Etcd::new(config.endpoints.clone(), config.request_timeout)?);
        let keys = Keys::new(&config.name);
        let settings = settle_settings(&etcd, &keys, config.shards).await?;
        let member = Arc::new(Self {
            etcd,
            keys,
            name: config.name.clone(),
            info,
            settings,
            lease: Mutex::new(None),
            view: watch::Sender::new(Arc::new(ClusterView::default())),
            stop: CancellationToken::new(),
            halted: Default::default(),
            load_rule: (config.load_min_gap > 0).then_some(super::plan::LoadRule {
                min_gap: config.load_min_gap,
            }),
            last_load_move: Mutex::new(None),
            fresh_reads: Default::default(),
        });
        let (registered_tx, registered) = tokio::sync::oneshot::channel();
        tokio::spawn(member.clone().run(config.clone(), registered_tx));
        registered
            .await
            .map_err(|_| ClusterError::Etcd(EtcdError::Unreachable("membership stopped".into())))?;
        Ok(member)
    }

    /// Reads the cluster from etcd now (after a change this broker made, so that its own
    /// view shows it at once).
    pub async fn refresh(&self) {
        if let Ok((kvs, revision)) = self.etcd.get_prefix(self.keys.prefix()).await {
            let view = Arc::new(ClusterView::parse(&self.keys, &kvs, revision));
            self.view.send_if_modified(|current| {
                let newer = view.revision >= current.revision && **current != *view;
                if newer {
                    *current = view;
                }
                newer
            });
        }
    }

    /// The view as etcd holds it now, for answers that send clients somewhere (Metadata,
    /// FindCoordinator): a view up to a poll period old can name a broker that has since
    /// handed the shard over, after another broker already named its successor, and
    /// librdkafka 2.0 can stay stuck on such a backward flip (fetching from a broker that
    /// answers NOT_LEADER_OR_FOLLOWER while later metadata names the leader it believes it
    /// has). One small read asks etcd for its revision; the whole cluster is read only when
    /// something changed since the last read; concurrent callers share reads (see
    /// `shared_reads`). Without an answer within [`FRESH_READ_LIMIT`], the latest view.
    pub async fn fresh_view(&self) -> Arc<ClusterView> {
        let arrived = tokio::time::Instant::now();
        let check = self.fresh_reads.read_since(arrived, async {
            let Ok((_, revision)) = self.etcd.get(&self.keys.config()).await else {
                return false;
            };
            if revision > self.view().revision {
                self.refresh().await;
            }
            true
        });
        let _ = tokio::time::timeout(FRESH_READ_LIMIT, check).await;
        self.view()
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.info.node_id
    }

    /// The cluster's fixed settings.
    pub fn settings(&self) -> ClusterSettings {
        self.settings
    }

    /// The cluster's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Arc<Etcd> {
        &self.etcd
    }

    /// The state of the current lease, if registered.
    pub fn lease(&self) -> Option<LeaseState> {
        self.lease.lock().as_ref().map(|l| l.state())
    }

    /// The latest view of the cluster.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// Watches the view (changed every time a read finds something new).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.subscribe()
    }

    /// The shards this broker leads now, by the latest view and the current lease, with their
    /// assignments. Empty while the lease is not surely valid.
    pub fn leading(&self) -> std::collections::BTreeMap<u32, ShardAssignment> {
        match self.lease() {
            Some(lease) if lease.is_valid() => self.view().led_by(self.info.node_id, lease.id),
            _ => Default::default(),
        }
    }

    /// Whether this broker may acknowledge a write to `shard` at `epoch` now: its lease is
    /// surely valid and the shard is still its own at that epoch.
    pub fn may_acknowledge(&self, shard: u32, epoch: i32) -> bool {
        let Some(lease) = self.lease() else {
            return false;
        };
        if !lease.is_valid() {
            return false;
        }
        let view = self.view();
        let assignment = view.shards.get(&shard).map(|(a, _)| *a);
        assignment.is_some_and(|a| a.led_by(self.info.node_id, lease.id) && a.epoch == epoch)
    }

    /// Gives up `shard` after a planned move asked for it (its data flushed, nothing more
    /// acknowledged): the controller then assigns it to the move's target.
    pub async fn release(&self, shard: u32, epoch: i32) -> Result<bool, ClusterError> {
        let Some(lease) = self.lease() else {
            return Ok(false);
        };
        let view = self.view();
        let Some((current, revision)) = view.shards.get(&shard).copied() else {
            return Ok(false);
        };
        if !current.led_by(self.info.node_id, lease.id) || current.epoch != epoch {
            return Ok(false);
        }
        let released = ShardAssignment {
            leader: None,
            lease: 0,
            ..current
        };
        let key = self.keys.shard(shard);
        let outcome = self
            .etcd
            .txn(
                &[Compare::ModRevision(key.clone(), revision)],
                &[put(&key, &released, None)],
                &[],
            )
            .await?;
        Ok(outcome.succeeded)
    }

    /// Publishes the bytes per second written to each shard this broker leads (in its
    /// registration, under its lease).
    pub async fn publish_load(&self, load: std::collections::BTreeMap<u32, u64>) {
        let Some(lease) = self.lease() else {
            return;
        };
        let mut info = self.info.clone();
        info.load = load;
        let key = self.keys.broker(self.info.node_id);
        let value = serde_json::to_vec(&info).expect("broker info serializes");
        // Only over this broker's own registration: never recreates one that expired.
        let guarded = [Compare::Lease(key.clone(), lease.id)];
        if let Err(error) = self
            .etcd
            .txn(
                &guarded,
                &[Op::Put {
                    key,
                    value,
                    lease: Some(lease.id),
                }],
                &[],
            )
            .await
        {
            tracing::debug!(%error, "cannot publish this broker's load");
        }
    }

    /// Stops taking part without revoking the lease, as a crash would: the registration and
    /// the shards stay until etcd expires the lease.
    pub fn halt(&self) {
        self.halted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(lease) = self.lease.lock().as_ref() {
            lease.stop_renewing();
        }
        self.stop.cancel();
    }

    /// Leaves the cluster: revokes the lease, so that the controller moves this broker's shards
    /// at once instead of after its TTL.
    pub async fn leave(&self) {
        self.stop.cancel();
        let lease = self.lease.lock().take();
        if let Some(lease) = lease {
            if let Err(error) = self.etcd.lease_revoke(lease.id()).await {
                tracing::warn!(%error, "cannot revoke the etcd lease; it expires on its own");
            }
        }
    }

    /// Registrations, one per lease, until stopped.
    async fn run(
        self: Arc<Self>,
        config: ClusterConfig,
        registered: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut registered = Some(registered);
        while !self.stop.is_cancelled() {
            let lease = match self.register(&config).await {
                Some(lease) => Arc::new(lease),
                None => continue,
            };
            tracing::info!(
                node = self.info.node_id,
                lease = lease.id(),
                "registered in the cluster"
            );
            *self.lease.lock() = Some(lease.clone());
            if let Some(registered) = registered.take() {
                let _ = registered.send(());
            }
            self.take_part(&config, &lease).await;
            if self.halted.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let mut current = self.lease.lock();
            if current.as_ref().is_some_and(|l| Arc::ptr_eq(l, &lease)) {
                *current = None;
            }
            drop(current);
            self.view.send_modify(|_| {});
        }
        // Left: the lease is revoked. Halted: its last state stays, and expires.
        if !self.halted.load(std::sync::atomic::Ordering::Relaxed) {
            self.lease.lock().take();
        }
    }

    /// A new lease with this broker's registration attached, or `None` after a failed try.
    async fn register(&self, config: &ClusterConfig) -> Option<Lease> {
        let retry = || tokio::time::sleep(config.poll);
        let lease = match Lease::grant(self.etcd.clone(), config.lease_ttl).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(%error, "cannot get an etcd lease; retrying");
                retry().await;
                return None;
            }
        };
        let key = self.keys.broker(self.info.node_id);
        let value = serde_json::to_vec(&self.info).expect("broker info serializes");
        let mut waiting_since: Option<Instant> = None;
        loop {
            if self.stop.is_cancelled() || !lease.state().is_valid() {
                return None;
            }
            let outcome = self
                .etcd
                .txn(
                    &[Compare::CreateRevision(key.clone(), 0)],
                    &[Op::Put {
                        key: key.clone(),
                        value: value.clone(),
                        lease: Some(lease.id()),
                    }],
                    &[],
                )
                .await;
            match outcome {
                Ok(outcome) if outcome.succeeded => return Some(lease),
                Ok(_) => {
                    if waiting_since.is_none() {
                        tracing::warn!(
                            node = self.info.node_id,
                            "node id registered under another lease (an earlier run whose \
                             lease has not expired yet, or another broker with this id); waiting"
                        );
                        waiting_since = Some(Instant::now());
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot register in etcd; retrying"),
            }
            retry().await;
        }
    }

    /// Reads the cluster every poll period while `lease` lives: publishes the view, campaigns
    /// for the controller role when it is free, and controls while it is this broker's.
    async fn take_part(&self, config: &ClusterConfig, lease: &Lease) {
        let mut tick = tokio::time::interval(config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = lease.lost() => {
                    tracing::warn!(lease = lease.id(), "etcd lease lost; registering again");
                    return;
                }
                _ = tick.tick() => {}
            }
            let view = match self.etcd.get_prefix(self.keys.prefix()).await {
                Ok((kvs, revision)) => Arc::new(ClusterView::parse(&self.keys, &kvs, revision)),
                Err(error) => {
                    tracing::debug!(%error, "cannot read the cluster from etcd");
                    continue;
                }
            };
            // A refresh may have installed a newer view while this read was under way: the
            // view never goes back.
            self.view.send_if_modified(|current| {
                let newer = view.revision >= current.revision && **current != *view;
                if newer {
                    *current = view.clone();
                }
                newer
            });
            let state = lease.state();
            if !state.is_valid() {
                continue;
            }
            match view.controller {
                None => self.campaign(state.id).await,
                Some((node, id)) if node == self.info.node_id && id == state.id => {
                    self.control(&view).await
                }
                Some(_) => {}
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn put(key: &str, value: &impl serde::Serialize, lease: Option<i64>) -> Op {
    Op::Put {
        key: key.to_string(),
        value: serde_json::to_vec(value).expect("cluster values serialize"),
        lease,
    }
}

/// The cluster's settings: created with `shards` by the first broker, read by the others.
async fn settle_settings(
    etcd: &Etcd,
    keys: &Keys,
    shards: u32,
) -> Result<ClusterSettings, ClusterError> {
    let wanted = ClusterSettings {
        shards,
        placement: super::shards::PLACEMENT,
    };
    let outcome = etcd
        .txn(
            &[Compare::CreateRevision(keys.config(), 0)],
            &[put(&keys.config(), &wanted, None)],
            &[Op::Get(keys.config())],
        )
        .await?;
    if outcome.succeeded {
        tracing::info!(shards, "created the cluster");
        return Ok(wanted);
    }
    let stored = outcome
        .reads
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| ClusterError::Settings("the cluster's settings vanished".into()))?;
    let settings: ClusterSettings = serde_json::from_slice(&stored.value)
        .map_err(|e| ClusterError::Settings(format!("unreadable cluster settings: {e}")))?;
    if settings.shards != shards {
        tracing::warn!(
            configured = shards,
            cluster = settings.shards,
            "the cluster exists with another shard count; using the cluster's"
        );
    }
    Ok(settings)
}
