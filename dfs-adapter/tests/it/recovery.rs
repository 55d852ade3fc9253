//! Recovery: adoption of valid objects, discarding of torn, corrupt and orphaned ones.

use std::path::{Path, PathBuf};

use dfs_adapter::{ChunkLocation, FlushConfig, ObjectId, Store};

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

#[tokio::test]
async fn empty_store() {
    let (_dir, store) = temp_store().await;
    let recovered = store.recover().await.unwrap();
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
    let recovered = store.recover().await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(recovered.objects, 4);
    assert_eq!(recovered.next_object, ObjectId(9));
    assert!(recovered.discarded.is_empty());

    // The pipeline continues where recovery says, and the next recovery sees both runs.
    let more = write_objects(&store, recovered.next_object, 2).await;
    let again = store.recover().await.unwrap();
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

    let recovered = store.recover().await.unwrap();
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

    let recovered = store.recover().await.unwrap();
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
    let recovered = store.recover().await.unwrap();
    assert_eq!(recovered.objects, 1);
    assert_eq!(recovered.discarded, vec![ObjectId(2)]);
    assert_eq!(recovered.next_object, ObjectId(1));
}

#[tokio::test]
async fn garbage_and_empty_objects_are_discarded() {
    let (dir, store) = temp_store().await;
    std::fs::write(object_path(dir.path(), 0), b"").unwrap();
    std::fs::write(object_path(dir.path(), 1), vec![0xa5; 4096]).unwrap();
    let recovered = store.recover().await.unwrap();
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

    let recovered = store.recover().await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(recovered.next_object, ObjectId(2));
    assert!(recovered.discarded.is_empty());
    assert!(wal.join("README.txt").exists());
}
