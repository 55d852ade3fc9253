//! Flush policies, ordering, chunk locations and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_adapter::{
    FlushConfig, FlushEvent, FlushPipeline, ObjectId, PendingBatch, Slicing, StorageError, Store,
    MIN_SLICE_BYTES,
};

use crate::common::*;

#[tokio::test]
async fn time_policy_flushes_a_tiny_batch() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        max_delay: Duration::from_millis(30),
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    let submitted = Instant::now();
    pipeline.submit(batch(0, 0, 1)).unwrap();
    let (object, chunks) = events.durable().await;
    let waited = submitted.elapsed();
    assert!(
        waited >= Duration::from_millis(30),
        "flushed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "flushed after {waited:?}");
    assert_eq!(object, ObjectId(0));
    assert_eq!(batch_count(&chunks), 1);
    pipeline.shutdown().await;
}

/// Group commit: an idle pipeline writes a batch at once, however long the time policy.
#[tokio::test]
async fn group_commit_writes_at_once_when_nothing_is_being_written() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        group_commit: true,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    for base in 0..3 {
        pipeline.submit(batch(0, base, 1)).unwrap();
        let (object, chunks) = events.durable().await;
        assert_eq!(object, ObjectId(base as u64));
        assert_eq!(batch_count(&chunks), 1);
    }
    pipeline.shutdown().await;
}

/// Group commit: what arrives while an object is being written rides the next one, in one
/// object, however many batches (the limits stay far away here).
#[tokio::test]
async fn batches_arriving_during_a_write_ride_the_next_object() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        group_commit: true,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    // This test's runtime has one thread: yielding lets the pipeline task seal object 0 and
    // start its write, and it cannot act again until the submits below are all queued.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    for base in 1..=200 {
        pipeline.submit(batch(1, base, 1)).unwrap();
    }
    let (first, chunks) = events.durable().await;
    assert_eq!((first, batch_count(&chunks)), (ObjectId(0), 1));
    let (second, chunks) = events.durable().await;
    assert_eq!((second, batch_count(&chunks)), (ObjectId(1), 200));
    pipeline.shutdown().await;
}

#[tokio::test]
async fn byte_policy_fires_alone() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        max_bytes: 30,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    // Each payload ("[p0 0..0]") is 9 bytes; the fourth crosses 30.
    for base in 0..3 {
        pipeline.submit(batch(0, base, 1)).unwrap();
    }
    assert!(events.quiet_for(Duration::from_millis(100)).await);
    pipeline.submit(batch(0, 3, 1)).unwrap();
    let (_, chunks) = events.durable().await;
    assert_eq!(batch_count(&chunks), 4);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn count_policy_fires_alone() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        max_batches: 4,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    for p in 0..3 {
        pipeline.submit(batch(p, 0, 5)).unwrap();
    }
    assert!(events.quiet_for(Duration::from_millis(100)).await);
    pipeline.submit(batch(3, 0, 5)).unwrap();
    let (_, chunks) = events.durable().await;
    assert_eq!(chunks.len(), 4);
    assert_eq!(batch_count(&chunks), 4);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn flush_now_flushes_without_a_policy() {
    let (_dir, store) = temp_store().await;
    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    pipeline.flush_now();
    let (_, chunks) = events.durable().await;
    assert_eq!(batch_count(&chunks), 1);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn events_in_order_and_reads_return_the_bytes_written() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        max_batches: 5,
        max_in_flight: 3,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(10));
    let mut expected: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    let mut next_offset = [0i64; 4];
    for i in 0..41 {
        let p: i32 = i * 7 % 4;
        let records = 1 + i64::from(i % 3);
        let b = batch(p, next_offset[p as usize], records);
        next_offset[p as usize] += records;
        expected.entry(p).or_default().extend_from_slice(&b.data);
        pipeline.submit(b).unwrap();
    }
    pipeline.flush_now();

    let mut written: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut batches = 0;
    let mut want_object = ObjectId(10);
    while batches < 41 {
        let (object, chunks) = events.durable().await;
        assert_eq!(object, want_object, "objects out of order");
        want_object = object.next();
        for chunk in &chunks {
            assert_eq!(chunk.object, object);
            let previous = last_offset.insert(chunk.key.partition, chunk.last_offset);
            assert_eq!(chunk.base_offset, previous.map_or(0, |o| o + 1));
            let bytes = store
                .read_range(&chunk.object, chunk.position, chunk.len)
                .await
                .unwrap();
            assert_eq!(bytes.len() as u64, chunk.len);
            written
                .entry(chunk.key.partition)
                .or_default()
                .extend_from_slice(&bytes);
        }
        batches += batch_count(&chunks);
    }
    assert_eq!(batches, 41);
    assert_eq!(written, expected);
    assert_eq!(pipeline.stats().batches_written, 41);
    pipeline.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_everything_then_rejects_batches() {
    let (_dir, store) = temp_store().await;
    let config = FlushConfig {
        max_batches: 2,
        max_in_flight: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(&store, config, ObjectId(0));
    for base in 0..7 {
        pipeline.submit(batch(0, base, 1)).unwrap();
    }
    pipeline.shutdown().await;
    // Everything was delivered before shutdown returned.
    let mut batches = 0;
    let mut objects = 0;
    while let Some(event) = events.try_next() {
        let FlushEvent::Durable { chunks, .. } = event else {
            panic!("unexpected {event:?}");
        };
        batches += batch_count(&chunks);
        objects += 1;
    }
    assert_eq!(batches, 7);
    assert_eq!(objects, 4);
    let stats = pipeline.stats();
    assert_eq!((stats.objects_written, stats.failures), (4, 0));
    assert!(matches!(
        pipeline.submit(batch(0, 7, 1)),
        Err(StorageError::Closed)
    ));
    pipeline.shutdown().await; // idempotent
}

#[tokio::test]
async fn dropping_every_handle_still_flushes() {
    let (_dir, store) = temp_store().await;
    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    pipeline.submit(batch(0, 0, 1)).unwrap();
    drop(pipeline);
    let (_, chunks) = events.durable().await;
    assert_eq!(batch_count(&chunks), 1);
}

#[tokio::test]
async fn batch_data_is_freed_before_durable_is_delivered() {
    let (_dir, store) = temp_store().await;
    let freed = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pipeline = {
        let (freed, seen) = (freed.clone(), seen.clone());
        FlushPipeline::start(store, lazy_config(), ObjectId(0), move |event| {
            if let FlushEvent::Durable { .. } = event {
                seen.lock().unwrap().push(freed.load(Ordering::SeqCst));
            }
        })
    };
    pipeline.submit(tracked_batch(0, 0, freed.clone())).unwrap();
    assert!(!freed.load(Ordering::SeqCst));
    pipeline.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), vec![true]);
}

