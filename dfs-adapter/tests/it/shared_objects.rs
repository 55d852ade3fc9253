//! Shared objects: compaction packs small partitions into one object per round, moves a
//! partition to objects of its own once it has enough, and empties mostly dead objects; an
//! object goes only when no live segment is in it. Checked by randomized trials against a model
//! of what each partition must hold (`HOTWIRE_SHARED_TRIALS` for more seeds).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dfs_adapter::{Catalog, CompactionConfig, ObjectId, Recovered, Store};

use crate::common::*;
use crate::model::{check_contents, produce, Model};

async fn open(root: &Path) -> (Store, Recovered, Catalog) {
    let store = Store::open(&format!("fs://{}", root.display()))
        .await
        .unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    (store, recovered, catalog)
}

/// Manifest invariants: every shared object holds a live segment, no partition's tail grows
/// without bound, and every segment lies within an object that exists.
async fn check_manifest(root: &Path, catalog: &Catalog, context: &str) {
    let state = catalog.state().await;
    let live: BTreeSet<ObjectId> = state.segments.iter().map(|s| s.id).collect();
    for (id, _) in &state.shared {
        assert!(live.contains(id), "{context}: shared {id} holds no segment");
    }
    let mut per_key: BTreeMap<_, usize> = BTreeMap::new();
    for segment in &state.segments {
        assert!(
            !state.obsolete.contains(&segment.id),
            "{context}: live {} obsolete",
            segment.id
        );
        let name = segment.id.key();
        assert!(root.join(&name).exists(), "{context}: {name} missing");
        if state.shared.iter().any(|(id, _)| *id == segment.id) {
            *per_key.entry(segment.key).or_default() += 1;
        }
    }
    for (key, count) in per_key {
        assert!(
            count <= 17,
            "{context}: {key:?} has {count} shared segments"
        );
    }
}

fn stored_segments(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("seg"))
        .map(|d| {
            d.map(|e| format!("seg/{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

async fn trial(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let partitions = rng.i32(1..7);
    let config = CompactionConfig {
        min_objects: 1,
        max_bytes: rng.u64(30..300),
        segment_target_bytes: rng.u64(40..400),
        chunk_bytes: rng.u64(20..80),
        ..CompactionConfig::default()
    };
    let mut model = Model::default();
    let (mut store, mut recovered, mut catalog) = open(root).await;
    let mut next_object = recovered.next_object;
    for step in 0..40 {
        let context = format!("seed {seed} step {step} ({config:?})");
        match rng.u8(0..10) {
            0..=3 => {
                produce(
                    &mut rng,
                    &store,
                    &catalog,
                    &mut next_object,
                    &mut model,
                    partitions,
                )
                .await
            }
            4..=6 => {
                catalog.compact(&config, &|_| true).await.unwrap();
            }
            7 => {
                let partition = rng.i32(0..partitions);
                let next = model.next.get(&partition).copied().unwrap_or(0);
                let start = model.log_start.entry(partition).or_default();
                *start = rng.i64(*start..=next);
                catalog.truncate(key(partition), *start).await.unwrap();
            }
            8 => {
                catalog.delete_obsolete().await.unwrap();
            }
            _ => {
                drop(catalog);
                (store, recovered, catalog) = open(root).await;
                next_object = recovered.next_object;
                check_contents(&store, &recovered, &model, &context).await;
            }
        }
        check_manifest(root, &catalog, &context).await;
    }
    // Fold everything, let the deletions ripen, and nothing is left behind or lost.
    while catalog.compact(&config, &|_| true).await.unwrap().is_some() {}
    catalog.delete_obsolete().await.unwrap();
    catalog.delete_obsolete().await.unwrap();
    let state = catalog.state().await;
    let referenced: BTreeSet<String> = state.segments.iter().map(|s| s.id.key()).collect();
    assert_eq!(
        stored_segments(root),
        referenced,
        "seed {seed}: leaked or lost objects"
    );
    drop(catalog);
    let (store, recovered, _catalog) = open(root).await;
    check_contents(
        &store,
        &recovered,
        &model,
        &format!("seed {seed} at the end"),
    )
    .await;
}

#[tokio::test]
async fn randomized_rounds_truncations_and_restarts_keep_every_record_and_leak_no_object() {
    let trials: u64 = std::env::var("HOTWIRE_SHARED_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let first: u64 = std::env::var("HOTWIRE_SHARED_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("HOTWIRE_SHARED_SEED={first}");
    for seed in first..first + trials {
        trial(seed).await;
    }
}

#[tokio::test]
async fn a_busy_partition_gets_objects_of_its_own_and_quiet_ones_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (store, _, catalog) = open(root).await;
    let config = CompactionConfig {
        min_objects: 1,
        segment_target_bytes: 400,
        chunk_bytes: 1 << 20,
        ..CompactionConfig::default()
    };
    // Partition 0: 30 batches of ~11 bytes (over a quarter of the target); 1 to 3: one each.
    let (pipeline, mut events) = start(&store, lazy_config(), ObjectId(0));
    for offset in 0..30 {
        pipeline.submit(batch(0, offset, 1)).unwrap();
    }
    for partition in 1..4 {
        pipeline.submit(batch(partition, 0, 1)).unwrap();
    }
    pipeline.flush_now();
    let (object, chunks) = events.durable().await;
    catalog.add_flush(object, &chunks);
    let done = catalog.compact(&config, &|_| true).await.unwrap().unwrap();
    assert_eq!(done.objects_written, 2, "{:?}", done.segments);
    let own: Vec<_> = done.segments.iter().filter(|s| s.key == key(0)).collect();
    assert_eq!(own.len(), 1);
    assert!(done
        .segments
        .iter()
        .filter(|s| s.key != key(0))
        .all(|s| s.id != own[0].id));
    let state = catalog.state().await;
    assert_eq!(state.shared.len(), 1);
    assert_ne!(state.shared[0].0, own[0].id);
    pipeline.shutdown().await;
}
