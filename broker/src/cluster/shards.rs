//! Which shard a partition or a consumer group belongs to, and where a shard's data lives.
//!
//! Fixed for the life of a cluster: a hash of the partition (topic id and index) or of the
//! group id, modulo the cluster's shard count.

use uuid::Uuid;

/// The shard of partition `partition` of the topic with id `topic_id`.
pub fn of_partition(topic_id: Uuid, partition: i32, shards: u32) -> u32 {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(topic_id.as_bytes());
    key[16..].copy_from_slice(&partition.to_be_bytes());
    crc32c::crc32c(&key) % shards.max(1)
}

/// The shard of consumer group `group` (its coordinator and committed offsets live there).
pub fn of_group(group: &str, shards: u32) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(b"group:"), group.as_bytes()) % shards.max(1)
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

    #[test]
    fn partitions_and_groups_spread_over_every_shard() {
        let topic = Uuid::from_u128(42);
        let mut seen = [0usize; 8];
        for p in 0..800 {
            seen[of_partition(topic, p, 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        let mut groups = [0usize; 8];
        for g in 0..800 {
            groups[of_group(&format!("group-{g}"), 8) as usize] += 1;
        }
        assert!(groups.iter().all(|n| *n > 50), "{groups:?}");
        assert_eq!(of_group("g", 8), of_group("g", 8));
    }
}
