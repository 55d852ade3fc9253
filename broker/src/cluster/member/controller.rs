//! The controller role: taking it when it is free, and applying the plan while holding it.

use super::{put, Member};
use crate::cluster::etcd::{Compare, Op};
use crate::cluster::plan::{apply, plan, Change};
use crate::cluster::view::ClusterView;

impl Member {
    /// Tries to become the controller (the key is attached to the lease: it goes with it).
    pub(super) async fn campaign(&self, lease: i64) {
        let key = self.keys.controller();
        let value = self.info.node_id.to_string().into_bytes();
        let put = Op::Put {
            key: key.clone(),
            value,
            lease: Some(lease),
        };
        match self
            .etcd
            .txn(&[Compare::CreateRevision(key, 0)], &[put], &[])
            .await
        {
            Ok(outcome) if outcome.succeeded => {
                tracing::info!(node = self.info.node_id, "became the cluster controller")
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "controller campaign failed"),
        }
    }

    /// Applies the plan for `view`, each change guarded by this broker still being the
    /// controller and the shard's key being as read.
    pub(super) async fn control(&self, view: &ClusterView) {
        let assignments = view.assignments();
        let load = view
            .brokers
            .iter()
            .flat_map(|b| b.info.load.iter().map(|(s, l)| (*s, *l)))
            .collect();
        let changes = plan(&assignments, &view.brokers, &view.draining, &load);
        let me = self.info.node_id.to_string().into_bytes();
        for change in changes {
            let shard = match change {
                Change::Assign { shard, .. }
                | Change::Move { shard, .. }
                | Change::CancelMove { shard } => shard,
            };
            let before = assignments[&shard];
            let after = apply(before, change);
            let revision = view.shards.get(&shard).map_or(0, |(_, r)| *r);
            let key = self.keys.shard(shard);
            let outcome = self
                .etcd
                .txn(
                    &[
                        Compare::Value(self.keys.controller(), me.clone()),
                        Compare::ModRevision(key.clone(), revision),
                    ],
                    &[put(&key, &after, None)],
                    &[],
                )
                .await;
            match outcome {
                Ok(outcome) if outcome.succeeded => tracing::info!(
                    shard,
                    from = ?before.leader,
                    to = ?after.leader,
                    moving_to = ?after.moving_to,
                    epoch = after.epoch,
                    "shard assignment changed"
                ),
                Ok(_) => return, // the view is stale: the next read plans again
                Err(error) => {
                    tracing::warn!(%error, "cannot write a shard assignment");
                    return;
                }
            }
        }
    }
}
