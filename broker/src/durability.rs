//! From "the object is durable" to "the producer is answered and the consumer woken".

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dfs_adapter::{Catalog, ChunkLocation, FlushEvent, ObjectId};
use parking_lot::Mutex;
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

/// How often held-back objects are offered again while the lease is in doubt.
const HELD_RECHECK: Duration = Duration::from_millis(20);

/// The pipeline's sink: moves high watermarks (waking acks=all producers and long-poll fetches)
/// and tracks storage health. Called in object order.
///
/// In a cluster, `may_acknowledge` says whether this broker still surely leads the shard. An
/// object delivered while it does not may have become durable after another broker took the
/// shard over without it, so it is held back, unseen and unacknowledged, with every object
/// after it (order is kept); if the same lease turns out to be alive (etcd was out of reach,
/// no one took over), they are applied as soon as it is surely valid again, by a task that
/// checks every [`HELD_RECHECK`] while something is held. (Waiting for the next delivery
/// instead deadlocked: an idempotent producer resends its unacknowledged batches before any
/// new one, the broker answers a resent batch once the original is durable, and so nothing
/// new was ever flushed.) If the shard was lost, the broker closes and they never are.
pub fn flush_sink(
    topics: Arc<TopicRegistry>,
    catalog: Arc<Catalog>,
    health: watch::Sender<StorageHealth>,
    events: Events,
    may_acknowledge: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
) -> impl FnMut(FlushEvent) + Send + 'static {
    let sink = Arc::new(Mutex::new(Sink {
        topics,
        catalog,
        health: health.clone(),
        held: VecDeque::new(),
    }));
    if let Some(may) = &may_acknowledge {
        tokio::spawn(release_when_sure(Arc::downgrade(&sink), may.clone()));
    }
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
            let mut sink = sink.lock();
            sink.held.push_back((object, chunks));
            if may_acknowledge.as_ref().is_some_and(|may| !may()) {
                tracing::warn!(
                    object = object.0,
                    held = sink.held.len(),
                    "durable while this broker's lease is not surely valid; held back"
                );
                return;
            }
            sink.apply_held();
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

/// What the sink applies durable objects to, and the objects held back.
struct Sink {
    topics: Arc<TopicRegistry>,
    catalog: Arc<Catalog>,
    health: watch::Sender<StorageHealth>,
    held: VecDeque<(ObjectId, Vec<ChunkLocation>)>,
}

impl Sink {
    /// Applies every held object, oldest first.
    fn apply_held(&mut self) {
        for (object, chunks) in self.held.drain(..) {
            for chunk in &chunks {
                // A topic deleted meanwhile has no partition to advance.
                if let Some(partition) = self.topics.partition(&chunk.key) {
                    partition.on_durable(chunk.clone());
                }
            }
            // After the partitions, so that a compaction of this object finds its chunks there.
            self.catalog.add_flush(object, &chunks);
        }
        self.health
            .send_if_modified(|h| std::mem::replace(&mut h.failing, false));
    }
}

/// Applies held-back objects once `may_acknowledge` holds again; ends with the sink (when the
/// pipeline that owns it is gone).
async fn release_when_sure(
    sink: Weak<Mutex<Sink>>,
    may_acknowledge: Arc<dyn Fn() -> bool + Send + Sync>,
) {
    let mut tick = tokio::time::interval(HELD_RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sink) = sink.upgrade() else { return };
        let mut sink = sink.lock();
        if !sink.held.is_empty() && may_acknowledge() {
            tracing::info!(
                held = sink.held.len(),
                "lease surely valid again; held-back objects applied"
            );
            sink.apply_held();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use dfs_adapter::Store;

    use super::*;
    use crate::log::topics::TopicLimits;

    #[tokio::test]
    async fn a_held_back_object_is_applied_once_the_lease_is_sure_again_without_another_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("fs://{}", dir.path().display()))
            .await
            .unwrap();
        let recovered = store.recover(4).await.unwrap();
        let catalog = Arc::new(Catalog::open(store, &recovered).await.unwrap());
        let topics = Arc::new(TopicRegistry::recover(
            Vec::new(),
            Vec::new(),
            TopicLimits::default(),
        ));
        let sure = Arc::new(AtomicBool::new(false));
        let may: Arc<dyn Fn() -> bool + Send + Sync> = {
            let sure = sure.clone();
            Arc::new(move || sure.load(Ordering::SeqCst))
        };
        let (health, _) = watch::channel(StorageHealth::default());
        let mut sink = flush_sink(
            topics,
            catalog.clone(),
            health,
            Events::default(),
            Some(may),
        );
        sink(FlushEvent::Durable {
            object: recovered.next_object,
            chunks: Vec::new(),
            bytes: 1,
            elapsed: Duration::ZERO,
        });
        tokio::time::sleep(HELD_RECHECK * 5).await;
        assert_eq!(
            catalog.flush_objects(),
            0,
            "applied while the lease was in doubt"
        );
        sure.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while catalog.flush_objects() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "held back until the next flush, which may never come"
            );
            tokio::time::sleep(HELD_RECHECK).await;
        }
    }
}
