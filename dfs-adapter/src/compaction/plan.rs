//! Which stored segments a compaction round rewrites, decided from the manifest alone.
//!
//! A partition's newest segments that live in shared objects are its *tail*. The round leaves a
//! tail alone (its new data becomes one more segment in this round's shared object) until one of
//! these holds, and then rewrites the tail together with the new data:
//! - tail plus new data reach [`CompactionConfig::own_object_bytes`]: the partition has enough
//!   for objects of its own (so every byte is uploaded at most twice, where rewriting a small
//!   segment every round would upload it again and again);
//! - the tail has [`MAX_TAIL_SEGMENTS`] segments (so the manifest stays small for a partition
//!   that receives a little in every round);
//! - one of its objects is mostly dead: fewer than half of the bytes it was written with are
//!   still in live segments (retention, deleted topics, and tails rewritten away), so that a
//!   quiet partition does not pin a large object holding little else.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::{ManifestState, Segment};
use crate::{CompactionConfig, ObjectId, PartitionKey};

/// A partition's tail is rewritten once it has this many segments.
pub(crate) const MAX_TAIL_SEGMENTS: usize = 16;

/// The partitions whose new data goes to objects of their own this round (as far as it fills
/// them), each with its tail to rewrite before that data (in offset order; empty for a
/// partition without one). `new_bytes` holds the bytes each partition receives from this
/// round's flush objects; a partition absent from it can be here only to leave a mostly dead
/// object.
pub(crate) fn tails_to_rewrite(
    state: &ManifestState,
    new_bytes: &BTreeMap<PartitionKey, u64>,
    config: &CompactionConfig,
) -> BTreeMap<PartitionKey, Vec<Segment>> {
    let written: HashMap<ObjectId, u64> = state.shared.iter().copied().collect();
    let tails = tails(state, &written);
    let mut rewrite: BTreeMap<PartitionKey, Vec<Segment>> = BTreeMap::new();
    for (key, new) in new_bytes {
        let tail = tails.get(key).map_or(&[][..], Vec::as_slice);
        let bytes: u64 = tail.iter().map(|s| s.bytes()).sum();
        if bytes + new >= config.own_object_bytes() || tail.len() >= MAX_TAIL_SEGMENTS {
            rewrite.insert(*key, tail.to_vec());
        }
    }
    // Live bytes per shared object once the tails above are rewritten.
    let mut live: HashMap<ObjectId, u64> = HashMap::new();
    for segment in state
        .segments
        .iter()
        .filter(|s| written.contains_key(&s.id))
    {
        let moving = rewrite
            .get(&segment.key)
            .is_some_and(|tail| tail.contains(segment));
        if !moving {
            *live.entry(segment.id).or_default() += segment.bytes();
        }
    }
    let emptied: Vec<ObjectId> = live
        .iter()
        .filter(|(id, bytes)| **bytes > 0 && **bytes * 2 < written[*id])
        .map(|(id, _)| *id)
        .collect();
    for (key, tail) in &tails {
        if tail.iter().any(|s| emptied.contains(&s.id)) {
            rewrite.entry(*key).or_insert_with(|| tail.clone());
        }
    }
    rewrite
}

