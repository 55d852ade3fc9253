//! The topic registry: names, ids, partitions, and their durable catalog in storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dfs_adapter::{ChunkLocation, PartitionKey, StorageError, Store, TopicRecord};
use parking_lot::RwLock;
use thiserror::Error;
use uuid::Uuid;

use super::partition::Partition;
use super::topic_config;

mod changes;

/// Kafka's limit on topic name length.
const MAX_NAME_LEN: usize = 249;

/// A topic and its partitions.
pub struct Topic {
    /// Name.
    pub name: String,
    /// Stable id (never reused, so data of a deleted topic is never adopted by a new one).
    pub id: Uuid,
    /// Overrides (given at creation, changed by AlterConfigs).
    pub configs: BTreeMap<String, String>,
    /// Partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// Why a topic could not be created or deleted.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Creating a topic that exists.
    #[error("topic {0} already exists")]
    Exists(String),
    /// Deleting or using a topic that does not exist.
    #[error("topic {0} does not exist")]
    Unknown(String),
    /// Illegal name.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Partition count below 1.
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// A partition count that would not grow the topic (partitions are never removed).
    #[error("topic {topic} has {has} partitions; it can only grow, not to {asked}")]
    PartitionsShrink {
        /// The topic.
        topic: String,
        /// Partitions it has.
        has: i32,
        /// Partitions asked for.
        asked: i32,
    },
    /// More partitions than one topic may have (`max_partitions_per_topic`).
    #[error(
        "{requested} partitions exceed the limit of {limit} per topic (max_partitions_per_topic)"
    )]
    TooManyPartitions {
        /// Asked for.
        requested: i32,
        /// The limit.
        limit: usize,
    },
    /// The broker's limits on topics or partitions in all would be exceeded.
    #[error("{0}")]
    PolicyViolation(String),
    /// The coordination service (a cluster's etcd) did not answer: the change may or may not
    /// have been made; retriable.
    #[error("coordination service unavailable: {0}")]
    Coordination(String),
    /// Other changes of the topic kept winning the race to replace its record.
    #[error("topic {0} kept changing under this change; retry")]
    Contended(String),
    /// A config override was refused.
    #[error("{0}")]
    InvalidConfig(String),
    /// The catalog could not be written.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
}

/// How many topics and partitions may exist: checked before anything is allocated, since every
/// partition costs memory for as long as the topic exists.
#[derive(Clone, Copy, Debug)]
pub struct TopicLimits {
    /// Partitions of one topic (`max_partitions_per_topic`).
    pub partitions_per_topic: usize,
    /// Partitions of all topics together (`max_partitions`).
    pub partitions: usize,
    /// Topics (`max_topics`).
    pub topics: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        Self {
            partitions_per_topic: 10_000,
            partitions: 100_000,
            topics: 10_000,
        }
    }
}

impl From<&crate::config::Config> for TopicLimits {
    fn from(config: &crate::config::Config) -> Self {
        Self {
            partitions_per_topic: config.max_partitions_per_topic,
            partitions: config.max_partitions,
            topics: config.max_topics,
        }
    }
}

impl TopicLimits {
    /// Refuses `partitions` for a new topic beside `topics` existing ones holding `held`
    /// partitions.
    pub fn check(&self, partitions: i32, topics: usize, held: usize) -> Result<(), TopicError> {
        let wanted = usize::try_from(partitions).unwrap_or(usize::MAX);
        if wanted > self.partitions_per_topic {
            return Err(TopicError::TooManyPartitions {
                requested: partitions,
                limit: self.partitions_per_topic,
            });
        }
        if topics >= self.topics {
            return Err(TopicError::PolicyViolation(format!(
                "the broker holds {topics} topics, its limit (max_topics)"
            )));
        }
        if held.saturating_add(wanted) > self.partitions {
            return Err(TopicError::PolicyViolation(format!(
                "{partitions} more partitions would exceed the broker's limit of {} \
                 (max_partitions; {held} in use)",
                self.partitions
            )));
        }
        Ok(())
    }
}

