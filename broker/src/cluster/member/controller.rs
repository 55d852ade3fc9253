//! The controller role: taking it when it is free, and applying the plan while holding it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{put, Member};
use crate::cluster::etcd::{Compare, Op};
use crate::cluster::plan::{apply, plan, Change, MoveReason};
use crate::cluster::view::ClusterView;

/// Least time between two rounds of moves for load alone: a moved shard's load is measured
/// again by its new leader (a whole 5 s period) and the clients have settled before the
/// controller judges the loads again.
const LOAD_MOVE_PAUSE: Duration = Duration::from_secs(30);

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
        // Each shard's load as its current leader measured it (a former leader's report of a
        // shard it no longer leads is stale).
        let load: BTreeMap<u32, u64> = assignments
            .iter()
            .filter_map(|(shard, a)| {
                let leader = view.broker(a.leader?)?;
                Some((*shard, *leader.info.load.get(shard)?))
            })
            .collect();
        let paused = self
            .last_load_move
            .lock()
            .is_some_and(|at| at.elapsed() < LOAD_MOVE_PAUSE);
        let rule = self.load_rule.filter(|_| !paused);
        let changes = plan(&assignments, &view.brokers, &view.draining, &load, rule);
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
            let why = match change {
                Change::Move { why, .. } => Some(why),
                _ => None,
            };
            match outcome {
                Ok(outcome) if outcome.succeeded => {
                    if why == Some(MoveReason::Load) {
                        *self.last_load_move.lock() = Some(Instant::now());
                    }
                    tracing::info!(
                        shard,
                        from = ?before.leader,
                        to = ?after.leader,
                        moving_to = ?after.moving_to,
                        ?why,
                        epoch = after.epoch,
                        "shard assignment changed"
                    )
                }
                Ok(_) => return, // the view is stale: the next read plans again
                Err(error) => {
                    tracing::warn!(%error, "cannot write a shard assignment");
                    return;
                }
            }
        }
    }
}
