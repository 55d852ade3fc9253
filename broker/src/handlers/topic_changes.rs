//! Changing existing topics (AlterConfigs, IncrementalAlterConfigs, CreatePartitions) wherever
//! topics are held: a broker's own storage, or a cluster's etcd. A change reads the topic's
//! record, derives the new one and replaces it only if nobody changed it meanwhile, so that two
//! admins altering one topic at once cannot lose either's change silently.

use dfs_adapter::TopicRecord;
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::log::topics::TopicError;

/// How often a change is derived again after losing a race with another change of the topic.
pub(crate) const TRIES: usize = 5;

/// Where topics are changed.
pub trait TopicChanger: Sync {
    /// The record of the topic named `name` as it is now, if it exists.
    fn current<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<TopicRecord>>;

    /// Replaces `old` by `new` durably (or only checks that it may, `validate_only`); false,
    /// with nothing done, if the topic is no longer `old`.
    fn replace<'a>(
        &'a self,
        old: &'a TopicRecord,
        new: TopicRecord,
        validate_only: bool,
    ) -> BoxFuture<'a, Result<bool, TopicError>>;
}

impl TopicChanger for Broker {
    fn current<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<TopicRecord>> {
        Box::pin(async move { self.topics.record_of(name) })
    }

    fn replace<'a>(
        &'a self,
        old: &'a TopicRecord,
        new: TopicRecord,
        validate_only: bool,
    ) -> BoxFuture<'a, Result<bool, TopicError>> {
        Box::pin(self.topics.replace(&self.store, old, new, validate_only))
    }
}

/// Changes the topic `name` as `derive` says (given its record now); returns the new record.
pub async fn change(
    changer: &dyn TopicChanger,
    name: &str,
    validate_only: bool,
    derive: impl Fn(&TopicRecord) -> Result<TopicRecord, TopicError>,
) -> Result<TopicRecord, TopicError> {
    for _ in 0..TRIES {
        let Some(old) = changer.current(name).await else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        let new = derive(&old)?;
        if changer.replace(&old, new.clone(), validate_only).await? {
            return Ok(new);
        }
    }
    Err(TopicError::Contended(name.to_string()))
}

/// The Kafka error for a refused change.
pub fn error_code(error: &TopicError) -> ResponseError {
    match error {
        TopicError::Exists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_)
        | TopicError::TooManyPartitions { .. }
        | TopicError::PartitionsShrink { .. } => ResponseError::InvalidPartitions,
        TopicError::PolicyViolation(_) => ResponseError::PolicyViolation,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Contended(_) | TopicError::Coordination(_) => ResponseError::RequestTimedOut,
        TopicError::Storage(_) => ResponseError::KafkaStorageError,
    }
}

/// The entries of `keys` that appear more than once (Kafka refuses them all).
pub fn repeated<K: Ord + Clone>(
    keys: impl IntoIterator<Item = K>,
) -> std::collections::BTreeSet<K> {
    let mut seen = std::collections::BTreeSet::new();
    let mut repeated = std::collections::BTreeSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            repeated.insert(key);
        }
    }
    repeated
}
