//! Write failures on a real filesystem: retried with backoff, reported in object order.

use std::time::{Duration, Instant};

use dfs_adapter::{FlushConfig, FlushEvent, ObjectId, StorageError};

use crate::common::*;

#[tokio::test]
async fn broken_wal_directory_fails_then_recovers() {
    let (dir, store) = temp_store().await;
    // `wal` replaced by a plain file: every object write fails.
    let wal = dir.path().join("wal");
    std::fs::remove_dir(&wal).unwrap();
    std::fs::write(&wal, b"in the way").unwrap();

    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    pipeline.flush_now();
    match events.next().await {
        FlushEvent::Failed {
            object, attempt, ..
        } => assert_eq!((object, attempt), (ObjectId(0), 1)),
        other => panic!("expected a failure, got {other:?}"),
    }

    std::fs::remove_file(&wal).unwrap();
    std::fs::create_dir(&wal).unwrap();
    loop {
        match events.next().await {
            FlushEvent::Failed {
                object, attempt, ..
            } => assert!(object == ObjectId(0) && attempt >= 2),
            FlushEvent::Durable { object, chunks, .. } => {
                assert_eq!(object, ObjectId(0));
                assert_eq!(batch_count(&chunks), 1);
                break;
            }
        }
    }
    assert!(pipeline.stats().failures >= 1);
    pipeline.shutdown().await;
    assert_eq!(store.recover(MAX_IN_FLIGHT).await.unwrap().objects, 1);
}

/// Whether `error` is a local I/O error of `kind` (and not OpenDAL's misleading
/// `AlreadyExists`, which is `mkdir`'s `EEXIST` on `wal` while a file stands there).
fn is_io(error: &StorageError, kind: std::io::ErrorKind) -> bool {
    matches!(error, StorageError::Io { source, .. } if source.kind() == kind)
        && !error.to_string().contains("AlreadyExists")
}

/// The broker's storage fault: `wal/` is swapped for a plain file under a running pipeline,
/// then put back. Meanwhile an earlier attempt's file (here: longer than the object, and not its
/// content) sits under the object's name. The failure must say what is wrong, and the retry must
/// replace the leftover rather than trip over it.
#[tokio::test]
async fn a_retry_replaces_what_a_failed_attempt_left() {
    let (dir, store) = temp_store().await;
    let wal = dir.path().join("wal");
    let object_path = dir.path().join(ObjectId(0).key());
    std::fs::write(&object_path, vec![0xa5; 64 * 1024]).unwrap();
    let parked = dir.path().join("wal.parked");
    std::fs::rename(&wal, &parked).unwrap();
    std::fs::write(&wal, b"not a directory").unwrap();

    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    pipeline.flush_now();
    match events.next().await {
        FlushEvent::Failed {
            object,
            attempt,
            error,
        } => {
            assert_eq!((object, attempt), (ObjectId(0), 1));
            assert!(
                is_io(&error, std::io::ErrorKind::NotADirectory),
                "unexpected error: {error}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    std::fs::remove_file(&wal).unwrap();
    std::fs::rename(&parked, &wal).unwrap();
    let (bytes, chunks) = loop {
        match events.next().await {
            FlushEvent::Failed { object, error, .. } => {
                assert_eq!(object, ObjectId(0));
                assert!(
                    is_io(&error, std::io::ErrorKind::NotADirectory),
                    "unexpected error: {error}"
                );
            }
            FlushEvent::Durable {
                object,
                bytes,
                chunks,
                ..
            } => {
                assert_eq!(object, ObjectId(0));
                break (bytes, chunks);
            }
        }
    };
    pipeline.shutdown().await;
    assert_eq!(std::fs::metadata(&object_path).unwrap().len(), bytes);
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!((recovered.objects, recovered.next_object), (1, ObjectId(1)));
    let chunk = &chunks[0];
    let read = store
        .read_range(&chunk.object, chunk.position, chunk.len)
        .await
        .unwrap();
    assert_eq!(&read[..], b"[p0 0..0]");
}

/// A `wal/` that vanished under the pipeline is an error until it is back: creating it again in
/// passing (as OpenDAL's writer would) would neither be durable nor notice the lost objects.
#[tokio::test]
async fn a_vanished_wal_directory_is_not_recreated() {
    let (dir, store) = temp_store().await;
    let wal = dir.path().join("wal");
    std::fs::remove_dir(&wal).unwrap();

    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    pipeline.flush_now();
    match events.next().await {
        FlushEvent::Failed { object, error, .. } => {
            assert_eq!(object, ObjectId(0));
            assert!(
                is_io(&error, std::io::ErrorKind::NotFound),
                "unexpected error: {error}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!wal.exists(), "the write created wal/ again");

    std::fs::create_dir(&wal).unwrap();
    loop {
        if let FlushEvent::Durable { object, .. } = events.next().await {
            assert_eq!(object, ObjectId(0));
            break;
        }
    }
    pipeline.shutdown().await;
    assert_eq!(store.recover(MAX_IN_FLIGHT).await.unwrap().objects, 1);
}

#[tokio::test]
async fn a_failing_object_holds_back_later_ones() {
    let (dir, store) = temp_store().await;
    // Object 0's name is a dangling symlink into a missing directory: creating it fails with
    // "not found" while object 1 writes normally.
    let blocked = dir.path().join(ObjectId(0).key());
    std::os::unix::fs::symlink(dir.path().join("missing/target"), &blocked).unwrap();

    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    pipeline.submit(batch(1, 0, 1)).unwrap();

    // Wait until object 1 is durable on disk but held back behind object 0.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pipeline.stats().objects_written < 1 {
        assert!(Instant::now() < deadline, "object 1 never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(60)).await; // a few more retries of object 0
    while let Some(event) = events.try_next() {
        match event {
            FlushEvent::Failed { object, .. } => assert_eq!(object, ObjectId(0)),
            other => panic!("delivered out of order: {other:?}"),
        }
    }

    std::fs::remove_file(&blocked).unwrap();
    let mut durable = Vec::new();
    while durable.len() < 2 {
        match events.next().await {
            FlushEvent::Failed { object, .. } => {
                assert!(durable.is_empty() && object == ObjectId(0));
            }
            FlushEvent::Durable { object, .. } => durable.push(object),
        }
    }
    assert_eq!(durable, vec![ObjectId(0), ObjectId(1)]);
    pipeline.shutdown().await;
    assert_eq!(
        store.recover(MAX_IN_FLIGHT).await.unwrap().next_object,
        ObjectId(2)
    );
}
