//! Scrape-time metrics read from the components that already count them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dfs_adapter::FlushPipeline;
use hotcache::HotCache;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use dfs_adapter::Catalog;

use crate::cold::ColdReader;
use crate::internal::InternalLog;

/// Reads the hot cache, the cold cache and the flush pipeline at each scrape.
pub struct StateCollector {
    /// The hot arena.
    pub hot: HotCache,
    /// The cold reader and its cache.
    pub cold: Arc<ColdReader>,
    /// The flush pipeline.
    pub pipeline: FlushPipeline,
    /// The storage catalog (segments, flush objects awaiting compaction).
    pub catalog: Arc<Catalog>,
    /// The internal log (its replay and snapshots).
    pub internal: Arc<InternalLog>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let hot = self.hot.stats();
        gauge(
            &mut e,
            "hot_blocks",
            "Blocks in the hot arena",
            hot.blocks as u64,
        )?;
        gauge(
            &mut e,
            "hot_free_blocks",
            "Hot blocks not holding data",
            hot.free_blocks as u64,
        )?;
        gauge(
            &mut e,
            "hot_pinned_blocks",
            "Hot blocks pinned (unflushed, or being read)",
            hot.pinned_blocks as u64,
        )?;
        counter(
            &mut e,
            "hot_appends",
            "Batches appended to the hot arena",
            hot.appends,
        )?;
        counter(
            &mut e,
            "hot_appended_bytes",
            "Bytes appended to the hot arena",
            hot.appended_bytes,
        )?;
        counter(
            &mut e,
            "hot_evictions",
            "Hot blocks evicted for reuse",
            hot.evictions,
        )?;
        counter(
            &mut e,
            "hot_full_rejections",
            "Appends refused because every hot block was pinned",
            hot.full_rejections,
        )?;

        let cold = self.cold.stats();
        counter(
            &mut e,
            "cold_hits",
            "Cold reads answered by the cold cache",
            cold.hits,
        )?;
        counter(
            &mut e,
            "cold_misses",
            "Cold reads that loaded from storage",
            cold.misses,
        )?;
        counter(
            &mut e,
            "cold_miss_bytes",
            "Bytes loaded from storage on demand",
            cold.miss_bytes,
        )?;
        counter(
            &mut e,
            "cold_read_ahead_bytes",
            "Bytes loaded ahead of catch-up readers",
            cold.prefetch_bytes,
        )?;
        counter(
            &mut e,
            "cold_read_ahead_used_bytes",
            "Read-ahead bytes later read",
            cold.prefetch_used_bytes,
        )?;
        counter(
            &mut e,
            "cold_read_ahead_wasted_bytes",
            "Read-ahead bytes evicted unread",
            cold.prefetch_wasted_bytes,
        )?;
        counter(
            &mut e,
            "cold_evictions",
            "Cold cache evictions",
            cold.evictions,
        )?;
        gauge(
            &mut e,
            "cold_held_bytes",
            "Bytes in the cold cache",
            cold.held_bytes,
        )?;
        gauge(
            &mut e,
            "cold_budget_bytes",
            "The cold cache budget",
            cold.budget_bytes,
        )?;
        let paced = ConstCounter::new(self.cold.paced().as_secs_f64());
        paced.encode(e.encode_descriptor(
            "cold_read_paced_seconds",
            "Time cold reads waited for cold_read_max_mib_per_s",
            None,
            paced.metric_type(),
        )?)?;

        let flush = self.pipeline.stats();
        counter(
            &mut e,
            "flush_objects",
            "Flush objects written",
            flush.objects_written,
        )?;
        counter(
            &mut e,
            "flush_bytes",
            "Bytes written in flush objects",
            flush.bytes_written,
        )?;
        counter(
            &mut e,
            "flush_batches",
            "Batches written in flush objects",
            flush.batches_written,
        )?;
        let store = self.catalog.store().stats();
        counter(
            &mut e,
            "storage_put_requests",
            "PUT-class storage requests (objects, multipart parts and completions, checkpoints)",
            store.put_requests,
        )?;
        counter(
            &mut e,
            "storage_get_requests",
            "Ranged GET storage requests",
            store.get_requests,
        )?;
        counter(
            &mut e,
            "storage_delete_requests",
            "DELETE storage requests",
            store.delete_requests,
        )?;
        counter(
            &mut e,
            "storage_written_bytes",
            "Bytes written to storage (flush objects, segments, checkpoints)",
            store.bytes_written,
        )?;
        counter(
            &mut e,
            "storage_read_bytes",
            "Bytes read from storage",
            store.bytes_read,
        )?;
        gauge(
            &mut e,
            "stored_flush_objects",
            "Flush objects in storage not yet compacted",
            self.catalog.flush_objects() as u64,
        )?;
        gauge(
            &mut e,
            "wal_files",
            "Append-only WAL files (fs): holding flush objects, being written, or spare",
            self.catalog.store().wal_files() as u64,
        )?;
        gauge(
            &mut e,
            "stored_segments",
            "Compacted segments in storage",
            self.catalog.segment_count() as u64,
        )?;
        let internal = self.internal.stats();
        gauge(
            &mut e,
            "internal_log_replayed_records",
            "Internal-log records applied at start (the last snapshot and what followed it)",
            internal.replayed.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            "internal_log_start",
            "First offset the internal log still holds (moved up by snapshots)",
            u64::try_from(self.internal.log_start()).unwrap_or(0),
        )?;
        counter(
            &mut e,
            "internal_log_snapshots",
            "Snapshots of the internal log's live state written",
            internal.snapshots.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "internal_log_snapshot_records",
            "Records restated by internal-log snapshots",
            internal.snapshot_records.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}
