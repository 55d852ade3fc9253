//! Recovery: adoption of valid objects, discarding of torn, corrupt and orphaned ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs_adapter::{ChunkLocation, FlushConfig, ObjectId, StorageError, Store};
use tempfile::TempDir;

use crate::common::*;

/// Writes `objects` objects of one batch each (two partitions alternating), starting at
/// `first`; returns the chunks delivered, in order.
async fn write_objects(store: &Store, first: ObjectId, objects: i64) -> Vec<ChunkLocation> {
    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(store, config, first);
    for i in 0..objects {
        pipeline.submit(batch((i % 2) as i32, i / 2, 1)).unwrap();
    }
    let mut chunks = Vec::new();
    for _ in 0..objects {
        chunks.extend(events.durable().await.1);
    }
    pipeline.shutdown().await;
    chunks
}

fn object_path(root: &Path, id: u64) -> PathBuf {
    root.join(ObjectId(id).key())
}

/// Flips a bit in the data region of object `id`.
fn corrupt(root: &Path, id: u64) {
    let path = object_path(root, id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
}

/// Ids of the regular object files in `wal/`, ascending.
fn object_ids(root: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(root.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().unwrap();
            name.strip_suffix(".hwf")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Asserts that recovery refused, blaming object `bad`.
fn assert_refused(result: Result<dfs_adapter::Recovered, StorageError>, bad: u64) {
    match result {
        Err(StorageError::Corrupt { object, reason }) => {
            assert_eq!(object, ObjectId(bad).key());
            assert!(
                reason.contains("protect acknowledged data") && reason.contains("deleted nothing"),
                "unclear reason: {reason}"
            );
        }
        other => panic!("expected a refusal blaming object {bad}, got {other:?}"),
    }
}

#[tokio::test]
async fn empty_store() {
    let (_dir, store) = temp_store().await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.next_object, ObjectId(0));
    assert_eq!(recovered.objects, 0);
    assert!(recovered.chunks.is_empty() && recovered.discarded.is_empty());
}

#[tokio::test]
async fn adopts_written_objects_with_the_same_chunks() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(5), 4).await;
    // A fresh open, as after a restart.
    let store = Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(recovered.objects, 4);
    assert_eq!(recovered.next_object, ObjectId(9));
    assert!(recovered.discarded.is_empty());

    // The pipeline continues where recovery says, and the next recovery sees both runs.
    let more = write_objects(&store, recovered.next_object, 2).await;
    let again = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(again.chunks, [written, more].concat());
    assert_eq!(again.next_object, ObjectId(11));
}

#[tokio::test]
async fn truncated_last_object_is_discarded() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 3).await;
    let last = object_path(dir.path(), 2);
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 2);
    assert_eq!(recovered.chunks, written[..2]);
    assert_eq!(recovered.discarded, vec![ObjectId(2)]);
    assert_eq!(recovered.next_object, ObjectId(2));
    assert!(!last.exists());
}

#[tokio::test]
async fn corrupt_middle_object_is_discarded_with_everything_after() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 4).await;
    let middle = object_path(dir.path(), 1);
    let mut bytes = std::fs::read(&middle).unwrap();
    bytes[0] ^= 0x40; // inside the data region
    std::fs::write(&middle, bytes).unwrap();

    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 1);
    assert_eq!(recovered.chunks, written[..1]);
    assert_eq!(
        recovered.discarded,
        vec![ObjectId(1), ObjectId(2), ObjectId(3)]
    );
    assert_eq!(recovered.next_object, ObjectId(1));
    for id in 1..4 {
        assert!(!object_path(dir.path(), id).exists(), "object {id} left");
    }
    assert!(object_path(dir.path(), 0).exists());
}

#[tokio::test]
async fn a_gap_discards_what_follows() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 3).await;
    std::fs::remove_file(object_path(dir.path(), 1)).unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 1);
    assert_eq!(recovered.discarded, vec![ObjectId(2)]);
    assert_eq!(recovered.next_object, ObjectId(1));
}

#[tokio::test]
async fn garbage_and_empty_objects_are_discarded() {
    let (dir, store) = temp_store().await;
    std::fs::write(object_path(dir.path(), 0), b"").unwrap();
    std::fs::write(object_path(dir.path(), 1), vec![0xa5; 4096]).unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 0);
    assert_eq!(recovered.discarded, vec![ObjectId(0), ObjectId(1)]);
    assert_eq!(recovered.next_object, ObjectId(0));
}

#[tokio::test]
async fn stray_entries_are_ignored() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 2).await;
    let wal = dir.path().join("wal");
    std::fs::write(wal.join("README.txt"), b"not an object").unwrap();
    std::fs::write(wal.join("00000000000000000001.hwf.tmp"), b"junk").unwrap();
    std::fs::create_dir(wal.join("00000000000000000002.hwf")).unwrap();

    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(recovered.next_object, ObjectId(2));
    assert!(recovered.discarded.is_empty());
    assert!(wal.join("README.txt").exists());
}

