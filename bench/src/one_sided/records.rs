//! Record values out of an uncompressed Kafka v2 record batch (for the one-sided consumer,
//! which receives whole batches).

/// Bytes of a v2 batch header before its records.
const RECORDS_START: usize = 61;

/// The values of the records in `batch`, or `None` if it is compressed or malformed.
pub fn values(batch: &[u8]) -> Option<Vec<&[u8]>> {
    if batch.len() < RECORDS_START {
        return None;
    }
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    if attributes & 0x07 != 0 {
        return None; // compressed
    }
    let count = i32::from_be_bytes(batch[57..61].try_into().ok()?);
    let mut at = RECORDS_START;
    let mut out = Vec::with_capacity(usize::try_from(count).ok()?);
    for _ in 0..count {
        let length = varint(batch, &mut at)?;
        let end = at.checked_add(usize::try_from(length).ok()?)?;
        let mut p = at + 1; // attributes
        varint(batch, &mut p)?; // timestamp delta
        varint(batch, &mut p)?; // offset delta
        let key = varint(batch, &mut p)?;
        if key > 0 {
            p += usize::try_from(key).ok()?;
        }
        let value = varint(batch, &mut p)?;
        if value >= 0 {
            let value_end = p.checked_add(usize::try_from(value).ok()?)?;
            out.push(batch.get(p..value_end)?);
        }
        at = end;
    }
    Some(out)
}

/// A zigzag varint at `*at`, advancing it.
fn varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints() {
        for (bytes, want) in [
            (&[0x00][..], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0xac, 0x02], 150),
        ] {
            let mut at = 0;
            assert_eq!(varint(bytes, &mut at), Some(want), "{bytes:?}");
        }
        assert_eq!(varint(&[0x80], &mut 0), None);
    }
}
