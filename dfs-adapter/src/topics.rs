//! The topic catalog: one small JSON object per topic, `topics/<name>.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::{StorageError, Store};

/// Directory (prefix) of topic records.
pub(crate) const TOPICS_DIR: &str = "topics/";
const TOPIC_SUFFIX: &str = ".json";
/// Suffix of the temporary file a record is written to before being renamed into place (fs).
/// Never a valid record key, since those end in `.json`.
const TEMP_SUFFIX: &str = ".json.tmp";
/// Kafka's limit on topic name length.
const MAX_NAME_LEN: usize = 249;

/// Durable description of one topic (stored as its own small object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name, as clients know it.
    pub name: String,
    /// Immutable id; partition data is keyed by it (see [`crate::PartitionKey`]).
    pub id: uuid::Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level configuration overrides.
    pub configs: BTreeMap<String, String>,
}

impl Store {
    /// Stores (creates or replaces) a topic record; durable when it returns.
    ///
    /// On `fs` the record is written to a temporary file (fsynced on close), renamed into place
    /// and the directory fsynced, so a crash leaves either the old or the new record, never a
    /// torn one. Object stores publish a PUT atomically. Concurrent puts of the same topic must
    /// be serialised by the caller.
    pub async fn put_topic(&self, topic: &TopicRecord) -> Result<(), StorageError> {
        validate_name(&topic.name)?;
        let key = topic_key(&topic.name);
        let body = serde_json::to_vec_pretty(topic).map_err(|e| {
            StorageError::InvalidArgument(format!("cannot encode topic {:?}: {e}", topic.name))
        })?;
        let temp = format!("{TOPICS_DIR}{}{TEMP_SUFFIX}", topic.name);
        self.replace_small(&key, &temp, body).await?;
        info!(topic = %topic.name, id = %topic.id, partitions = topic.partitions, "topic stored");
        Ok(())
    }

    /// Deletes a topic record; deleting an absent topic succeeds. Durable when it returns.
    ///
    /// Only the catalog entry goes: the partitions' data stays in the flush objects, unreachable
    /// because a re-created topic gets a new id.
    pub async fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let key = topic_key(name);
        self.op()
            .delete(&key)
            .await
            .map_err(StorageError::backend(format!("delete {key}")))?;
        self.sync_topics_dir().await?;
        info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Lists all topic records, sorted by name.
    ///
    /// A record that cannot be parsed, or whose name does not match its key, is an error naming
    /// the object: silently skipping it would make a topic vanish.
    pub async fn list_topics(&self) -> Result<Vec<TopicRecord>, StorageError> {
        let entries = self
            .op()
            .list(TOPICS_DIR)
            .await
            .map_err(StorageError::backend(format!("list {TOPICS_DIR}")))?;
        let mut topics = Vec::new();
        for entry in entries {
            let Some(name) = entry.name().strip_suffix(TOPIC_SUFFIX) else {
                debug!(object = %entry.path(), "ignoring non-topic object");
                continue;
            };
            if !entry.metadata().is_file() {
                continue;
            }
            let key = entry.path().to_string();
            let body = self
                .op()
                .read(&key)
                .await
                .map_err(StorageError::backend(format!("read {key}")))?;
            let record: TopicRecord = serde_json::from_slice(&body.to_bytes())
                .map_err(|e| StorageError::corrupt(&key, e.to_string()))?;
            if record.name != name {
                return Err(StorageError::corrupt(
                    &key,
                    format!("record names topic {:?}", record.name),
                ));
            }
            topics.push(record);
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }
}

fn topic_key(name: &str) -> String {
    format!("{TOPICS_DIR}{name}{TOPIC_SUFFIX}")
}

/// Kafka's rule (ASCII letters, digits, `.`, `_`, `-`; not `.` or `..`; at most 249 chars),
/// which also keeps names safe as object keys (no `/`, no traversal).
fn validate_name(name: &str) -> Result<(), StorageError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 249 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidArgument(format!(
            "invalid topic name {name:?}: {reason}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "orders.v2", "A_b-c", &"x".repeat(249)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
