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
    /// One persist at a time, so a slower one never records an older "last made durable".
    persisting: tokio::sync::Mutex<()>,
}

impl JoinedSlots {
    /// Tracks `key` (held in `slot`) from its current value on. A key whose commits moved to
    /// another slot (its group was deleted and it was committed again) is tracked in the new
    /// one.
    pub fn add(&self, key: SlotKey, slot: usize, broker: &Broker) {
        let value = word(broker, slot);
        let mut slots = self.slots.lock();
        match slots.get_mut(&key) {
            Some(entry) if entry.0 == slot => {}
            Some(entry) => *entry = (slot, value),
            None => {
                slots.insert(key, (slot, value));
            }
        }
    }

    /// Makes every changed slot durable; returns how many were written.
    pub async fn persist(&self, broker: &Broker) -> Result<usize, String> {
        let _one_at_a_time = self.persisting.lock().await;
        let changed: Vec<(SlotKey, usize)> = self
            .slots
            .lock()
            .iter()
            .filter(|(_, &(slot, last))| word(broker, slot) != last)
            .map(|(key, &(slot, _))| (key.clone(), slot))
            .collect();
        let mut written = 0;
        for (key, slot) in &changed {
            // The slot may have been freed and reused since (DeleteGroups): then stop tracking.
            if broker.offsets.table().slot_of(key) != Some(*slot) {
                self.slots.lock().remove(key);
                continue;
            }
            let persisted = broker
                .offsets
                .persist_slot(key)
                .await
                .map_err(|e| format!("cannot persist {}/{}: {e}", key.group, key.partition))?;
            match persisted {
                Some(value) => {
                    written += 1;
                    if let Some(entry) = self.slots.lock().get_mut(key) {
                        entry.1 = value as u64;
                    }
                }
                None => {
                    self.slots.lock().remove(key);
                }
            }
        }
        Ok(written)
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
