//! Manifest and compaction: segments replace flush objects, recovery reads the checkpoint,
//! interrupted work is cleaned up, a second writer is fenced.

use std::path::Path;

use dfs_adapter::{Catalog, ChunkLocation, CompactionConfig, ObjectId, StorageError, Store};

use crate::common::*;

/// Writes `objects` flush objects of one batch each, partitions 0 and 1 alternating, with
/// payloads naming their offsets; each partition's offsets count from `first_offset`.
async fn write_objects(store: &Store, first: ObjectId, first_offset: i64, objects: i64) {
    let config = dfs_adapter::FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(store, config, first);
    for i in 0..objects {
        pipeline
            .submit(batch((i % 2) as i32, first_offset + i / 2, 1))
            .unwrap();
    }
    for _ in 0..objects {
        events.durable().await;
    }
    pipeline.shutdown().await;
}

fn small_rounds() -> CompactionConfig {
    CompactionConfig {
        min_objects: 4,
        chunk_bytes: 40,
        ..CompactionConfig::default()
    }
}

/// The payloads of `partition`'s chunks, read back in order.
async fn payloads(store: &Store, chunks: &[ChunkLocation], partition: i32) -> String {
    let mut text = String::new();
    for chunk in chunks.iter().filter(|c| c.key == key(partition)) {
        let bytes = store
            .read_range(&chunk.object, chunk.position, chunk.len)
            .await
            .unwrap();
        text.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    text
}

fn expected(partition: i32, offsets: std::ops::Range<i64>) -> String {
    offsets
        .map(|o| format!("[p{partition} {o}..{o}]"))
        .collect()
}

fn files(root: &Path, dir: &str) -> usize {
    std::fs::read_dir(root.join(dir))
        .map(|d| d.filter(|e| e.as_ref().unwrap().path().is_file()).count())
        .unwrap_or(0)
}

async fn reopen(root: &Path) -> (Store, dfs_adapter::Recovered) {
    let store = Store::open(&format!("fs://{}", root.display()))
        .await
        .unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    (store, recovered)
}

#[tokio::test]
async fn compacted_segments_replace_flush_objects_across_restarts() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 0, 20).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    assert_eq!(catalog.flush_objects(), 20);

    let done = catalog
        .compact(&small_rounds(), &|_| true)
        .await
        .unwrap()
        .expect("a round ran");
    assert_eq!(done.sources, (0..20).map(ObjectId).collect::<Vec<_>>());
    assert_eq!(done.segments.len(), 2, "one segment per partition");
    assert_eq!(done.objects_written, 1, "small partitions share one object");
    assert_eq!(done.segments[0].id, done.segments[1].id);
    assert!(
        done.segments[0].chunks.len() > 1,
        "chunks merged only up to chunk_bytes: {:?}",
        done.segments[0].chunks
    );
    assert_eq!(catalog.flush_objects(), 0);
    assert!(catalog
        .compact(&small_rounds(), &|_| true)
        .await
        .unwrap()
        .is_none());
    drop(catalog);

    // A restart before the sources were deleted: recovery deletes them, adopts the segments.
    let (store, recovered) = reopen(dir.path()).await;
    assert_eq!(files(dir.path(), "wal"), 0);
    assert_eq!(recovered.next_object, ObjectId(20));
    assert!(recovered.chunks.iter().all(|c| c.object.is_segment()));
    assert_eq!(
        payloads(&store, &recovered.chunks, 0).await,
        expected(0, 0..10)
    );
    assert_eq!(
        payloads(&store, &recovered.chunks, 1).await,
        expected(1, 0..10)
    );

    // More data, a second round: small, so one more shared object, the first one untouched.
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    write_objects(&store, recovered.next_object, 10, 8).await;
    let (store, recovered) = reopen(dir.path()).await;
    let catalog2 = Catalog::open(store.clone(), &recovered).await.unwrap();
    drop(catalog);
    let done = catalog2
        .compact(&small_rounds(), &|_| true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.segments.len(), 2);
    assert_eq!(catalog2.segment_count(), 4);
    // Obsolete objects go at the second deletion pass, not the first.
    assert_eq!(catalog2.delete_obsolete().await.unwrap(), 0);
    assert_eq!(catalog2.delete_obsolete().await.unwrap(), 8);
    assert_eq!(files(dir.path(), "seg"), 2);
    assert_eq!(files(dir.path(), "wal"), 0);
    let (store, recovered) = reopen(dir.path()).await;
    assert_eq!(
        payloads(&store, &recovered.chunks, 0).await,
        expected(0, 0..14)
    );
    assert_eq!(
        payloads(&store, &recovered.chunks, 1).await,
        expected(1, 0..14)
    );
    assert_eq!(recovered.next_object, ObjectId(28));
}

