//! Rebuilding producer state from the tail of a partition after a restart.
//!
//! Only batches that could still be retried matter for duplicate detection: those written in the
//! last few flushes before the broker stopped. Reading each partition's most recent chunks
//! (at least the last `recent_objects` flush objects, and at least `min_bytes`) recovers them
//! without reading the whole log; a producer idle for longer is unknown and simply trusted with
//! its next sequence, as Kafka does once producer state has expired.

use dfs_adapter::{ObjectId, Store};

use super::sequences::ProducerStates;
use crate::log::cold_read::{self, ColdReadError};
use crate::log::partition::Partition;
use crate::log::record_batch::BatchIter;

/// How far back to read.
#[derive(Clone, Copy, Debug)]
pub struct TailWindow {
    /// Chunks in objects at or after this one are always read.
    pub since_object: ObjectId,
    /// Older chunks are read until this many bytes were read.
    pub min_bytes: u64,
}

/// Producer state of `partition` from its stored tail.
pub async fn rebuild(
    store: &Store,
    partition: &Partition,
    window: TailWindow,
) -> Result<ProducerStates, ColdReadError> {
    let chunks = partition.stored_chunks();
    let mut start = chunks.len();
    let mut bytes = 0u64;
    while start > 0 {
        let chunk = &chunks[start - 1];
        let old = chunk.object.is_segment() || chunk.object < window.since_object;
        if old && bytes >= window.min_bytes {
            break;
        }
        bytes += chunk.len;
        start -= 1;
    }
    let mut states = ProducerStates::default();
    for chunk in &chunks[start..] {
        let data = cold_read::load_chunk(store, chunk).await?;
        for item in BatchIter::new(&data) {
            match item {
                Ok((_, header)) => states.record(&header, header.base_offset),
                Err(error) => {
                    return Err(ColdReadError::Corrupt {
                        object: chunk.object.key(),
                        reason: error.to_string(),
                    })
                }
            }
        }
    }
    Ok(states)
}
