//! Targets in dfs-adapter: what recovery reads back from storage.

use dfs_adapter::fuzzing::{decode_checkpoint, parse_object};
use dfs_adapter::ObjectId;

use super::input::{fix_object_crcs, footer_object_id, split_mode, with_checkpoint_crc};

/// `flush_object`: a flush object or segment (footer, index, data CRC). Mode bit 0: repair
/// the CRCs; bit 1: name the object as its footer does (else as object 7).
pub fn flush_object(data: &[u8]) {
    let Some((mode, object)) = split_mode(data) else {
        return;
    };
    let mut object = object.to_vec();
    if mode & 1 == 1 {
        fix_object_crcs(&mut object);
    }
    let named = footer_object_id(&object).filter(|_| mode & 2 == 2);
    if let Ok(chunks) = parse_object(ObjectId(named.unwrap_or(7)), &object) {
        // Accepted chunks lie inside the data region, in order, without overlap.
        let mut end = 0;
        for chunk in chunks {
            assert_eq!(chunk.position, end);
            end = chunk.position + chunk.len;
        }
        assert!(end <= object.len() as u64);
    }
}

/// The sequence number the manifest seeds are written for.
pub const MANIFEST_SEQ: u64 = 5;

/// `manifest`: a manifest checkpoint. Mode bit 0: the input is the JSON body; a valid checksum
/// line is appended so that mutations reach the parser.
pub fn manifest(data: &[u8]) {
    let Some((mode, file)) = split_mode(data) else {
        return;
    };
    let _ = if mode & 1 == 1 {
        decode_checkpoint(MANIFEST_SEQ, &with_checkpoint_crc(file))
    } else {
        decode_checkpoint(MANIFEST_SEQ, file)
    };
}
