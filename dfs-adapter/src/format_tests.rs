//! Round-trip and corruption tests of the flush object format.

use super::*;

/// A small deterministic PRNG (xorshift64*) so the "fuzz" cases are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Builds a valid object with `partitions` runs of random sizes.
fn build(object: ObjectId, partitions: u32, rng: &mut Rng) -> (Vec<u8>, Vec<ChunkLocation>) {
    let topic = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let mut data = Vec::new();
    let mut chunks = Vec::new();
    for p in 0..partitions {
        let len = 1 + rng.below(300);
        let position = data.len() as u64;
        data.extend((0..len).map(|_| rng.next() as u8));
        chunks.push(ChunkLocation {
            key: PartitionKey {
                topic_id: topic,
                partition: p as i32,
            },
            object,
            position,
            len,
            base_offset: i64::from(p) * 10,
            last_offset: i64::from(p) * 10 + 4,
            max_timestamp: 1_700_000_000_000 + i64::from(p),
            batches: 1 + p % 3,
        });
    }
    let (index, footer) = encode_trailer(object, &chunks, data.len() as u64, crc32c::crc32c(&data));
    data.extend_from_slice(&index);
    data.extend_from_slice(&footer);
    (data, chunks)
}

#[test]
fn round_trip() {
    let mut rng = Rng(7);
    for partitions in [1, 2, 17] {
        let (bytes, chunks) = build(ObjectId(99), partitions, &mut rng);
        assert_eq!(parse_object(ObjectId(99), &bytes).unwrap(), chunks);
    }
}

#[test]
fn empty_object_round_trips() {
    let (index, footer) = encode_trailer(ObjectId(0), &[], 0, 0);
    let bytes = [index, footer].concat();
    assert_eq!(parse_object(ObjectId(0), &bytes).unwrap(), vec![]);
}

#[test]
fn wrong_name_is_rejected() {
    let (bytes, _) = build(ObjectId(5), 2, &mut Rng(1));
    let err = parse_object(ObjectId(6), &bytes).unwrap_err();
    assert!(err.contains("names object 5"), "{err}");
}

#[test]
fn every_truncation_is_rejected() {
    let (bytes, _) = build(ObjectId(3), 4, &mut Rng(2));
    for cut in 0..bytes.len() {
        assert!(
            parse_object(ObjectId(3), &bytes[..cut]).is_err(),
            "truncation to {cut} accepted"
        );
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let (bytes, _) = build(ObjectId(4), 3, &mut Rng(3));
    for byte in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 1 << bit;
            assert!(
                parse_object(ObjectId(4), &flipped).is_err(),
                "flip of bit {bit} in byte {byte} accepted"
            );
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(4);
    for _ in 0..2_000 {
        let len = rng.below(200) as usize;
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Give some inputs a valid magic so the deeper checks run too.
        if len >= FOOTER_LEN as usize && rng.below(2) == 0 {
            garbage[len - 8..].copy_from_slice(&MAGIC);
            garbage[len - 12..len - 10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            garbage[len - 10..len - 8].copy_from_slice(&[0, 0]);
        }
        let _ = parse_object(ObjectId(0), &garbage);
    }
}

#[test]
fn random_damage_to_valid_objects_is_rejected() {
    let mut rng = Rng(5);
    for round in 0..300 {
        let (mut bytes, _) = build(ObjectId(round), 1 + rng.below(5) as u32, &mut rng);
        // Overwrite a random span with random bytes that differ from the original.
        let start = rng.below(bytes.len() as u64) as usize;
        let end = (start + 1 + rng.below(16) as usize).min(bytes.len());
        for b in &mut bytes[start..end] {
            *b ^= 1 + (rng.next() % 255) as u8;
        }
        assert!(
            parse_object(ObjectId(round), &bytes).is_err(),
            "round {round}"
        );
    }
}

#[test]
fn index_lies_are_caught_even_with_a_matching_crc() {
    // Re-encode an index that claims a gap between chunks, with a correct CRC over the lie.
    let mut rng = Rng(6);
    let (bytes, mut chunks) = build(ObjectId(8), 2, &mut rng);
    let data_len: u64 = chunks.iter().map(|c| c.len).sum();
    chunks[1].position += 1;
    chunks[1].len -= 1;
    let crc = crc32c::crc32c(&bytes[..data_len as usize]);
    let (index, footer) = encode_trailer(ObjectId(8), &chunks, data_len, crc);
    let forged = [&bytes[..data_len as usize], &index[..], &footer[..]].concat();
    let err = parse_object(ObjectId(8), &forged).unwrap_err();
    assert!(err.contains("starts at"), "{err}");
}
