//! The storage maintenance task: compaction, retention (of records and of idle groups'
//! offsets), deletion of obsolete objects.
//!
//! It runs every `compaction_interval_ms` on the network runtime, but the heavy part
//! (compaction reads and writes) runs where cold reads run, so it competes with catch-up
//! readers, not with produce or tailing fetch.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dfs_adapter::StorageError;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::log::retention;

/// Rounds of compaction one tick may run when a backlog waits.
const ROUNDS_PER_TICK: usize = 8;

/// Runs until `shutdown`; returns early only if this broker, running alone, was fenced off its
/// storage root.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) -> Result<(), StorageError> {
    let period = Duration::from_millis(broker.config.compaction_interval_ms);
    let retention_period = Duration::from_millis(broker.config.retention_check_interval_ms);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let retention_due = last_retention.elapsed() >= retention_period;
        match round(&broker, retention_due).await {
            Ok(()) => {}
            // Alone, a fence means another broker took the root: stop. In a cluster it may
            // only mean that the lease is in doubt for now (etcd out of reach); the node
            // closes the shard if it was really lost, which stops this task.
            Err(error @ StorageError::Fenced(_)) if broker.shard.is_none() => return Err(error),
            Err(error @ StorageError::Fenced(_)) => {
                tracing::debug!(%error, "storage maintenance paused while the lease is in doubt");
            }
            Err(error) => {
                broker.events.maintenance_failures.inc();
                tracing::warn!(%error, "storage maintenance failed; retrying next period");
            }
        }
        if retention_due {
            last_retention = Instant::now();
        }
    }
}

/// One period's work.
async fn round(broker: &Arc<Broker>, retention_due: bool) -> Result<(), StorageError> {
    let deleted = broker.catalog.delete_obsolete().await?;
    if deleted > 0 {
        tracing::debug!(deleted, "obsolete objects deleted");
    }
    if broker.config.compaction_min_objects > 0 {
        for _ in 0..ROUNDS_PER_TICK {
            if !compact_once(broker).await? {
                break;
            }
        }
    }
    if retention_due {
        retention::enforce(&broker.topics, &broker.catalog, now_ms()).await?;
        let retention = Duration::from_millis(broker.config.offsets_retention_ms);
        crate::offsets::expiry::expire_groups(&broker.offsets, &broker.groups, retention, now_ms())
            .await;
    }
    Ok(())
}

/// Flush objects a leader may leave unfolded when it hands its shard over.
const HANDOVER_UNFOLDED: usize = 16;

/// Folds flush objects into segments, round after round, until at most [`HANDOVER_UNFOLDED`]
/// are left or `limit` passed: a leader about to hand its shard over does this while it still
/// serves (so new flushes keep arriving), so that the next leader replays a few objects rather
/// than everything since the last periodic round (on an object store each replayed object is a
/// request, and a shard that keeps moving would otherwise never be compacted at all). Returns
/// the rounds run.
pub async fn compact_before_handover(broker: &Arc<Broker>, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut config = broker.config.compaction();
    config.min_objects = 1;
    config.min_bytes = 0;
    let mut rounds = 0;
    while Instant::now() < deadline && broker.catalog.flush_objects() > HANDOVER_UNFOLDED {
        let round = compact_with(broker, config.clone());
        match tokio::time::timeout_at(deadline.into(), round).await {
            Ok(Ok(true)) => rounds += 1,
            Ok(Ok(false)) | Err(_) => break,
            Ok(Err(error)) => {
                tracing::warn!(%error, "compaction before a hand-over failed");
                break;
            }
        }
    }
    rounds
}

/// One compaction round; true if it compacted something.
async fn compact_once(broker: &Arc<Broker>) -> Result<bool, StorageError> {
    compact_with(broker, broker.config.compaction()).await
}

/// One compaction round under `config`; true if it compacted something.
async fn compact_with(
    broker: &Arc<Broker>,
    config: dfs_adapter::CompactionConfig,
) -> Result<bool, StorageError> {
    let catalog = broker.catalog.clone();
    let topics = broker.topics.clone();
    let started = Instant::now();
    let work = async move {
        let keep = |key: &dfs_adapter::PartitionKey| topics.partition(key).is_some();
        catalog.compact(&config, &keep).await
    };
    let Some(outcome) = broker.cold.run_background(work).await else {
        return Ok(false);
    };
    let Some(compacted) = outcome? else {
        return Ok(false);
    };
    for segment in &compacted.segments {
        if let Some(partition) = broker.topics.partition(&segment.key) {
            partition.replace_stored(&segment.chunks);
        }
    }
    broker
        .events
        .compaction_seconds
        .observe(started.elapsed().as_secs_f64());
    broker
        .events
        .compaction_bytes_written
        .inc_by(compacted.bytes_written);
    broker
        .events
        .compaction_objects_written
        .inc_by(compacted.objects_written as u64);
    Ok(true)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
