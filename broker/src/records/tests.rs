//! Unit tests of the bounded record decoder: every codec, and malformed or lying input.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::log::record_batch::{BatchHeader, HEADER_SIZE};

const CAP: u64 = 1 << 20;

fn options(values: bool) -> DecodeOptions {
    DecodeOptions {
        max_decompressed: CAP,
        values,
    }
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One record's bytes, its length prefix included.
fn record(offset_delta: i64, timestamp_delta: i64, value: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1);
    match value {
        Some(v) => {
            put_varint(&mut body, v.len() as i64);
            body.extend_from_slice(v);
        }
        None => put_varint(&mut body, -1),
    }
    put_varint(&mut body, 0);
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A whole batch around `records` (already compressed if `attributes` says so).
fn batch(records: &[u8], count: i32, attributes: i16) -> (Bytes, BatchHeader) {
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((HEADER_SIZE - 12 + records.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&count.wrapping_sub(1).to_be_bytes());
    out.extend_from_slice(&1000i64.to_be_bytes());
    out.extend_from_slice(&1000i64.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    let header = BatchHeader::parse(&out).unwrap();
    (Bytes::from(out), header)
}

fn decode(batch: &(Bytes, BatchHeader)) -> Result<Vec<RecordInfo>, RecordError> {
    BatchRecords::new(&batch.0, &batch.1, options(true))?.collect()
}

fn encoded(compression: Compression, count: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: i,
            timestamp: 5000 + i64::from(i),
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
            delete_horizon: false,
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

#[test]
fn every_codec_decodes_what_kafka_protocol_encodes() {
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bytes = encoded(compression, 50);
        let header = BatchHeader::parse(&bytes).unwrap();
        let records: Vec<RecordInfo> = BatchRecords::new(&bytes, &header, options(true))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(records.len(), 50, "{compression:?}");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset_delta, i as i32);
            assert_eq!(record.timestamp, 5000 + i as i64);
            assert!(record.has_key);
            assert_eq!(
                record.value.as_deref(),
                Some(format!("value-{i}").as_bytes())
            );
        }
    }
}

#[test]
fn values_are_skipped_unless_asked_for() {
    let b = batch(&record(0, 0, Some(b"hello")), 1, 0);
    let records: Vec<_> = BatchRecords::new(&b.0, &b.1, options(false))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records[0].value, None);
    assert_eq!(decode(&b).unwrap()[0].value.as_deref(), Some(&b"hello"[..]));
}

#[test]
fn a_lying_record_count_is_caught_without_allocating_for_it() {
    let one = record(0, 0, Some(b"x"));
    let b = batch(&one, i32::MAX, 0);
    assert_eq!(
        decode(&b),
        Err(RecordError::MissingRecords {
            declared: i32::MAX,
            found: 1
        })
    );
    let mut two = one.clone();
    two.extend(record(1, 0, None));
    assert_eq!(
        decode(&batch(&two, 1, 0)),
        Err(RecordError::TrailingBytes(1))
    );
    assert!(matches!(
        BatchRecords::new(
            &b.0,
            &BatchHeader {
                record_count: -1,
                ..b.1
            },
            options(false)
        ),
        Err(RecordError::Invalid { .. })
    ));
}

#[test]
fn truncated_and_overlong_varints_are_errors() {
    // A record length whose varint never ends inside the data.
    assert_eq!(
        decode(&batch(&[0x80, 0x80], 1, 0)),
        Err(RecordError::Truncated("record length"))
    );
    assert_eq!(
        decode(&batch(&[0xff; 8], 1, 0)),
        Err(RecordError::VarintTooLong(5))
    );
    let mut long_timestamp = vec![];
    put_varint(&mut long_timestamp, 20);
    long_timestamp.push(0);
    long_timestamp.extend([0xff; 11]);
    assert_eq!(
        decode(&batch(&long_timestamp, 1, 0)),
        Err(RecordError::VarintTooLong(10))
    );
}

#[test]
fn huge_and_negative_lengths_are_refused_before_use() {
    // The record declares 2^31-1 bytes; only a few follow.
    let mut huge = vec![];
    put_varint(&mut huge, i64::from(i32::MAX));
    huge.extend([0, 0, 0, 1, 1, 0]);
    assert!(matches!(
        decode(&batch(&huge, 1, 0)),
        Err(RecordError::RecordSize { read: 6, .. })
    ));
    let mut huge_key = vec![];
    put_varint(&mut huge_key, i64::from(i32::MAX));
    huge_key.extend([0, 0, 0]);
    put_varint(&mut huge_key, i64::from(i32::MAX - 10));
    assert!(matches!(
        decode(&batch(&huge_key, 1, 0)),
        Err(RecordError::Truncated("key"))
    ));
    // A value length beyond its record's declared length.
    let mut body = vec![0u8, 0, 0, 1];
    put_varint(&mut body, i64::from(i32::MAX));
    let mut lying = vec![];
    put_varint(&mut lying, body.len() as i64);
    lying.extend(body);
    assert!(matches!(
        decode(&batch(&lying, 1, 0)),
        Err(RecordError::RecordSize { index: 0, .. })
    ));
    let mut negative = vec![];
    put_varint(&mut negative, -5);
    assert!(matches!(
        decode(&batch(&negative, 1, 0)),
        Err(RecordError::Invalid {
            field: "record length",
            ..
        })
    ));
}

