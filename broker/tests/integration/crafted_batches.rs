//! Crafted record batches: lying counts, decompression bombs, bad offsets and timestamps,
//! oversized batches and stored batches that do not decode. Each gets Kafka's error code, or is
//! skipped on a read, and the broker keeps serving, within bounded memory.

use crate::common;
use std::io::Write;

use crate::common::{
    encode_batch, fix_batch_crc, now_ms, peak_rss_kib, raw_batch, raw_record, raw_record_head,
    BrokerProcess, Client,
};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

/// Timestamps of the honest records `encode_batch` writes start here.
const HONEST_TS: i64 = 1_700_000_000_000;
const GZIP: i16 = 1;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.into()))
}

/// Produces `records` to partition 0 of `topic` (Produce `version`, acks=all); the error code.
fn produce_v(client: &mut Client, version: i16, topic: &str, records: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, version, &request);
    response.responses[0].partition_responses[0].error_code
}

fn produce(client: &mut Client, topic: &str, records: Vec<u8>) -> i16 {
    produce_v(client, 7, topic, records)
}

/// ListOffsets v1 of partition 0 by `timestamp`: (error code, offset).
fn offset_for(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64) {
    let (error, offset, _) = list_offsets(client, 1, topic, timestamp);
    (error, offset)
}

/// ListOffsets `version` of partition 0 by `timestamp`: (error code, offset, timestamp).
fn list_offsets(client: &mut Client, version: i16, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, version, &request);
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset, partition.timestamp)
}

