//! Record values: a 16-byte stamp followed by the body.
//!
//! The stamp holds a per-run tag (so records of another run or another tool are recognised
//! and skipped) and the phase and time the record was *meant* to be sent. Consumers subtract
//! that time from their own clock to get end-to-end latency.

/// Bytes of stamp at the start of every value.
pub const HEADER_LEN: usize = 16;
/// Bits of the stamp word that hold nanoseconds (2.2 years); the top 8 hold the phase.
const NS_BITS: u32 = 56;
const NS_MASK: u64 = (1 << NS_BITS) - 1;

/// What a record's stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the phase the record was sent in.
    pub phase: u8,
    /// Intended send time, nanoseconds on [`crate::clock`].
    pub sent_ns: u64,
}

/// Packs a phase and a time into one word (also used as the delivery opaque).
pub fn pack(phase: u8, ns: u64) -> u64 {
    (u64::from(phase) << NS_BITS) | (ns & NS_MASK)
}

/// The inverse of [`pack`].
pub fn unpack(word: u64) -> Stamp {
    Stamp {
        phase: (word >> NS_BITS) as u8,
        sent_ns: word & NS_MASK,
    }
}

/// Reads the stamp of a value, or `None` if it is not one of this run's records.
pub fn decode(value: &[u8], tag: u64) -> Option<Stamp> {
    let head: &[u8; HEADER_LEN] = value.get(..HEADER_LEN)?.try_into().ok()?;
    let (tag_bytes, word_bytes) = head.split_at(8);
    if u64::from_le_bytes(tag_bytes.try_into().ok()?) != tag {
        return None;
    }
    Some(unpack(u64::from_le_bytes(word_bytes.try_into().ok()?)))
}

/// Builds values of a fixed size: a stamp, then `randomness` × body of fresh random bytes,
/// then zeros. Random bytes are drawn anew for every record because batch compression
/// (zstd's window spans a whole batch) would otherwise find repeated records and make any
/// randomness setting compress like zeros.
pub struct PayloadBuilder {
    buf: Vec<u8>,
    random_len: usize,
    tag: u64,
    rng: SplitMix64,
}

impl PayloadBuilder {
    /// `size` is at least [`HEADER_LEN`] (validated with the workload).
    pub fn new(size: usize, randomness: f64, tag: u64, seed: u64) -> Self {
        let size = size.max(HEADER_LEN);
        let body = size - HEADER_LEN;
        let random_len = ((body as f64) * randomness.clamp(0.0, 1.0)).round() as usize;
        let mut buf = vec![0u8; size];
        buf[..8].copy_from_slice(&tag.to_le_bytes());
        PayloadBuilder {
            buf,
            random_len: random_len.min(body),
            tag,
            rng: SplitMix64(seed),
        }
    }

    /// The next value, stamped with `phase` and `sent_ns`.
    pub fn next(&mut self, phase: u8, sent_ns: u64) -> &[u8] {
        self.buf[8..HEADER_LEN].copy_from_slice(&pack(phase, sent_ns).to_le_bytes());
        let random = &mut self.buf[HEADER_LEN..HEADER_LEN + self.random_len];
        for chunk in random.chunks_mut(8) {
            let word = self.rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        &self.buf
    }

    /// The run tag written in every value.
    pub fn tag(&self) -> u64 {
        self.tag
    }
}

/// SplitMix64: a tiny, fast generator; payload bytes need to be incompressible, not secret.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A seed that differs between runs and processes (run ids, tags, payload streams).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut mix =
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32) ^ crate::clock::now_ns());
    mix.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_foreign_records_are_skipped() {
        let mut builder = PayloadBuilder::new(64, 1.0, 0xDEAD_BEEF, 7);
        let value = builder.next(3, 123_456_789).to_vec();
        assert_eq!(value.len(), 64);
        assert_eq!(
            decode(&value, 0xDEAD_BEEF),
            Some(Stamp {
                phase: 3,
                sent_ns: 123_456_789
            })
        );
        assert_eq!(decode(&value, 1), None, "another run's tag");
        assert_eq!(decode(&value[..10], 0xDEAD_BEEF), None, "too short");
        assert_eq!(decode(b"", 0xDEAD_BEEF), None);
    }

    #[test]
    fn pack_keeps_phase_and_56_bits_of_time() {
        let word = pack(255, (1 << 56) + 5);
        assert_eq!(
            unpack(word),
            Stamp {
                phase: 255,
                sent_ns: 5
            }
        );
    }

    #[test]
    fn randomness_sets_the_random_fraction_and_values_differ() {
        let mut half = PayloadBuilder::new(1016, 0.5, 1, 9);
        let first = half.next(0, 0).to_vec();
        let second = half.next(0, 0).to_vec();
        assert_ne!(
            first[HEADER_LEN..],
            second[HEADER_LEN..],
            "fresh bytes per record"
        );
        assert!(first[HEADER_LEN + 500..].iter().all(|&b| b == 0));
        assert!(first[HEADER_LEN..HEADER_LEN + 500].iter().any(|&b| b != 0));

        let mut zeros = PayloadBuilder::new(100, 0.0, 1, 9);
        assert!(zeros.next(0, 0)[HEADER_LEN..].iter().all(|&b| b == 0));

        // Sizes below the stamp are raised to it rather than cut.
        assert_eq!(
            PayloadBuilder::new(4, 1.0, 1, 1).next(0, 0).len(),
            HEADER_LEN
        );
    }
}
