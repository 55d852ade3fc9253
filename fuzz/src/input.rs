//! Input helpers shared by the fuzz targets (they need nothing but `crc32c`).
//!
//! Each target calls a production decoder on the fuzzer's bytes. Checksums would stop almost
//! every mutation at the first check, so a target may first repair them ([`fix_batch_crcs`],
//! [`fix_object_crcs`], [`with_checkpoint_crc`]): the fuzzer then explores what lies behind the
//! checksum, which is what a client (who computes its own CRCs) or a corrupted store can reach.
//! The first input byte chooses whether to repair, so the checks themselves are fuzzed too.

/// Whether a target should repair checksums before decoding, and the bytes to decode.
pub fn split_mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(mode, rest)| (*mode, rest))
}

/// Rewrites the CRC-32C of every v2 record batch in `buf` whose length fits, walking them as
/// the broker does (`baseOffset i64, batchLength i32`, CRC at byte 17 over bytes 21..end).
pub fn fix_batch_crcs(buf: &mut [u8]) {
    let mut at = 0usize;
    while buf.len() - at >= 61 {
        let length = i32::from_be_bytes(buf[at + 8..at + 12].try_into().unwrap());
        let Some(end) = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(at + 12))
            .filter(|end| *end <= buf.len() && *end >= at + 61)
        else {
            return;
        };
        let crc = crc32c::crc32c(&buf[at + 21..end]);
        buf[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// Footer length of a flush object (see `dfs-adapter/src/format.rs`).
pub const FOOTER_LEN: usize = 40;

/// Rewrites the index and data CRC-32Cs in a flush object's footer when the sizes it declares
/// fit the object.
pub fn fix_object_crcs(object: &mut [u8]) {
    let Some(footer_at) = object.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let field = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&object[footer_at + at..footer_at + at + n]);
        u64::from_le_bytes(b)
    };
    let data_len = field(8, 8);
    let index_len = field(16, 4);
    if data_len.checked_add(index_len) == Some(footer_at as u64) {
        let (data, rest) = object.split_at_mut(data_len as usize);
        let (index, footer) = rest.split_at_mut(index_len as usize);
        footer[20..24].copy_from_slice(&crc32c::crc32c(index).to_le_bytes());
        footer[24..28].copy_from_slice(&crc32c::crc32c(data).to_le_bytes());
    }
}

/// The object id a flush object's footer names, if it has a footer.
pub fn footer_object_id(object: &[u8]) -> Option<u64> {
    let footer_at = object.len().checked_sub(FOOTER_LEN)?;
    let id = object[footer_at..footer_at + 8].try_into().ok()?;
    Some(u64::from_le_bytes(id))
}

/// `body` followed by the checksum line a manifest checkpoint ends with.
pub fn with_checkpoint_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(format!("\ncrc32c:{:08x}\n", crc32c::crc32c(body)).as_bytes());
    out
}
