//! Fetched partitions per tier (hot cache or storage), in all and per Kafka `client.id`, so
//! that the hot hit rate of tailing consumers can be told apart from catch-up readers'.
//!
//! Kafka itself keeps per-client-id fetch metrics (for quotas); here the label set is capped
//! ([`MAX_CLIENT_IDS`] distinct ids, the rest counted as `other`), so a flood of random client
//! ids cannot grow the registry without bound.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Distinct client ids labelled before the rest share `other`.
pub const MAX_CLIENT_IDS: usize = 64;
/// The label of client ids beyond the cap.
pub const OTHER_CLIENTS: &str = "other";

/// Labels of a per-client count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientTier {
    /// The Kafka `client.id` (or [`OTHER_CLIENTS`]).
    pub client_id: String,
    /// `hot` or `cold`.
    pub tier: String,
}

/// Where fetched partitions were answered from.
#[derive(Clone, Default)]
pub struct FetchReads {
    /// From the hot cache, all clients.
    pub hot: Counter,
    /// From storage through the cold cache, all clients.
    pub cold: Counter,
    /// The same per client id.
    pub per_client: Family<ClientTier, Counter>,
    /// Counters already resolved, by client id: a fetch from a known client takes a read lock
    /// and allocates nothing.
    resolved: Arc<RwLock<HashMap<String, ClientReads>>>,
}

/// The counters one fetch request adds to: resolved once per request.
#[derive(Clone)]
pub struct ClientReads {
    hot: Counter,
    cold: Counter,
    client_hot: Counter,
    client_cold: Counter,
}

impl FetchReads {
    /// The counters of requests from `client_id`.
    pub fn client(&self, client_id: &str) -> ClientReads {
        if let Some(reads) = self.resolved.read().get(client_id) {
            return reads.clone();
        }
        let mut resolved = self.resolved.write();
        if let Some(reads) = resolved.get(client_id) {
            return reads.clone();
        }
        let full = resolved.len() >= MAX_CLIENT_IDS;
        let label = if full { OTHER_CLIENTS } else { client_id };
        let counter = |tier: &str| {
            self.per_client
                .get_or_create(&ClientTier {
                    client_id: label.to_string(),
                    tier: tier.to_string(),
                })
                .clone()
        };
        let reads = ClientReads {
            hot: self.hot.clone(),
            cold: self.cold.clone(),
            client_hot: counter("hot"),
            client_cold: counter("cold"),
        };
        // Ids beyond the cap are not remembered: each resolves to `other` again.
        if !full {
            resolved.insert(client_id.to_string(), reads.clone());
        }
        reads
    }
}

impl ClientReads {
    /// A partition answered from the hot cache.
    pub fn hot(&self) {
        self.hot.inc();
        self.client_hot.inc();
    }

    /// A partition answered from storage.
    pub fn cold(&self) {
        self.cold.inc();
        self.client_cold.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_beyond_the_cap_share_one_label() {
        let reads = FetchReads::default();
        for i in 0..MAX_CLIENT_IDS + 10 {
            reads.client(&format!("c{i}")).hot();
        }
        reads.client("c0").cold();
        assert_eq!(reads.hot.get(), (MAX_CLIENT_IDS + 10) as u64);
        assert_eq!(reads.cold.get(), 1);
        let get = |client: &str, tier: &str| {
            reads
                .per_client
                .get_or_create(&ClientTier {
                    client_id: client.into(),
                    tier: tier.into(),
                })
                .get()
        };
        assert_eq!(get("c0", "hot"), 1);
        assert_eq!(get("c0", "cold"), 1);
        assert_eq!(get(OTHER_CLIENTS, "hot"), 10);
    }
}
