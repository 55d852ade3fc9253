//! The append-only WAL: flush objects as records in reused files, recovered as a chain.

use std::path::{Path, PathBuf};

use dfs_adapter::{
    Catalog, ChunkLocation, CompactionConfig, FlushConfig, ObjectId, StorageError, Store, WalConfig,
};
use tempfile::TempDir;

use crate::common::*;

/// Four one-batch objects per file (each record takes one 4 KiB page).
const FILE_BYTES: u64 = 16 << 10;

/// Opens the store at `root` with the WAL in use, keeping one spare file. A store dropped just
/// before may still hold the WAL's lock for a moment (its background spare preparation): wait
/// for it, as a restarted process never has to.
async fn open_wal(root: &Path) -> Store {
    open_wal_keeping(root, std::time::Duration::ZERO).await
}

/// [`open_wal`], keeping the recent peak of files in use over `peak_window` for reuse.
async fn open_wal_keeping(root: &Path, peak_window: std::time::Duration) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let store = Store::open(&format!("fs://{}", root.display()))
            .await
            .unwrap();
        let config = WalConfig {
            dir: None,
            file_bytes: FILE_BYTES,
            spare_files: 1,
            peak_window,
            observer: None,
        };
        match store.use_wal(config).await {
            Ok(()) => return store,
            Err(StorageError::RootHeld { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A new store with the WAL in use, recovered (empty).
async fn temp_wal() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_wal(dir.path()).await;
    store.recover(MAX_IN_FLIGHT).await.unwrap();
    (dir, store)
}

/// Writes `objects` one-batch objects from `first` (partitions 0 and 1 alternating, offsets
/// from `first_offset`); returns the delivered chunks in order.
async fn write_objects(
    store: &Store,
    first: ObjectId,
    first_offset: i64,
    objects: i64,
) -> Vec<ChunkLocation> {
    let config = FlushConfig {
        max_batches: 1,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(store, config, first);
    for i in 0..objects {
        pipeline
            .submit(batch((i % 2) as i32, first_offset + i / 2, 1))
            .unwrap();
    }
    let mut chunks = Vec::new();
    for _ in 0..objects {
        chunks.extend(events.durable().await.1);
    }
    pipeline.shutdown().await;
    chunks
}

async fn read_all(store: &Store, chunks: &[ChunkLocation]) -> String {
    let mut text = String::new();
    for chunk in chunks {
        let bytes = store
            .read_range(&chunk.object, chunk.position, chunk.len)
            .await
            .unwrap();
        text.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    text
}

fn wal_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hwl"))
        .collect();
    files.sort();
    files
}

fn flush_object_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "hwf")
        })
        .count()
}

/// Flips a byte in the data of the record holding object `id`, wherever it is.
fn corrupt_object(root: &Path, id: u64) {
    for path in wal_files(root) {
        let mut bytes = std::fs::read(&path).unwrap();
        for record in (0..bytes.len()).step_by(4096) {
            let header = &bytes[record..(record + 40).min(bytes.len())];
            if header.len() == 40
                && &header[..8] == b"HWWALREC"
                && u64::from_le_bytes(header[16..24].try_into().unwrap()) == id
            {
                bytes[record + 40] ^= 0x40; // the object's first byte, after the header
                std::fs::write(&path, bytes).unwrap();
                return;
            }
        }
    }
    panic!("no record of object {id}");
}

#[tokio::test]
async fn flushes_are_records_in_a_few_files_and_survive_a_restart() {
    let (dir, store) = temp_wal().await;
    let written = write_objects(&store, ObjectId(0), 0, 10).await;
    assert_eq!(
        flush_object_files(dir.path()),
        0,
        "no file per flush object"
    );
    // 10 objects, 4 per file, and perhaps the spare prepared ahead.
    assert!((3..=4).contains(&wal_files(dir.path()).len()));
    let text = read_all(&store, &written).await;
    assert!(text.starts_with("[p0 0..0][p1 0..0][p0 1..1]"), "{text}");
    drop(store);

    let store = open_wal(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, written);
    assert_eq!(recovered.next_object, ObjectId(10));
    assert_eq!(read_all(&store, &recovered.chunks).await, text);
    // The log continues where it ended, and recovers again as one chain.
    let more = write_objects(&store, ObjectId(10), 5, 6).await;
    drop(store);
    let store = open_wal(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, [written, more].concat());
    assert_eq!(recovered.next_object, ObjectId(16));
    assert!((4..=5).contains(&wal_files(dir.path()).len()));
}

