//! Writes the seed corpora under `fuzz/corpus/<target>/` with the production encoders, so that
//! the seeds can be regenerated when a format changes:
//!
//! ```text
//! scripts/fuzz.sh --seeds
//! ```
//!
//! Each file is named after what it holds. Targets whose first input byte is a mode (see
//! `fuzz/src/lib.rs`) get it prepended.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use dfs_adapter::{ChunkLocation, ManifestState, ObjectId, PartitionKey, Segment};
use hotwire_broker::internal::record::{encode_batch, CommittedOffset, InternalRecord};
use hotwire_broker::protocol::versions::SUPPORTED;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdma::control::{
    write_frame_plain, BatchLocation, NamedRegion, QpAddress, RegionRole, Request, Response,
    SlotGrant,
};
use rdma::{Access, Grant, RegionId, RemoteKey, RemoteRegion};

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    kafka_requests(&root.join("kafka_request"));
    record_batches(&root.join("record_batches"));
    record_batches(&root.join("produce_records"));
    stored_batches(&root.join("stored_batches"));
    internal_records(&root.join("internal_records"));
    flush_objects(&root.join("flush_object"));
    manifests(&root.join("manifest"));
    control_frames(&root.join("control_frame"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    [&[mode][..], bytes].concat()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

fn group(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.into()))
}

/// A batch of `count` records with keys, values and a header, in `compression`.
fn batch(count: i64, compression: Compression, producer_id: i64) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: if producer_id >= 0 { i as i32 } else { -1 },
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}-").repeat(3))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

/// A request of `api` with its default body, or a populated one where the broker reads fields.
fn request_body(api: ApiKey) -> RequestKind {
    let records = batch(2, Compression::None, -1);
    match api {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name("t"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records))])]),
        ),
        ApiKey::Fetch => RequestKind::Fetch(
            FetchRequest::default()
                .with_max_wait_ms(100)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(5)
                        .with_partition_max_bytes(1 << 20)])]),
        ),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
            vec![ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])],
        )),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("t"))),
            ])))
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1000")))])]),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group("g"))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(StrBytes::from_static_str("m"))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_metadata(Some(StrBytes::from_static_str(
                            "meta",
                        )))])]),
        ),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group("g"))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![0, 1])])),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(group("g"))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x01t"))]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group("g"))
                .with_generation_id(1)
                .with_member_id(StrBytes::from_static_str("m"))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_static_str("m"))
                    .with_assignment(Bytes::from_static(b"\0\0\0\0\0\x01"))]),
        ),
        other => other_body(other),
    }
}

/// Bodies of the other APIs served, with the fields their handlers read.
fn other_body(api: ApiKey) -> RequestKind {
    match api {
        ApiKey::ApiVersions => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("seed"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default().with_topic_names(vec![name("t")]),
        ),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group("g"))
                .with_generation_id(1),
        ),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(group("g"))
                .with_member_id(StrBytes::from_static_str("m")),
        ),
        ApiKey::OffsetDelete => {
            RequestKind::OffsetDelete(OffsetDeleteRequest::default().with_group_id(group("g")))
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(vec![group("g")]),
        ),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![group("g")]),
        ),
        other => panic!("no seed body for {other:?}: add one"),
    }
}

/// The default body of `api`, for versions that lack a field the populated one sets.
fn bare_body(api: ApiKey) -> RequestKind {
    match api {
        ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
        other => request_body(other),
    }
}

