//! The offset table: one 8-byte word per (group, topic, partition) in shared memory.
//!
//! The committed offset itself lives in an [`AtomicSlots`] word, so that the RDMA path can
//! fetch-and-add the same word a TCP OffsetCommit writes, and both always agree. What does not
//! fit in a word (leader epoch, metadata, timestamp) and the key → slot map live on the heap.
//!
//! A one-sided session that joined a slot keeps the right to fetch-and-add it (a grant, on
//! verbs a memory window) until it ends. So a slot that a session holds is not reused when its
//! key is deleted (DeleteGroups, OffsetDelete): it is quarantined until the last holder lets
//! go, and only then zeroed and freed. Otherwise an old session's commit would land in another
//! group's offset.
//!
//! The broker changes a held slot (a TCP OffsetCommit on it) through a [`HeldSlotWriter`]
//! when one is installed: on an RDMA NIC whose atomics are atomic only among themselves, a
//! CPU store racing a client's fetch-and-add would be lost, so the verbs provider stores
//! through the NIC (see `rdma::words`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use hotcache::{AtomicSlots, HotCacheError};
use parking_lot::RwLock;
use thiserror::Error;
use uuid::Uuid;

use crate::internal::CommittedOffset;

/// Identity of one committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotKey {
    /// Consumer group.
    pub group: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
}

/// Every slot is taken.
#[derive(Debug, Error)]
#[error("the offset table is full ({0} slots); raise offset_slots")]
pub struct TableFull(pub usize);

struct SlotInfo {
    slot: usize,
    leader_epoch: i32,
    metadata: Option<String>,
    commit_timestamp: i64,
    /// Position of the write in the internal log, so that commits landing out of order in
    /// memory still leave the newest one in the table.
    log_offset: i64,
}

#[derive(Default)]
struct TableState {
    slots: HashMap<SlotKey, SlotInfo>,
    by_group: HashMap<String, HashSet<SlotKey>>,
    free: Vec<usize>,
    next: usize,
    /// How many one-sided sessions hold each slot.
    holds: HashMap<usize, u32>,
    /// Slots whose key was deleted while held: freed on the last release.
    quarantined: HashSet<usize>,
}

/// Stores the word of a slot that a one-sided session holds, where a CPU store could be
/// lost to the session's atomics.
pub trait HeldSlotWriter: Send + Sync {
    /// Stores `value` in the word of `slot`.
    fn store(&self, slot: usize, value: u64) -> Result<(), String>;
}

/// Committed offsets of every group.
pub struct OffsetTable {
    words: AtomicSlots,
    state: RwLock<TableState>,
    held_writer: OnceLock<Box<dyn HeldSlotWriter>>,
}

impl OffsetTable {
    /// A table of `capacity` slots.
    pub fn new(capacity: usize) -> Result<Self, HotCacheError> {
        Ok(Self {
            words: AtomicSlots::new(capacity)?,
            state: RwLock::new(TableState::default()),
            held_writer: OnceLock::new(),
        })
    }

    /// Stores held slots through `writer` from now on (once; a second writer is refused).
    pub fn route_held_writes(&self, writer: Box<dyn HeldSlotWriter>) -> Result<(), String> {
        self.held_writer
            .set(writer)
            .map_err(|_| "held offset slots already have a writer".to_string())
    }

    /// The shared words, for registration with the RDMA path.
    pub fn words(&self) -> &AtomicSlots {
        &self.words
    }

    /// Records a commit made durable at `log_offset` of the internal log; an older write
    /// arriving late is ignored.
    pub fn set(
        &self,
        key: SlotKey,
        commit: &CommittedOffset,
        log_offset: i64,
    ) -> Result<(), TableFull> {
        let mut state = self.state.write();
        let slot = match state.slots.get_mut(&key) {
            Some(info) if info.log_offset > log_offset => return Ok(()),
            Some(info) => {
                info.leader_epoch = commit.leader_epoch;
                info.metadata.clone_from(&commit.metadata);
                info.commit_timestamp = commit.commit_timestamp;
                info.log_offset = log_offset;
                info.slot
            }
            None => {
                let slot = match state.free.pop() {
                    Some(slot) => slot,
                    None if state.next < self.words.len() => {
                        state.next += 1;
                        state.next - 1
                    }
                    None => return Err(TableFull(self.words.len())),
                };
                state
                    .by_group
                    .entry(key.group.clone())
                    .or_default()
                    .insert(key.clone());
                state.slots.insert(
                    key,
                    SlotInfo {
                        slot,
                        leader_epoch: commit.leader_epoch,
                        metadata: commit.metadata.clone(),
                        commit_timestamp: commit.commit_timestamp,
                        log_offset,
                    },
                );
                slot
            }
        };
        self.store(&state, slot, commit.offset as u64);
        Ok(())
    }

