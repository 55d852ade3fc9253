//! One broker per storage root: the root claim (file lock, lease) and the refusal to fall back
//! past a complete but invalid manifest checkpoint.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dfs_adapter::{Catalog, CompactionConfig, LeaseConfig, ObjectId, StorageError, Store};

use crate::common::*;

async fn write_objects(store: &Store, objects: i64) {
    let config = dfs_adapter::FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(store, config, ObjectId(0));
    for i in 0..objects {
        pipeline.submit(batch((i % 2) as i32, i / 2, 1)).unwrap();
    }
    for _ in 0..objects {
        events.durable().await;
    }
    pipeline.shutdown().await;
}

/// Every file under the root with its content.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for dir in ["wal", "seg", "manifest"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            files.insert(
                path.strip_prefix(root).unwrap().display().to_string(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    files
}

fn checkpoint(root: &Path, seq: u64) -> std::path::PathBuf {
    root.join(format!("manifest/{seq:020}.json"))
}

/// A root with checkpoint 0 (no segments) and checkpoint 1 (two segments from a compaction).
async fn compacted_root() -> tempfile::TempDir {
    let (dir, store) = temp_store().await;
    write_objects(&store, 8).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    let rounds = CompactionConfig {
        min_objects: 4,
        ..CompactionConfig::default()
    };
    catalog.compact(&rounds, &|_| true).await.unwrap().unwrap();
    assert!(checkpoint(dir.path(), 1).exists());
    dir
}

