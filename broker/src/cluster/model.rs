//! What the cluster keeps in etcd, and under which keys.
//!
//! ```text
//! <prefix>config            {"shards": S}: fixed when the first broker creates the cluster
//! <prefix>brokers/<id>      a live broker (attached to its lease: gone when the lease is)
//! <prefix>controller        the controller's node id (attached to its lease)
//! <prefix>shards/<k>        who leads shard k, under which lease and epoch (never deleted)
//! <prefix>draining/<id>     an operator asked for broker <id> to hand its shards away
//! <prefix>topics/<name>     a topic (name, id, partitions, configs): created if absent
//! ```

use serde::{Deserialize, Serialize};

/// The keys of one cluster, all under one prefix (`/hotwire/<name>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of the cluster named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            prefix: format!("/hotwire/{name}/"),
        }
    }

    /// The cluster's fixed settings.
    pub fn config(&self) -> String {
        format!("{}config", self.prefix)
    }

    /// Prefix of every broker registration.
    pub fn brokers(&self) -> String {
        format!("{}brokers/", self.prefix)
    }

    /// One broker's registration.
    pub fn broker(&self, node_id: i32) -> String {
        format!("{}brokers/{node_id:010}", self.prefix)
    }

    /// The controller's key.
    pub fn controller(&self) -> String {
        format!("{}controller", self.prefix)
    }

    /// Prefix of every shard's assignment.
    pub fn shards(&self) -> String {
        format!("{}shards/", self.prefix)
    }

    /// One shard's assignment.
    pub fn shard(&self, shard: u32) -> String {
        format!("{}shards/{shard:05}", self.prefix)
    }

    /// Prefix of the brokers an operator asked to drain (persistent keys).
    pub fn draining(&self) -> String {
        format!("{}draining/", self.prefix)
    }

    /// The key that asks for `node_id` to be drained.
    pub fn drain(&self, node_id: i32) -> String {
        format!("{}draining/{node_id:010}", self.prefix)
    }

    /// Prefix of every topic.
    pub fn topics(&self) -> String {
        format!("{}topics/", self.prefix)
    }

    /// One topic's record.
    pub fn topic(&self, name: &str) -> String {
        format!("{}topics/{name}", self.prefix)
    }

    /// Every key of the cluster starts with this.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The shard a key under [`Keys::shards`] names.
    pub fn shard_of(&self, key: &[u8]) -> Option<u32> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(&self.shards())?.parse().ok()
    }
}

/// The cluster's settings that never change once it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Number of shards: the units of leadership and of storage.
    pub shards: u32,
    /// How partitions and groups map to shards ([`super::shards`]); clusters created before
    /// placements were versioned hold 0.
    #[serde(default)]
    pub placement: u32,
}

/// A live broker, as it registered itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Kafka node id.
    pub node_id: i32,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// Rack, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The advertised address of each of its listeners, by security protocol name (`host` and
    /// `port` are its first listener's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Bytes per second written to each shard it leads (measured, refreshed every few
    /// seconds): the controller balances by it where counts are equal.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub load: std::collections::BTreeMap<u32, u64>,
}

/// One listener's advertised address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's security protocol (`PLAINTEXT`, `SSL`).
    pub protocol: String,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
}

impl BrokerInfo {
    /// Where clients of a `protocol` listener reach this broker: that listener's address, or
    /// the first listener's if it registered none of that protocol.
    pub fn address(&self, protocol: &str) -> (String, i32) {
        self.endpoints
            .iter()
            .find(|e| e.protocol == protocol)
            .map_or((self.host.clone(), i32::from(self.port)), |e| {
                (e.host.clone(), i32::from(e.port))
            })
    }
}

/// A registered broker with the lease its registration hangs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveBroker {
    /// What it registered.
    pub info: BrokerInfo,
    /// Its lease.
    pub lease: i64,
}

/// Who leads a shard. Written only by the controller (and by the leader, to release it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAssignment {
    /// The leading broker, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    /// The lease the leader held when it was given the shard: if its lease changes, it has
    /// lost the shard (it restarted, or was cut off for longer than its TTL).
    #[serde(default)]
    pub lease: i64,
    /// Raised by one at every change of leader: a leader writes (and its data is tagged) with
    /// its epoch, and an epoch is never given twice.
    pub epoch: i32,
    /// The controller asked the leader to hand the shard to this broker (a planned move): the
    /// leader flushes, closes the shard and releases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving_to: Option<i32>,
}

impl ShardAssignment {
    /// Whether `node` under `lease` leads the shard.
    pub fn led_by(&self, node: i32, lease: i64) -> bool {
        self.leader == Some(node) && self.lease == lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_read_back_their_number() {
        let keys = Keys::new("c1");
        assert_eq!(keys.shard(7), "/hotwire/c1/shards/00007");
        assert_eq!(keys.shard_of(keys.shard(7).as_bytes()), Some(7));
        assert_eq!(keys.shard_of(b"/hotwire/c1/brokers/0000000001"), None);
        assert_eq!(keys.shard_of(b"/hotwire/c1/shards/x"), None);
    }

    #[test]
    fn a_broker_is_reached_through_the_listener_a_client_used() {
        let old: BrokerInfo =
            serde_json::from_str(r#"{"node_id":1,"host":"h","port":9092}"#).unwrap();
        assert!(
            old.endpoints.is_empty(),
            "registrations without endpoints still parse"
        );
        assert_eq!(old.address("SSL"), ("h".to_string(), 9092));
        let info = BrokerInfo {
            endpoints: vec![
                Endpoint {
                    protocol: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                },
                Endpoint {
                    protocol: "SSL".into(),
                    host: "public.example".into(),
                    port: 9093,
                },
            ],
            ..old
        };
        assert_eq!(info.address("SSL"), ("public.example".to_string(), 9093));
        assert_eq!(info.address("PLAINTEXT"), ("h".to_string(), 9092));
    }
}
