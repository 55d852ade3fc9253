//! Which shard a partition or a consumer group belongs to, and where a shard's data lives.
//!
//! Fixed for the life of a cluster: a hash of the partition (topic id and index) or of the
//! group id, modulo the cluster's shard count, by the cluster's placement version.

use uuid::Uuid;

use super::model::ClusterSettings;

/// The placement of clusters created from now on.
pub const PLACEMENT: u32 = 1;

/// The shard of partition `partition` of the topic with id `topic_id`.
pub fn of_partition(topic_id: Uuid, partition: i32, settings: ClusterSettings) -> u32 {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(topic_id.as_bytes());
    key[16..].copy_from_slice(&partition.to_be_bytes());
    place(crc32c::crc32c(&key), settings)
}

/// The shard of consumer group `group` (its coordinator and committed offsets live there).
pub fn of_group(group: &str, settings: ClusterSettings) -> u32 {
    let hash = crc32c::crc32c_append(crc32c::crc32c(b"group:"), group.as_bytes());
    place(hash, settings)
}

/// A shard from a CRC of the key. A CRC is linear: the keys of one topic differ only in the
/// partition's low bits, and placement 0 (the bare CRC modulo a power of two) put a topic's
/// partitions on half the shards. Placement 1 scrambles the CRC first (MurmurHash3's
/// finalizer), so that every output bit depends on every input bit.
fn place(crc: u32, settings: ClusterSettings) -> u32 {
    let hash = match settings.placement {
        0 => crc,
        _ => fmix32(crc),
    };
    hash % settings.shards.max(1)
}

/// MurmurHash3's 32-bit finalizer: a bijection with full avalanche.
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The storage URL of shard `shard` under the cluster's storage URL: the path gains
/// `/shards/<shard, 5 digits>`, the query stays.
pub fn storage_url(url: &str, shard: u32) -> String {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let mut shard_url = format!("{}/shards/{shard:05}", path.trim_end_matches('/'));
    if let Some(query) = query {
        shard_url.push('?');
        shard_url.push_str(query);
    }
    shard_url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_root_sits_under_the_cluster_root_with_its_options() {
        assert_eq!(storage_url("fs:///data/", 3), "fs:///data/shards/00003");
        assert_eq!(
            storage_url("s3://b/p?endpoint=http://h:1&region=r", 12),
            "s3://b/p/shards/00012?endpoint=http://h:1&region=r"
        );
        assert_eq!(storage_url("s3://b", 0), "s3://b/shards/00000");
    }

    /// Where placement 0 put partitions 0..6 of topic 42 and group `group-1`, of 16 shards.
    const PLACED_BY_0: [u32; 6] = [0, 3, 7, 4, 15, 12];
    const GROUP_BY_0: u32 = 4;

    fn settings(shards: u32) -> ClusterSettings {
        ClusterSettings {
            shards,
            placement: PLACEMENT,
        }
    }

    #[test]
    fn partitions_and_groups_spread_over_every_shard() {
        let topic = Uuid::from_u128(42);
        let mut seen = [0usize; 8];
        for p in 0..800 {
            seen[of_partition(topic, p, settings(8)) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        let mut groups = [0usize; 8];
        for g in 0..800 {
            groups[of_group(&format!("group-{g}"), settings(8)) as usize] += 1;
        }
        assert!(groups.iter().all(|n| *n > 50), "{groups:?}");
        assert_eq!(of_group("g", settings(8)), of_group("g", settings(8)));
    }

    #[test]
    fn each_topics_partitions_reach_every_shard() {
        // Placement 0 left half the shards of a power-of-two count without any partition of a
        // topic (the CRC's low bits are linear in the partition's).
        for t in 0..100u128 {
            let topic = Uuid::from_u128(t.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            for shards in [2, 4] {
                let mut seen = vec![0usize; shards as usize];
                for p in 0..32 {
                    seen[of_partition(topic, p, settings(shards)) as usize] += 1;
                }
                assert!(seen.iter().all(|n| *n > 0), "topic {t}: {seen:?}");
            }
            let mut seen = [0usize; 16];
            for p in 0..256 {
                seen[of_partition(topic, p, settings(16)) as usize] += 1;
            }
            assert!(seen.iter().all(|n| *n > 0), "topic {t}: {seen:?}");
        }
    }

    #[test]
    fn a_cluster_created_with_placement_0_keeps_it() {
        let legacy = ClusterSettings {
            shards: 16,
            placement: 0,
        };
        let topic = Uuid::from_u128(42);
        let placed: Vec<u32> = (0..6).map(|p| of_partition(topic, p, legacy)).collect();
        assert_eq!(placed, PLACED_BY_0);
        assert_eq!(of_group("group-1", legacy), GROUP_BY_0);
        let old: ClusterSettings = serde_json::from_str(r#"{"shards":16}"#).unwrap();
        assert_eq!(old, legacy, "settings written before placements existed");
    }
}
