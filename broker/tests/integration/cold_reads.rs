//! Catch-up reads of data the hot cache no longer holds: every record comes back exactly as it
//! was produced, in order, while producers keep writing, with cold reads isolated on their own
//! runtime (the default), paced to a byte rate, and on the network threads.

use crate::common;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::{encode_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const TOPIC: &str = "catch-up";
const BATCHES: usize = 300;
const RECORDS_PER_BATCH: usize = 8;

/// The value of record `i` of batch `batch` (about 2 KiB, unique).
fn value(batch: usize, i: usize) -> Bytes {
    let mut v = format!("b{batch:05}-r{i}-").into_bytes();
    v.extend((0..2048).map(|n| ((n * 7 + batch * 13 + i) % 251) as u8));
    v.into()
}

fn batch(batch: usize) -> Bytes {
    let values = (0..RECORDS_PER_BATCH).map(|i| value(batch, i));
    encode_batch(values, Compression::None, -1, -1, 0).into()
}

fn produce(client: &mut Client, partition: i32, records: Bytes) -> i64 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "produce to {partition}");
    answer.base_offset
}

fn fetch(client: &mut Client, offset: i64) -> (i16, i64, Bytes) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(128 << 10)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    (
        partition.error_code,
        partition.high_watermark,
        partition.records.clone().unwrap_or_default(),
    )
}

/// Produces about 5 MB to partition 0, then reads it all back from offset 0 while a producer
/// keeps writing to partition 1; returns the broker's metrics afterwards.
fn catch_up_reads_return_exactly_what_was_produced(
    extra: &[&str],
) -> std::collections::HashMap<String, f64> {
    let metrics_addr = common::free_port();
    let metrics_flag = metrics_addr.to_string();
    // A 2 MiB hot cache for about 5 MB of data: most of it is read back from storage.
    let mut args = vec![
        "--hot-cache-mib",
        "2",
        "--hot-block-kib",
        "256",
        "--default-partitions",
        "2",
        "--flush-interval-ms",
        "1",
        "--cold-cache-mib",
        "1",
        "--read-ahead-max-mib",
        "1",
        "--metrics-listen",
        &metrics_flag,
    ];
    args.extend_from_slice(extra);
    let broker = BrokerProcess::start(&args);
    let mut client = broker.connect();
    for b in 0..BATCHES {
        let base = produce(&mut client, 0, batch(b));
        assert_eq!(base, (b * RECORDS_PER_BATCH) as i64);
    }

    // Producers keep writing (to the other partition) while the reader catches up.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut client = broker.connect();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                produce(&mut client, 1, batch(n));
                n += 1;
            }
            n
        })
    };

    let end = (BATCHES * RECORDS_PER_BATCH) as i64;
    let mut offset = 0i64;
    let mut fetches = 0;
    while offset < end {
        let (error, high_watermark, mut records) = fetch(&mut client, offset);
        assert_eq!(error, 0, "fetch at {offset}");
        assert_eq!(high_watermark, end);
        fetches += 1;
        while !records.is_empty() {
            let set = RecordBatchDecoder::decode(&mut records).unwrap();
            for record in set.records {
                if record.offset < offset {
                    continue; // a batch that starts before the fetch offset
                }
                assert_eq!(record.offset, offset, "records out of order");
                let (b, i) = (offset as usize / RECORDS_PER_BATCH, offset as usize % 8);
                assert_eq!(record.value, Some(value(b, i)), "record at offset {offset}");
                offset += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(fetches > 10, "{fetches} fetches");
    assert!(written > 0);
    common::scrape_metrics(metrics_addr)
}

#[test]
fn isolated_cold_reads_return_exactly_what_was_produced() {
    let metrics = catch_up_reads_return_exactly_what_was_produced(&[]);
    let m = |name: &str| {
        metrics
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    // The early data came from storage, through the cold cache, and read-ahead ran ahead of the
    // reader: most chunks were prefetched and then read.
    // The produce went through the WAL (fs): its writes are timed.
    assert!(m("hotwire_wal_sync_seconds_count") > 0.0);
    assert!(m("hotwire_fetch_cold_reads_total") > 0.0);
    // Every fetch came from the test's one client id, counted under it per tier.
    for tier in ["hot", "cold"] {
        assert_eq!(
            m(&format!(
                r#"hotwire_fetch_client_reads_total{{client_id="hotwire-test",tier="{tier}"}}"#
            )),
            m(&format!("hotwire_fetch_{tier}_reads_total"))
        );
    }
    assert!(m("hotwire_cold_misses_total") > 0.0);
    assert!(m("hotwire_cold_hits_total") > 0.0);
    assert!(m("hotwire_cold_read_ahead_bytes_total") > 0.0);
    assert!(m("hotwire_cold_read_ahead_used_bytes_total") > 0.0);
    assert!(m("hotwire_cold_held_bytes") <= m("hotwire_cold_budget_bytes"));
    assert!(
        m("hotwire_hot_evictions_total") > 0.0,
        "the hot cache did overflow"
    );
    assert_eq!(m("hotwire_storage_cold_read_errors_total"), 0.0);
    assert!(m(r#"hotwire_request_seconds_count{api="Fetch"}"#) > 10.0);
    assert_eq!(m("hotwire_cold_read_paced_seconds_total"), 0.0, "unpaced");
}

#[test]
fn paced_cold_reads_return_exactly_what_was_produced() {
    // About 5 MB read back at 1 MiB/s: past the first second's worth, reads wait for the rate
    // (about 4 s in all; more than 0.5 s unless the reads themselves take over 4.5 s).
    let metrics =
        catch_up_reads_return_exactly_what_was_produced(&["--cold-read-max-mib-per-s", "1"]);
    let paced = metrics["hotwire_cold_read_paced_seconds_total"];
    assert!(paced > 0.5, "cold reads waited {paced} s for the rate");
}

#[test]
fn concurrent_chunk_loads_return_exactly_what_was_produced_while_compaction_moves_them() {
    // What object stores get by default, here on fs: each fetch's chunks loaded 8 at a time and
    // taken in order, fetches of both partitions preloaded together, while compaction rounds
    // (every 50 ms) replace the chunks the reads planned on with segments.
    let metrics = catch_up_reads_return_exactly_what_was_produced(&[
        "--cold-read-concurrent-chunks",
        "8",
        "--compaction-interval-ms",
        "50",
        "--compaction-min-objects",
        "4",
        "--compaction-min-mib",
        "0",
    ]);
    assert!(
        metrics["hotwire_compaction_seconds_count"] > 0.0,
        "compaction ran"
    );
    assert_eq!(metrics["hotwire_storage_cold_read_errors_total"], 0.0);
}

#[test]
fn cold_reads_on_the_network_threads_return_exactly_what_was_produced() {
    catch_up_reads_return_exactly_what_was_produced(&["--cold-isolation", "false"]);
}

#[test]
fn bad_cold_settings_are_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
        .args([
            "--cold-cache-mib",
            "0",
            "--storage",
            "fs:///nonexistent/never",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cold"), "{stderr}");
}
