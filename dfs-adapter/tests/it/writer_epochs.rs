//! Writer epochs: a cluster leader takes a shard's root over from an older one that may still
//! be writing (paused, cut off, or with writes in flight). Randomized trials of successive
//! leaders, each leaving a zombie behind that keeps writing for a while after the takeover:
//! every leader recovers exactly what was acknowledged (nothing a zombie wrote after its fence),
//! and a zombie that knows it lost the shard can neither write nor delete. The same trials run
//! with flush objects as files and in the append-only WAL (each leader its own directory,
//! zombies appending to and reusing theirs), and as sections of flush streams (each leader a
//! stream of its own, as each broker process has; sweeps of dead stream objects in between).
//! `HOTWIRE_EPOCH_TRIALS` sets the number of seeds,
//! `HOTWIRE_EPOCH_SEED` runs one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dfs_adapter::{
    Catalog, CompactionConfig, FlushStream, ObjectId, Recovered, StorageError, Store, StreamConfig,
    WalConfig,
};

use crate::common::*;
use crate::model::{check_contents, produce, try_produce, Model};

/// A leader's handles on the root, and the switch that says whether it still leads.
struct Leader {
    store: Store,
    catalog: Catalog,
    next_object: ObjectId,
    leads: Arc<AtomicBool>,
    /// Its broker's flush stream ([`Layout::Stream`]).
    stream: Option<FlushStream>,
}

impl Leader {
    /// Deletes every stream object of which all sections are dead (no grace).
    async fn sweep(&self) {
        if let Some(stream) = &self.stream {
            let shards = BTreeMap::from([(0, self.store.clone())]);
            stream.sweep(&shards, Duration::ZERO).await.unwrap();
        }
    }
}

/// Where flush objects go.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// One file each.
    Files,
    /// The append-only WAL, in files of this many bytes (a 4 KiB page per small record).
    Wal(u64),
    /// Sections of a flush stream under the cluster root, the shard's root below it.
    Stream,
}

/// The shard's root under the trial's directory.
fn shard_root(root: &Path, layout: Layout) -> PathBuf {
    match layout {
        Layout::Stream => root.join("shards/00000"),
        _ => root.to_path_buf(),
    }
}

async fn take_over(root: &Path, epoch: u32, layout: Layout) -> (Leader, Recovered) {
    reopen(root, epoch, layout, None).await
}

