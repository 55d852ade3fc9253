//! One batch's records, decoded one at a time.

use bytes::Bytes;

use super::codec::Codec;
use super::error::RecordError;
use super::source::{SliceSource, Source, StreamSource};
use super::varint::{varint, varlong};
use crate::log::record_batch::{BatchHeader, HEADER_SIZE};

/// How to decode.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    /// Most bytes the records of a compressed batch may decompress to.
    pub max_decompressed: u64,
    /// Return each record's value (otherwise values are skipped without being copied).
    pub values: bool,
}

/// What the broker reads of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Absolute timestamp (base timestamp plus the record's delta).
    pub timestamp: i64,
    /// True when the record has a (non-null) key.
    pub has_key: bool,
    /// The value, when asked for and not null.
    pub value: Option<Bytes>,
}

enum AnySource {
    Slice(SliceSource),
    Stream(StreamSource),
}

/// The records of one batch, in order. Yields exactly `recordCount` records or an error (then
/// nothing more): fewer records than declared, bytes left after them, a malformed record, or
/// decompressed data beyond the cap.
pub struct BatchRecords {
    source: AnySource,
    base_timestamp: i64,
    count: i32,
    read: i32,
    values: bool,
    done: bool,
}

impl BatchRecords {
    /// Decodes the records of `batch` (one whole batch, header included) described by `header`.
    pub fn new(
        batch: &Bytes,
        header: &BatchHeader,
        options: DecodeOptions,
    ) -> Result<Self, RecordError> {
        if header.record_count < 0 {
            return Err(RecordError::Invalid {
                field: "record count",
                value: header.record_count.into(),
            });
        }
        let end = header.total_len().min(batch.len());
        let records = batch.slice(HEADER_SIZE.min(end)..end);
        let source = match Codec::of(header.attributes)? {
            Codec::None => AnySource::Slice(SliceSource::new(records)),
            codec => {
                let cap = options.max_decompressed;
                AnySource::Stream(StreamSource::new(codec.reader(records, cap)?, cap))
            }
        };
        Ok(Self {
            source,
            base_timestamp: header.base_timestamp,
            count: header.record_count,
            read: 0,
            values: options.values,
            done: false,
        })
    }

    /// Bytes decompressed so far (0 for an uncompressed batch): the work a caller charges
    /// against its budget.
    pub fn decompressed(&self) -> u64 {
        match &self.source {
            AnySource::Slice(_) => 0,
            AnySource::Stream(source) => source.produced(),
        }
    }

    fn next_record(&mut self) -> Result<RecordInfo, RecordError> {
        let (base_timestamp, index, values) = (self.base_timestamp, self.read, self.values);
        match &mut self.source {
            AnySource::Slice(source) => read_record(source, base_timestamp, index, values),
            AnySource::Stream(source) => read_record(source, base_timestamp, index, values),
        }
    }

    fn at_end(&mut self) -> Result<bool, RecordError> {
        match &mut self.source {
            AnySource::Slice(source) => source.at_end(),
            AnySource::Stream(source) => source.at_end(),
        }
    }

    fn step(&mut self) -> Option<Result<RecordInfo, RecordError>> {
        if self.read == self.count {
            self.done = true;
            return match self.at_end() {
                Ok(true) => None,
                Ok(false) => Some(Err(RecordError::TrailingBytes(self.count))),
                Err(error) => Some(Err(error)),
            };
        }
        match self.at_end() {
            Ok(false) => {}
            Ok(true) => {
                return Some(Err(RecordError::MissingRecords {
                    declared: self.count,
                    found: self.read,
                }))
            }
            Err(error) => return Some(Err(error)),
        }
        let record = self.next_record();
        self.read += 1;
        Some(record)
    }
}

impl Iterator for BatchRecords {
    type Item = Result<RecordInfo, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

/// The bytes a record declares, against which each field's length is checked before the field
/// is read, so no length field can make the reader skip or copy past its record.
struct Bounds {
    start: u64,
    declared: u64,
    index: i32,
}

impl Bounds {
    fn check(&self, position: u64, field_len: u64) -> Result<(), RecordError> {
        let read = position - self.start + field_len;
        if read > self.declared {
            return Err(RecordError::RecordSize {
                index: self.index,
                declared: self.declared as i64,
                read,
            });
        }
        Ok(())
    }
}

/// One record (Kafka `DefaultRecord.readFrom`), its fields held within its declared length.
fn read_record(
    src: &mut impl Source,
    base_timestamp: i64,
    index: i32,
    values: bool,
) -> Result<RecordInfo, RecordError> {
    let declared = varint(src, "record length")?;
    if declared < 0 {
        return Err(RecordError::Invalid {
            field: "record length",
            value: declared.into(),
        });
    }
    let bounds = Bounds {
        start: src.position(),
        declared: declared as u64,
        index,
    };
    src.byte("record attributes")?;
    let timestamp_delta = varlong(src, "timestamp delta")?;
    let offset_delta = varint(src, "offset delta")?;
    // Negative key and value lengths mean null, as in Kafka.
    let key_len = varint(src, "key length")?;
    if key_len >= 0 {
        bounds.check(src.position(), key_len as u64)?;
        src.skip(key_len as usize, "key")?;
    }
    let value_len = varint(src, "value length")?;
    let mut value = None;
    if value_len >= 0 {
        bounds.check(src.position(), value_len as u64)?;
        if values {
            value = Some(src.take(value_len as usize, "value")?);
        } else {
            src.skip(value_len as usize, "value")?;
        }
    }
    let headers = varint(src, "header count")?;
    if headers < 0 {
        return Err(RecordError::Invalid {
            field: "header count",
            value: headers.into(),
        });
    }
    for _ in 0..headers {
        // Each header takes at least two bytes, so a huge count overruns the record quickly.
        bounds.check(src.position(), 2)?;
        let key_len = varint(src, "header key length")?;
        if key_len < 0 {
            return Err(RecordError::Invalid {
                field: "header key length",
                value: key_len.into(),
            });
        }
        bounds.check(src.position(), key_len as u64)?;
        src.skip(key_len as usize, "header key")?;
        let value_len = varint(src, "header value length")?;
        if value_len >= 0 {
            bounds.check(src.position(), value_len as u64)?;
            src.skip(value_len as usize, "header value")?;
        }
    }
    let read = src.position() - bounds.start;
    if read != bounds.declared {
        return Err(RecordError::RecordSize {
            index,
            declared: declared.into(),
            read,
        });
    }
    Ok(RecordInfo {
        offset_delta,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        has_key: key_len >= 0,
        value,
    })
}