/// Every partition's tail: its newest segments that live in shared objects (non-empty only).
fn tails(
    state: &ManifestState,
    written: &HashMap<ObjectId, u64>,
) -> BTreeMap<PartitionKey, Vec<Segment>> {
    let mut by_key: BTreeMap<PartitionKey, Vec<&Segment>> = BTreeMap::new();
    for segment in &state.segments {
        by_key.entry(segment.key).or_default().push(segment);
    }
    let mut tails = BTreeMap::new();
    for (key, mut segments) in by_key {
        segments.sort_by_key(|s| s.base_offset());
        let own = segments
            .iter()
            .rposition(|s| !written.contains_key(&s.id))
            .map_or(0, |i| i + 1);
        if own < segments.len() {
            let tail = segments[own..].iter().map(|s| (*s).clone()).collect();
            tails.insert(key, tail);
        }
    }
    tails
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkLocation;

    fn key(partition: i32) -> PartitionKey {
        PartitionKey {
            topic_id: uuid::Uuid::nil(),
            partition,
        }
    }

    /// A segment of `key` in object `object` holding `bytes` at offsets `base..base + 1`.
    fn segment(object: u64, partition: i32, base: i64, bytes: u64) -> Segment {
        let id = ObjectId::segment(object);
        Segment {
            id,
            key: key(partition),
            chunks: vec![ChunkLocation {
                key: key(partition),
                object: id,
                position: 0,
                len: bytes,
                base_offset: base,
                last_offset: base,
                max_timestamp: 0,
                batches: 1,
            }],
        }
    }

    fn config() -> CompactionConfig {
        CompactionConfig {
            segment_target_bytes: 400,
            ..CompactionConfig::default()
        }
    }

    fn state(segments: Vec<Segment>, shared: &[(u64, u64)]) -> ManifestState {
        ManifestState {
            segments,
            shared: shared
                .iter()
                .map(|&(id, bytes)| (ObjectId::segment(id), bytes))
                .collect(),
            ..ManifestState::default()
        }
    }

    fn news(entries: &[(i32, u64)]) -> BTreeMap<PartitionKey, u64> {
        entries.iter().map(|&(p, b)| (key(p), b)).collect()
    }

    #[test]
    fn a_tail_is_rewritten_once_it_and_the_new_data_fill_an_object_of_its_own() {
        // own_object_bytes = 100; partition 0 has an own segment, then a tail of 2 in objects 2, 3.
        let s = state(
            vec![
                segment(1, 0, 0, 300),
                segment(2, 0, 1, 30),
                segment(3, 0, 2, 30),
                segment(2, 1, 0, 30),
                segment(3, 1, 1, 30),
            ],
            &[(2, 60), (3, 60)],
        );
        let rewrite = tails_to_rewrite(&s, &news(&[(0, 39), (1, 10)]), &config());
        assert!(
            rewrite.is_empty(),
            "99 bytes stay in shared objects: {rewrite:?}"
        );
        let rewrite = tails_to_rewrite(&s, &news(&[(0, 40), (1, 10)]), &config());
        assert_eq!(rewrite.keys().copied().collect::<Vec<_>>(), vec![key(0)]);
        assert_eq!(
            rewrite[&key(0)],
            vec![s.segments[1].clone(), s.segments[2].clone()]
        );
        // Without a tail, enough new data alone goes to an object of its own.
        let rewrite = tails_to_rewrite(&s, &news(&[(2, 100), (3, 99)]), &config());
        assert_eq!(
            rewrite.into_iter().collect::<Vec<_>>(),
            vec![(key(2), vec![])]
        );
    }

    #[test]
    fn a_long_tail_is_rewritten_however_small() {
        let segments: Vec<Segment> = (0..MAX_TAIL_SEGMENTS as u64)
            .map(|i| segment(i, 0, i as i64, 1))
            .collect();
        let shared: Vec<(u64, u64)> = (0..MAX_TAIL_SEGMENTS as u64).map(|i| (i, 1)).collect();
        let s = state(segments.clone(), &shared);
        let rewrite = tails_to_rewrite(&s, &news(&[(0, 1)]), &config());
        assert_eq!(rewrite[&key(0)], segments);
        let s = state(segments[1..].to_vec(), &shared[1..]);
        assert!(tails_to_rewrite(&s, &news(&[(0, 1)]), &config()).is_empty());
    }

    #[test]
    fn an_object_left_less_than_half_live_is_emptied_of_quiet_partitions() {
        // Object 5 was written with 100 bytes: partition 0's 60 are rewritten this round, which
        // leaves partition 1's 30 (of 100) there: partition 1 moves too, though it is quiet.
        // Object 6 keeps 40 of 70 live: partition 2 stays.
        let s = state(
            vec![
                segment(5, 0, 0, 60),
                segment(5, 1, 0, 30),
                segment(6, 1, 1, 10),
                segment(6, 2, 0, 40),
            ],
            &[(5, 100), (6, 70)],
        );
        let rewrite = tails_to_rewrite(&s, &news(&[(0, 40)]), &config());
        assert_eq!(
            rewrite.keys().copied().collect::<Vec<_>>(),
            vec![key(0), key(1)]
        );
        assert_eq!(
            rewrite[&key(1)],
            vec![s.segments[1].clone(), s.segments[2].clone()],
            "the whole tail moves, in offset order"
        );
        // Retention took 60 of object 6's 70 bytes: its last partition moves out.
        let s = state(vec![segment(6, 2, 5, 10)], &[(6, 70)]);
        assert_eq!(tails_to_rewrite(&s, &news(&[]), &config()).len(), 1);
    }
}
