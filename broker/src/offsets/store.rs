//! Durable commits: the internal log first, then the table.
//!
//! Every change is queued on the internal log at once, in the order of the calls, and applied
//! to the table by the log's completion task in log order once durable. So commits sent one
//! after another on a connection take effect in that order, and the table a running broker
//! holds is exactly what a replay of the log rebuilds after a crash.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use super::table::{OffsetTable, SlotKey};
use crate::internal::{
    CommittedOffset, InternalLog, InternalLogError, InternalRecord, LoggedRecord,
};

/// Committed offsets with their durability.
pub struct Offsets {
    table: Arc<OffsetTable>,
    log: Arc<InternalLog>,
    /// Held while a one-sided slot is read and its value queued, so that two persists of one
    /// slot reach the log in the order they read it.
    persist_order: Mutex<()>,
}

impl Offsets {
    /// Wraps an empty table; fill it with [`Offsets::replay`].
    pub fn new(table: OffsetTable, log: Arc<InternalLog>) -> Self {
        Self {
            table: Arc::new(table),
            log,
            persist_order: Mutex::new(()),
        }
    }

    /// The table (for reads and for the RDMA path).
    pub fn table(&self) -> &OffsetTable {
        &self.table
    }

    /// Applies the internal log's records, in offset order, to the table, as the running
    /// broker applied them.
    pub fn replay(&self, records: &[LoggedRecord]) {
        replay_into(&self.table, records);
    }

    /// Queues the commits of one group now; the future resolves once they are durable and
    /// visible. Commits queued earlier take effect earlier.
    pub fn commit(
        &self,
        group: &str,
        commits: Vec<(Uuid, i32, CommittedOffset)>,
    ) -> impl Future<Output = Result<(), CommitError>> + Send + 'static {
        let keyed: Vec<(SlotKey, CommittedOffset)> = commits
            .into_iter()
            .map(|(topic_id, partition, commit)| {
                let key = SlotKey {
                    group: group.to_string(),
                    topic_id,
                    partition,
                };
                (key, commit)
            })
            .collect();
        let queued = if keyed.is_empty() {
            None
        } else if let Err(full) = self.table.check_room(keyed.iter().map(|(key, _)| key)) {
            Some(Err(full))
        } else {
            let records = keyed
                .iter()
                .map(|(key, commit)| InternalRecord::Offset {
                    group: key.group.clone(),
                    topic_id: key.topic_id,
                    partition: key.partition,
                    commit: Some(commit.clone()),
                    based_on: None,
                })
                .collect();
            let table = self.table.clone();
            Some(Ok(self.log.submit_then(records, move |base| {
                for (i, (key, commit)) in keyed.into_iter().enumerate() {
                    tracing::trace!(
                        group = key.group,
                        partition = key.partition,
                        offset = commit.offset,
                        log_offset = base + i as i64,
                        "commit applied"
                    );
                    if let Err(error) = table.set(key, &commit, base + i as i64) {
                        // Only if the table filled between the check and now.
                        tracing::error!(%error, "durable commit not applied");
                    }
                }
            })))
        };
        async move {
            match queued {
                None => Ok(()),
                Some(Err(full)) => Err(CommitError::Full(full)),
                Some(Ok(written)) => written.await.map(|_| ()).map_err(CommitError::from),
            }
        }
    }

    /// Makes what a one-sided writer left in `key`'s slot durable: reads the word and queues
    /// it like a commit, but leaves the word alone (the writer may move it again meanwhile; the
    /// next persist picks that up). Returns the value made durable, or `None` when `key` holds
    /// no slot any more.
    ///
    /// The record names the commit the word was read over, so that a commit queued before it
    /// but applied after the read (which overwrites the word at run time) also wins at replay.
    pub async fn persist_slot(&self, key: &SlotKey) -> Result<Option<i64>, CommitError> {
        let (offset, written) = {
            let _order = self.persist_order.lock();
            let Some((mut commit, based_on)) = self.table.read_for_persist(key) else {
                return Ok(None);
            };
            commit.commit_timestamp = crate::internal::log::now_ms();
            let offset = commit.offset;
            let written = self.log.submit(vec![InternalRecord::Offset {
                group: key.group.clone(),
                topic_id: key.topic_id,
                partition: key.partition,
                commit: Some(commit),
                based_on: Some(based_on),
            }]);
            (offset, written)
        };
        written.await?;
        Ok(Some(offset))
    }

    /// The committed offset of one partition.
    pub fn fetch(&self, group: &str, topic_id: Uuid, partition: i32) -> Option<CommittedOffset> {
        self.table.get(&SlotKey {
            group: group.to_string(),
            topic_id,
            partition,
        })
    }

    /// Queues the deletion of some commits of a group now; the future resolves once it is
    /// durable and applied.
    pub fn delete(
        &self,
        group: &str,
        keys: Vec<(Uuid, i32)>,
    ) -> impl Future<Output = Result<(), CommitError>> + Send + 'static {
        let keys: Vec<SlotKey> = keys
            .into_iter()
            .map(|(topic_id, partition)| SlotKey {
                group: group.to_string(),
                topic_id,
                partition,
            })
            .collect();
        let queued = (!keys.is_empty()).then(|| {
            let records = keys
                .iter()
                .map(|key| InternalRecord::Offset {
                    group: key.group.clone(),
                    topic_id: key.topic_id,
                    partition: key.partition,
                    commit: None,
                    based_on: None,
                })
                .collect();
            let table = self.table.clone();
            self.log.submit_then(records, move |_| {
                for key in &keys {
                    table.remove(key);
                }
            })
        });
        async move {
            if let Some(written) = queued {
                written.await?;
            }
            Ok(())
        }
    }

    /// Queues a group's metadata (opaque here) now, or with `None` the deletion of the group
    /// and all its commits; the future resolves once it is durable.
    pub fn submit_group(
        &self,
        group_id: &str,
        snapshot: Option<serde_json::Value>,
    ) -> impl Future<Output = Result<(), InternalLogError>> + Send + 'static {
        let deleted = snapshot.is_none();
        let records = vec![InternalRecord::Group {
            group_id: group_id.to_string(),
            snapshot,
        }];
        let written = if deleted {
            let table = self.table.clone();
            let group_id = group_id.to_string();
            futures::future::Either::Left(
                self.log
                    .submit_then(records, move |_| table.remove_group(&group_id)),
            )
        } else {
            futures::future::Either::Right(self.log.submit(records))
        };
        async move { written.await.map(|_| ()) }
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

/// Applies internal-log records, in the order given, to `table`: the replay rules of committed
/// offsets.
pub fn replay_into(table: &OffsetTable, records: &[LoggedRecord]) {
    for LoggedRecord { offset, record } in records {
        match record {
            InternalRecord::Offset {
                group,
                topic_id,
                partition,
                commit,
                based_on,
            } => {
                let key = SlotKey {
                    group: group.clone(),
                    topic_id: *topic_id,
                    partition: *partition,
                };
                match (commit, based_on) {
                    (Some(commit), Some(based_on)) => {
                        table.apply_persisted(&key, commit.offset, *based_on);
                    }
                    (Some(commit), None) => {
                        tracing::trace!(
                            group,
                            partition,
                            offset = commit.offset,
                            log_offset = offset,
                            "commit replayed"
                        );
                        if let Err(error) = table.set(key, commit, *offset) {
                            tracing::error!(%error, "committed offset dropped at replay");
                        }
                    }
                    (None, _) => table.remove(&key),
                }
            }
            InternalRecord::Group {
                group_id,
                snapshot: None,
            } => table.remove_group(group_id),
            _ => {}
        }
    }
}
