//! Flush streams: several shards' flush objects packed into one stored object per flush, found
//! again by other leaders, and swept only once dead.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dfs_adapter::{Catalog, FlushConfig, FlushEvent, FlushStream, Store, StreamConfig};

use crate::common::*;

const SHARDS: u32 = 3;

async fn shard_store(root: &Path, shard: u32, epoch: u32) -> Store {
    let store = Store::open(&format!("fs://{}/shards/{shard:05}", root.display()))
        .await
        .unwrap();
    store.set_writer_epoch(epoch, Arc::new(|| true)).unwrap();
    store
}

/// Shard `shard` recovered by a leader at epoch 2 writing to `stream`, as a take-over does:
/// its store and what it recovered.
async fn take_over(
    root: &Path,
    stream: &FlushStream,
    shard: u32,
) -> (Store, dfs_adapter::Recovered) {
    let store = shard_store(root, shard, 2).await;
    store.use_stream(stream.clone(), shard).await.unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    (store, recovered)
}

async fn stream(root: &Path, name: &str, config: StreamConfig) -> FlushStream {
    let cluster = Store::open(&format!("fs://{}", root.display()))
        .await
        .unwrap();
    FlushStream::start(cluster, name, config).unwrap()
}

/// Sections wait 20 ms for each other, one object at a time: shards writing together share
/// objects.
fn packing() -> StreamConfig {
    StreamConfig {
        max_delay: Duration::from_millis(20),
        max_in_flight: 1,
        ..StreamConfig::default()
    }
}

fn stream_objects(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root.join("streams")).unwrap().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            found.push(file.path());
        }
    }
    found.sort();
    found
}

/// Every shard writes `objects` flush objects of one batch each, all shards at once; returns
/// the shards' stores and catalogs.
async fn write_all(
    root: &Path,
    epoch: u32,
    stream: &FlushStream,
    objects: i64,
) -> Vec<(Store, Catalog)> {
    let mut shards = Vec::new();
    for shard in 0..SHARDS {
        let store = shard_store(root, shard, epoch).await;
        store.use_stream(stream.clone(), shard).await.unwrap();
        let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
        let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
        shards.push((store, catalog, recovered.next_object));
    }
    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let mut running = Vec::new();
    for (shard, (store, _, next)) in shards.iter().enumerate() {
        let (pipeline, events) = start(store, config.clone(), *next);
        for base in 0..objects {
            pipeline
                .submit(batch(shard as i32, base + 1000 * i64::from(epoch), 1))
                .unwrap();
        }
        running.push((pipeline, events));
    }
    for ((pipeline, mut events), (_, catalog, _)) in running.into_iter().zip(&shards) {
        for _ in 0..objects {
            match events.next().await {
                FlushEvent::Durable { object, chunks, .. } => catalog.add_flush(object, &chunks),
                FlushEvent::Failed { error, .. } => panic!("{error}"),
            }
        }
        pipeline.shutdown().await;
    }
    shards.into_iter().map(|(s, c, _)| (s, c)).collect()
}

#[tokio::test]
async fn shards_flushing_together_share_stream_objects_and_other_leaders_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = stream(root, "n1-a", packing()).await;
    let shards = write_all(root, 1, &first, 20).await;
    let stats = first.stats();
    assert_eq!(stats.sections, 3 * 20);
    assert!(
        stats.objects < stats.sections / 2,
        "shards flushing at once were not packed together: {stats:?}"
    );
    assert_eq!(stream_objects(root).len() as u64, stats.objects);
    drop(shards);

    // Another broker takes every shard over and finds each shard's data, and only its own.
    let second = stream(root, "n2-b", StreamConfig::default()).await;
    for shard in 0..SHARDS {
        let (store, recovered) = take_over(root, &second, shard).await;
        assert_eq!(recovered.objects, 20, "shard {shard}");
        assert!(recovered.fence.is_some());
        for chunk in &recovered.chunks {
            assert_eq!(chunk.key, key(shard as i32));
            let bytes = store
                .read_range(&chunk.object, chunk.position, chunk.len)
                .await
                .unwrap();
            let expected = format!("[p{shard} {}..{}]", chunk.base_offset, chunk.last_offset);
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
        }
    }
}

