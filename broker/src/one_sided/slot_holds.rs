//! The offset slots one session joined, held (see [`crate::offsets::OffsetTable::hold`]) for
//! as long as the session may still fetch-and-add them.

use std::collections::HashSet;

use parking_lot::Mutex;

use crate::offsets::{OffsetTable, SlotKey};

/// Offset slots one session may hold: its joins beyond this are refused.
pub const MAX_HELD_SLOTS: usize = 4096;

/// One session's held slots, released when dropped. Declare it before anything through which
/// the client reaches the slots (verbs memory windows), so that it is dropped after them.
pub struct SlotHolds<'a> {
    table: &'a OffsetTable,
    held: Mutex<HashSet<usize>>,
}

impl<'a> SlotHolds<'a> {
    /// No slot held yet.
    pub fn new(table: &'a OffsetTable) -> Self {
        SlotHolds {
            table,
            held: Mutex::new(HashSet::new()),
        }
    }

    /// Holds `key`'s slot (once per session) and returns it; `Err` if the key has no slot or
    /// the session holds too many.
    pub fn hold(&self, key: &SlotKey) -> Result<usize, String> {
        let mut held = self.held.lock();
        let slot = self
            .table
            .hold(key)
            .ok_or("the offset slot vanished (its group was deleted)")?;
        if held.contains(&slot) {
            // Held already by this session: one hold per session is enough.
            self.table.release(slot);
        } else if held.len() >= MAX_HELD_SLOTS {
            self.table.release(slot);
            return Err(format!(
                "a session may join at most {MAX_HELD_SLOTS} offset slots"
            ));
        } else {
            held.insert(slot);
        }
        Ok(slot)
    }
}

impl Drop for SlotHolds<'_> {
    fn drop(&mut self) {
        for slot in self.held.get_mut().drain() {
            self.table.release(slot);
        }
    }
}
