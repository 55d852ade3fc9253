//! Producer-id allocation that never repeats an id, across restarts too.
//!
//! Ids are handed out from blocks; a block is recorded durably in the internal log before any id
//! in it is used, so a restarted broker starts after the last block ever reserved.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::internal::{InternalLog, InternalRecord};

/// Ids reserved per internal-log write.
const BLOCK: i64 = 1000;

struct IdState {
    next: i64,
    block_end: i64,
    /// Current epoch of producers seen since start (for InitProducerId epoch bumps).
    epochs: HashMap<i64, i16>,
}

/// Hands out producer ids and epochs.
pub struct ProducerIds {
    state: tokio::sync::Mutex<IdState>,
    log: Arc<InternalLog>,
}

impl ProducerIds {
    /// Starts after every block found in the replayed internal log.
    pub fn new(log: Arc<InternalLog>, records: &[InternalRecord]) -> Self {
        Self::with_floor(log, records, 0)
    }

    /// Like [`ProducerIds::new`], never handing out an id below `floor` (a cluster shard's
    /// range).
    pub fn with_floor(log: Arc<InternalLog>, records: &[InternalRecord], floor: i64) -> Self {
        let end = reserved_end(records).max(floor);
        Self {
            state: tokio::sync::Mutex::new(IdState {
                next: end,
                block_end: end,
                epochs: HashMap::new(),
            }),
            log,
        }
    }

    /// InitProducerId for an idempotent producer: a new id at epoch 0, or, when the client
    /// names its current id and epoch (KIP-360), the same id at the next epoch.
    pub async fn init(&self, current: Option<(i64, i16)>) -> Result<(i64, i16), ResponseError> {
        let mut state = self.state.lock().await;
        if let Some((id, epoch)) = current {
            match state.epochs.get(&id) {
                Some(&known) if known != epoch => return Err(ResponseError::InvalidProducerEpoch),
                _ if epoch < i16::MAX - 1 => {
                    state.epochs.insert(id, epoch + 1);
                    return Ok((id, epoch + 1));
                }
                // Epoch exhausted: a fresh id below.
                _ => {}
            }
        }
        if state.next == state.block_end {
            let end = state.block_end + BLOCK;
            self.log
                .append(&[InternalRecord::ProducerIdBlock { end }])
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot reserve producer ids");
                    ResponseError::CoordinatorNotAvailable
                })?;
            state.block_end = end;
        }
        let id = state.next;
        state.next += 1;
        state.epochs.insert(id, 0);
        Ok((id, 0))
    }
}

/// The end of the highest producer-id block among `records` (0: none).
pub(crate) fn reserved_end(records: &[InternalRecord]) -> i64 {
    records
        .iter()
        .filter_map(|r| match r {
            InternalRecord::ProducerIdBlock { end } => Some(*end),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}