/// Creates `topic` with one partition and the given config overrides.
fn create_topic(client: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// An honest batch of `count` records with timestamps from [`HONEST_TS`].
fn honest(count: i32) -> Vec<u8> {
    let values = (0..count).map(|i| Bytes::from(format!("honest-{i}")));
    encode_batch(values, Compression::None, -1, -1, 0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn assert_alive(broker: &mut BrokerProcess) {
    assert!(broker.is_running(), "the broker died");
}

#[test]
fn a_batch_claiming_two_billion_records_is_refused_and_lookups_survive_restarts() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    assert_eq!(produce(&mut client, "t", honest(3)), 0);

    // The batch: one real record, recordCount 2^31-1, lastOffsetDelta 2^31-2.
    let record = raw_record(0, 0, b"one real record");
    let crafted = raw_batch(&record, 0, i32::MAX, i32::MAX - 1, HONEST_TS, i64::MAX);
    assert_eq!(
        produce_v(&mut client, 3, "t", crafted),
        ResponseError::InvalidRecord.code()
    );

    // A lookup later than every honest record finds none, and the broker answers it.
    assert_eq!(offset_for(&mut client, "t", HONEST_TS + 100), (0, -1));
    assert_eq!(offset_for(&mut client, "t", HONEST_TS + 1), (0, 1));
    assert_alive(&mut broker);

    let mut broker = broker.kill_and_restart(&[]);
    let mut client = broker.connect();
    assert_eq!(offset_for(&mut client, "t", HONEST_TS + 100), (0, -1));
    assert_eq!(offset_for(&mut client, "t", HONEST_TS + 2), (0, 2));
    assert_eq!(produce(&mut client, "t", honest(1)), 0);
    assert_alive(&mut broker);
}

#[test]
fn a_max_timestamp_the_records_do_not_hold_is_corrected_as_kafka_does() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    let mut records = raw_record(0, 0, b"a");
    records.extend(raw_record(1, 7, b"b"));
    let lying = raw_batch(&records, 0, 2, 1, HONEST_TS, i64::MAX);
    assert_eq!(produce(&mut client, "t", lying), 0);
    // MAX_TIMESTAMP (-3, ListOffsets v7): the record that holds the largest timestamp.
    assert_eq!(list_offsets(&mut client, 7, "t", -3), (0, 1, HONEST_TS + 7));
    assert_alive(&mut broker);
}

#[test]
fn a_gzip_bomb_is_refused_and_the_broker_stays_small() {
    let mut broker = BrokerProcess::start(&["--hot-cache-mib", "64"]);
    let mut client = broker.connect();
    // max.message.bytes of 256 KiB: records may decompress to 16 MiB.
    create_topic(&mut client, "bomb", &[("max.message.bytes", "262144")]);
    assert_eq!(produce(&mut client, "bomb", honest(2)), 0);
    let before = peak_rss_kib(broker.pid());

    // One record whose value is 64 MiB of zeros: about 64 KB of gzip.
    let len = 64 << 20;
    let mut record = raw_record_head(0, 0, len);
    record.resize(record.len() + len, 0);
    record.push(0);
    let bomb = raw_batch(&gzip(&record), GZIP, 1, 0, HONEST_TS, HONEST_TS);
    drop(record);
    assert!(
        bomb.len() < 262_144,
        "the bomb itself is small: {}",
        bomb.len()
    );
    assert_eq!(
        produce(&mut client, "bomb", bomb),
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(offset_for(&mut client, "bomb", HONEST_TS + 1), (0, 1));
    assert_eq!(offset_for(&mut client, "bomb", HONEST_TS + 100), (0, -1));
    assert_alive(&mut broker);
    let grown_mib = (peak_rss_kib(broker.pid()).saturating_sub(before)) / 1024;
    assert!(grown_mib < 32, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn many_small_bombs_in_one_request_exhaust_its_decompression_budget() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    // 40 MiB of zeros per batch: under the 64 MiB per-batch cap of the default
    // max.message.bytes, so one such batch is accepted...
    let len = 40 << 20;
    let mut record = raw_record_head(0, 0, len);
    record.resize(record.len() + len, 0);
    record.push(0);
    let compressed = gzip(&record);
    drop(record);
    let batch = raw_batch(&compressed, GZIP, 1, 0, HONEST_TS, HONEST_TS);
    assert_eq!(produce(&mut client, "t", batch.clone()), 0);
    // ...but a request of about 120 KB may decompress to 64 x (120 KB + 1 MiB) in all.
    let three = [batch.clone(), batch.clone(), batch].concat();
    assert_eq!(
        produce(&mut client, "t", three),
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(offset_for(&mut client, "t", -1), (0, 1));
    assert_alive(&mut broker);
}

#[test]
fn timestamps_outside_the_bounds_get_invalid_timestamp() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    let hour = 3_600_000;
    let one = |ts: i64| raw_batch(&raw_record(0, 0, b"v"), 0, 1, 0, ts, ts);
    // Kafka 4.0's defaults: no limit in the past, one hour into the future.
    assert_eq!(
        produce(&mut client, "t", one(now_ms() + 2 * hour)),
        ResponseError::InvalidTimestamp.code()
    );
    assert_eq!(produce(&mut client, "t", one(0)), 0);
    assert_eq!(produce(&mut client, "t", one(now_ms() + hour / 2)), 0);

    create_topic(
        &mut client,
        "recent",
        &[("message.timestamp.before.max.ms", "3600000")],
    );
    assert_eq!(
        produce(&mut client, "recent", one(now_ms() - 2 * hour)),
        ResponseError::InvalidTimestamp.code()
    );
    assert_eq!(produce(&mut client, "recent", one(now_ms())), 0);
    // The second record of a batch is out of range: the whole batch is refused.
    let mut records = raw_record(0, 0, b"a");
    records.extend(raw_record(1, 10 * hour, b"b"));
    let now = now_ms();
    assert_eq!(
        produce(&mut client, "t", raw_batch(&records, 0, 2, 1, now, now)),
        ResponseError::InvalidTimestamp.code()
    );
    assert_alive(&mut broker);
}

#[test]
fn offset_deltas_and_counts_must_match_the_records() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    // Offset deltas 0, 2 in a batch of two.
    let mut records = raw_record(0, 0, b"a");
    records.extend(raw_record(2, 0, b"b"));
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&records, 0, 2, 1, HONEST_TS, HONEST_TS)
        ),
        ResponseError::InvalidRecord.code()
    );
    // A gzip batch that declares three records and holds two.
    let mut records = raw_record(0, 0, b"a");
    records.extend(raw_record(1, 0, b"b"));
    let compressed = gzip(&records);
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&compressed, GZIP, 3, 2, HONEST_TS, HONEST_TS)
        ),
        ResponseError::InvalidRecord.code()
    );
    // ...or one: a record left over.
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&compressed, GZIP, 1, 0, HONEST_TS, HONEST_TS)
        ),
        ResponseError::InvalidRecord.code()
    );
    // A record claiming 2^31-1 headers (a five-byte count where a one-byte 0 was, so the
    // zig-zag record length grows by 2 x 4), and one whose value length runs past its record.
    let mut headers = raw_record(0, 0, b"a");
    headers.pop();
    common::put_varint(&mut headers, i64::from(i32::MAX));
    headers[0] += 8;
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&headers, 0, 1, 0, HONEST_TS, HONEST_TS)
        ),
        ResponseError::InvalidRecord.code()
    );
    let mut long_value = raw_record(0, 0, b"abc");
    long_value[5] = 100; // zig-zag 50: a value of 50 bytes in a record that holds 3
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&long_value, 0, 1, 0, HONEST_TS, HONEST_TS)
        ),
        ResponseError::InvalidRecord.code()
    );
    // Gzip that is not gzip.
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&records, GZIP, 2, 1, HONEST_TS, HONEST_TS)
        ),
        ResponseError::CorruptMessage.code()
    );
    // The honest versions pass, and nothing refused took an offset.
    assert_eq!(
        produce(
            &mut client,
            "t",
            raw_batch(&compressed, GZIP, 2, 1, HONEST_TS, HONEST_TS)
        ),
        0
    );
    assert_eq!(offset_for(&mut client, "t", -1), (0, 2));
    assert_alive(&mut broker);
}

