//! Assembly of one flush object from pending batches (layout: see the `format` module).

use std::time::Instant;

use bytes::Bytes;
use opendal::Buffer;

use super::PendingBatch;
use crate::format::encode_trailer;
use crate::{ChunkLocation, ObjectId};

/// A flush object ready to be written: its bytes as a chain of the batches' own buffers (no
/// copy), plus what the sink will be told once it is durable.
#[derive(Debug)]
pub(super) struct SealedObject {
    pub(super) id: ObjectId,
    /// Data region, index and footer. Holds the batches' `Bytes` (and thus their arena blocks)
    /// until dropped.
    pub(super) data: Buffer,
    pub(super) chunks: Vec<ChunkLocation>,
    /// Total object size.
    pub(super) bytes: u64,
    pub(super) batches: u64,
    pub(super) sealed_at: Instant,
}

/// Lays out `batches` as one object: grouped by partition (partitions in key order), each
/// partition's batches in submission order, which the broker guarantees is offset order.
pub(super) fn seal(id: ObjectId, mut batches: Vec<PendingBatch>) -> SealedObject {
    // Stable, so submission order within a partition is kept.
    batches.sort_by_key(|b| b.key);
    let batch_count = batches.len() as u64;

    let mut parts: Vec<Bytes> = Vec::with_capacity(batches.len() + 2);
    let mut chunks: Vec<ChunkLocation> = Vec::new();
    let mut position = 0u64;
    let mut crc = 0u32;
    for batch in batches {
        let len = batch.data.len() as u64;
        crc = crc32c::crc32c_append(crc, &batch.data);
        match chunks.last_mut() {
            Some(run) if run.key == batch.key => {
                run.len += len;
                run.last_offset = batch.last_offset;
                run.max_timestamp = run.max_timestamp.max(batch.max_timestamp);
                run.batches = run.batches.saturating_add(1);
            }
            _ => chunks.push(ChunkLocation {
                key: batch.key,
                object: id,
                position,
                len,
                base_offset: batch.base_offset,
                last_offset: batch.last_offset,
                max_timestamp: batch.max_timestamp,
                batches: 1,
            }),
        }
        position += len;
        parts.push(batch.data);
    }

    let (index, footer) = encode_trailer(id, &chunks, position, crc);
    let bytes = position + index.len() as u64 + footer.len() as u64;
    parts.push(index);
    parts.push(footer);
    SealedObject {
        id,
        data: Buffer::from(parts),
        chunks,
        bytes,
        batches: batch_count,
        sealed_at: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_object;
    use crate::PartitionKey;

    fn batch(partition: i32, base: i64, payload: &'static [u8]) -> PendingBatch {
        PendingBatch {
            key: PartitionKey {
                topic_id: uuid::Uuid::from_u128(1),
                partition,
            },
            base_offset: base,
            last_offset: base + 1,
            max_timestamp: base * 100,
            data: Bytes::from_static(payload),
        }
    }

    #[test]
    fn groups_partitions_into_contiguous_runs() {
        let batches = vec![
            batch(2, 0, b"p2-a"),
            batch(1, 10, b"p1-a"),
            batch(2, 2, b"p2-bb"),
            batch(1, 12, b"p1-bbb"),
        ];
        let object = seal(ObjectId(3), batches);
        let bytes = object.data.to_bytes();
        assert_eq!(bytes.len() as u64, object.bytes);
        assert_eq!(&bytes[..19], b"p1-ap1-bbbp2-ap2-bb");
        let chunks = parse_object(ObjectId(3), &bytes).unwrap();
        assert_eq!(chunks, object.chunks);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].position, chunks[0].len), (0, 10));
        assert_eq!((chunks[0].base_offset, chunks[0].last_offset), (10, 13));
        assert_eq!(chunks[0].max_timestamp, 1200);
        assert_eq!(chunks[0].batches, 2);
        assert_eq!((chunks[1].position, chunks[1].len), (10, 9));
        assert_eq!((chunks[1].base_offset, chunks[1].last_offset), (0, 3));
        assert_eq!(object.batches, 4);
    }
}