#[tokio::test]
async fn interrupted_compaction_and_torn_checkpoints_are_cleaned_up() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 0, 6).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    Catalog::open(store.clone(), &recovered).await.unwrap();
    // A segment written by a compaction that died before its checkpoint, and a torn
    // checkpoint after the last good one.
    std::fs::write(dir.path().join("seg/00000000000000000005.hws"), b"half").unwrap();
    std::fs::write(
        dir.path().join("manifest/00000000000000000009.json"),
        b"{\"form",
    )
    .unwrap();

    let (store, recovered) = reopen(dir.path()).await;
    assert_eq!(files(dir.path(), "seg"), 0, "orphan segment deleted");
    assert!(!dir
        .path()
        .join("manifest/00000000000000000009.json")
        .exists());
    assert_eq!(recovered.manifest.as_ref().map(|m| m.seq), Some(0));
    assert_eq!(
        payloads(&store, &recovered.chunks, 0).await,
        expected(0, 0..3)
    );
    // The next checkpoint takes the torn one's number without trouble.
    let catalog = Catalog::open(store, &recovered).await.unwrap();
    catalog.truncate(key(0), 1).await.unwrap();
}

#[tokio::test]
async fn truncation_and_dropped_partitions_survive_restart() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 0, 12).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    // Partition 1 "deleted": compaction leaves its batches out.
    catalog
        .compact(&small_rounds(), &|k| k.partition == 0)
        .await
        .unwrap()
        .unwrap();
    let segment = &catalog.segments_of(&key(0)).await[0];
    let first_chunk_end = segment.chunks[0].last_offset;
    catalog.truncate(key(0), first_chunk_end + 2).await.unwrap();
    assert_eq!(
        catalog.state().await.log_start(&key(0)),
        Some(first_chunk_end + 2)
    );

    let (store, recovered) = reopen(dir.path()).await;
    assert_eq!(payloads(&store, &recovered.chunks, 1).await, "");
    let kept = payloads(&store, &recovered.chunks, 0).await;
    let first_kept = recovered.chunks[0].base_offset;
    assert!(first_kept > first_chunk_end, "{:?}", recovered.chunks);
    assert_eq!(kept, expected(0, first_kept..6));
    assert!(
        recovered
            .chunks
            .iter()
            .all(|c| c.last_offset >= first_chunk_end + 2),
        "chunks wholly below the log start are left out"
    );
    // Truncating past everything retires the segment.
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    catalog.truncate(key(0), 6).await.unwrap();
    assert_eq!(catalog.segment_count(), 0);
    let (_, recovered) = reopen(dir.path()).await;
    assert!(recovered.chunks.is_empty());
    let state = recovered.manifest.unwrap().state;
    assert_eq!(state.log_start(&key(0)), Some(6));
}

#[tokio::test]
async fn a_second_writer_fences_the_first() {
    let (dir, store) = temp_store().await;
    write_objects(&store, ObjectId(0), 0, 2).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let first = Catalog::open(store.clone(), &recovered).await.unwrap();
    let (store2, recovered2) = reopen(dir.path()).await;
    let _second = Catalog::open(store2, &recovered2).await.unwrap();
    match first.truncate(key(0), 1).await {
        Err(StorageError::Fenced(reason)) => assert!(reason.contains("another broker"), "{reason}"),
        other => panic!("expected fencing, got {other:?}"),
    }
}