#[test]
fn batches_over_max_message_bytes_get_message_too_large() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    // Kafka's default max.message.bytes, 1048588, counts the whole batch.
    let big = |len: usize| raw_batch(&raw_record(0, 0, &vec![7u8; len]), 0, 1, 0, 0, 0);
    assert_eq!(
        produce(&mut client, "t", big(1_100_000)),
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(produce(&mut client, "t", big(1_000_000)), 0);
    create_topic(&mut client, "small", &[("max.message.bytes", "1000")]);
    assert_eq!(
        produce(&mut client, "small", big(2000)),
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(produce(&mut client, "small", big(500)), 0);
    assert_alive(&mut broker);
}

#[test]
fn a_stored_batch_that_does_not_decode_is_skipped_by_timestamp_lookups() {
    let metrics = common::free_port();
    let metrics_flag = metrics.to_string();
    let flags = ["--metrics-listen", metrics_flag.as_str()];
    let broker = BrokerProcess::start(&flags);
    let mut client = broker.connect();
    let marker = raw_record(0, 0, b"this record gets corrupted on disk");
    let first = raw_batch(&marker, 0, 1, 0, HONEST_TS, HONEST_TS);
    assert_eq!(produce(&mut client, "t", first.clone()), 0);
    let second = raw_batch(
        &raw_record(0, 0, b"fine"),
        0,
        1,
        0,
        HONEST_TS + 5,
        HONEST_TS + 5,
    );
    assert_eq!(produce(&mut client, "t", second), 0);

    // Stop the broker, then corrupt the first record's length in its flush object, fixing the
    // batch CRC and the object's data CRC so that only the record walk can tell.
    let storage = broker.storage_path().to_path_buf();
    let mut broker =
        broker.kill_and_restart_with(|| corrupt_stored_batch(&storage, &first, true), &flags);
    let mut client = broker.connect();
    assert_eq!(offset_for(&mut client, "t", HONEST_TS), (0, 1));
    assert_alive(&mut broker);
    let skipped = scrape(metrics, "hotwire_stored_batches_skipped_total");
    assert!(skipped >= 1.0, "skipped batches counted: {skipped}");
}

#[test]
fn a_stored_batch_with_a_bad_crc_neither_stops_a_restart_nor_a_lookup() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    let first = raw_batch(&raw_record(0, 0, b"bit rot"), 0, 1, 0, HONEST_TS, HONEST_TS);
    assert_eq!(produce(&mut client, "t", first.clone()), 0);
    let second = raw_batch(
        &raw_record(0, 0, b"fine"),
        0,
        1,
        0,
        HONEST_TS + 5,
        HONEST_TS + 5,
    );
    assert_eq!(produce(&mut client, "t", second), 0);

    // The batch CRC no longer matches (the object's own checksum is kept valid): the
    // producer-state rebuild at start-up reads this batch.
    let storage = broker.storage_path().to_path_buf();
    let mut broker =
        broker.kill_and_restart_with(|| corrupt_stored_batch(&storage, &first, false), &[]);
    let mut client = broker.connect();
    assert_eq!(offset_for(&mut client, "t", HONEST_TS), (0, 1));
    assert_eq!(produce(&mut client, "t", honest(1)), 0);
    assert_alive(&mut broker);
}