async fn open(root: &Path) -> Store {
    Store::open(&format!("fs://{}", root.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_complete_but_corrupt_newest_checkpoint_stops_recovery_and_deletes_nothing() {
    let dir = compacted_root().await;
    let path = checkpoint(dir.path(), 1);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x20; // a bit flip inside the body; the checksum line is intact
    std::fs::write(&path, &bad).unwrap();
    let before = snapshot(dir.path());
    assert!(before.keys().any(|k| k.starts_with("seg/")), "{before:?}");

    let store = open(dir.path()).await;
    match store.recover(MAX_IN_FLIGHT).await {
        Err(StorageError::Corrupt { object, reason }) => {
            assert!(object.ends_with("00000000000000000001.json"), "{object}");
            assert!(reason.contains("deleted nothing"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before, "recovery deleted something");

    // Repaired, it recovers with the segments.
    std::fs::write(&path, &good).unwrap();
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.manifest.unwrap().seq, 1);
    assert!(recovered.chunks.iter().all(|c| c.object.is_segment()));
}

#[tokio::test]
async fn a_torn_newest_checkpoint_falls_back_but_a_second_invalid_one_refuses() {
    let dir = compacted_root().await;
    let one = std::fs::read(checkpoint(dir.path(), 1)).unwrap();
    // Checkpoint 2 cut short, as by a crash while writing it: the previous one is used.
    std::fs::write(checkpoint(dir.path(), 2), &one[..one.len() / 2]).unwrap();
    let store = open(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.manifest.unwrap().seq, 1);
    assert!(
        !checkpoint(dir.path(), 2).exists(),
        "torn checkpoint deleted"
    );

    // Torn newest and a corrupt one below it: no single crash explains that.
    std::fs::write(checkpoint(dir.path(), 2), &one[..10]).unwrap();
    let mut bad = one.clone();
    bad[5] ^= 1;
    std::fs::write(checkpoint(dir.path(), 1), &bad).unwrap();
    let before = snapshot(dir.path());
    let err = store.recover(MAX_IN_FLIGHT).await.unwrap_err();
    assert!(err.to_string().contains("torn newest checkpoint"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn the_fs_root_lock_admits_one_claim_at_a_time() {
    let (dir, store) = temp_store().await;
    let claim = store.claim_root(uuid::Uuid::new_v4()).await.unwrap();
    let second = open(dir.path()).await;
    let err = second.claim_root(uuid::Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(err, StorageError::RootHeld { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("another broker holds {}", dir.path().display())),
        "{err}"
    );
    drop(claim);
    second.claim_root(uuid::Uuid::new_v4()).await.unwrap();
}

fn quick() -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_millis(800),
        settle: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn a_renewed_lease_refuses_others_and_a_dead_one_is_taken_over() {
    let (dir, store) = temp_store().await;
    let first = store
        .acquire_lease(uuid::Uuid::new_v4(), quick())
        .await
        .unwrap();
    // While the first renews, a second is refused (within about a renewal period).
    let second = open(dir.path()).await;
    let started = Instant::now();
    let err = second
        .acquire_lease(uuid::Uuid::new_v4(), quick())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::RootHeld { .. }), "{err}");
    assert!(err.to_string().contains("is live"), "{err}");
    assert!(started.elapsed() < quick().ttl, "{:?}", started.elapsed());

    // The first stops renewing (as if killed): the second waits a time to live and takes it.
    drop(first);
    let started = Instant::now();
    let taken = second
        .acquire_lease(uuid::Uuid::new_v4(), quick())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= quick().ttl / 2,
        "{:?}",
        started.elapsed()
    );
    drop(taken);
}

#[tokio::test]
async fn a_holder_whose_lease_is_taken_over_learns_it_lost_the_root() {
    let (dir, store) = temp_store().await;
    let claim = store
        .acquire_lease(uuid::Uuid::new_v4(), quick())
        .await
        .unwrap();
    // Someone else overwrites the lease (an operator, or a broker that judged it dead).
    let foreign = format!(
        "{{\"owner\":\"{}\",\"pid\":1,\"renewals\":0,\"ttl_ms\":800,\"written_unix_ms\":0}}",
        uuid::Uuid::new_v4()
    );
    std::fs::write(dir.path().join("lease.json"), foreign).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), claim.lost())
        .await
        .expect("the loss is noticed within a renewal period");
    assert!(reason.contains("taken over"), "{reason}");
    // From then on its writes are refused: it must not write after a takeover.
    let err = store
        .write_manifest(5, uuid::Uuid::new_v4(), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Fenced(_)), "{err}");
}

#[tokio::test]
async fn a_released_lease_lets_the_next_broker_start_at_once() {
    let (dir, store) = temp_store().await;
    let slow = LeaseConfig {
        ttl: Duration::from_secs(30),
        settle: Duration::from_millis(50),
    };
    let claim = store
        .acquire_lease(uuid::Uuid::new_v4(), slow)
        .await
        .unwrap();
    claim.release().await;
    assert!(!dir.path().join("lease.json").exists());
    let started = Instant::now();
    open(dir.path())
        .await
        .acquire_lease(uuid::Uuid::new_v4(), slow)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A lease file as a broker process `pid` on this machine writes it.
fn lease_of_local_process(pid: u32, start_ticks: u64, ttl: Duration) -> String {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let pid_namespace = std::fs::read_link("/proc/self/ns/pid").unwrap();
    serde_json::json!({
        "owner": uuid::Uuid::new_v4(),
        "pid": pid,
        "renewals": 3,
        "ttl_ms": ttl.as_millis() as u64,
        "written_unix_ms": 0,
        "process": {
            "boot_id": boot_id.trim(),
            "pid_namespace": pid_namespace.to_string_lossy(),
            "start_ticks": start_ticks,
        },
    })
    .to_string()
}

/// Field 22 of `/proc/self/stat`: this process's start time in clock ticks.
fn own_start_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_lease_of_an_exited_process_on_this_machine_is_taken_over_at_once() {
    let long = LeaseConfig {
        ttl: Duration::from_secs(30),
        settle: Duration::from_millis(50),
    };
    // A holder that was killed: its pid no longer runs.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let (dir, store) = temp_store().await;
    std::fs::write(
        dir.path().join("lease.json"),
        lease_of_local_process(dead, own_start_ticks(), long.ttl),
    )
    .unwrap();
    let started = Instant::now();
    store
        .acquire_lease(uuid::Uuid::new_v4(), long)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} for a holder that had exited",
        started.elapsed()
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_lease_of_a_running_process_is_waited_out() {
    let short = LeaseConfig {
        ttl: Duration::from_millis(1500),
        settle: Duration::from_millis(50),
    };
    // This test process is the holder: alive, though it does not renew.
    let (dir, store) = temp_store().await;
    std::fs::write(
        dir.path().join("lease.json"),
        lease_of_local_process(std::process::id(), own_start_ticks(), short.ttl),
    )
    .unwrap();
    let started = Instant::now();
    store
        .acquire_lease(uuid::Uuid::new_v4(), short)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= short.ttl,
        "a running holder's lease was taken after {:?}",
        started.elapsed()
    );
}
