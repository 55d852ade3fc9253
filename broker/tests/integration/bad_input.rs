//! Bad input from the network: every case gets a Kafka error code or a closed connection, and
//! the broker keeps serving everyone else.

use crate::common::{record_batch, BrokerProcess, Client};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

fn produce(topic: &str, acks: i16, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])])
}

/// The error code of the single partition in a produce response.
fn produce_error(client: &mut Client, topic: &str, acks: i16, records: Vec<u8>) -> i16 {
    let response: ProduceResponse = client.call(ApiKey::Produce, 7, &produce(topic, acks, records));
    response.responses[0].partition_responses[0].error_code
}

/// The broker still answers a well-formed request on a new connection.
fn assert_serving(broker: &mut BrokerProcess) {
    assert!(broker.is_running(), "broker process died");
    let response: ApiVersionsResponse =
        broker
            .connect()
            .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
}

#[test]
fn oversized_negative_and_truncated_frames_close_only_their_connection() {
    let mut broker = BrokerProcess::start(&["--max-frame-bytes", "1048576"]);
    let mut bystander = broker.connect();

    let mut big = broker.connect();
    big.send_raw(&(2u32 << 20).to_be_bytes());
    assert!(
        big.is_closed(),
        "frame over the limit must close the connection"
    );

    let mut negative = broker.connect();
    negative.send_raw(&(-1i32).to_be_bytes());
    assert!(
        negative.is_closed(),
        "negative length must close the connection"
    );

    let mut short = broker.connect();
    short.send_frame(&[0, 18]);
    assert!(
        short.is_closed(),
        "a frame shorter than a header must close the connection"
    );

    let response: ApiVersionsResponse =
        bystander.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    assert_serving(&mut broker);
}

#[test]
fn array_lengths_claiming_billions_of_elements_are_refused_without_allocating_them() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    // Produce v3 header, then: transactional_id null, acks -1, timeout, topic count 2^31 - 1.
    let mut frame = vec![0, 0, 0, 3, 0, 0, 0, 1, 0, 1, b'x'];
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(&30_000i32.to_be_bytes());
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    client.send_frame(&frame);
    assert!(client.is_closed());
    assert_serving(&mut broker);
}

#[test]
fn unknown_apis_and_unsupported_versions() {
    let mut broker = BrokerProcess::start(&[]);

    let mut unknown = broker.connect();
    unknown.send_frame(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(
        unknown.is_closed(),
        "unknown API key must close the connection"
    );

    let mut old_produce = broker.connect();
    old_produce.send_frame(&[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(old_produce.is_closed(), "Produce v2 is not served");

    // ApiVersions in a version from the future: error 35 and the served list, in v0.
    let mut client = broker.connect();
    client.send_frame(&[0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff, 0]);
    let mut frame = client.read_frame().expect("ApiVersions must be answered");
    assert_eq!(&frame[..4], &42i32.to_be_bytes());
    let _ = frame.split_to(4);
    let response = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == 0 && k.max_version == 12));
    assert_serving(&mut broker);
}

#[test]
fn corrupt_batches_get_corrupt_message_and_good_ones_still_land() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();

    let mut flipped = record_batch(5, Compression::None);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert_eq!(
        produce_error(&mut client, "bad", -1, flipped),
        ResponseError::CorruptMessage.code()
    );

    let mut miscounted = record_batch(5, Compression::None);
    miscounted[57..61].copy_from_slice(&9i32.to_be_bytes());
    assert_eq!(
        produce_error(&mut client, "bad", -1, miscounted),
        ResponseError::CorruptMessage.code()
    );

    let truncated = record_batch(5, Compression::None)[..40].to_vec();
    assert_eq!(
        produce_error(&mut client, "bad", -1, truncated),
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(
        produce_error(&mut client, "bad", -1, Vec::new()),
        ResponseError::CorruptMessage.code()
    );

    let good = record_batch(5, Compression::Zstd);
    assert_eq!(produce_error(&mut client, "bad", -1, good), 0);
    assert_serving(&mut broker);
}

#[test]
fn invalid_acks_and_oversized_batches_get_their_codes() {
    let mut broker = BrokerProcess::start(&["--hot-cache-mib", "1", "--hot-block-kib", "64"]);
    let mut client = broker.connect();
    assert_eq!(
        produce_error(&mut client, "t", 5, record_batch(1, Compression::None)),
        ResponseError::InvalidRequiredAcks.code()
    );
    // 10,000 records of about 20 bytes do not fit a 64 KiB block.
    assert_eq!(
        produce_error(
            &mut client,
            "t",
            -1,
            record_batch(10_000, Compression::None)
        ),
        ResponseError::MessageTooLarge.code()
    );
    assert_serving(&mut broker);
}

#[test]
fn unknown_topics_without_auto_create_are_unknown_topic_or_partition() {
    let mut broker = BrokerProcess::start(&["--auto-create-topics", "false"]);
    let mut client = broker.connect();
    assert_eq!(
        produce_error(&mut client, "nope", -1, record_batch(1, Compression::None)),
        ResponseError::UnknownTopicOrPartition.code()
    );
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("nope")))),
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(
        metadata.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_serving(&mut broker);
}

#[test]
fn fetch_outside_the_log_is_offset_out_of_range() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.connect();
    assert_eq!(
        produce_error(&mut client, "f", -1, record_batch(3, Compression::None)),
        0
    );
    let fetch = |offset: i64| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("f")))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let past: FetchResponse = client.call(ApiKey::Fetch, 11, &fetch(4));
    assert_eq!(
        past.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    let ok: FetchResponse = client.call(ApiKey::Fetch, 11, &fetch(0));
    let partition = &ok.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 3);
    assert!(!partition.records.as_ref().unwrap().is_empty());
    assert_serving(&mut broker);
}

#[test]
fn random_bodies_for_every_served_api_never_take_the_broker_down() {
    let mut broker = BrokerProcess::start(&[]);
    let apis: [(i16, i16); 8] = [
        (0, 7),
        (1, 11),
        (2, 5),
        (3, 9),
        (18, 3),
        (19, 5),
        (20, 4),
        (32, 2),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..400 {
        let (api, version) = apis[round % apis.len()];
        let mut frame = Vec::new();
        frame.extend_from_slice(&api.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&(round as i32).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        let len = (next() % 200) as usize;
        frame.extend((0..len).map(|_| next() as u8));
        let mut client = broker.connect();
        client.send_frame(&frame);
        // Either an answer or a closed connection; both are fine, a dead broker is not.
        let _ = client.read_frame();
    }
    assert_serving(&mut broker);
}
