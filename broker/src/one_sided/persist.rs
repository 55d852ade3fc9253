//! Making offsets committed by FETCH_AND_ADD durable.
//!
//! A one-sided commit changes the shared word and nothing else: the broker learns of it only
//! by looking. Every `rdma_commit_interval_ms` (and on a session's `Persist`) it compares each
//! joined slot with the value it last made durable and appends the changed ones to the
//! internal log, as an OffsetCommit would, without writing the word (which a client may be
//! changing meanwhile). So a commit by fetch-and-add is visible at once to OffsetFetch, and
//! durable within one interval.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::offsets::SlotKey;

/// Slots some session joined, with the value last made durable.
#[derive(Default)]
pub struct JoinedSlots {
    slots: Mutex<HashMap<SlotKey, (usize, u64)>>,
}

impl JoinedSlots {
    /// Tracks `key` (held in `slot`) from its current value on.
    pub fn add(&self, key: SlotKey, slot: usize, broker: &Broker) {
        let value = word(broker, slot);
        self.slots.lock().entry(key).or_insert((slot, value));
    }

    /// Makes every changed slot durable; returns how many were written.
    pub async fn persist(&self, broker: &Broker) -> Result<usize, String> {
        let changed: Vec<(SlotKey, usize, u64)> = self
            .slots
            .lock()
            .iter()
            .filter_map(|(key, &(slot, last))| {
                let now = word(broker, slot);
                (now != last).then(|| (key.clone(), slot, now))
            })
            .collect();
        for (key, slot, value) in &changed {
            // The slot may have been freed and reused since (DeleteGroups): then stop tracking.
            if broker.offsets.table().slot_of(key) != Some(*slot) {
                self.slots.lock().remove(key);
                continue;
            }
            broker
                .offsets
                .persist_slot(key, *value as i64)
                .await
                .map_err(|e| format!("cannot persist {}/{}: {e}", key.group, key.partition))?;
            if let Some(entry) = self.slots.lock().get_mut(key) {
                entry.1 = *value;
            }
        }
        Ok(changed.len())
    }
}

fn word(broker: &Broker, slot: usize) -> u64 {
    broker
        .offsets
        .table()
        .words()
        .get(slot)
        .map_or(0, |w| w.load(Ordering::Acquire))
}

/// Persists changed slots every `interval` until `shutdown`, and once more at shutdown.
pub async fn persist_loop(
    broker: Arc<Broker>,
    joined: Arc<JoinedSlots>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        if let Err(error) = joined.persist(&broker).await {
            tracing::warn!(%error, "rdma offset commits not persisted yet");
        }
        if last {
            return;
        }
    }
}