/// All topics, looked up by name or by partition storage key.
#[derive(Default)]
pub struct TopicRegistry {
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    /// Partitions of listed topics (the hidden internal partition is not counted).
    listed_partitions: std::sync::atomic::AtomicUsize,
    limits: TopicLimits,
    /// Serialises creations and deletions so the catalog in storage and memory agree.
    changes: tokio::sync::Mutex<()>,
    /// Serialises adoptions and forgettings (a cluster applies etcd's topics from its poll loop
    /// and from requests at once): two swaps of one topic would each build its new partitions,
    /// leaving the topic and the by-key map with different ones.
    adopting: parking_lot::Mutex<()>,
}

impl TopicRegistry {
    /// Rebuilds the registry from the catalog and the recovered chunks (in object order).
    /// Chunks of topics no longer in the catalog (deleted) are ignored.
    ///
    /// `limits` apply to later creations; of the recovered topics, one with more partitions
    /// than `max_partitions_per_topic` is not loaded (with an error naming the setting), since
    /// the catalog is input from storage and every partition costs memory. Raising the limit
    /// brings it back: its data stays in storage.
    pub fn recover(
        records: Vec<TopicRecord>,
        chunks: Vec<ChunkLocation>,
        limits: TopicLimits,
    ) -> Self {
        let mut by_key: HashMap<PartitionKey, Vec<ChunkLocation>> = HashMap::new();
        for chunk in chunks {
            by_key.entry(chunk.key).or_default().push(chunk);
        }
        let registry = Self {
            limits,
            ..Self::default()
        };
        for record in records {
            if usize::try_from(record.partitions).unwrap_or(0) > limits.partitions_per_topic {
                tracing::error!(
                    topic = record.name,
                    partitions = record.partitions,
                    limit = limits.partitions_per_topic,
                    "topic in the catalog exceeds max_partitions_per_topic; not loaded"
                );
                continue;
            }
            let partitions = (0..record.partitions)
                .map(|p| {
                    let key = PartitionKey {
                        topic_id: record.id,
                        partition: p,
                    };
                    let mut chunks = by_key.remove(&key).unwrap_or_default();
                    chunks.sort_by_key(|c| c.base_offset);
                    Arc::new(Partition::new(key, chunks))
                })
                .collect();
            registry.insert(Topic {
                name: record.name,
                id: record.id,
                configs: record.configs,
                partitions,
            });
        }
        registry
    }

    fn insert(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        self.listed_partitions
            .fetch_add(topic.partitions.len(), std::sync::atomic::Ordering::Relaxed);
        {
            let mut partitions = self.partitions.write();
            for partition in &topic.partitions {
                partitions.insert(partition.key(), partition.clone());
            }
        }
        self.topics
            .write()
            .insert(topic.name.clone(), topic.clone());
        topic
    }

