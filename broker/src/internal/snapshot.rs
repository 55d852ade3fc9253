//! Snapshots of the internal log, so that a start replays the live state and what followed it
//! instead of every commit ever made.
//!
//! The internal log only grows: each offset commit, group change and producer-id block is a
//! record, and a busy group commits every few seconds forever. [`LiveState`] folds the records
//! as they are appended into what a replay would rebuild (the last record per key, the way
//! Kafka compacts `__consumer_offsets`). When enough records have been appended since the last
//! snapshot, the writer appends the live state as one contiguous block:
//! `SnapshotStart`, one `Restated` record per live entry, `SnapshotEnd { start, count }`. Once
//! the block is durable the log start moves up to its first record, and what lay below is
//! deleted by retention.
//!
//! [`reconstruct`] turns what a replay reads into the records to apply: the restated records
//! of the last complete block (each with the offset it was first written at), then every
//! ordinary record after the block. A block cut short by a crash is ignored, and the log start
//! never moves past the last complete one, so a start always finds a whole state.

use std::collections::HashMap;

use uuid::Uuid;

use super::log::LoggedRecord;
use super::record::{CommittedOffset, InternalRecord};

/// Fewest records appended since the last snapshot before another is written.
pub const MIN_RECORDS_BETWEEN_SNAPSHOTS: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OffsetKey {
    group: String,
    topic_id: Uuid,
    partition: i32,
}

/// The live value of one committed-offset key.
#[derive(Clone, Debug)]
struct LiveOffset {
    /// The last commit written by the broker, and where.
    commit: CommittedOffset,
    at: i64,
    /// The last one-sided commit persisted after it (`based_on` at or after `at`), and where.
    persisted: Option<(i64, i64, i64)>,
}

/// What replaying the internal log up to some offset rebuilds, kept up to date as records are
/// appended. Mirrors the replay rules of the offsets table, the group coordinator and the
/// producer-id allocator: a later record of a key overrides an earlier one, a deletion forgets
/// the key, a group's deletion forgets its offsets, and a one-sided commit holds only if no
/// later commit of its key was written before it.
#[derive(Debug, Default)]
pub struct LiveState {
    offsets: HashMap<OffsetKey, LiveOffset>,
    groups: HashMap<String, (i64, serde_json::Value)>,
    producer_ids: Option<(i64, i64)>,
    /// Ordinary records applied since the last snapshot (or since the start of the log).
    since_snapshot: u64,
}

impl LiveState {
    /// Applies one record written at `offset`. Snapshot records change nothing.
    pub fn apply(&mut self, offset: i64, record: &InternalRecord) {
        match record {
            InternalRecord::Offset {
                group,
                topic_id,
                partition,
                commit,
                based_on,
            } => {
                let key = OffsetKey {
                    group: group.clone(),
                    topic_id: *topic_id,
                    partition: *partition,
                };
                match (commit, based_on) {
                    (Some(commit), Some(based_on)) => {
                        if let Some(live) = self.offsets.get_mut(&key) {
                            if live.at <= *based_on {
                                live.persisted = Some((offset, commit.offset, *based_on));
                            }
                        }
                    }
                    (Some(commit), None) => {
                        self.offsets.insert(
                            key,
                            LiveOffset {
                                commit: commit.clone(),
                                at: offset,
                                persisted: None,
                            },
                        );
                    }
                    (None, _) => {
                        self.offsets.remove(&key);
                    }
                }
            }
            InternalRecord::Group { group_id, snapshot } => match snapshot {
                Some(snapshot) => {
                    self.groups
                        .insert(group_id.clone(), (offset, snapshot.clone()));
                }
                None => {
                    self.groups.remove(group_id);
                    self.offsets.retain(|key, _| key.group != *group_id);
                }
            },
            InternalRecord::ProducerIdBlock { end } => {
                if self.producer_ids.is_none_or(|(_, known)| *end > known) {
                    self.producer_ids = Some((offset, *end));
                }
            }
            InternalRecord::SnapshotStart
            | InternalRecord::Restated { .. }
            | InternalRecord::SnapshotEnd { .. } => return,
        }
        self.since_snapshot += 1;
    }

