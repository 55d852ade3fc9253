//! What each path costs the broker: its CPU seconds (read from `/proc/<pid>/stat` of a broker
//! on this host) per GiB fetched and per 1,000 polls at the end of a partition, and a raw TCP
//! Fetch loop that does not decode records (so that a ratio against the one-sided path
//! measures the transport, not a client's per-record work).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use serde::Serialize;

use crate::error::{BenchError, Result};

/// Fetch version of the raw loop (topic names, flexible encoding).
const FETCH_VERSION: i16 = 12;

/// The broker process's CPU time, if its pid was given and it runs on this host.
#[derive(Clone, Copy, Debug)]
pub struct BrokerCpu {
    pid: Option<u32>,
    /// CPU seconds per second the broker spends idle.
    idle: Option<f64>,
}

impl BrokerCpu {
    /// Measures `pid` (none: nothing is measured).
    pub fn new(pid: Option<u32>) -> Self {
        BrokerCpu { pid, idle: None }
    }

    /// User plus system CPU seconds so far.
    pub fn seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // Fields after the command name (which may hold spaces), from field 3 (state) on:
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
    }

    /// CPU seconds `work` cost the broker (less what it spends idle over that time, see
    /// [`BrokerCpu::idle_rate`]), and its result.
    pub fn during<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
        let (before, started) = (self.seconds(), Instant::now());
        let out = work()?;
        let idle = self.idle.unwrap_or(0.0) * started.elapsed().as_secs_f64();
        let spent = self
            .seconds()
            .zip(before)
            .map(|(after, before)| (after - before - idle).max(0.0));
        Ok((out, spent))
    }

    /// Measures what the broker spends with nothing asked of it (its timers and background
    /// tasks), over `over`, so that [`BrokerCpu::during`] leaves it out.
    pub fn idle_rate(&mut self, over: Duration) -> Option<f64> {
        let before = self.seconds()?;
        std::thread::sleep(over);
        let rate = (self.seconds()? - before) / over.as_secs_f64();
        self.idle = Some(rate);
        Some(rate)
    }
}

/// Polls at the end of a partition: how long each took, and what they cost the broker.
#[derive(Debug, Serialize)]
pub struct IdlePolls {
    /// Which path.
    pub path: String,
    /// Polls made.
    pub polls: u64,
    /// Mean wall time of one poll, µs.
    pub mean_us: f64,
    /// Broker CPU seconds per 1,000 polls (none without `--broker-pid`).
    pub broker_cpu_s_per_1000: Option<f64>,
}

impl IdlePolls {
    /// Runs `poll` `polls` times, measuring the broker meanwhile.
    pub fn measure(
        path: &str,
        polls: u64,
        cpu: BrokerCpu,
        mut poll: impl FnMut() -> Result<()>,
    ) -> Result<Self> {
        let started = Instant::now();
        let ((), spent) = cpu.during(|| (0..polls).try_for_each(|_| poll()))?;
        Ok(IdlePolls {
            path: path.to_string(),
            polls,
            mean_us: started.elapsed().as_secs_f64() * 1e6 / polls.max(1) as f64,
            broker_cpu_s_per_1000: spent.map(|s| s * 1000.0 / polls.max(1) as f64),
        })
    }
}

/// A bare Kafka connection that sends Fetch requests and hands back the record bytes
/// undecoded.
pub struct RawFetcher {
    stream: TcpStream,
    topic: String,
    correlation: i32,
}

impl RawFetcher {
    /// Connects to `bootstrap` (the partition leader: Hotwire alone).
    pub fn connect(bootstrap: &str, topic: &str) -> Result<Self> {
        let stream =
            TcpStream::connect(bootstrap).map_err(BenchError::io("connecting the raw fetcher"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(BenchError::io("raw fetcher timeout"))?;
        Ok(RawFetcher {
            stream,
            topic: topic.to_string(),
            correlation: 0,
        })
    }

    /// One Fetch of partition 0 from `offset` (no wait): the record bytes.
    pub fn fetch(&mut self, offset: i64, max_bytes: i32) -> Result<Bytes> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(FETCH_VERSION)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("hotwire-bench-raw")));
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let mut body = BytesMut::new();
        header
            .encode(&mut body, FetchRequest::header_version(FETCH_VERSION))
            .and_then(|()| request.encode(&mut body, FETCH_VERSION))
            .map_err(|e| BenchError::Broker(format!("encoding Fetch: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_u32(body.len() as u32);
        frame.put(body);
        self.stream
            .write_all(&frame)
            .map_err(BenchError::io("sending Fetch"))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(BenchError::io("reading a Fetch response"))?;
        let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream
            .read_exact(&mut response)
            .map_err(BenchError::io("reading a Fetch response"))?;
        let mut response = Bytes::from(response);
        let decoded =
            ResponseHeader::decode(&mut response, FetchResponse::header_version(FETCH_VERSION))
                .and_then(|_| FetchResponse::decode(&mut response, FETCH_VERSION))
                .map_err(|e| BenchError::Broker(format!("decoding Fetch: {e}")))?;
        let partition = decoded
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| BenchError::Broker("an empty Fetch response".into()))?;
        if partition.error_code != 0 {
            return Err(BenchError::Broker(format!(
                "Fetch failed with error {}",
                partition.error_code
            )));
        }
        Ok(partition.records.clone().unwrap_or_default())
    }
}

/// The offsets after the last whole batch in `records` and how many records they hold,
/// from the batch headers alone.
pub fn batches_end(records: &Bytes) -> Option<(i64, u64)> {
    let mut rest = records.clone();
    let mut end = None;
    let mut count = 0u64;
    while rest.remaining() >= 27 {
        let base = i64::from_be_bytes(rest[..8].try_into().ok()?);
        let len = i32::from_be_bytes(rest[8..12].try_into().ok()?);
        let total = 12 + usize::try_from(len).ok()?;
        if rest.remaining() < total {
            break;
        }
        let delta = i32::from_be_bytes(rest[23..27].try_into().ok()?);
        end = Some(base + i64::from(delta) + 1);
        count += u64::try_from(delta).ok()? + 1;
        rest.advance(total);
    }
    end.map(|end| (end, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch header of `records` offsets from `base` with `body` bytes after the header.
    fn batch(base: i64, records: i32, body: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + body];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&((49 + body) as i32).to_be_bytes());
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b
    }

    #[test]
    fn the_end_of_fetched_records_comes_from_whole_batch_headers() {
        let mut records = batch(10, 5, 3);
        records.extend(batch(15, 2, 0));
        assert_eq!(batches_end(&Bytes::from(records.clone())), Some((17, 7)));
        // A batch cut short at the end of the response is left for the next fetch.
        records.extend(&batch(17, 4, 10)[..30]);
        assert_eq!(batches_end(&Bytes::from(records)), Some((17, 7)));
        assert_eq!(batches_end(&Bytes::new()), None);
    }
}
