//! Streaming decompressors for the four Kafka codecs, each with bounded memory.

use std::io::Read;

use bytes::{Buf, Bytes};

use super::error::RecordError;

/// Largest zstd window a batch may ask for (2^24 = 16 MiB): the decoder allocates the window a
/// frame declares, so a frame must not be able to ask for zstd's 2 GiB maximum. Kafka clients
/// compress with windows of 2^21 to 2^23 (levels 1 to 19).
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The compression codec of a batch (attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Uncompressed.
    None,
    /// gzip (RFC 1952; concatenated members are read as one stream, as Java's GZIPInputStream does).
    Gzip,
    /// Snappy, in snappy-java's framing or raw.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Codec {
    /// The codec named by batch `attributes`.
    pub fn of(attributes: i16) -> Result<Self, RecordError> {
        Ok(match attributes & 0x07 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(RecordError::UnknownCodec(other)),
        })
    }

    /// A reader of the decompressed `data`. `cap` bounds what any one allocation of the decoder
    /// may be sized by the data (snappy's declared block lengths); the caller bounds the total.
    pub(crate) fn reader(self, data: Bytes, cap: u64) -> Result<Box<dyn Read + Send>, RecordError> {
        let input = data.reader();
        Ok(match self {
            Codec::None => Box::new(input),
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Codec::Snappy => Box::new(SnappyReader::new(input.into_inner(), cap)),
            Codec::Lz4 => Box::new(lz4::Decoder::new(input).map_err(RecordError::from_io)?),
            Codec::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::new(input).map_err(RecordError::from_io)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(RecordError::from_io)?;
                Box::new(decoder)
            }
        })
    }
}

/// snappy-java's stream header: magic, then version and compatible version (4 bytes each).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Snappy as Kafka writes it: snappy-java's framing (a header, then blocks each prefixed with
/// its compressed length) or, from some clients, one raw block. Each block is decompressed
/// whole, into a buffer sized by the length the block declares, which is checked against what
/// is left of the cap first.
struct SnappyReader {
    data: Bytes,
    framed: bool,
    block: Vec<u8>,
    at: usize,
    budget: u64,
    cap: u64,
}

impl SnappyReader {
    fn new(mut data: Bytes, cap: u64) -> Self {
        let framed = data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC);
        if framed {
            data.advance(XERIAL_HEADER_LEN);
        }
        Self {
            data,
            framed,
            block: Vec::new(),
            at: 0,
            budget: cap,
            cap,
        }
    }

    /// Decompresses the next block; false when there is none.
    fn next_block(&mut self) -> Result<bool, RecordError> {
        if self.data.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            if self.data.len() < 4 {
                return Err(RecordError::Decompress(
                    "truncated snappy block length".into(),
                ));
            }
            let len = self.data.get_u32() as usize;
            if len > self.data.len() {
                return Err(RecordError::Decompress("truncated snappy block".into()));
            }
            self.data.split_to(len)
        } else {
            std::mem::take(&mut self.data)
        };
        let len = snap::raw::decompress_len(&compressed)
            .map_err(|e| RecordError::Decompress(e.to_string()))?;
        if len as u64 > self.budget {
            return Err(RecordError::TooLarge(self.cap));
        }
        self.budget -= len as u64;
        self.block.clear();
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(&compressed, &mut self.block)
            .map_err(|e| RecordError::Decompress(e.to_string()))?;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block().map_err(std::io::Error::other)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