    /// Stores `value` in `slot`: through the held-slot writer if a session holds the slot.
    fn store(&self, state: &TableState, slot: usize, value: u64) {
        if state.holds.contains_key(&slot) {
            if let Some(writer) = self.held_writer.get() {
                match writer.store(slot, value) {
                    Ok(()) => return,
                    Err(error) => tracing::error!(
                        slot,
                        %error,
                        "storing a held offset slot through the NIC failed; storing it \
                         directly (a one-sided commit racing it may be lost)"
                    ),
                }
            }
        }
        self.word(slot).store(value, Ordering::Release);
    }

    /// Fails if the keys among `keys` that hold no slot yet would not all find one.
    pub fn check_room<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a SlotKey>,
    ) -> Result<(), TableFull> {
        let state = self.state.read();
        let needed = keys
            .into_iter()
            .filter(|key| !state.slots.contains_key(*key))
            .count();
        let room = state.free.len() + (self.words.len() - state.next);
        if needed > room {
            return Err(TableFull(self.words.len()));
        }
        Ok(())
    }

    /// What a one-sided writer left in `key`'s slot, read together with the internal-log
    /// offset of the last commit written into it (what the value is based on).
    pub fn read_for_persist(&self, key: &SlotKey) -> Option<(CommittedOffset, i64)> {
        let state = self.state.read();
        let info = state.slots.get(key)?;
        let commit = CommittedOffset {
            offset: self.word(info.slot).load(Ordering::Acquire) as i64,
            leader_epoch: info.leader_epoch,
            metadata: info.metadata.clone(),
            commit_timestamp: info.commit_timestamp,
        };
        Some((commit, info.log_offset))
    }

    /// Replays a one-sided commit made durable by the broker: it holds only if the slot still
    /// holds the commit it was based on (a commit written after the word was read, but before
    /// this record, won at run time and wins here too).
    pub fn apply_persisted(&self, key: &SlotKey, offset: i64, based_on: i64) {
        let state = self.state.read();
        if let Some(info) = state.slots.get(key) {
            if info.log_offset <= based_on {
                self.store(&state, info.slot, offset as u64);
            }
        }
    }

    /// The committed offset of `key`.
    pub fn get(&self, key: &SlotKey) -> Option<CommittedOffset> {
        let state = self.state.read();
        let info = state.slots.get(key)?;
        Some(CommittedOffset {
            offset: self.word(info.slot).load(Ordering::Acquire) as i64,
            leader_epoch: info.leader_epoch,
            metadata: info.metadata.clone(),
            commit_timestamp: info.commit_timestamp,
        })
    }

    /// The slot index of `key`, for one-sided access.
    pub fn slot_of(&self, key: &SlotKey) -> Option<usize> {
        self.state.read().slots.get(key).map(|info| info.slot)
    }

    /// Every committed offset of `group`.
    pub fn group(&self, group: &str) -> Vec<(SlotKey, CommittedOffset)> {
        let keys: Vec<SlotKey> = {
            let state = self.state.read();
            state
                .by_group
                .get(group)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        keys.into_iter()
            .filter_map(|key| self.get(&key).map(|commit| (key, commit)))
            .collect()
    }

    /// Groups holding at least one commit.
    pub fn groups(&self) -> Vec<String> {
        self.state.read().by_group.keys().cloned().collect()
    }

    /// When `group` last committed (the newest commit time of its offsets, ms since the epoch;
    /// `None` if it has none), and whether a one-sided session holds one of its slots (its
    /// fetch-and-add commits leave no time).
    pub fn group_activity(&self, group: &str) -> (Option<i64>, bool) {
        let state = self.state.read();
        let Some(keys) = state.by_group.get(group) else {
            return (None, false);
        };
        let mut newest = None;
        let mut held = false;
        for info in keys.iter().filter_map(|key| state.slots.get(key)) {
            newest = newest.max(Some(info.commit_timestamp));
            held |= state.holds.contains_key(&info.slot);
        }
        (newest, held)
    }

    /// Holds `key`'s slot for a one-sided session and returns it: the slot keeps its place
    /// (deleted keys quarantine it) until as many [`Self::release`]s.
    pub fn hold(&self, key: &SlotKey) -> Option<usize> {
        let mut state = self.state.write();
        let slot = state.slots.get(key)?.slot;
        *state.holds.entry(slot).or_default() += 1;
        Some(slot)
    }

    /// Ends one hold of `slot`; the last one frees a quarantined slot.
    pub fn release(&self, slot: usize) {
        let mut state = self.state.write();
        let Some(count) = state.holds.get_mut(&slot) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        state.holds.remove(&slot);
        if state.quarantined.remove(&slot) {
            self.word(slot).store(0, Ordering::Release);
            state.free.push(slot);
        }
    }

    /// Forgets one commit. Its slot is reused, once no session holds it.
    pub fn remove(&self, key: &SlotKey) {
        let mut state = self.state.write();
        if let Some(info) = state.slots.remove(key) {
            if state.holds.contains_key(&info.slot) {
                state.quarantined.insert(info.slot);
            } else {
                self.word(info.slot).store(0, Ordering::Release);
                state.free.push(info.slot);
            }
            if let Some(keys) = state.by_group.get_mut(&key.group) {
                keys.remove(key);
                if keys.is_empty() {
                    state.by_group.remove(&key.group);
                }
            }
        }
    }

    /// Forgets every commit of `group`.
    pub fn remove_group(&self, group: &str) {
        let keys: Vec<SlotKey> = self
            .state
            .read()
            .by_group
            .get(group)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(&key);
        }
    }

    fn word(&self, slot: usize) -> &std::sync::atomic::AtomicU64 {
        // Slots are only ever handed out below `words.len()`.
        self.words.get(slot).expect("slot index within the table")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    fn key(group: &str, partition: i32) -> SlotKey {
        SlotKey {
            group: group.into(),
            topic_id: Uuid::nil(),
            partition,
        }
    }

    fn commit(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 0,
            metadata: None,
            commit_timestamp: 0,
        }
    }

    #[test]
    fn commits_land_in_shared_words() {
        let table = OffsetTable::new(8).unwrap();
        table.set(key("g", 0), &commit(42), 1).unwrap();
        let slot = table.slot_of(&key("g", 0)).unwrap();
        let word = table.words().get(slot).unwrap();
        assert_eq!(word.load(Ordering::SeqCst), 42);
        // A one-sided fetch-and-add is what OffsetFetch then reports.
        word.fetch_add(8, Ordering::SeqCst);
        assert_eq!(table.get(&key("g", 0)).unwrap().offset, 50);
    }

    #[test]
    fn late_older_writes_do_not_win() {
        let table = OffsetTable::new(8).unwrap();
        table.set(key("g", 0), &commit(20), 5).unwrap();
        table.set(key("g", 0), &commit(10), 4).unwrap();
        assert_eq!(table.get(&key("g", 0)).unwrap().offset, 20);
    }

    #[test]
    fn persisted_one_sided_values_hold_only_over_the_commit_they_were_read_from() {
        let table = OffsetTable::new(8).unwrap();
        table.set(key("g", 0), &commit(10), 3).unwrap();
        let (read, based_on) = table.read_for_persist(&key("g", 0)).unwrap();
        assert_eq!((read.offset, based_on), (10, 3));
        // Read from the commit at 3: holds.
        table.apply_persisted(&key("g", 0), 15, 3);
        assert_eq!(table.get(&key("g", 0)).unwrap().offset, 15);
        // A commit at 7 was written after a word read at 3: the stale value does not win.
        table.set(key("g", 0), &commit(100), 7).unwrap();
        table.apply_persisted(&key("g", 0), 16, 3);
        assert_eq!(table.get(&key("g", 0)).unwrap().offset, 100);
        // Unknown keys are ignored.
        table.apply_persisted(&key("g", 9), 1, 0);
        assert!(table.get(&key("g", 9)).is_none());
    }

    #[test]
    fn room_is_checked_for_new_keys_only() {
        let table = OffsetTable::new(2).unwrap();
        table.set(key("a", 0), &commit(1), 1).unwrap();
        assert!(table.check_room([&key("a", 0), &key("a", 1)]).is_ok());
        assert!(table.check_room([&key("a", 1), &key("a", 2)]).is_err());
    }

    #[test]
    fn full_tables_refuse_and_freed_slots_are_reused() {
        let table = OffsetTable::new(2).unwrap();
        table.set(key("a", 0), &commit(1), 1).unwrap();
        table.set(key("a", 1), &commit(1), 2).unwrap();
        assert!(table.set(key("b", 0), &commit(1), 3).is_err());
        table.remove_group("a");
        assert!(table.group("a").is_empty());
        table.set(key("b", 0), &commit(7), 4).unwrap();
        assert_eq!(table.groups(), vec!["b".to_string()]);
    }

    #[test]
    fn group_activity_is_the_newest_commit_and_whether_a_slot_is_held() {
        let table = OffsetTable::new(4).unwrap();
        assert_eq!(table.group_activity("g"), (None, false));
        let mut old = commit(1);
        old.commit_timestamp = 100;
        let mut new = commit(2);
        new.commit_timestamp = 300;
        table.set(key("g", 0), &old, 1).unwrap();
        table.set(key("g", 1), &new, 2).unwrap();
        assert_eq!(table.group_activity("g"), (Some(300), false));
        let slot = table.hold(&key("g", 0)).unwrap();
        assert_eq!(table.group_activity("g"), (Some(300), true));
        table.release(slot);
        assert_eq!(table.group_activity("g"), (Some(300), false));
    }

    #[test]
    fn a_held_slot_is_not_reused_until_released() {
        let table = OffsetTable::new(2).unwrap();
        table.set(key("gone", 0), &commit(5), 1).unwrap();
        let held = table.hold(&key("gone", 0)).unwrap();
        table.remove_group("gone");
        // The holder's late fetch-and-add reaches a slot that belongs to no one.
        table
            .words()
            .get(held)
            .unwrap()
            .fetch_add(100, Ordering::SeqCst);
        table.set(key("fresh", 0), &commit(7), 2).unwrap();
        assert_ne!(table.slot_of(&key("fresh", 0)), Some(held));
        assert_eq!(table.get(&key("fresh", 0)).unwrap().offset, 7);
        // Quarantined slots are not room.
        assert!(table.check_room([&key("other", 0)]).is_err());
        table.release(held);
        assert!(table.check_room([&key("other", 0)]).is_ok());
        table.set(key("other", 0), &commit(1), 3).unwrap();
        assert_eq!(table.slot_of(&key("other", 0)), Some(held));
        assert_eq!(table.get(&key("other", 0)).unwrap().offset, 1);
        // Releasing a slot never held changes nothing.
        table.release(held);
        assert_eq!(table.get(&key("other", 0)).unwrap().offset, 1);
    }

    /// Records what it was asked to store, and stores it into the table's mapped words (or
    /// fails, when told to).
    struct Recording {
        /// Address of the table's first word (the mapping does not move with the table).
        words: usize,
        stored: Arc<Mutex<Vec<(usize, u64)>>>,
        fail: bool,
    }

    impl HeldSlotWriter for Recording {
        fn store(&self, slot: usize, value: u64) -> Result<(), String> {
            self.stored.lock().push((slot, value));
            if self.fail {
                return Err("the loopback queue pair is broken".into());
            }
            let word = (self.words as *const std::sync::atomic::AtomicU64).wrapping_add(slot);
            // SAFETY: the tests below store only into slots of their table, which outlives
            // the writer (it is the table's own).
            unsafe { &*word }.store(value, Ordering::SeqCst);
            Ok(())
        }
    }

    fn recording(table: &OffsetTable, fail: bool) -> Arc<Mutex<Vec<(usize, u64)>>> {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let words = table.words().get(0).unwrap() as *const _ as usize;
        let writer = Recording {
            words,
            stored: stored.clone(),
            fail,
        };
        table.route_held_writes(Box::new(writer)).unwrap();
        stored
    }

    #[test]
    fn only_held_slots_are_stored_through_the_writer_and_a_failing_one_still_stores() {
        let table = OffsetTable::new(4).unwrap();
        let stored = recording(&table, false);
        let second = Recording {
            words: 0,
            stored: stored.clone(),
            fail: true,
        };
        assert!(table.route_held_writes(Box::new(second)).is_err());
        table.set(key("g", 0), &commit(5), 1).unwrap();
        assert!(
            stored.lock().is_empty(),
            "no session holds it: a plain store"
        );
        let slot = table.hold(&key("g", 0)).unwrap();
        table.set(key("g", 0), &commit(9), 2).unwrap();
        table.apply_persisted(&key("g", 0), 11, 2);
        assert_eq!(*stored.lock(), vec![(slot, 9), (slot, 11)]);
        assert_eq!(table.get(&key("g", 0)).unwrap().offset, 11);
        table.release(slot);
        table.set(key("g", 0), &commit(12), 3).unwrap();
        assert_eq!(stored.lock().len(), 2, "released: a plain store again");

        // A writer that fails: the commit is stored anyway (and the failure logged).
        let failing = OffsetTable::new(4).unwrap();
        let failed = recording(&failing, true);
        failing.set(key("g", 0), &commit(1), 1).unwrap();
        let slot = failing.hold(&key("g", 0)).unwrap();
        failing.set(key("g", 0), &commit(2), 2).unwrap();
        assert_eq!(*failed.lock(), vec![(slot, 2)]);
        assert_eq!(failing.get(&key("g", 0)).unwrap().offset, 2);
    }
}
