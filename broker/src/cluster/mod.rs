//! Several brokers on one shared store: membership, the controller and shard leadership in
//! etcd.
//!
//! The unit of leadership is a *shard*: a fixed set of partitions (and consumer groups) chosen
//! by hashing, with a storage root of its own under the shared store. One broker at a time
//! leads a shard, at an epoch that etcd raises at every change of leader; moving a shard is
//! reopening its root on another broker, with no data copied. See docs/architecture.md.

pub mod admin;
pub mod etcd;
pub mod lease;
pub mod member;
mod metrics;
pub mod model;
pub mod node;
pub mod plan;
mod reconcile;
pub mod router;
pub mod shards;
mod stream;
pub mod view;

use std::time::Duration;

use thiserror::Error;

pub use member::Member;
pub use node::Node;

/// Why the cluster could not be joined.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The `--cluster` URL is not usable.
    #[error("bad cluster URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// etcd refused or could not be reached.
    #[error(transparent)]
    Etcd(#[from] etcd::EtcdError),
    /// The cluster's stored settings are unusable.
    #[error("cluster settings: {0}")]
    Settings(String),
}

/// How to reach the cluster's etcd and how to take part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://host:port`).
    pub endpoints: Vec<String>,
    /// The cluster's name: its keys live under `/hotwire/<name>/`.
    pub name: String,
    /// TTL of this broker's lease: how long a dead or cut-off broker keeps its shards.
    pub lease_ttl: Duration,
    /// Shards of a cluster this broker creates (an existing cluster keeps its own count).
    pub shards: u32,
    /// How often the cluster is read from etcd.
    pub poll: Duration,
    /// Time limit of one etcd request on one endpoint.
    pub request_timeout: Duration,
    /// As controller, the smallest gap in load (bytes/s flushed) between the busiest and the
    /// idlest broker for which shards move although counts are even; 0: never for load.
    pub load_min_gap: u64,
}

impl ClusterConfig {
    /// Reads `etcd://host:port[,host:port...][/name]` (name `default` when absent), with
    /// default timings.
    pub fn from_url(url: &str) -> Result<Self, ClusterError> {
        let bad = |reason: &str| ClusterError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("expected etcd://host:port[,host:port...][/name]"))?;
        let (hosts, name) = rest.split_once('/').unwrap_or((rest, ""));
        let name = if name.is_empty() { "default" } else { name };
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(bad(
                "the cluster name may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no etcd endpoint"));
        }
        for endpoint in &endpoints {
            reqwest::Url::parse(endpoint).map_err(|e| bad(&format!("{endpoint}: {e}")))?;
        }
        Ok(Self {
            endpoints,
            name: name.to_string(),
            lease_ttl: Duration::from_secs(2),
            shards: 16,
            poll: Duration::from_millis(100),
            request_timeout: Duration::from_millis(500),
            load_min_gap: 8 << 20,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_its_endpoints_and_cluster() {
        let config = ClusterConfig::from_url("etcd://127.0.0.1:2379,10.0.0.2:2379/prod-1").unwrap();
        assert_eq!(
            config.endpoints,
            ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(config.name, "prod-1");
        assert_eq!(
            ClusterConfig::from_url("etcd://h:1").unwrap().name,
            "default"
        );
    }

    #[test]
    fn a_bad_cluster_url_is_refused_with_the_reason() {
        for url in ["http://h:1", "etcd://", "etcd://h:1/a/b", "etcd://h:x"] {
            assert!(ClusterConfig::from_url(url).is_err(), "{url}");
        }
    }
}