/// One frame (without the length prefix) of `body` as `api` version `version`.
fn request_frame(api: ApiKey, version: i16, body: &RequestKind) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")))
        .encode(&mut buf, api.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn kafka_requests(dir: &Path) {
    for &(api, min, max) in SUPPORTED {
        let body = request_body(api);
        // Every served version of the broker's busiest APIs; the lowest and highest of others.
        let busy = matches!(
            api,
            ApiKey::Produce | ApiKey::Fetch | ApiKey::Metadata | ApiKey::ApiVersions
        );
        for version in min..=max {
            if !busy && version != min && version != max {
                continue;
            }
            let frame = request_frame(api, version, &body)
                .or_else(|| request_frame(api, version, &bare_body(api)));
            match frame {
                Some(frame) => write(dir, &format!("{api:?}-v{version}"), &frame),
                None => eprintln!("{api:?} v{version}: body not encodable, skipped"),
            }
        }
    }
}

fn record_batches(dir: &Path) {
    for (codec, compression) in CODECS {
        write(dir, codec, &with_mode(1, &batch(3, compression, -1)));
    }
    write(
        dir,
        "idempotent",
        &with_mode(1, &batch(2, Compression::None, 1000)),
    );
    let two = [
        batch(1, Compression::None, -1),
        batch(4, Compression::Zstd, -1),
    ]
    .concat();
    write(dir, "two-batches", &with_mode(0, &two));
}

/// A chunk as stored (offsets assigned), after the mode byte and the timestamp looked for.
fn stored_batches(dir: &Path) {
    let mut first = batch(2, Compression::None, -1).to_vec();
    first[..8].copy_from_slice(&100i64.to_be_bytes());
    let chunk = [first, batch(3, Compression::Lz4, -1).to_vec()].concat();
    for (name, timestamp) in [
        ("earliest", 0i64),
        ("middle", 1_700_000_000_001),
        ("after", i64::MAX),
    ] {
        let input = [&timestamp.to_be_bytes()[..], &chunk].concat();
        write(dir, name, &with_mode(1, &input));
    }
    for (codec, compression) in CODECS {
        let input = [&0i64.to_be_bytes()[..], &batch(3, compression, -1)].concat();
        write(dir, codec, &with_mode(0, &input));
    }
}

fn internal_records(dir: &Path) {
    let topic_id = uuid::Uuid::from_u128(0x1234);
    let records = vec![
        InternalRecord::ProducerIdBlock { end: 1000 },
        InternalRecord::Offset {
            group: "g".into(),
            topic_id,
            partition: 3,
            commit: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: Some("m".into()),
                commit_timestamp: 7,
            }),
            based_on: Some(5),
        },
        InternalRecord::Offset {
            group: "g".into(),
            topic_id,
            partition: 4,
            commit: None,
            based_on: None,
        },
        InternalRecord::Group {
            group_id: "g".into(),
            snapshot: Some(serde_json::json!({"generation": 3, "members": ["m1", "m2"]})),
        },
        InternalRecord::Group {
            group_id: "old".into(),
            snapshot: None,
        },
    ];
    let one = encode_batch(&records, 1_700_000_000_000).unwrap();
    write(dir, "one-batch", &with_mode(1, &one));
    let two = [one.clone(), encode_batch(&records[..1], 5).unwrap()].concat();
    write(dir, "two-batches", &with_mode(0, &two));
    // What a damaged store could hold: the same records compressed.
    write(dir, "gzip", &with_mode(1, &batch(2, Compression::Gzip, -1)));
}

fn flush_objects(dir: &Path) {
    let a = PartitionKey {
        topic_id: uuid::Uuid::from_u128(1),
        partition: 0,
    };
    let b = PartitionKey {
        topic_id: uuid::Uuid::from_u128(2),
        partition: 5,
    };
    let first = batch(2, Compression::None, -1);
    let second = batch(3, Compression::Zstd, -1);
    let object = ObjectId(7);
    let chunks = [
        ChunkLocation {
            key: a,
            object,
            position: 0,
            len: first.len() as u64,
            base_offset: 0,
            last_offset: 1,
            max_timestamp: 1_700_000_000_001,
            batches: 1,
        },
        ChunkLocation {
            key: b,
            object,
            position: first.len() as u64,
            len: second.len() as u64,
            base_offset: 10,
            last_offset: 12,
            max_timestamp: 1_700_000_000_002,
            batches: 1,
        },
    ];
    let data = [first, second].concat();
    let bytes = dfs_adapter::fuzzing::encode_object(object, &chunks, &data);
    assert!(dfs_adapter::fuzzing::parse_object(object, &bytes).is_ok());
    write(dir, "two-partitions", &with_mode(3, &bytes));
    let empty = dfs_adapter::fuzzing::encode_object(object, &[], &[]);
    write(dir, "empty", &with_mode(0, &empty));
}

