//! Start-up recovery: find the flush objects that were (or may have been) acknowledged.

use tracing::{info, warn};

use crate::format::{self, Footer, FOOTER_LEN};
use crate::types::WAL_DIR;
use crate::{ChunkLocation, ObjectId, StorageError, Store};

/// What [`Store::recover`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered {
    /// Chunks of all adopted objects, in object order, and within an object in write order.
    pub chunks: Vec<ChunkLocation>,
    /// The sequence number the flush pipeline must use next.
    pub next_object: ObjectId,
    /// Number of adopted objects.
    pub objects: usize,
    /// Objects that were invalid or came after a gap or an invalid object; all deleted.
    pub discarded: Vec<ObjectId>,
}

impl Store {
    /// Lists flush objects, validates each (footer magic and sizes, index CRC, data CRC), adopts
    /// the longest run of valid objects with consecutive sequence numbers starting at the
    /// lowest present, and deletes everything after the first gap or invalid object.
    ///
    /// Deleting is safe because acknowledgements are given strictly in object order: an object
    /// after a missing or torn one was never acknowledged. The deletions are durable before
    /// this returns, so the pipeline can reuse their sequence numbers.
    ///
    /// Files in `wal/` that are not named like flush objects are ignored (and logged).
    pub async fn recover(&self) -> Result<Recovered, StorageError> {
        let mut ids = self.list_objects().await?;
        ids.sort_unstable();

        let mut chunks = Vec::new();
        let mut adopted = 0usize;
        let mut next_object = ids.first().copied().unwrap_or(ObjectId(0));
        let mut cut = ids.len();
        for (i, &id) in ids.iter().enumerate() {
            if id != next_object {
                warn!(missing = %next_object, "gap in flush objects; discarding the rest");
                cut = i;
                break;
            }
            match self.validate_object(id).await {
                Ok(found) => {
                    chunks.extend(found);
                    adopted += 1;
                    next_object = id.next();
                }
                Err(StorageError::Corrupt { object, reason }) => {
                    warn!(%object, %reason, "invalid flush object; discarding it and the rest");
                    cut = i;
                    break;
                }
                // Could not even read it: a transient problem must not cost data.
                Err(other) => return Err(other),
            }
        }

        let discarded = ids.split_off(cut);
        // Newest first: if we crash half-way, what is left still starts with an invalid object
        // or a gap, and the next recovery finishes the job.
        for id in discarded.iter().rev() {
            let key = id.key();
            self.op()
                .delete(&key)
                .await
                .map_err(StorageError::backend(format!("delete {key}")))?;
        }
        if !discarded.is_empty() {
            self.sync_wal_dir().await?;
        }
        info!(
            objects = adopted,
            chunks = chunks.len(),
            discarded = discarded.len(),
            next = %next_object,
            "recovery finished"
        );
        Ok(Recovered {
            chunks,
            next_object,
            objects: adopted,
            discarded,
        })
    }

    /// Ids of all flush objects in `wal/`, unordered.
    async fn list_objects(&self) -> Result<Vec<ObjectId>, StorageError> {
        let entries = self
            .op()
            .list(WAL_DIR)
            .await
            .map_err(StorageError::backend(format!("list {WAL_DIR}")))?;
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.path() == WAL_DIR {
                continue; // some backends list the directory itself
            }
            match ObjectId::from_file_name(entry.name()) {
                Some(id) if entry.metadata().is_file() => ids.push(id),
                _ => warn!(object = %entry.path(), "ignoring stray entry in wal/"),
            }
        }
        Ok(ids)
    }

    /// Reads and checks one object: footer (one ranged read of the tail), index, data CRC.
    async fn validate_object(&self, id: ObjectId) -> Result<Vec<ChunkLocation>, StorageError> {
        let key = id.key();
        let corrupt = |reason: String| StorageError::corrupt(&key, reason);
        let size = self
            .op()
            .stat(&key)
            .await
            .map_err(StorageError::backend(format!("stat {key}")))?
            .content_length();
        let footer_start = size
            .checked_sub(FOOTER_LEN)
            .ok_or_else(|| corrupt(format!("{size} bytes is shorter than a footer")))?;
        let tail = self.read_buffer(&key, footer_start, FOOTER_LEN).await?;
        let footer = Footer::decode(&tail.to_bytes(), id, size).map_err(corrupt)?;
        let range = footer.index_range();
        let index = self
            .read_buffer(&key, range.start, range.end - range.start)
            .await?;
        let chunks = format::decode_index(&index.to_bytes(), &footer, id).map_err(corrupt)?;
        // Reads the whole data region; compaction will keep recovery's object count small.
        let data = self.read_buffer(&key, 0, footer.data_len).await?;
        format::check_data(data, &footer).map_err(corrupt)?;
        Ok(chunks)
    }
}
