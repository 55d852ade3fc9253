//! The broker's flush stream on an object store: one stored object per flush for every shard it
//! leads (see `dfs_adapter::FlushStream`), and the sweep that deletes stream objects nothing
//! needs any more.

use std::collections::BTreeMap;
use std::time::Duration;

use dfs_adapter::{FlushStream, Store, StreamConfig};
use tokio_util::sync::CancellationToken;

use super::shards;
use crate::config::Config;

/// How often this broker sweeps the cluster's streams.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How long a stream object stays after all of it died: reads that began before it died
/// (catch-up reads of not yet compacted data) finish first.
const SWEEP_GRACE: Duration = Duration::from_secs(30);

/// Opens this process's flush stream when the cluster's storage is an object store; `None` on
/// `fs://`, where each shard's leader appends to a WAL of its own epoch instead (one fsync per
/// flush and shard costs little; a PUT per flush and shard costs a request each).
pub async fn open(
    config: &Config,
    node_id: i32,
    shards: u32,
) -> anyhow::Result<Option<FlushStream>> {
    if config.storage.starts_with("fs:") || !config.cluster_flush_stream {
        return Ok(None);
    }
    let root = Store::open_with(&config.storage, config.slicing()).await?;
    let incarnation = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("n{node_id}-{}", &incarnation[..12]);
    let stream = FlushStream::start(
        root,
        &name,
        StreamConfig {
            // As a single broker's flushes on an object store: each object is a request.
            group_commit: config.flush_group_commit.unwrap_or(false),
            max_delay: config.flush_interval(),
            max_bytes: config.flush_max_bytes,
            // As many as the shards' own windows could have in flight together: the stream
            // never holds a section back that its shard alone would have written (on a slow
            // store four in flight for a whole broker queued more than it packed).
            max_in_flight: config
                .flush_max_in_flight
                .max(1)
                .saturating_mul(shards.max(1) as usize),
        },
    )?;
    tracing::info!(stream = %name, "writing one flush stream for every shard led");
    Ok(Some(stream))
}

/// Sweeps every stream of the cluster every [`SWEEP_EVERY`] until `stop`, while `is_sweeper`
/// says this broker is the one that sweeps. One broker is enough (any may: death is final), and
/// on a busy store the listings and deletions of every broker at once competed with flushes.
pub async fn sweep(
    stream: FlushStream,
    config: Config,
    shards: u32,
    is_sweeper: Box<dyn Fn() -> bool + Send + Sync>,
    stop: CancellationToken,
) {
    let mut roots = BTreeMap::new();
    for shard in 0..shards {
        let url = shards::storage_url(&config.storage, shard);
        match Store::open_with(&url, config.slicing()).await {
            Ok(store) => {
                roots.insert(shard, store);
            }
            Err(error) => {
                tracing::warn!(shard, %error, "cannot open a shard's root; stream sweeps stop");
                return;
            }
        }
    }
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !is_sweeper() {
            continue;
        }
        match stream.sweep(&roots, SWEEP_GRACE).await {
            Ok(report) => tracing::debug!(?report, "stream sweep"),
            Err(error) => tracing::warn!(%error, "stream sweep failed; trying again later"),
        }
    }
}