#[tokio::test]
async fn damage_followed_by_a_full_crash_window_is_discarded() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 8).await;
    // Object 4 and the 3 (= MAX_IN_FLIGHT - 1) after it: what a crash can leave.
    corrupt(dir.path(), 4);
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 4);
    assert_eq!(recovered.chunks, written[..4]);
    assert_eq!(
        recovered.discarded,
        (4..8).map(ObjectId).collect::<Vec<_>>()
    );
    assert_eq!(recovered.next_object, ObjectId(4));
    assert_eq!(object_ids(dir.path()), vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn damage_followed_by_more_than_a_crash_window_is_refused() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 8).await;
    // Object 3 with 4 objects after it: it must have been acknowledged.
    corrupt(dir.path(), 3);
    let before: Vec<Vec<u8>> = (0..8)
        .map(|id| std::fs::read(object_path(dir.path(), id)).unwrap())
        .collect();
    assert_refused(store.recover(MAX_IN_FLIGHT).await, 3);
    let after: Vec<Vec<u8>> = (0..8)
        .map(|id| std::fs::read(object_path(dir.path(), id)).unwrap())
        .collect();
    assert!(
        before == after,
        "recovery changed objects although it refused"
    );

    // A run with one more object in flight could have left this behind.
    let recovered = store.recover(MAX_IN_FLIGHT + 1).await.unwrap();
    assert_eq!(recovered.chunks, written[..3]);
    assert_eq!(
        recovered.discarded,
        (3..8).map(ObjectId).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_gap_followed_by_more_than_a_crash_window_is_refused() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 6).await;
    std::fs::remove_file(object_path(dir.path(), 1)).unwrap();
    // 2..=5 follow the missing object 1: one more than a crash can leave.
    assert_refused(store.recover(MAX_IN_FLIGHT).await, 1);
    assert_eq!(object_ids(dir.path()), vec![0, 2, 3, 4, 5]);

    // Not the count but the distance matters: a single object 4 ids past the gap is too far.
    for id in 2..5 {
        std::fs::remove_file(object_path(dir.path(), id)).unwrap();
    }
    assert_refused(store.recover(MAX_IN_FLIGHT).await, 1);
    assert_eq!(object_ids(dir.path()), vec![0, 5]);

    // 3 ids past the gap is within the window.
    std::fs::rename(object_path(dir.path(), 5), object_path(dir.path(), 4)).unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 1);
    assert_eq!(recovered.discarded, vec![ObjectId(4)]);
    assert_eq!(recovered.next_object, ObjectId(1));
}

#[tokio::test]
async fn a_window_of_one_allows_nothing_after_the_bad_object() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 3).await;
    corrupt(dir.path(), 1);
    // 0 counts as 1, as in the pipeline.
    assert_refused(store.recover(0).await, 1);
    assert_refused(store.recover(1).await, 1);
    assert_eq!(object_ids(dir.path()), vec![0, 1, 2]);

    std::fs::remove_file(object_path(dir.path(), 2)).unwrap();
    let recovered = store.recover(0).await.unwrap();
    assert_eq!(recovered.discarded, vec![ObjectId(1)]);
    assert_eq!(recovered.next_object, ObjectId(1));
}

/// A fresh store holding copies of the regular object files under `root`: the state a crash
/// at this instant would leave.
async fn crash_copy(root: &Path) -> (TempDir, Store) {
    let (copy, store) = temp_store().await;
    for id in object_ids(root) {
        std::fs::copy(object_path(root, id), object_path(copy.path(), id)).unwrap();
    }
    (copy, store)
}

#[tokio::test]
async fn the_pipeline_never_leaves_more_than_recovery_accepts() {
    let (dir, store) = temp_store().await;
    let written = write_objects(&store, ObjectId(0), 1).await;
    // Object 1 cannot be created (dangling symlink into a missing directory), so the window
    // fills with objects 2.. that are durable but never acknowledged.
    let blocked = dir.path().join(ObjectId(1).key());
    std::os::unix::fs::symlink(dir.path().join("missing/target"), &blocked).unwrap();
    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, _events) = start(&store, config, ObjectId(1));
    for i in 0..(2 * MAX_IN_FLIGHT as i64) {
        pipeline.submit(batch(0, 1 + i, 1)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pipeline.stats().objects_written < MAX_IN_FLIGHT as u64 - 1 {
        assert!(Instant::now() < deadline, "window never filled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Objects 2 ..= MAX_IN_FLIGHT: the rest of the window behind object 1, nothing beyond.
    let unacknowledged: Vec<u64> = (2..=MAX_IN_FLIGHT as u64).collect();
    assert_eq!(
        object_ids(dir.path()),
        [vec![0], unacknowledged.clone()].concat(),
        "the window outgrew max_in_flight"
    );

    let (_copy, crashed) = crash_copy(dir.path()).await;
    let recovered = crashed.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(
        recovered.discarded,
        unacknowledged.into_iter().map(ObjectId).collect::<Vec<_>>()
    );
    assert_eq!(recovered.next_object, ObjectId(1));
    // One less in flight cannot explain this state.
    let (_copy, crashed) = crash_copy(dir.path()).await;
    assert_refused(crashed.recover(MAX_IN_FLIGHT - 1).await, 1);

    std::fs::remove_file(&blocked).unwrap();
    pipeline.shutdown().await;
}
