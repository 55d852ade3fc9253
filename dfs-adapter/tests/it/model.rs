//! A model of what each partition must hold, and the checks of stored data against it, for the
//! randomized trials.

use std::collections::BTreeMap;

use dfs_adapter::{Catalog, ObjectId, Recovered, Store};

use crate::common::*;

/// What each partition must hold.
#[derive(Default)]
pub struct Model {
    /// Next offset to write.
    pub next: BTreeMap<i32, i64>,
    /// Log start moved by truncation.
    pub log_start: BTreeMap<i32, i64>,
}

/// Writes `batches` random batches (partition 0 the busiest) in flush objects of up to
/// `per_object` batches, and tells the catalog of them.
pub async fn produce(
    rng: &mut fastrand::Rng,
    store: &Store,
    catalog: &Catalog,
    next_object: &mut ObjectId,
    model: &mut Model,
    partitions: i32,
) {
    if let Err(error) = try_produce(rng, store, catalog, next_object, model, partitions).await {
        panic!("a flush failed: {error}");
    }
}

/// As [`produce`], for a writer whose writes may fail (a fenced leader whose WAL directory the
/// new leader retired): stops at the first failed flush and returns its error.
pub async fn try_produce(
    rng: &mut fastrand::Rng,
    store: &Store,
    catalog: &Catalog,
    next_object: &mut ObjectId,
    model: &mut Model,
    partitions: i32,
) -> Result<(), std::sync::Arc<dfs_adapter::StorageError>> {
    let per_object = rng.usize(1..4);
    let config = dfs_adapter::FlushConfig {
        max_batches: per_object,
        ..lazy_config()
    };
    let (pipeline, mut events) = start(store, config, *next_object);
    let batches = per_object * rng.usize(1..5);
    for _ in 0..batches {
        let partition = if rng.bool() {
            0
        } else {
            rng.i32(0..partitions)
        };
        let records = rng.i64(1..4);
        let next = model.next.entry(partition).or_default();
        pipeline.submit(batch(partition, *next, records)).unwrap();
        *next += records;
    }
    for _ in 0..batches / per_object {
        match events.next().await {
            dfs_adapter::FlushEvent::Durable { object, chunks, .. } => {
                catalog.add_flush(object, &chunks);
                *next_object = (*next_object).max(object.next());
            }
            dfs_adapter::FlushEvent::Failed { error, .. } => {
                pipeline.abandon().await;
                return Err(error);
            }
        }
    }
    pipeline.shutdown().await;
    Ok(())
}

/// Reads back every partition from what recovery found, and checks it against the model: all
/// offsets from the log start on, contiguous, nothing wholly below the log start.
pub async fn check_contents(store: &Store, recovered: &Recovered, model: &Model, context: &str) {
    for (&partition, &next) in &model.next {
        let log_start = model.log_start.get(&partition).copied().unwrap_or(0);
        let mut offsets: Vec<(i64, i64)> = Vec::new();
        for chunk in recovered.chunks.iter().filter(|c| c.key == key(partition)) {
            assert!(
                chunk.last_offset >= log_start,
                "{context}: p{partition} chunk wholly below the log start {log_start}: {chunk:?}"
            );
            let bytes = store
                .read_range(&chunk.object, chunk.position, chunk.len)
                .await
                .unwrap_or_else(|e| panic!("{context}: p{partition} {chunk:?}: {e}"));
            let text = std::str::from_utf8(&bytes).unwrap();
            for payload in text.split_terminator(']') {
                let (name, range) = payload
                    .trim_start_matches('[')
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{context}: bad payload {text:?}"));
                assert_eq!(name, format!("p{partition}"), "{context}");
                let (a, b) = range.split_once("..").unwrap();
                offsets.push((a.parse().unwrap(), b.parse().unwrap()));
            }
        }
        if log_start >= next {
            assert!(offsets.is_empty(), "{context}: p{partition} {offsets:?}");
            continue;
        }
        let first = offsets.first().unwrap_or_else(|| {
            panic!("{context}: p{partition} lost everything ({log_start}..{next})")
        });
        assert!(
            first.0 <= log_start,
            "{context}: p{partition} starts at {first:?}, log start {log_start}"
        );
        for pair in offsets.windows(2) {
            assert_eq!(
                pair[0].1 + 1,
                pair[1].0,
                "{context}: p{partition} {offsets:?}"
            );
        }
        assert_eq!(
            offsets.last().unwrap().1,
            next - 1,
            "{context}: p{partition}"
        );
    }
}
