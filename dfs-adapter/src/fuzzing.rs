//! Entry points for the fuzz targets in `fuzz/` (not a stable API): the decoders of bytes read
//! back from storage, which are otherwise private to this crate.

use crate::{manifest, Checkpoint, ChunkLocation, ManifestState, ObjectId};

/// Validates a whole flush object or segment held in memory, as recovery does (footer, index,
/// data CRC), and returns its chunks.
pub fn parse_object(object: ObjectId, bytes: &[u8]) -> Result<Vec<ChunkLocation>, String> {
    crate::format::parse_object(object, bytes)
}

/// Encodes a flush object holding `data` laid out as `chunks`, as the flush pipeline writes it.
pub fn encode_object(object: ObjectId, chunks: &[ChunkLocation], data: &[u8]) -> Vec<u8> {
    let (index, footer) =
        crate::format::encode_trailer(object, chunks, data.len() as u64, crc32c::crc32c(data));
    [data, &index, &footer].concat()
}

/// Parses manifest checkpoint `seq` as [`crate::Store::read_manifest`] does.
pub fn decode_checkpoint(seq: u64, bytes: &[u8]) -> Result<Checkpoint, String> {
    manifest::decode(seq, bytes)
}

/// Encodes manifest checkpoint `seq` as [`crate::Store::write_manifest`] does.
pub fn encode_checkpoint(
    seq: u64,
    writer: uuid::Uuid,
    state: &ManifestState,
) -> Result<Vec<u8>, String> {
    manifest::encode(seq, writer, state).map_err(|e| e.to_string())
}