#[tokio::test]
async fn a_torn_record_ends_the_chain_and_what_followed_it_never_comes_back() {
    let (dir, store) = temp_wal().await;
    let written = write_objects(&store, ObjectId(0), 0, 6).await;
    drop(store);
    // A crash while objects 2.. were in flight: 2 torn, 3 to 5 complete but never
    // acknowledged (in the window of 4).
    corrupt_object(dir.path(), 2);
    let store = open_wal(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, written[..2]);
    assert_eq!(recovered.next_object, ObjectId(2));
    assert_eq!(
        recovered.discarded,
        vec![ObjectId(2), ObjectId(3), ObjectId(4), ObjectId(5)]
    );
    // The next run writes a new object 2 in the same place, then crashes before its object 3:
    // the old object 3 right behind it is intact and names the expected id, but was written
    // by an older run, so it must not be adopted.
    let again = write_objects(&store, ObjectId(2), 100, 1).await;
    drop(store);
    let store = open_wal(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.chunks, [&written[..2], &again[..]].concat());
    assert_eq!(recovered.next_object, ObjectId(3));
    assert_eq!(read_all(&store, &again).await, "[p0 100..100]");
}

#[tokio::test]
async fn damage_further_back_than_a_crash_window_is_refused() {
    let (dir, store) = temp_wal().await;
    write_objects(&store, ObjectId(0), 0, 12).await;
    drop(store);
    // Object 1 is damaged, and objects up to 11 follow it: it had been
    // acknowledged.
    corrupt_object(dir.path(), 1);
    let store = open_wal(dir.path()).await;
    match store.recover(MAX_IN_FLIGHT).await {
        Err(StorageError::Corrupt { object, reason }) => {
            assert_eq!(object, ObjectId(1).key());
            assert!(reason.contains("changed nothing"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(store);
    // Nothing was changed: undoing the damage recovers everything.
    corrupt_object(dir.path(), 1);
    let store = open_wal(dir.path()).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    assert_eq!(recovered.next_object, ObjectId(12));
}

#[tokio::test]
async fn compacted_files_are_reused_and_spares_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut next = ObjectId(0);
    let mut offset = 0i64;
    for _round in 0..4 {
        let store = open_wal(dir.path()).await;
        let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
        assert_eq!(recovered.next_object, next);
        let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
        (next, offset) = write_and_compact(&store, &catalog, (next, offset), 16).await;
        // All in segments: the spare file and the one being written remain.
        assert!(store.wal_files() <= 2, "{} WAL files", store.wal_files());
        let in_segments: u32 = catalog
            .segments_of(&key(1))
            .await
            .iter()
            .flat_map(|s| s.chunks.iter().map(|c| c.batches))
            .sum();
        assert_eq!(i64::from(in_segments), offset);
    }
    assert!(
        wal_files(dir.path()).len() <= 2,
        "{:?}",
        wal_files(dir.path())
    );
}

/// Writes `objects` objects from `next` (4 per WAL file; partitions 0 and 1 alternating from
/// `offset`), compacts them into segments and deletes them; returns the next object id and
/// offset.
async fn write_and_compact(
    store: &Store,
    catalog: &Catalog,
    (next, offset): (ObjectId, i64),
    objects: i64,
) -> (ObjectId, i64) {
    for chunk in write_objects(store, next, offset, objects).await {
        catalog.add_flush(chunk.object, std::slice::from_ref(&chunk));
    }
    let rounds = CompactionConfig {
        min_objects: 1,
        ..CompactionConfig::default()
    };
    catalog.compact(&rounds, &|_| true).await.unwrap().unwrap();
    // Obsolete objects are deleted one period after they became obsolete.
    catalog.delete_obsolete().await.unwrap();
    catalog.delete_obsolete().await.unwrap();
    (ObjectId(next.0 + objects as u64), offset + objects / 2)
}

#[tokio::test]
async fn a_steady_load_reuses_the_files_of_its_last_cycle_and_a_smaller_one_lets_them_go() {
    let window = std::time::Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let store = open_wal_keeping(dir.path(), window).await;
    let recovered = store.recover(MAX_IN_FLIGHT).await.unwrap();
    let catalog = Catalog::open(store.clone(), &recovered).await.unwrap();
    let mut at = write_and_compact(&store, &catalog, (ObjectId(0), 0), 16).await;
    // The cycle had 4 files in use: they stay, free, for the next one.
    let after_first: Vec<PathBuf> = wal_files(dir.path());
    assert!(after_first.len() >= 4, "{after_first:?}");
    at = write_and_compact(&store, &catalog, at, 16).await;
    let after_second = wal_files(dir.path());
    assert!(
        after_second.iter().all(|f| after_first.contains(f)),
        "the second cycle created files: {after_first:?} then {after_second:?}"
    );
    // Two windows of a lighter load: the peak is forgotten and the surplus deleted.
    for _ in 0..3 {
        tokio::time::sleep(window).await;
        at = write_and_compact(&store, &catalog, at, 2).await;
    }
    assert!(
        wal_files(dir.path()).len() <= 3,
        "{:?}",
        wal_files(dir.path())
    );
}

#[tokio::test]
async fn many_objects_read_at_once_are_each_what_a_read_of_its_own_returns() {
    let (_dir, store) = temp_wal().await;
    // 11 objects over 3 files (4 per file), some lengths cut short, in a scrambled order.
    let written = write_objects(&store, ObjectId(0), 0, 11).await;
    let mut wanted: Vec<(ObjectId, u64)> = written
        .iter()
        .enumerate()
        .map(|(i, c)| (c.object, (c.position + c.len).saturating_sub(i as u64 % 3)))
        .collect();
    wanted.swap(0, 9);
    wanted.swap(3, 5);
    let together = store.read_objects(&wanted).await.unwrap();
    assert_eq!(together.len(), wanted.len());
    for ((object, len), bytes) in wanted.iter().zip(&together) {
        let alone = store.read_range(object, 0, *len).await.unwrap();
        assert_eq!(bytes, &alone, "{object}");
    }
    // Longer than the object: refused.
    let (object, len) = wanted[2];
    assert!(store.read_objects(&[(object, len + 4096)]).await.is_err());
}

#[tokio::test]
async fn an_object_store_needs_a_wal_directory() {
    let store = Store::open("s3://bucket/prefix?endpoint=http://127.0.0.1:1&region=x")
        .await
        .unwrap();
    let err = store.use_wal(WalConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("local filesystem"), "{err}");
}

#[tokio::test]
async fn a_wal_directory_is_locked_and_stays_with_its_store() {
    let wal = tempfile::tempdir().unwrap();
    let (_a_dir, a) = temp_store().await;
    let config = WalConfig {
        dir: Some(wal.path().to_path_buf()),
        file_bytes: FILE_BYTES,
        spare_files: 1,
        peak_window: std::time::Duration::ZERO,
        observer: None,
    };
    a.use_wal(config.clone()).await.unwrap();
    // A second user of the same directory, while the first runs.
    let (_b_dir, b) = temp_store().await;
    let err = b.use_wal(config.clone()).await.unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    drop(a);
    // Free once the first store and its background work are gone, but tied to that store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let err = loop {
        let err = b.use_wal(config.clone()).await.unwrap_err();
        if !err.to_string().contains("locked") || std::time::Instant::now() > deadline {
            break err;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(err.to_string().contains("belongs to storage"), "{err}");
}
