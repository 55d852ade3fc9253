//! Storage failing under the broker: producers get a Kafka error code (never a hang), readers of
//! durable data keep reading, and the broker recovers by itself when storage returns.

use std::time::{Duration, Instant};

use crate::common::{record_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

fn produce(client: &mut Client) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(8_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("faults")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(record_batch(
                    10,
                    Compression::Snappy,
                ))))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_from(client: &mut Client, offset: i64) -> (i16, i64, usize) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("faults")))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    let bytes = partition.records.as_ref().map_or(0, Bytes::len);
    (partition.error_code, partition.high_watermark, bytes)
}

#[test]
fn a_failing_store_gives_storage_errors_then_heals() {
    // One file per flush object: the very next flush needs the broken directory.
    fails_then_heals(&["--wal-file-mib", "0"], 1..=1);
}

#[test]
fn a_wal_that_cannot_grow_gives_storage_errors_then_heals() {
    // The append-only WAL writes into its open 1 MiB files until they are full; the next file
    // cannot be created in the broken directory.
    // Each flush takes at least one 4 KiB page: at most 256 fit in the open file, and as many
    // in the spare prepared ahead of it.
    fails_then_heals(&["--wal-file-mib", "1"], 2..=512);
}

/// Breaks the store under a producing broker and heals it; `acknowledged_before_failing` is
/// how many produce requests may still succeed after the break.
fn fails_then_heals(flags: &[&str], acknowledged_before_failing: std::ops::RangeInclusive<i64>) {
    let broker = BrokerProcess::start(flags);
    let mut client = broker.connect();
    assert_eq!(produce(&mut client), (0, 0));

    // Break the store: the object directory becomes a plain file.
    let wal = broker.storage_path().join("wal");
    let parked = broker.storage_path().join("wal.parked");
    std::fs::rename(&wal, &parked).unwrap();
    std::fs::write(&wal, b"not a directory").unwrap();

    // Produce until storage fails (at once, or once the open WAL file is full).
    let mut acknowledged = 1;
    let error = loop {
        let started = Instant::now();
        let (error, base_offset) = produce(&mut client);
        if error != 0 {
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "answered before the timeout"
            );
            break error;
        }
        assert_eq!(base_offset, 10 * acknowledged);
        acknowledged += 1;
        assert!(acknowledged < 2_000, "storage never failed");
    };
    assert_eq!(error, ResponseError::KafkaStorageError.code());
    assert!(
        acknowledged_before_failing.contains(&acknowledged),
        "{acknowledged} produce requests succeeded"
    );

    // Durable data stays readable while writes fail.
    let (error, high_watermark, bytes) = fetch_from(&mut client, 0);
    assert_eq!((error, high_watermark), (0, 10 * acknowledged));
    assert!(bytes > 0);

    // Heal the store: the pipeline retries the same object and catches up by itself.
    std::fs::remove_file(&wal).unwrap();
    std::fs::rename(&parked, &wal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (error, base_offset) = produce(&mut client);
        if error == 0 {
            // The batch answered with an error was kept (as Kafka may), so offsets go on past it.
            assert_eq!(base_offset, 10 * (acknowledged + 1));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store healed but produce still fails ({error})"
        );
    }
    let (error, high_watermark, _) = fetch_from(&mut client, 10);
    assert_eq!((error, high_watermark), (0, 10 * (acknowledged + 2)));
}