    /// Live entries: what a snapshot restates.
    pub fn len(&self) -> usize {
        self.offsets.len()
            + self
                .offsets
                .values()
                .filter(|o| o.persisted.is_some())
                .count()
            + self.groups.len()
            + usize::from(self.producer_ids.is_some())
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether enough has been appended since the last snapshot that writing one now costs
    /// at most half a record per record appended: at least
    /// [`MIN_RECORDS_BETWEEN_SNAPSHOTS`], and at least twice the live entries.
    pub fn snapshot_due(&self) -> bool {
        self.since_snapshot >= MIN_RECORDS_BETWEEN_SNAPSHOTS.max(2 * self.len() as u64)
    }

    /// Sets how many ordinary records count towards the next snapshot: 0 once one was
    /// written (or failed, and should not be retried at once), those after the last one at
    /// replay.
    pub fn set_count(&mut self, since_snapshot: u64) {
        self.since_snapshot = since_snapshot;
    }

    /// The live state as the records of a snapshot block, `SnapshotStart` to `SnapshotEnd`;
    /// `start` is the offset the block's first record will have.
    pub fn snapshot_block(&self, start: i64) -> Vec<InternalRecord> {
        let mut restated = Vec::with_capacity(self.len());
        let mut restate = |at: i64, record: InternalRecord| {
            restated.push(InternalRecord::Restated {
                at,
                record: Box::new(record),
            });
        };
        if let Some((at, end)) = self.producer_ids {
            restate(at, InternalRecord::ProducerIdBlock { end });
        }
        for (group_id, (at, snapshot)) in &self.groups {
            restate(
                *at,
                InternalRecord::Group {
                    group_id: group_id.clone(),
                    snapshot: Some(snapshot.clone()),
                },
            );
        }
        for (key, live) in &self.offsets {
            restate(
                live.at,
                InternalRecord::Offset {
                    group: key.group.clone(),
                    topic_id: key.topic_id,
                    partition: key.partition,
                    commit: Some(live.commit.clone()),
                    based_on: None,
                },
            );
            if let Some((at, value, based_on)) = live.persisted {
                restate(
                    at,
                    InternalRecord::Offset {
                        group: key.group.clone(),
                        topic_id: key.topic_id,
                        partition: key.partition,
                        commit: Some(CommittedOffset {
                            offset: value,
                            ..live.commit.clone()
                        }),
                        based_on: Some(based_on),
                    },
                );
            }
        }
        let count = restated.len() as u64;
        let mut block = Vec::with_capacity(restated.len() + 2);
        block.push(InternalRecord::SnapshotStart);
        block.extend(restated);
        block.push(InternalRecord::SnapshotEnd { start, count });
        block
    }
}

/// What a replay applies, and where it came from.
#[derive(Debug, Default)]
pub struct Reconstructed {
    /// The records to apply, in order.
    pub records: Vec<LoggedRecord>,
    /// Offset of the first record of the snapshot block used, if any.
    pub snapshot_start: Option<i64>,
    /// How many of `records` were written after that block (all of them without one).
    pub after_snapshot: usize,
}

/// What a replay applies, from `records` as read (offset order): the last complete snapshot
/// block's restated records at their original offsets, then the ordinary records after it;
/// every ordinary record when no complete block was read.
pub fn reconstruct(records: Vec<LoggedRecord>) -> Reconstructed {
    let block = last_complete_block(&records);
    let mut applied = Vec::with_capacity(records.len());
    let mut rest = Vec::new();
    for (index, logged) in records.into_iter().enumerate() {
        match (logged.record, block) {
            (InternalRecord::Restated { at, record }, Some((first, last, _)))
                if (first..=last).contains(&index) && !is_snapshot_record(&record) =>
            {
                applied.push(LoggedRecord {
                    offset: at,
                    record: *record,
                });
            }
            (record, _) if is_snapshot_record(&record) => {}
            // Before the block: what it restates already holds.
            (_, Some((_, last, _))) if index <= last => {}
            (record, _) => rest.push(LoggedRecord {
                offset: logged.offset,
                record,
            }),
        }
    }
    let after_snapshot = rest.len();
    applied.extend(rest);
    Reconstructed {
        records: applied,
        snapshot_start: block.map(|(_, _, start)| start),
        after_snapshot,
    }
}

fn is_snapshot_record(record: &InternalRecord) -> bool {
    matches!(
        record,
        InternalRecord::SnapshotStart
            | InternalRecord::Restated { .. }
            | InternalRecord::SnapshotEnd { .. }
    )
}

/// The indexes of the first and last record of the last block whose records are all there, and
/// the offset of its first:
/// `SnapshotStart` at `start`, `count` restated records at the offsets after it, then the
/// `SnapshotEnd` naming `start` and `count`.
fn last_complete_block(records: &[LoggedRecord]) -> Option<(usize, usize, i64)> {
    for (end_index, logged) in records.iter().enumerate().rev() {
        let InternalRecord::SnapshotEnd { start, count } = logged.record else {
            continue;
        };
        let Ok(count) = usize::try_from(count) else {
            continue;
        };
        let Some(start_index) = end_index.checked_sub(count + 1) else {
            continue;
        };
        let block = &records[start_index..=end_index];
        let contiguous = block
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == start.saturating_add(i as i64));
        let shaped = matches!(block[0].record, InternalRecord::SnapshotStart)
            && block[1..=count]
                .iter()
                .all(|r| matches!(r.record, InternalRecord::Restated { .. }));
        if contiguous && shaped {
            return Some((start_index, end_index, start));
        }
    }
    None
}

#[cfg(test)]
mod tests;
