//! Rebuilding producer state from the tail of a partition after a restart.
//!
//! Only batches that could still be retried matter for duplicate detection: those written in the
//! last few flushes before the broker stopped. Reading each partition's most recent chunks
//! (at least the last `recent_objects` flush objects, and at least `min_bytes`) recovers them
//! without reading the whole log; a producer idle for longer is unknown and simply trusted with
//! its next sequence, as Kafka does once producer state has expired.
//!
//! A stored batch whose header or CRC is bad is skipped with a warning and counted (see
//! [`cold_read::skip_batch`]): one corrupt batch must not keep the broker from starting.

use dfs_adapter::{ObjectId, Store};
use futures::{StreamExt, TryStreamExt};

use super::sequences::ProducerStates;
use crate::log::cold_read::{self, ColdReadError};
use crate::log::partition::Partition;
use crate::log::record_batch::{check_crc, BatchIter};

/// Chunks of one partition read at once. On an object store each read is a round trip: read
/// one after the other, a tail of a few hundred small flushes took seconds of a take-over.
const READ_AHEAD: usize = 8;

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
    // In order (states are recorded in offset order), `READ_AHEAD` in flight.
    let mut reads = futures::stream::iter(chunks.into_iter().skip(start))
        .map(|chunk| async move {
            let data = cold_read::read_chunk(store, &chunk).await?;
            Ok::<_, ColdReadError>((chunk, data))
        })
        .buffered(READ_AHEAD);
    while let Some((chunk, data)) = reads.try_next().await? {
        for item in BatchIter::new(&data) {
            let (range, header) = match item {
                Ok(item) => item,
                Err(error) => {
                    // The next batch cannot be found without this one's length.
                    cold_read::skip_batch(&chunk, None, &error);
                    break;
                }
            };
            if let Err(error) = check_crc(&data[range]) {
                cold_read::skip_batch(&chunk, Some(header.base_offset), &error);
                continue;
            }
            if header.record_count != header.last_offset_delta.wrapping_add(1) {
                let why = format!(
                    "record count {} with last offset delta {}",
                    header.record_count, header.last_offset_delta
                );
                cold_read::skip_batch(&chunk, Some(header.base_offset), &why);
                continue;
            }
            states.record(&header, header.base_offset);
        }
    }
    states.mark_restored();
    Ok(states)
}