/// Finds `batch` (as produced) in a flush object under `storage` (a file of its own, or a
/// record of an append-only WAL file) and breaks its first record's length; the batch CRC is
/// fixed if `fix_crc`, the object's data checksum always.
fn corrupt_stored_batch(storage: &std::path::Path, batch: &[u8], fix_crc: bool) {
    let wal = storage.join("wal");
    for entry in std::fs::read_dir(&wal).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        // Bytes from the magic on are stored as produced (base offset and epoch are rewritten).
        let needle = &batch[16..];
        let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
            continue;
        };
        let object = if path.extension().is_some_and(|e| e == "hwl") {
            // The record header (40 bytes: magic, epoch, id, length, ...) starts at the page
            // boundary at or before the batch.
            let mut record = at - at % 4096;
            while &bytes[record..record + 8] != b"HWWALREC" {
                record -= 4096;
            }
            let len = u64::from_le_bytes(bytes[record + 24..record + 32].try_into().unwrap());
            record + 40..record + 40 + len as usize
        } else {
            0..bytes.len()
        };
        let start = at - 16 - object.start;
        let stored = &mut bytes[object];
        stored[start + 61] += 2; // the record's length varint: one more byte than it holds
        if fix_crc {
            fix_batch_crc(&mut stored[start..start + batch.len()]);
        }
        let footer = stored.len() - 40;
        let data_len = u64::from_le_bytes(stored[footer + 8..footer + 16].try_into().unwrap());
        let crc = crc32c::crc32c(&stored[..data_len as usize]);
        stored[footer + 24..footer + 28].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    panic!("batch not found under {}", wal.display());
}

/// The value of metric `name` in the broker's `GET /metrics`.
fn scrape(addr: std::net::SocketAddr, name: &str) -> f64 {
    common::scrape_metrics(addr)
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[test]
fn honest_batches_of_every_codec_are_accepted_and_found_by_timestamp() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("t-{compression:?}");
        let values = (0..10).map(|i| Bytes::from(format!("{compression:?}-{i}")));
        let batch = encode_batch(values, compression, -1, -1, 0);
        assert_eq!(produce(&mut client, &topic, batch), 0, "{compression:?}");
        // Timestamps HONEST_TS..HONEST_TS+9: the first at or after +5 is offset 5.
        assert_eq!(
            offset_for(&mut client, &topic, HONEST_TS + 5),
            (0, 5),
            "{compression:?}"
        );
        assert_eq!(offset_for(&mut client, &topic, -1), (0, 10));
    }
    assert_alive(&mut broker);
}
