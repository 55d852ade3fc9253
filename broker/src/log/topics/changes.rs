//! Changing an existing topic (AlterConfigs, CreatePartitions): the record is replaced whole,
//! compare-and-swap, and the topic in memory is swapped for one sharing its partitions, so
//! that the next request sees the change and no partition state is rebuilt.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dfs_adapter::{PartitionKey, Store, TopicRecord};

use super::{Topic, TopicError, TopicLimits, TopicRegistry};
use crate::log::partition::Partition;
use crate::log::topic_config;

impl Topic {
    /// The durable record this topic was built from.
    pub fn record(&self) -> TopicRecord {
        TopicRecord {
            name: self.name.clone(),
            id: self.id,
            partitions: i32::try_from(self.partitions.len()).unwrap_or(i32::MAX),
            configs: self.configs.clone(),
        }
    }
}

impl TopicLimits {
    /// Checks that `old` may become `new`: same topic, valid overrides, and a partition count
    /// that only grows, within the limits, `held` being the partitions of all topics now.
    pub fn check_change(
        &self,
        old: &TopicRecord,
        new: &TopicRecord,
        held: usize,
    ) -> Result<(), TopicError> {
        if old.name != new.name || old.id != new.id {
            return Err(TopicError::Unknown(new.name.clone()));
        }
        topic_config::validate(&new.configs).map_err(TopicError::InvalidConfig)?;
        if new.partitions < old.partitions {
            return Err(TopicError::PartitionsShrink {
                topic: new.name.clone(),
                has: old.partitions,
                asked: new.partitions,
            });
        }
        let added = usize::try_from(new.partitions - old.partitions).unwrap_or(usize::MAX);
        if usize::try_from(new.partitions).unwrap_or(usize::MAX) > self.partitions_per_topic {
            return Err(TopicError::TooManyPartitions {
                requested: new.partitions,
                limit: self.partitions_per_topic,
            });
        }
        if held.saturating_add(added) > self.partitions {
            return Err(TopicError::PolicyViolation(format!(
                "{added} more partitions would exceed the broker's limit of {} \
                 (max_partitions; {held} in use)",
                self.partitions
            )));
        }
        Ok(())
    }
}

impl TopicRegistry {
    /// The record of the topic named `name` as this registry holds it.
    pub fn record_of(&self, name: &str) -> Option<TopicRecord> {
        self.get(name).map(|topic| topic.record())
    }

    /// Replaces the record `old` by `new` durably (or only checks that it may), unless the
    /// topic changed since `old` was read: then nothing happens and the answer is false.
    pub async fn replace(
        &self,
        store: &Store,
        old: &TopicRecord,
        new: TopicRecord,
        validate_only: bool,
    ) -> Result<bool, TopicError> {
        let _guard = self.changes.lock().await;
        let Some(known) = self.get(&old.name) else {
            return Err(TopicError::Unknown(old.name.clone()));
        };
        if known.record() != *old {
            return Ok(false);
        }
        let held = self.listed_partitions.load(Ordering::Relaxed);
        self.limits.check_change(old, &new, held)?;
        if validate_only {
            return Ok(true);
        }
        store.put_topic(&new).await?;
        tracing::info!(
            topic = %new.name,
            partitions = new.partitions,
            configs = ?new.configs,
            "topic changed"
        );
        self.swap(&known, &new);
        Ok(true)
    }

