//! From "the object is durable" to "the producer is answered and the consumer woken".

use std::sync::Arc;
use std::time::Duration;

use dfs_adapter::{Catalog, FlushEvent};
use tokio::sync::watch;

use crate::log::partition::Partition;
use crate::log::topics::TopicRegistry;
use crate::metrics::Events;

/// Whether the flush pipeline is currently failing to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageHealth {
    /// Failed write attempts since start.
    pub failures: u64,
    /// True from a failed attempt until the next durable object.
    pub failing: bool,
    /// The last failure, for error messages.
    pub last_error: Option<String>,
}

/// The pipeline's sink: moves high watermarks (waking acks=all producers and long-poll fetches)
/// and tracks storage health. Called in object order.
///
/// In a cluster, `may_acknowledge` says whether this broker still surely leads the shard. An
/// object delivered while it does not may have become durable after another broker took the
/// shard over without it, so it is held back, unseen and unacknowledged, with every object
/// after it (order is kept); if the same lease turns out to be alive (etcd was out of reach,
/// no one took over), they are applied with the next delivery. If the shard was lost, the
/// broker closes and they never are.
pub fn flush_sink(
    topics: Arc<TopicRegistry>,
    catalog: Arc<Catalog>,
    health: watch::Sender<StorageHealth>,
    events: Events,
    may_acknowledge: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
) -> impl FnMut(FlushEvent) + Send + 'static {
    let mut held: std::collections::VecDeque<(
        dfs_adapter::ObjectId,
        Vec<dfs_adapter::ChunkLocation>,
    )> = Default::default();
    move |event| match event {
        FlushEvent::Durable {
            object,
            chunks,
            bytes,
            elapsed,
        } => {
            tracing::trace!(object = object.0, bytes, ?elapsed, "object durable");
            events.flush_seconds.observe(elapsed.as_secs_f64());
            events.flush_bytes.observe(bytes as f64);
            held.push_back((object, chunks));
            if may_acknowledge.as_ref().is_some_and(|may| !may()) {
                tracing::warn!(
                    object = object.0,
                    held = held.len(),
                    "durable while this broker's lease is not surely valid; held back"
                );
                return;
            }
            for (object, chunks) in held.drain(..) {
                for chunk in &chunks {
                    // A topic deleted meanwhile has no partition to advance.
                    if let Some(partition) = topics.partition(&chunk.key) {
                        partition.on_durable(chunk.clone());
                    }
                }
                // After the partitions, so that a compaction of this object finds its chunks
                // there.
                catalog.add_flush(object, &chunks);
            }
            health.send_if_modified(|h| std::mem::replace(&mut h.failing, false));
        }
        FlushEvent::Failed {
            object,
            error,
            attempt,
        } => {
            tracing::warn!(object = object.0, attempt, %error, "flush failed; retrying");
            events.flush_failures.inc();
            health.send_modify(|h| {
                h.failures += 1;
                h.failing = true;
                h.last_error = Some(error.to_string());
            });
        }
    }
}

/// How a wait for durability ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurableWait {
    /// The high watermark reached the target.
    Durable,
    /// The time limit passed first.
    TimedOut,
    /// A flush failed while waiting; the data may still become durable later.
    StorageFailed(String),
}

/// Waits until `partition`'s high watermark reaches `end_offset`.
pub async fn wait_durable(
    partition: &Partition,
    end_offset: i64,
    mut health: watch::Receiver<StorageHealth>,
    limit: Duration,
) -> DurableWait {
    let mut hw = partition.subscribe();
    let failures_before = health.borrow_and_update().failures;
    let wait = async {
        loop {
            if *hw.borrow_and_update() >= end_offset {
                return DurableWait::Durable;
            }
            tokio::select! {
                changed = hw.changed() => if changed.is_err() {
                    return DurableWait::TimedOut;
                },
                changed = health.changed() => {
                    if changed.is_err() {
                        return DurableWait::TimedOut;
                    }
                    let h = health.borrow_and_update().clone();
                    if h.failures > failures_before && *hw.borrow() < end_offset {
                        return DurableWait::StorageFailed(h.last_error.unwrap_or_default());
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or(DurableWait::TimedOut)
}
