//! A replay that starts from a snapshot must rebuild exactly what a replay of every record
//! rebuilds, whatever came before, during and after the snapshot (randomized).

use super::*;
use crate::broker::latest_group_snapshots;
use crate::offsets::store::replay_into;
use crate::offsets::{OffsetTable, SlotKey};
use crate::producers::ids::reserved_end;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const TOPICS: [Uuid; 2] = [Uuid::from_u128(1), Uuid::from_u128(2)];

fn random_record(rng: &mut Rng, next_offset: i64) -> InternalRecord {
    let group = format!("g{}", rng.below(3));
    let topic_id = TOPICS[rng.below(2) as usize];
    let partition = rng.below(3) as i32;
    let commit = CommittedOffset {
        offset: rng.below(1_000) as i64,
        leader_epoch: rng.below(3) as i32 - 1,
        metadata: Some(format!("m{}", rng.below(5))),
        commit_timestamp: rng.below(1 << 40) as i64,
    };
    match rng.below(20) {
        0..=8 => InternalRecord::Offset {
            group,
            topic_id,
            partition,
            commit: Some(commit),
            based_on: None,
        },
        // A one-sided commit, based on a recent offset: sometimes the key's last commit,
        // sometimes older (overtaken), sometimes on nothing the key holds.
        9..=13 => InternalRecord::Offset {
            group,
            topic_id,
            partition,
            commit: Some(commit),
            based_on: Some(next_offset - 1 - rng.below(8) as i64),
        },
        14 => InternalRecord::Offset {
            group,
            topic_id,
            partition,
            commit: None,
            based_on: None,
        },
        15..=16 => InternalRecord::Group {
            group_id: group,
            snapshot: Some(serde_json::json!({ "generation": rng.below(100) })),
        },
        17 => InternalRecord::Group {
            group_id: group,
            snapshot: None,
        },
        _ => InternalRecord::ProducerIdBlock {
            end: rng.below(10_000) as i64,
        },
    }
}

/// What a replay of `records` rebuilds: every committed offset with the log offset it is
/// based on, the groups' snapshots, and the end of the producer-id blocks.
fn rebuilt(records: &[LoggedRecord]) -> (Vec<(SlotKey, CommittedOffset, i64)>, Vec<String>, i64) {
    let table = OffsetTable::new(64).unwrap();
    replay_into(&table, records);
    let mut offsets: Vec<_> = table
        .groups()
        .into_iter()
        .flat_map(|group| table.group(&group))
        .map(|(key, _)| {
            let (commit, based_on) = table.read_for_persist(&key).unwrap();
            (key, commit, based_on)
        })
        .collect();
    offsets.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    let history: Vec<InternalRecord> = records.iter().map(|r| r.record.clone()).collect();
    let mut groups: Vec<String> = latest_group_snapshots(history.clone())
        .iter()
        .map(|g| g.to_string())
        .collect();
    groups.sort();
    (offsets, groups, reserved_end(&history))
}

/// Appends `records` at the end of `log`, as the writer does.
fn append(log: &mut Vec<LoggedRecord>, live: &mut LiveState, records: Vec<InternalRecord>) {
    for record in records {
        let offset = log.len() as i64;
        live.apply(offset, &record);
        log.push(LoggedRecord { offset, record });
    }
}

