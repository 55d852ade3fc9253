//! Writing a round's objects: partitions' runs of batches laid out back to back, then the index
//! and footer every stored object ends with.

use bytes::Bytes;
use opendal::Buffer;

use crate::catalog::Catalog;
use crate::format::encode_trailer;
use crate::manifest::Segment;
use crate::{ChunkLocation, ObjectId, PartitionKey, StorageError};

/// A run of batches: where it was read from, and its bytes.
pub(crate) type Run = (ChunkLocation, Bytes);

/// An object written by a round.
pub(crate) struct Written {
    pub(crate) id: ObjectId,
    /// One per part, in the order given.
    pub(crate) segments: Vec<Segment>,
    /// Bytes of record data in it.
    pub(crate) bytes: u64,
}

impl Catalog {
    /// Writes one new object holding `parts`, each partition's runs back to back as one
    /// segment, merging consecutive runs of a partition into chunks of up to `chunk_bytes`.
    pub(crate) async fn write_parts(
        &self,
        parts: &[(PartitionKey, Vec<Run>)],
        chunk_bytes: u64,
    ) -> Result<Written, StorageError> {
        let id = self.take_segment_id();
        let mut all_chunks: Vec<ChunkLocation> = Vec::new();
        let mut segments = Vec::with_capacity(parts.len());
        let mut data: Vec<Bytes> = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
        let mut position = 0u64;
        let mut crc = 0u32;
        for (key, runs) in parts {
            let mut chunks: Vec<ChunkLocation> = Vec::new();
            for (run, bytes) in runs {
                let len = bytes.len() as u64;
                crc = crc32c::crc32c_append(crc, bytes);
                match chunks.last_mut() {
                    Some(chunk) if chunk.len + len <= chunk_bytes => {
                        chunk.len += len;
                        chunk.last_offset = run.last_offset;
                        chunk.max_timestamp = chunk.max_timestamp.max(run.max_timestamp);
                        chunk.batches = chunk.batches.saturating_add(run.batches);
                    }
                    _ => chunks.push(ChunkLocation {
                        key: *key,
                        object: id,
                        position,
                        ..run.clone()
                    }),
                }
                position += len;
                data.push(bytes.clone());
            }
            all_chunks.extend_from_slice(&chunks);
            segments.push(Segment {
                id,
                key: *key,
                chunks,
            });
        }
        let (index, footer) = encode_trailer(id, &all_chunks, position, crc);
        data.push(index);
        data.push(footer);
        self.store.write_object(id, Buffer::from(data)).await?;
        Ok(Written {
            id,
            segments,
            bytes: position,
        })
    }
}

/// Bytes of record data in `runs`.
pub(crate) fn bytes_of(runs: &[Run]) -> u64 {
    runs.iter().map(|(_, b)| b.len() as u64).sum()
}

/// Consecutive groups of `runs` of at most `limit` bytes each (a larger run alone).
pub(crate) fn split_at(runs: &[Run], limit: u64) -> Vec<&[Run]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, (_, data)) in runs.iter().enumerate() {
        let len = data.len() as u64;
        if i > start && bytes + len > limit {
            groups.push(&runs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    if start < runs.len() {
        groups.push(&runs[start..]);
    }
    groups
}

/// The bytes of `chunk` within `data`, which was read from its object at `data_position`.
pub(crate) fn slice(
    data: &Bytes,
    data_position: u64,
    chunk: &ChunkLocation,
) -> Result<Bytes, StorageError> {
    let start = chunk
        .position
        .checked_sub(data_position)
        .and_then(|s| usize::try_from(s).ok());
    let end = start.and_then(|s| s.checked_add(usize::try_from(chunk.len).ok()?));
    match (start, end) {
        (Some(start), Some(end)) if end <= data.len() => Ok(data.slice(start..end)),
        _ => Err(StorageError::corrupt(
            chunk.object.key(),
            format!(
                "chunk {}+{} outside the data read",
                chunk.position, chunk.len
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(lens: &[usize]) -> Vec<Run> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let chunk = ChunkLocation {
                    key: PartitionKey {
                        topic_id: uuid::Uuid::nil(),
                        partition: 0,
                    },
                    object: ObjectId(i as u64),
                    position: 0,
                    len: len as u64,
                    base_offset: i as i64,
                    last_offset: i as i64,
                    max_timestamp: 0,
                    batches: 1,
                };
                (chunk, Bytes::from(vec![0u8; len]))
            })
            .collect()
    }

    #[test]
    fn segments_roll_at_the_target_size() {
        let all = runs(&[4, 4, 4, 20, 1, 1]);
        let sizes: Vec<Vec<usize>> = split_at(&all, 10)
            .iter()
            .map(|g| g.iter().map(|(_, b)| b.len()).collect())
            .collect();
        assert_eq!(sizes, vec![vec![4, 4], vec![4], vec![20], vec![1, 1]]);
        assert!(split_at(&[], 10).is_empty());
    }

    #[test]
    fn a_chunk_is_sliced_relative_to_where_the_data_was_read() {
        let data = Bytes::from_static(b"abcdef");
        let mut chunk = runs(&[2])[0].0.clone();
        chunk.position = 12;
        assert_eq!(slice(&data, 10, &chunk).unwrap(), Bytes::from_static(b"cd"));
        chunk.position = 9;
        assert!(slice(&data, 10, &chunk).is_err(), "before the data read");
        chunk.position = 15;
        assert!(slice(&data, 10, &chunk).is_err(), "past its end");
    }
}