#[tokio::test]
async fn unusable_batches_are_rejected() {
    let (_dir, store) = temp_store().await;
    let (pipeline, _events) = start(&store, lazy_config(), ObjectId(0));
    let mut empty = batch(0, 0, 1);
    empty.data = bytes::Bytes::new();
    assert!(matches!(
        pipeline.submit(empty),
        Err(StorageError::InvalidArgument(_))
    ));
    let mut backwards = batch(0, 5, 1);
    backwards.last_offset = 4;
    assert!(pipeline.submit(backwards).is_err());
    pipeline.shutdown().await;
}

#[tokio::test]
async fn objects_above_one_slice_are_written_and_read_in_concurrent_slices() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("fs://{}", dir.path().display());
    let slicing = Slicing {
        slice_bytes: MIN_SLICE_BYTES,
        concurrency: 3,
    };
    let store = Store::open_with(&url, slicing).await.unwrap();
    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    // 12 batches of 1 MiB + 1 byte over two partitions: one object of about 2.4 slices.
    let mut written = BTreeMap::new();
    for i in 0..12i64 {
        let partition = (i % 2) as i32;
        let data: Vec<u8> = (0..(1 << 20) + 1)
            .map(|b| (b as i64 * 31 + i) as u8)
            .collect();
        written
            .entry(partition)
            .or_insert_with(Vec::new)
            .extend_from_slice(&data);
        pipeline
            .submit(PendingBatch {
                data: data.into(),
                ..batch(partition, i / 2, 1)
            })
            .unwrap();
    }
    pipeline.flush_now();
    let (object, chunks) = events.durable().await;
    assert_eq!(chunks.len(), 2);
    for chunk in &chunks {
        // Each chunk (6 MiB + 6 bytes) is itself more than a slice: a sliced read.
        let read = store
            .read_range(&chunk.object, chunk.position, chunk.len)
            .await
            .unwrap();
        assert_eq!(read.as_ref(), written[&chunk.key.partition].as_slice());
    }
    pipeline.shutdown().await;

    let reopened = Store::open(&url).await.unwrap();
    let recovered = reopened.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 1);
    assert_eq!(recovered.next_object, ObjectId(object.0 + 1));
    assert_eq!(recovered.chunks, chunks);
}

#[tokio::test]
async fn slicing_below_the_s3_part_minimum_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let slicing = Slicing {
        slice_bytes: MIN_SLICE_BYTES - 1,
        concurrency: 2,
    };
    let err = Store::open_with(&format!("fs://{}", dir.path().display()), slicing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("minimum"), "{err}");
}