    /// Registers a partition that belongs to no listed topic (the internal log), so durability
    /// events reach it.
    pub fn register_hidden(&self, partition: Arc<Partition>) {
        self.partitions.write().insert(partition.key(), partition);
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with id `id`.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The partition stored under `key`.
    pub fn partition(&self, key: &PartitionKey) -> Option<Arc<Partition>> {
        self.partitions.read().get(key).cloned()
    }

    /// Creates a topic durably (or only validates it).
    pub async fn create(
        &self,
        store: &Store,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        // Before the lock and before any allocation: a huge count is refused at once.
        self.check_limits(partitions)?;
        topic_config::validate(&configs).map_err(TopicError::InvalidConfig)?;
        let _guard = self.changes.lock().await;
        if self.get(name).is_some() {
            return Err(TopicError::Exists(name.to_string()));
        }
        // Again under the lock, so concurrent creations cannot pass the limits together.
        self.check_limits(partitions)?;
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        if validate_only {
            // Nothing per partition is built for a validation.
            return Ok(Arc::new(Topic {
                name: record.name,
                id: record.id,
                configs: record.configs,
                partitions: Vec::new(),
            }));
        }
        let topic = Topic {
            name: record.name.clone(),
            id: record.id,
            configs: record.configs.clone(),
            partitions: (0..partitions)
                .map(|p| {
                    let key = PartitionKey {
                        topic_id: record.id,
                        partition: p,
                    };
                    Arc::new(Partition::new(key, Vec::new()))
                })
                .collect(),
        };
        store.put_topic(&record).await?;
        tracing::info!(topic = name, partitions, id = %record.id, "topic created");
        Ok(self.insert(topic))
    }

    /// Gets a topic, creating it with `partitions` partitions if it does not exist.
    pub async fn get_or_create(
        &self,
        store: &Store,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(topic) = self.get(name) {
            return Ok(topic);
        }
        match self
            .create(store, name, partitions, BTreeMap::new(), false)
            .await
        {
            Err(TopicError::Exists(_)) => self
                .get(name)
                .ok_or_else(|| TopicError::Unknown(name.to_string())),
            other => other,
        }
    }

    /// Adds a topic that another place holds (a cluster's etcd), without storing it here.
    /// Returns false if the topic is there already as `record` describes it; one that changed
    /// (configs, more partitions) is updated in place, one of that name with another id
    /// (deleted and created again elsewhere) is replaced.
    pub fn adopt(&self, record: &TopicRecord) -> bool {
        let _adopting = self.adopting.lock();
        if let Some(known) = self.get(&record.name) {
            if known.id == record.id {
                if known.record() == *record {
                    return false;
                }
                self.swap(&known, record);
                return true;
            }
            self.remove(&record.name);
        }
        let partitions = (0..record.partitions)
            .map(|p| {
                let key = PartitionKey {
                    topic_id: record.id,
                    partition: p,
                };
                Arc::new(Partition::new(key, Vec::new()))
            })
            .collect();
        self.insert(Topic {
            name: record.name.clone(),
            id: record.id,
            configs: record.configs.clone(),
            partitions,
        });
        true
    }

    /// Removes the topic `name` with id `id` from memory only (a cluster deleted it); returns
    /// it if it was there (a topic of that name with another id stays).
    pub fn forget(&self, name: &str, id: Uuid) -> Option<Arc<Topic>> {
        let _adopting = self.adopting.lock();
        if self.get(name)?.id != id {
            return None;
        }
        self.remove(name)
    }

    fn remove(&self, name: &str) -> Option<Arc<Topic>> {
        let topic = self.topics.write().remove(name)?;
        self.listed_partitions
            .fetch_sub(topic.partitions.len(), std::sync::atomic::Ordering::Relaxed);
        let mut partitions = self.partitions.write();
        for partition in &topic.partitions {
            partitions.remove(&partition.key());
        }
        Some(topic)
    }

    /// Deletes a topic durably. Its data objects stay until compaction and retention (they are
    /// never adopted again: recovery keys data by topic id).
    pub async fn delete(&self, store: &Store, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock().await;
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        store.delete_topic(name).await?;
        self.topics.write().remove(name);
        self.listed_partitions
            .fetch_sub(topic.partitions.len(), std::sync::atomic::Ordering::Relaxed);
        let mut partitions = self.partitions.write();
        for partition in &topic.partitions {
            partitions.remove(&partition.key());
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(topic)
    }
}

impl TopicRegistry {
    fn check_limits(&self, partitions: i32) -> Result<(), TopicError> {
        let topics = self.topics.read().len();
        let held = self
            .listed_partitions
            .load(std::sync::atomic::Ordering::Relaxed);
        self.limits.check(partitions, topics, held)
    }
}

/// Kafka's rules for topic names.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_before_allocating() {
        let limits = TopicLimits {
            partitions_per_topic: 100,
            partitions: 150,
            topics: 3,
        };
        assert!(limits.check(100, 0, 0).is_ok());
        assert!(matches!(
            limits.check(2_000_000_000, 0, 0),
            Err(TopicError::TooManyPartitions { .. })
        ));
        assert!(matches!(
            limits.check(51, 1, 100),
            Err(TopicError::PolicyViolation(_))
        ));
        assert!(limits.check(50, 1, 100).is_ok());
        assert!(matches!(
            limits.check(1, 3, 3),
            Err(TopicError::PolicyViolation(_))
        ));
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a/b", "späm", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