#[tokio::test]
async fn a_sweep_deletes_a_stream_object_only_when_every_shard_is_done_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let writer = stream(root, "n1-a", packing()).await;
    let shards = write_all(root, 1, &writer, 8).await;
    let roots: BTreeMap<u32, Store> = shards
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i as u32, s.clone()))
        .collect();
    let before = stream_objects(root).len();
    let report = writer.sweep(&roots, Duration::ZERO).await.unwrap();
    assert_eq!((report.objects, report.deleted), (before, 0));

    // Shards 0 and 1 compact everything; shard 2 keeps its flush objects: nothing can go.
    let compaction = dfs_adapter::CompactionConfig {
        min_objects: 1,
        ..Default::default()
    };
    for (_, catalog) in &shards[..2] {
        while catalog
            .compact(&compaction, &|_| true)
            .await
            .unwrap()
            .is_some()
        {}
    }
    let report = writer.sweep(&roots, Duration::ZERO).await.unwrap();
    let still_needed = report.objects - report.dead;
    assert!(still_needed > 0, "{report:?}");
    assert_eq!(report.deleted, report.dead);
    assert_eq!(stream_objects(root).len(), still_needed);

    // Shard 2's data is whole for its next leader, which compacts it too.
    let next = shard_store(root, 2, 3).await;
    next.use_stream(writer.clone(), 2).await.unwrap();
    let recovered = next.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.objects, 8);
    let catalog = Catalog::open(next.clone(), &recovered).await.unwrap();
    while catalog
        .compact(&compaction, &|_| true)
        .await
        .unwrap()
        .is_some()
    {}
    // With a grace period, a dead object survives the sweep that first finds it dead.
    let report = writer
        .sweep(&roots, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.dead, report.deleted), (still_needed, 0));
    let report = writer.sweep(&roots, Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, still_needed);
    assert!(stream_objects(root).is_empty());
}

#[tokio::test]
async fn junk_and_torn_stream_objects_are_skipped_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let writer = stream(root, "n1-a", StreamConfig::default()).await;
    let shards = write_all(root, 1, &writer, 3).await;
    drop(shards);
    // A torn copy of a real object, and junk, in the same stream.
    let objects = stream_objects(root);
    let whole = std::fs::read(&objects[0]).unwrap();
    let stream_dir = objects[0].parent().unwrap();
    std::fs::write(
        stream_dir.join("00000000000000000900.hfs"),
        &whole[..whole.len() - 3],
    )
    .unwrap();
    std::fs::write(stream_dir.join("00000000000000000901.hfs"), b"not a stream").unwrap();
    std::fs::write(stream_dir.join("stray.txt"), b"x").unwrap();
    let other = stream(root, "n2-b", StreamConfig::default()).await;
    for shard in 0..SHARDS {
        let store = shard_store(root, shard, 2).await;
        store.use_stream(other.clone(), shard).await.unwrap();
        let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
        assert_eq!(recovered.objects, 3, "shard {shard}");
    }
    let roots = BTreeMap::new();
    let report = other.sweep(&roots, Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, 0, "unknown shards keep their objects");
}

#[tokio::test]
async fn a_failed_stream_write_fails_every_section_and_each_shard_retries_until_the_store_is_back()
{
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The stream's directory is a file: every PUT of the stream fails, as on a full or broken
    // store.
    std::fs::create_dir_all(root.join("streams")).unwrap();
    let blocker = root.join("streams/n1-a");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let broken = stream(root, "n1-a", packing()).await;
    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let mut running = Vec::new();
    for shard in 0..SHARDS {
        let store = shard_store(root, shard, 1).await;
        store.use_stream(broken.clone(), shard).await.unwrap();
        let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
        let (pipeline, events) = start(&store, config.clone(), recovered.next_object);
        pipeline.submit(batch(shard as i32, 0, 1)).unwrap();
        running.push((pipeline, events, recovered.next_object));
    }
    // Each shard hears of the failure of its own object, and nothing is durable.
    for (_, events, first) in running.iter_mut() {
        match events.next().await {
            FlushEvent::Failed { object, .. } => assert_eq!(object, *first),
            FlushEvent::Durable { object, .. } => panic!("{object:?} durable on a broken store"),
        }
    }
    assert_eq!(broken.stats().objects, 0);

    // The store comes back: each shard's retried object (same id) becomes durable, once.
    std::fs::remove_file(&blocker).unwrap();
    for (pipeline, mut events, first) in running {
        loop {
            match events.next().await {
                FlushEvent::Failed { object, .. } => assert_eq!(object, first),
                FlushEvent::Durable { object, .. } => {
                    assert_eq!(object, first);
                    break;
                }
            }
        }
        pipeline.shutdown().await;
    }
    // Another broker finds each shard's batch exactly once.
    let second = stream(root, "n2-b", StreamConfig::default()).await;
    for shard in 0..SHARDS {
        let (store, recovered) = take_over(root, &second, shard).await;
        assert_eq!(recovered.objects, 1, "shard {shard}");
        assert_eq!(recovered.chunks.len(), 1, "shard {shard}");
        let chunk = &recovered.chunks[0];
        let bytes = store
            .read_range(&chunk.object, chunk.position, chunk.len)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            format!("[p{shard} 0..0]")
        );
    }
}