/// [`take_over`], with the stream of the process that reopens the shard (a process writes one
/// stream; one epoch is only ever led by one process).
async fn reopen(
    root: &Path,
    epoch: u32,
    layout: Layout,
    stream: Option<FlushStream>,
) -> (Leader, Recovered) {
    let store = Store::open(&format!("fs://{}", shard_root(root, layout).display()))
        .await
        .unwrap();
    let leads = Arc::new(AtomicBool::new(true));
    let flag = leads.clone();
    store
        .set_writer_epoch(epoch, Arc::new(move || flag.load(Ordering::SeqCst)))
        .unwrap();
    if let Layout::Wal(file_bytes) = layout {
        let config = WalConfig {
            file_bytes,
            spare_files: 1,
            peak_window: std::time::Duration::ZERO,
            ..WalConfig::default()
        };
        // The same epoch reopened: the last engine's background tasks may hold its WAL's lock
        // a moment longer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match store.use_wal(config.clone()).await {
                Ok(()) => break,
                Err(StorageError::RootHeld { .. }) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let mut stream = stream;
    if let Layout::Stream = layout {
        if stream.is_none() {
            let cluster_root = Store::open(&format!("fs://{}", root.display()))
                .await
                .unwrap();
            let name = format!("leader-e{epoch}-{}", fastrand::u32(..));
            stream =
                Some(FlushStream::start(cluster_root, &name, StreamConfig::default()).unwrap());
        }
        let started = stream.clone().unwrap();
        store.use_stream(started, 0).await.unwrap();
    }
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    let leader = Leader {
        store,
        catalog,
        next_object: recovered.next_object,
        leads,
        stream,
    };
    (leader, recovered)
}

async fn trial(seed: u64, layout: Layout) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let layout = match layout {
        Layout::Wal(_) => Layout::Wal(4096 * rng.u64(2..6)),
        other => other,
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let partitions = rng.i32(1..5);
    let config = CompactionConfig {
        min_objects: 1,
        max_bytes: rng.u64(30..300),
        segment_target_bytes: rng.u64(40..400),
        chunk_bytes: rng.u64(20..80),
        ..CompactionConfig::default()
    };
    // What was acknowledged: only leaders' writes before they were replaced.
    let mut model = Model::default();
    let mut zombie: Option<(Leader, Model)> = None;
    let leaders = rng.u32(2..6);
    // Epochs need not be consecutive: a shard may have been assigned and lost in between.
    let mut epoch = 0;
    for turn in 0..leaders {
        epoch += rng.u32(1..3);
        let context = format!("seed {seed} {layout:?} leader {turn} at epoch {epoch} ({config:?})");
        let (mut leader, recovered) = take_over(root, epoch, layout).await;
        assert!(
            leader.next_object.epoch() == epoch,
            "{context}: {}",
            leader.next_object
        );
        check_contents(&leader.store, &recovered, &model, &context).await;

        if let Some((mut old, mut its_view)) = zombie.take() {
            // The old leader has not noticed yet: its writes land after the takeover.
            for _ in 0..rng.usize(0..3) {
                if rng.bool() {
                    // Its WAL directory may be gone already (the new leader retires what
                    // it does not adopt): then its write fails, as a fenced writer's may.
                    let _ = try_produce(
                        &mut rng,
                        &old.store,
                        &old.catalog,
                        &mut old.next_object,
                        &mut its_view,
                        partitions,
                    )
                    .await;
                } else {
                    old.catalog.compact(&config, &|_| true).await.unwrap();
                }
            }
            // Then it learns it lost the shard: every write and deletion is refused.
            old.leads.store(false, Ordering::SeqCst);
            let refused = old.catalog.delete_obsolete().await;
            assert!(
                matches!(refused, Err(StorageError::Fenced(_)) | Ok(_)),
                "{context}: {refused:?}"
            );
            let compacted = old.catalog.compact(&config, &|_| true).await;
            assert!(
                matches!(compacted, Err(StorageError::Fenced(_)) | Ok(None)),
                "{context}: a fenced zombie compacted: {compacted:?}"
            );
        }

        for step in 0..rng.usize(1..12) {
            let context = format!("{context} step {step}");
            match rng.u8(0..8) {
                0..=3 => {
                    produce(
                        &mut rng,
                        &leader.store,
                        &leader.catalog,
                        &mut leader.next_object,
                        &mut model,
                        partitions,
                    )
                    .await
                }
                4 | 5 => {
                    leader.catalog.compact(&config, &|_| true).await.unwrap();
                }
                6 => {
                    leader.catalog.delete_obsolete().await.unwrap();
                    if rng.bool() {
                        leader.sweep().await;
                    }
                }
                _ => {
                    let partition = rng.i32(0..partitions);
                    let next = model.next.get(&partition).copied().unwrap_or(0);
                    let start = model.log_start.entry(partition).or_default();
                    *start = rng.i64(*start..=next);
                    leader
                        .catalog
                        .truncate(key(partition), *start)
                        .await
                        .unwrap();
                }
            }
            if step == 0 && rng.u8(0..4) == 0 {
                // A restart at the same epoch (the same leader, its process restarted before
                // its lease expired is not possible; this is the engine reopened).
                let stream = leader.stream.clone();
                drop(leader);
                let (again, recovered) = reopen(root, epoch, layout, stream).await;
                leader = again;
                check_contents(&leader.store, &recovered, &model, &context).await;
            }
        }
        let its_view = Model {
            next: model.next.clone(),
            log_start: model.log_start.clone(),
        };
        zombie = Some((leader, its_view));
    }
    // One more takeover after the last zombie wrote too.
    if let Some((mut old, mut its_view)) = zombie.take() {
        let (last, recovered) = take_over(root, epoch + 1, layout).await;
        check_contents(
            &last.store,
            &recovered,
            &model,
            &format!("seed {seed} {layout:?} final"),
        )
        .await;
        let _ = try_produce(
            &mut rng,
            &old.store,
            &old.catalog,
            &mut old.next_object,
            &mut its_view,
            partitions,
        )
        .await;
        drop(last);
        let (after, recovered) = take_over(root, epoch + 2, layout).await;
        check_contents(
            &after.store,
            &recovered,
            &model,
            &format!("seed {seed} {layout:?} after the last zombie"),
        )
        .await;
        // Once everything is compacted, no older leader's WAL is kept.
        while after
            .catalog
            .compact(&config, &|_| true)
            .await
            .unwrap()
            .is_some()
        {}
        // Deletions wait one period: two calls delete all that was folded.
        after.catalog.delete_obsolete().await.unwrap();
        after.catalog.delete_obsolete().await.unwrap();
        if let Layout::Wal(_) = layout {
            assert_eq!(
                wal_dirs(root),
                vec![format!("w{:010}", epoch + 2)],
                "seed {seed} {layout:?}: older leaders' WAL directories left behind"
            );
        }
        if let Layout::Stream = layout {
            // A later leader adopts nothing from the older streams: their markers go, and
            // a sweep then finds every stream object dead.
            drop(after);
            let (last, recovered) = take_over(root, epoch + 3, layout).await;
            let context = format!("seed {seed} {layout:?} after compaction");
            check_contents(&last.store, &recovered, &model, &context).await;
            assert_eq!(
                files_in(&shard_root(root, layout).join("streams")),
                vec![format!(
                    "{:010}-{}.marker",
                    epoch + 3,
                    last.stream.as_ref().unwrap().name()
                )],
                "{context}: stale stream markers left behind"
            );
            last.sweep().await;
            let left: Vec<String> = files_in(&root.join("streams"));
            assert!(left.is_empty(), "{context}: stream objects left: {left:?}");
        }
    }
}

/// Names of the files under `dir`, recursively, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(at) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// The writer-epoch directories under `wal/`.
fn wal_dirs(root: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(root.join("wal"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

async fn trials(layout: Layout) {
    if let Some(seed) = std::env::var("HOTWIRE_EPOCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        trial(seed, layout).await;
        return;
    }
    let trials = std::env::var("HOTWIRE_EPOCH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    for seed in 0..trials {
        trial(seed, layout).await;
    }
}

#[tokio::test]
async fn successive_leaders_recover_exactly_what_was_acknowledged_whatever_zombies_write() {
    trials(Layout::Files).await;
}

#[tokio::test]
async fn successive_leaders_share_the_wal_safely_whatever_zombies_write() {
    trials(Layout::Wal(0)).await;
}

#[tokio::test]
async fn successive_leaders_find_their_objects_in_each_others_flush_streams() {
    trials(Layout::Stream).await;
}

#[tokio::test]
async fn a_leader_of_an_older_epoch_cannot_open_a_root_a_newer_one_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (newer, _) = take_over(dir.path(), 5, Layout::Files).await;
    drop(newer);
    let store = Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    store.set_writer_epoch(4, Arc::new(|| true)).unwrap();
    let refused = store.recover(MAX_IN_FLIGHT).await;
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_fenced_writer_can_neither_write_nor_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, _) = take_over(dir.path(), 1, Layout::Files).await;
    let mut model = Model::default();
    let mut next = leader.next_object;
    produce(
        &mut fastrand::Rng::with_seed(1),
        &leader.store,
        &leader.catalog,
        &mut next,
        &mut model,
        2,
    )
    .await;
    leader.leads.store(false, Ordering::SeqCst);
    let truncated = leader.catalog.truncate(key(0), 1).await;
    assert!(
        matches!(truncated, Err(StorageError::Fenced(_))),
        "{truncated:?}"
    );
    let (pipeline, mut events) = start(&leader.store, lazy_config(), next);
    pipeline.submit(batch(0, 100, 1)).unwrap();
    pipeline.flush_now();
    match events.next().await {
        dfs_adapter::FlushEvent::Failed { error, .. } => {
            assert!(matches!(*error, StorageError::Fenced(_)), "{error:?}")
        }
        other => panic!("a fenced writer's object became durable: {other:?}"),
    }
}
