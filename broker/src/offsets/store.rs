//! Durable commits: the internal log first, then the table.

use std::sync::Arc;

use uuid::Uuid;

use super::table::{OffsetTable, SlotKey};
use crate::internal::{CommittedOffset, InternalLog, InternalLogError, InternalRecord};

/// Committed offsets with their durability.
pub struct Offsets {
    table: OffsetTable,
    log: Arc<InternalLog>,
}

impl Offsets {
    /// Wraps an empty table; fill it with [`Offsets::replay`].
    pub fn new(table: OffsetTable, log: Arc<InternalLog>) -> Self {
        Self { table, log }
    }

    /// The table (for reads and for the RDMA path).
    pub fn table(&self) -> &OffsetTable {
        &self.table
    }

    /// Applies the internal log's records, in order, to the table.
    pub fn replay(&self, records: &[InternalRecord]) {
        for (position, record) in records.iter().enumerate() {
            let position = position as i64;
            match record {
                InternalRecord::Offset {
                    group,
                    topic_id,
                    partition,
                    commit,
                } => {
                    let key = SlotKey {
                        group: group.clone(),
                        topic_id: *topic_id,
                        partition: *partition,
                    };
                    match commit {
                        Some(commit) => {
                            if let Err(error) = self.table.set(key, commit, position) {
                                tracing::error!(%error, "committed offset dropped at replay");
                            }
                        }
                        None => self.table.remove(&key),
                    }
                }
                InternalRecord::Group {
                    group_id,
                    snapshot: None,
                } => self.table.remove_group(group_id),
                _ => {}
            }
        }
    }

    /// Commits offsets of one group; returns once they are durable and visible.
    pub async fn commit(
        &self,
        group: &str,
        commits: Vec<(Uuid, i32, CommittedOffset)>,
    ) -> Result<(), CommitError> {
        if commits.is_empty() {
            return Ok(());
        }
        let records: Vec<InternalRecord> = commits
            .iter()
            .map(|(topic_id, partition, commit)| InternalRecord::Offset {
                group: group.to_string(),
                topic_id: *topic_id,
                partition: *partition,
                commit: Some(commit.clone()),
            })
            .collect();
        let base = self.log.append(&records).await?;
        for (i, (topic_id, partition, commit)) in commits.into_iter().enumerate() {
            let key = SlotKey {
                group: group.to_string(),
                topic_id,
                partition,
            };
            self.table.set(key, &commit, base + i as i64)?;
        }
        Ok(())
    }

    /// Makes `offset`, which a one-sided writer left in `key`'s slot, durable: appends it to the
    /// internal log like a commit, but leaves the word alone (the writer may have moved it
    /// again meanwhile; the next persist picks that up).
    pub async fn persist_slot(&self, key: &SlotKey, offset: i64) -> Result<(), CommitError> {
        let current = self.table.get(key);
        let commit = CommittedOffset {
            offset,
            leader_epoch: current.as_ref().map_or(-1, |c| c.leader_epoch),
            metadata: current.and_then(|c| c.metadata),
            commit_timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        };
        let position = self
            .log
            .append(&[InternalRecord::Offset {
                group: key.group.clone(),
                topic_id: key.topic_id,
                partition: key.partition,
                commit: Some(commit.clone()),
            }])
            .await?;
        self.table.note_persisted(key, &commit, position);
        Ok(())
    }

    /// The committed offset of one partition.
    pub fn fetch(&self, group: &str, topic_id: Uuid, partition: i32) -> Option<CommittedOffset> {
        self.table.get(&SlotKey {
            group: group.to_string(),
            topic_id,
            partition,
        })
    }

    /// Deletes some commits of a group durably.
    pub async fn delete(&self, group: &str, keys: Vec<(Uuid, i32)>) -> Result<(), CommitError> {
        if keys.is_empty() {
            return Ok(());
        }
        let records: Vec<InternalRecord> = keys
            .iter()
            .map(|(topic_id, partition)| InternalRecord::Offset {
                group: group.to_string(),
                topic_id: *topic_id,
                partition: *partition,
                commit: None,
            })
            .collect();
        self.log.append(&records).await?;
        for (topic_id, partition) in keys {
            self.table.remove(&SlotKey {
                group: group.to_string(),
                topic_id,
                partition,
            });
        }
        Ok(())
    }

    /// Queues a group's metadata (opaque here) now, or with `None` the deletion of the group
    /// and all its commits; the future resolves once it is durable.
    pub fn submit_group(
        self: &Arc<Self>,
        group_id: &str,
        snapshot: Option<serde_json::Value>,
    ) -> impl std::future::Future<Output = Result<(), InternalLogError>> + Send + 'static {
        let deleted = snapshot.is_none();
        let group_id = group_id.to_string();
        let written = self.log.submit(vec![InternalRecord::Group {
            group_id: group_id.clone(),
            snapshot,
        }]);
        let this = self.clone();
        async move {
            written.await?;
            if deleted {
                this.table.remove_group(&group_id);
            }
            Ok(())
        }
    }
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The internal log did not take it.
    #[error(transparent)]
    Log(#[from] InternalLogError),
    /// No slot left.
    #[error(transparent)]
    Full(#[from] super::table::TableFull),
}
