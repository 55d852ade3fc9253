//! A consistent snapshot of what etcd holds about the cluster, read in one range request.

use std::collections::BTreeMap;

use super::etcd::KeyValue;
use super::model::{BrokerInfo, ClusterSettings, Keys, LiveBroker, ShardAssignment};

/// The cluster at one etcd revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The etcd revision it was read at.
    pub revision: i64,
    /// The cluster's settings, once created.
    pub settings: Option<ClusterSettings>,
    /// Live brokers, by node id.
    pub brokers: Vec<LiveBroker>,
    /// The controller's node id and lease, if there is one.
    pub controller: Option<(i32, i64)>,
    /// Brokers an operator asked to drain.
    pub draining: Vec<i32>,
    /// The cluster's topics, by name.
    pub topics: BTreeMap<String, dfs_adapter::TopicRecord>,
    /// Each topic record's modification revision (for compare-and-swap).
    pub topic_revisions: BTreeMap<String, i64>,
    /// Every shard's assignment with the key's modification revision (for compare-and-swap).
    pub shards: BTreeMap<u32, (ShardAssignment, i64)>,
}

impl ClusterView {
    /// Reads the view from every key under the cluster's prefix. Keys that do not parse are
    /// skipped with a warning (a newer broker's additions, or an operator's mistake).
    pub fn parse(keys: &Keys, kvs: &[KeyValue], revision: i64) -> Self {
        let mut view = ClusterView {
            revision,
            ..Default::default()
        };
        let brokers = keys.brokers();
        let draining = keys.draining();
        let topics = keys.topics();
        for kv in kvs {
            let key = String::from_utf8_lossy(&kv.key);
            if key == keys.config() {
                view.settings = parsed(&key, &kv.value);
            } else if key == keys.controller() {
                view.controller = parsed::<i32>(&key, &kv.value).map(|id| (id, kv.lease));
            } else if key.starts_with(&brokers) {
                if let Some(info) = parsed::<BrokerInfo>(&key, &kv.value) {
                    view.brokers.push(LiveBroker {
                        info,
                        lease: kv.lease,
                    });
                }
            } else if key.starts_with(&topics) {
                if let Some(record) = parsed::<dfs_adapter::TopicRecord>(&key, &kv.value) {
                    view.topic_revisions
                        .insert(record.name.clone(), kv.mod_revision);
                    view.topics.insert(record.name.clone(), record);
                }
            } else if let Some(node) = key.strip_prefix(&draining) {
                if let Ok(node) = node.parse() {
                    view.draining.push(node);
                }
            } else if let Some(shard) = keys.shard_of(&kv.key) {
                if let Some(assignment) = parsed::<ShardAssignment>(&key, &kv.value) {
                    view.shards.insert(shard, (assignment, kv.mod_revision));
                }
            }
        }
        view.brokers.sort_by_key(|b| b.info.node_id);
        view
    }

    /// Every shard's assignment (shards never written yet: unassigned at epoch 0).
    pub fn assignments(&self) -> BTreeMap<u32, ShardAssignment> {
        let count = self.settings.map_or(0, |s| s.shards);
        (0..count)
            .map(|shard| {
                let assignment = self.shards.get(&shard).map(|(a, _)| *a).unwrap_or_default();
                (shard, assignment)
            })
            .collect()
    }

    /// The live broker with this node id.
    pub fn broker(&self, node_id: i32) -> Option<&LiveBroker> {
        self.brokers.iter().find(|b| b.info.node_id == node_id)
    }

    /// The shards `node` leads under `lease`, with their epochs.
    pub fn led_by(&self, node: i32, lease: i64) -> BTreeMap<u32, ShardAssignment> {
        self.assignments()
            .into_iter()
            .filter(|(_, a)| a.led_by(node, lease))
            .collect()
    }
}

fn parsed<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(key, %error, "unreadable cluster key; ignored");
            None
        }
    }
}
