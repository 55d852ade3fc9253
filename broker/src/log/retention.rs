//! Retention: topics' `retention.ms` and `retention.bytes`, applied to whole segments.
//!
//! As in Kafka, data goes a segment at a time, oldest first: a segment is deleted when its
//! newest record is older than `retention.ms`, or while the partition stays at or above
//! `retention.bytes` without it. Batches not yet compacted into a segment are never deleted
//! by retention (they go at the first round after compaction).

use dfs_adapter::{Catalog, Segment, StorageError};

use super::partition::Partition;
use super::topic_config;
use super::topics::{Topic, TopicRegistry};

/// Applies retention to every topic; returns how many partitions moved their log start.
pub async fn enforce(
    topics: &TopicRegistry,
    catalog: &Catalog,
    now_ms: i64,
) -> Result<usize, StorageError> {
    let mut moved = 0;
    for topic in topics.list() {
        let Some(limits) = Limits::of(&topic) else {
            continue;
        };
        for partition in &topic.partitions {
            let segments = catalog.segments_of(&partition.key()).await;
            if let Some(start) = new_log_start(&segments, partition, limits, now_ms) {
                catalog.truncate(partition.key(), start).await?;
                partition.truncate(start);
                tracing::info!(topic = %topic.name, partition = partition.key().partition, log_start = start, "retention deleted segments");
                moved += 1;
            }
        }
    }
    Ok(moved)
}

/// A topic's retention limits (negative: none).
#[derive(Clone, Copy, Debug)]
struct Limits {
    ms: i64,
    bytes: i64,
}

impl Limits {
    /// `None` when the topic keeps everything (no limit, or no `delete` cleanup policy).
    fn of(topic: &Topic) -> Option<Limits> {
        let value = |name: &str| {
            topic
                .configs
                .get(name)
                .map(String::as_str)
                .or_else(|| topic_config::default_of(name))
                .unwrap_or("-1")
                .to_string()
        };
        if !value("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "delete")
        {
            return None;
        }
        let limits = Limits {
            ms: value("retention.ms").parse().unwrap_or(-1),
            bytes: value("retention.bytes").parse().unwrap_or(-1),
        };
        (limits.ms >= 0 || limits.bytes >= 0).then_some(limits)
    }
}

/// The log start after deleting the leading segments the limits condemn, if any.
fn new_log_start(
    segments: &[Segment],
    partition: &Partition,
    limits: Limits,
    now_ms: i64,
) -> Option<i64> {
    let mut total = partition.stored_bytes();
    let mut start = None;
    for segment in segments {
        let newest = segment.max_timestamp();
        let expired = limits.ms >= 0 && newest >= 0 && newest < now_ms.saturating_sub(limits.ms);
        let oversized =
            limits.bytes >= 0 && total.saturating_sub(segment.bytes()) >= limits.bytes as u64;
        if !(expired || oversized) {
            break;
        }
        total = total.saturating_sub(segment.bytes());
        start = Some(segment.last_offset() + 1);
    }
    start.filter(|s| *s > partition.log_start())
}