    /// Puts in place of `known` a topic built from `record` (same id): its partitions are
    /// `known`'s, then new empty ones up to the record's count. A smaller count keeps them all
    /// (partitions are never removed).
    pub(super) fn swap(&self, known: &Topic, record: &TopicRecord) {
        let mut partitions = known.partitions.clone();
        let added: Vec<Arc<Partition>> = (known.partitions.len()..)
            .take_while(|p| i32::try_from(*p).is_ok_and(|p| p < record.partitions))
            .map(|p| {
                let key = PartitionKey {
                    topic_id: record.id,
                    partition: p as i32,
                };
                Arc::new(Partition::new(key, Vec::new()))
            })
            .collect();
        {
            let mut by_key = self.partitions.write();
            for partition in &added {
                by_key.insert(partition.key(), partition.clone());
            }
        }
        self.listed_partitions
            .fetch_add(added.len(), Ordering::Relaxed);
        partitions.extend(added);
        let topic = Arc::new(Topic {
            name: record.name.clone(),
            id: record.id,
            configs: record.configs.clone(),
            partitions,
        });
        self.topics.write().insert(topic.name.clone(), topic);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    async fn registry_with_topic() -> (tempfile::TempDir, Store, TopicRegistry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("fs://{}", dir.path().display()))
            .await
            .unwrap();
        let registry = TopicRegistry::default();
        registry
            .create(&store, "t", 2, BTreeMap::new(), false)
            .await
            .unwrap();
        (dir, store, registry)
    }

    #[tokio::test]
    async fn a_change_is_durable_and_keeps_the_partitions_it_had() {
        let (_dir, store, registry) = registry_with_topic().await;
        let before = registry.get("t").unwrap();
        let old = before.record();
        let mut new = old.clone();
        new.partitions = 5;
        new.configs.insert("retention.ms".into(), "1000".into());
        assert!(registry
            .replace(&store, &old, new.clone(), false)
            .await
            .unwrap());
        let after = registry.get("t").unwrap();
        assert_eq!(after.record(), new);
        assert!(Arc::ptr_eq(&before.partitions[1], &after.partitions[1]));
        let key = after.partitions[4].key();
        assert!(registry.partition(&key).is_some());
        assert_eq!(store.list_topics().await.unwrap(), vec![new]);
        // `old` is stale now: nothing happens.
        assert!(!registry
            .replace(&store, &old, old.clone(), false)
            .await
            .unwrap());
    }

    #[test]
    fn concurrent_adoptions_of_a_change_agree_with_each_other() {
        let registry = TopicRegistry::default();
        let mut record = TopicRecord {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: 1,
            configs: BTreeMap::new(),
        };
        assert!(registry.adopt(&record));
        record.partitions = 256;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| registry.adopt(&record));
            }
        });
        let topic = registry.get("t").unwrap();
        assert_eq!(topic.partitions.len(), 256);
        for partition in &topic.partitions {
            let by_key = registry.partition(&partition.key()).unwrap();
            assert!(Arc::ptr_eq(partition, &by_key), "{:?}", partition.key());
        }
        assert_eq!(registry.listed_partitions.load(Ordering::Relaxed), 256);
    }

    #[tokio::test]
    async fn shrinking_bad_configs_limits_and_validation_change_nothing() {
        let (_dir, store, registry) = registry_with_topic().await;
        let old = registry.record_of("t").unwrap();
        let with = |f: &dyn Fn(&mut TopicRecord)| {
            let mut new = old.clone();
            f(&mut new);
            new
        };
        let fewer = with(&|r| r.partitions = 1);
        assert!(matches!(
            registry.replace(&store, &old, fewer, false).await,
            Err(TopicError::PartitionsShrink { .. })
        ));
        let compact = with(&|r| {
            r.configs.insert("cleanup.policy".into(), "compact".into());
        });
        assert!(matches!(
            registry.replace(&store, &old, compact, false).await,
            Err(TopicError::InvalidConfig(_))
        ));
        let huge = with(&|r| r.partitions = i32::MAX);
        assert!(matches!(
            registry.replace(&store, &old, huge, false).await,
            Err(TopicError::TooManyPartitions { .. })
        ));
        let more = with(&|r| r.partitions = 3);
        assert!(registry.replace(&store, &old, more, true).await.unwrap());
        assert_eq!(registry.record_of("t").unwrap(), old);
        assert_eq!(store.list_topics().await.unwrap(), vec![old]);
    }
}