fn manifests(dir: &Path) {
    let key = PartitionKey {
        topic_id: uuid::Uuid::from_u128(9),
        partition: 2,
    };
    let segment = ObjectId::segment(2);
    let state = ManifestState {
        wal_from: ObjectId(17),
        next_segment: 3,
        segments: vec![Segment {
            id: segment,
            key,
            chunks: vec![ChunkLocation {
                key,
                object: segment,
                position: 0,
                len: 100,
                base_offset: 0,
                last_offset: 9,
                max_timestamp: 5,
                batches: 2,
            }],
        }],
        log_starts: vec![(key, 4)],
        obsolete: vec![ObjectId(3)],
    };
    let writer = uuid::Uuid::from_u128(1);
    let file = dfs_adapter::fuzzing::encode_checkpoint(5, writer, &state).unwrap();
    assert!(dfs_adapter::fuzzing::decode_checkpoint(5, &file).is_ok());
    write(dir, "checkpoint", &with_mode(0, &file));
    let body_end = file.windows(8).rposition(|w| w == b"\ncrc32c:").unwrap();
    write(dir, "checkpoint-body", &with_mode(1, &file[..body_end]));
    let empty = dfs_adapter::fuzzing::encode_checkpoint(5, writer, &ManifestState::default());
    write(dir, "empty", &with_mode(0, &empty.unwrap()));
}

fn frame(message: &impl serde::Serialize, binary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame_plain(&mut out, message, binary).unwrap();
    out
}

fn control_frames(dir: &Path) {
    let qp = QpAddress {
        qpn: 17,
        psn: 99,
        lid: 1,
        gid: [7; 16],
        mtu: 4096,
    };
    let requests = [
        (
            "hello",
            Request::Hello {
                version: 1,
                client_id: "seed".into(),
                token: Some("secret".into()),
                qp: Some(qp),
            },
        ),
        (
            "locate",
            Request::Locate {
                topic: "t".into(),
                partition: 0,
                offset: 5,
                max_bytes: 1 << 20,
            },
        ),
        (
            "fetch",
            Request::Fetch {
                topic: "t".into(),
                partition: 0,
                offset: 5,
                max_bytes: 1 << 20,
            },
        ),
        (
            "join",
            Request::Join {
                group: "g".into(),
                topic: "t".into(),
                partitions: vec![0, 1, 2],
                member: None,
            },
        ),
        ("persist", Request::Persist),
        (
            "produce",
            Request::Produce {
                topic: "t".into(),
                partition: 1,
                position: 4096,
                len: 300,
                acks: -1,
            },
        ),
    ];
    for (what, request) in requests {
        write(dir, &format!("request-{what}"), &frame(&request, &[]));
    }
    let region = RemoteRegion {
        id: RegionId(3),
        len: 1 << 20,
        access: Access::READ,
    };
    let responses = [
        (
            "welcome",
            Response::Welcome {
                session: 1,
                regions: vec![NamedRegion {
                    role: RegionRole::Cache,
                    region,
                    key: Some(RemoteKey {
                        addr: 4096,
                        rkey: 5,
                    }),
                }],
                ring_capacity: 1 << 16,
                qp: Some(qp),
            },
        ),
        (
            "located",
            Response::Located {
                high_watermark: 10,
                log_start: 0,
                batches: vec![BatchLocation {
                    position: 0,
                    len: 100,
                    block: 0,
                    generation: 1,
                    base_offset: 0,
                    last_offset: 4,
                }],
                hot: true,
            },
        ),
        (
            "joined",
            Response::Joined {
                slots: vec![SlotGrant {
                    partition: 0,
                    grant: Grant {
                        region: RegionId(2),
                        start: 64,
                        len: 8,
                        access: Access::ATOMIC,
                    },
                    key: None,
                }],
            },
        ),
        ("persisted", Response::Persisted { slots: 2 }),
        (
            "produced",
            Response::Produced {
                base_offset: 7,
                error_code: 0,
            },
        ),
        (
            "error",
            Response::Error {
                message: "no".into(),
            },
        ),
    ];
    for (what, response) in responses {
        write(dir, &format!("response-{what}"), &frame(&response, &[]));
    }
    let fetched = Response::Fetched { high_watermark: 9 };
    write(
        dir,
        "response-fetched",
        &frame(&fetched, &batch(2, Compression::None, -1)),
    );
}