#[test]
fn huge_and_negative_header_counts_are_refused() {
    for (count, expect_invalid) in [(i64::from(i32::MAX), false), (-1, true)] {
        let mut body = vec![0u8, 0, 0, 1, 1];
        put_varint(&mut body, count);
        let mut bytes = vec![];
        put_varint(&mut bytes, body.len() as i64);
        bytes.extend(body);
        let result = decode(&batch(&bytes, 1, 0));
        if expect_invalid {
            assert!(
                matches!(result, Err(RecordError::Invalid { .. })),
                "{result:?}"
            );
        } else {
            assert!(
                matches!(result, Err(RecordError::RecordSize { .. })),
                "{result:?}"
            );
        }
    }
    // A header with a negative key length.
    let mut body = vec![0u8, 0, 0, 1, 1];
    put_varint(&mut body, 1);
    put_varint(&mut body, -1);
    put_varint(&mut body, -1);
    let mut bytes = vec![];
    put_varint(&mut bytes, body.len() as i64);
    bytes.extend(body);
    assert!(matches!(
        decode(&batch(&bytes, 1, 0)),
        Err(RecordError::Invalid {
            field: "header key length",
            ..
        })
    ));
}

/// One record whose value is `len` zero bytes, uncompressed.
fn zeros_record(len: usize) -> Vec<u8> {
    record(0, 0, Some(&vec![0u8; len]))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn lz4(data: &[u8]) -> Vec<u8> {
    let mut encoder = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
    encoder.write_all(data).unwrap();
    let (out, result) = encoder.finish();
    result.unwrap();
    out
}

fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for block in data.chunks(32 << 10) {
        let compressed = snap::raw::Encoder::new().compress_vec(block).unwrap();
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend(compressed);
    }
    out
}

type Compressor = fn(&[u8]) -> Vec<u8>;

fn codecs() -> [(i16, Compressor); 5] {
    [
        (1, gzip),
        (2, snappy_framed),
        (2, |d| snap::raw::Encoder::new().compress_vec(d).unwrap()),
        (3, lz4),
        (4, |d| zstd::encode_all(d, 3).unwrap()),
    ]
}

#[test]
fn each_codec_stops_at_the_decompression_cap() {
    // Four times the cap in one record's value: refused, whatever the codec.
    let bomb = zeros_record(4 * CAP as usize);
    for (attributes, compress) in codecs() {
        let b = batch(&compress(&bomb), 1, attributes);
        assert!(
            b.0.len() < CAP as usize / 4,
            "codec {attributes} compresses zeros"
        );
        assert_eq!(
            decode(&b),
            Err(RecordError::TooLarge(CAP)),
            "codec {attributes}"
        );
    }
    // Just under the cap passes.
    let fits = zeros_record(CAP as usize - 100);
    for (attributes, compress) in codecs() {
        let records = decode(&batch(&compress(&fits), 1, attributes)).unwrap();
        assert_eq!(
            records[0].value.as_ref().map(Bytes::len),
            Some(CAP as usize - 100)
        );
    }
}

#[test]
fn corrupt_compressed_data_and_unknown_codecs_are_errors() {
    let good = record(0, 0, Some(b"payload"));
    for (attributes, compress) in codecs() {
        let mut data = compress(&good);
        let middle = data.len() / 2;
        data.truncate(middle);
        assert!(
            decode(&batch(&data, 1, attributes)).is_err(),
            "codec {attributes}"
        );
    }
    assert!(matches!(
        BatchRecords::new(&batch(&good, 1, 5).0, &batch(&good, 1, 5).1, options(false)),
        Err(RecordError::UnknownCodec(5))
    ));
}

proptest::proptest! {
    #[test]
    fn arbitrary_record_bytes_never_panic(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        count in -2i32..5,
        codec in 0i16..8,
    ) {
        let b = batch(&data, count, codec);
        if let Ok(records) = BatchRecords::new(&b.0, &b.1, options(true)) {
            let _ = records.count();
        }
    }
}