#[test]
fn a_replay_from_the_last_complete_snapshot_rebuilds_what_the_whole_log_does() {
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut log = Vec::new();
        let mut live = LiveState::default();
        let mut ordinary = Vec::new();
        let mut log_start = 0usize;
        for _ in 0..rng.below(6) + 1 {
            for _ in 0..rng.below(60) {
                let record = random_record(&mut rng, log.len() as i64);
                ordinary.push(LoggedRecord {
                    offset: log.len() as i64,
                    record: record.clone(),
                });
                append(&mut log, &mut live, vec![record]);
            }
            let start = log.len() as i64;
            let mut block = live.snapshot_block(start);
            match rng.below(4) {
                // A crash in the middle of the block: the rest of it is never written.
                0 => {
                    block.truncate(rng.below(block.len() as u64) as usize);
                    append(&mut log, &mut live, block);
                }
                // A complete block, and the log start moved up to it (or, as read from a
                // chunk that straddles it, not quite).
                1 | 2 => {
                    append(&mut log, &mut live, block);
                    log_start = (start as usize).saturating_sub(rng.below(3) as usize);
                }
                _ => append(&mut log, &mut live, block),
            }
        }
        let expected = rebuilt(&ordinary);
        let replayed = reconstruct(log[log_start..].to_vec());
        assert_eq!(rebuilt(&replayed.records), expected, "seed {seed}");
        // And the live state replayed from it snapshots the same again.
        let mut again = LiveState::default();
        for logged in &replayed.records {
            again.apply(logged.offset, &logged.record);
        }
        let next = log.len() as i64;
        let mut twice = log.clone();
        twice.extend(
            again
                .snapshot_block(next)
                .into_iter()
                .enumerate()
                .map(|(i, record)| LoggedRecord {
                    offset: next + i as i64,
                    record,
                }),
        );
        let from_second = reconstruct(twice[next as usize..].to_vec());
        assert_eq!(
            rebuilt(&from_second.records),
            expected,
            "seed {seed}, resnapshot"
        );
    }
}

#[test]
fn snapshots_are_due_after_enough_records_and_twice_the_live_entries() {
    let mut live = LiveState::default();
    let mut log = Vec::new();
    for i in 0..MIN_RECORDS_BETWEEN_SNAPSHOTS - 1 {
        append(
            &mut log,
            &mut live,
            vec![InternalRecord::Offset {
                group: "g".into(),
                topic_id: TOPICS[0],
                partition: (i % 7) as i32,
                commit: Some(CommittedOffset {
                    offset: i as i64,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp: 0,
                }),
                based_on: None,
            }],
        );
    }
    assert!(!live.snapshot_due());
    append(
        &mut log,
        &mut live,
        vec![InternalRecord::ProducerIdBlock { end: 1000 }],
    );
    assert!(live.snapshot_due());
    assert_eq!(
        live.len(),
        8,
        "7 offsets and the producer-id block are live"
    );
    let block = live.snapshot_block(log.len() as i64);
    assert_eq!(block.len(), 8 + 2);
    live.set_count(0);
    assert!(!live.snapshot_due());
}

#[test]
fn a_block_cut_short_or_with_a_gap_is_not_used() {
    let record = |offset: i64, record: InternalRecord| LoggedRecord { offset, record };
    let restated = |at: i64| InternalRecord::Restated {
        at,
        record: Box::new(InternalRecord::ProducerIdBlock { end: 7 }),
    };
    let end = |start: i64, count: u64| InternalRecord::SnapshotEnd { start, count };
    // Count says two, one is there.
    let short = vec![
        record(10, InternalRecord::SnapshotStart),
        record(11, restated(3)),
        record(12, end(10, 2)),
    ];
    assert!(reconstruct(short).snapshot_start.is_none());
    // A gap in the offsets.
    let gap = vec![
        record(10, InternalRecord::SnapshotStart),
        record(11, restated(3)),
        record(13, restated(4)),
        record(14, end(10, 2)),
    ];
    assert!(reconstruct(gap).snapshot_start.is_none());
    let whole = vec![
        record(10, InternalRecord::SnapshotStart),
        record(11, restated(3)),
        record(12, restated(4)),
        record(13, end(10, 2)),
        record(14, InternalRecord::ProducerIdBlock { end: 9 }),
    ];
    let replayed = reconstruct(whole);
    assert_eq!(replayed.snapshot_start, Some(10));
    assert_eq!(replayed.after_snapshot, 1);
    let offsets: Vec<i64> = replayed.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![3, 4, 14]);
}
