//! The group coordinator's persistence, on the internal log.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::store::Offsets;
use crate::groups::{GroupSnapshot, GroupStore, GroupStoreError};

/// Group snapshots as `Group` records of the internal log, beside the committed offsets.
pub struct InternalGroupStore {
    offsets: Arc<Offsets>,
}

impl InternalGroupStore {
    /// Stores through `offsets`' internal log.
    pub fn new(offsets: Arc<Offsets>) -> Self {
        Self { offsets }
    }
}

impl GroupStore for InternalGroupStore {
    fn save_group(
        &self,
        snapshot: GroupSnapshot,
    ) -> BoxFuture<'static, Result<(), GroupStoreError>> {
        let value = match serde_json::to_value(&snapshot) {
            Ok(value) => value,
            Err(error) => {
                return futures::future::ready(Err(GroupStoreError::Storage(Box::new(error))))
                    .boxed()
            }
        };
        self.offsets
            .submit_group(&snapshot.group_id, Some(value))
            .map(|written| written.map_err(|e| GroupStoreError::Storage(Box::new(e))))
            .boxed()
    }

    fn delete_group(&self, group_id: String) -> BoxFuture<'static, Result<(), GroupStoreError>> {
        self.offsets
            .submit_group(&group_id, None)
            .map(|written| written.map_err(|e| GroupStoreError::Storage(Box::new(e))))
            .boxed()
    }
}

/// Snapshots replayed from the internal log; undecodable ones are logged and dropped.
pub fn decode_snapshots(values: Vec<serde_json::Value>) -> Vec<GroupSnapshot> {
    values
        .into_iter()
        .filter_map(|value| match serde_json::from_value(value) {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                tracing::error!(%error, "dropping an undecodable group snapshot");
                None
            }
        })
        .collect()
}
