//! A broker process started by a test, and a minimal raw Kafka client for it.

#![allow(dead_code)]

pub mod cluster;
pub mod etcd;
pub mod groups;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A `hotwire` process on a free loopback port with its own storage directory.
/// The brokers' log level: `HOTWIRE_TEST_LOG_LEVEL`, `warn` unless set.
fn log_level() -> String {
    std::env::var("HOTWIRE_TEST_LOG_LEVEL").unwrap_or_else(|_| "warn".into())
}

pub struct BrokerProcess {
    pub addr: SocketAddr,
    storage: Option<tempfile::TempDir>,
    child: Child,
}

impl BrokerProcess {
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(tempfile::tempdir().unwrap(), free_port(), extra)
    }

    /// Starts on a given storage directory and address (to restart on the same ones).
    pub fn start_on(storage: tempfile::TempDir, addr: SocketAddr, extra: &[&str]) -> Self {
        let url = format!("fs://{}", storage.path().display());
        let mut broker = Self::start_shared(&url, addr, extra);
        broker.storage = Some(storage);
        broker
    }

    /// Starts on storage this process does not own (a cluster's shared root).
    pub fn start_shared(storage_url: &str, addr: SocketAddr, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_hotwire"))
            .args(["--listen", &addr.to_string()])
            .args(["--storage", storage_url])
            .args(["--log-level", &log_level()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut broker = Self {
            addr,
            storage: None,
            child,
        };
        broker.wait_ready();
        broker
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the process with SIGKILL and starts it again on the same storage and address.
    pub fn kill_and_restart(mut self, extra: &[&str]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let storage = self.storage.take().expect("storage is held until drop");
        let addr = self.addr;
        drop(self);
        Self::start_on(storage, addr, extra)
    }

    /// The storage directory.
    pub fn storage_path(&self) -> &std::path::Path {
        self.storage
            .as_ref()
            .expect("storage is held until drop")
            .path()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("broker exited ({status}) before listening on {}", self.addr);
            }
            if answers_kafka(self.addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("broker did not answer Kafka requests on {}", self.addr);
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A fresh connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The correlation id of the readiness probe: anything the probe's own bytes are not.
const PROBE_CORRELATION: i32 = 0x0057_1E57;

/// True when a Kafka broker answers an ApiVersions v0 request on `addr`.
///
/// A bare TCP connect proves nothing: a listening socket inherited by a child that another
/// test thread forked, open until that child execs, completes handshakes on the port before
/// the broker has bound it; and a connect to a free ephemeral port can meet itself (TCP
/// simultaneous open; it would read back its own request, whose bytes where the correlation
/// id should be are the API key and version). (bench/src/readiness.rs has the same probe; the
/// broker's tests do not depend on the bench.)
fn answers_kafka(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err() {
        return false;
    }
    let mut request = 10i32.to_be_bytes().to_vec(); // size of what follows
    request.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&PROBE_CORRELATION.to_be_bytes());
    request.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    let mut head = [0u8; 8]; // size, correlation id
    stream.write_all(&request).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head[4..] == PROBE_CORRELATION.to_be_bytes()
}

/// A loopback address no other test of this process was given.
///
/// The port is found by binding a socket that never listens (a listening one, inherited by a
/// child another test thread forks before its exec, could accept connections meant for the
/// broker; `SO_REUSEADDR` lets the broker bind while such a copy lingers). It is free when
/// returned but not held, so two tests running in parallel could be handed the same port;
/// remembering the ports handed out rules that out within a test binary (cargo runs test
/// binaries one after another).
pub fn free_port() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// One blocking connection speaking raw frames.
pub struct Client {
    stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            next_correlation: 1,
        }
    }

    /// Sends raw bytes as they are (no length prefix added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one frame with a length prefix.
    pub fn send_frame(&mut self, frame: &[u8]) {
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        self.send_raw(&out);
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame).ok()?;
        Some(frame.into())
    }

    /// True if the broker closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }

    /// Encodes `body` as `api` v`version` and sends it; returns the correlation id used.
    pub fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("hotwire-test")))
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        self.send_frame(&buf);
        correlation
    }

    /// Sends a request and decodes its response.
    pub fn call<T: Encodable, R: Decodable>(&mut self, api: ApiKey, version: i16, body: &T) -> R {
        let correlation = self.send(api, version, body);
        let mut frame = self
            .read_frame()
            .expect("connection closed instead of a response");
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        R::decode(&mut frame, version).unwrap()
    }

    /// `group`'s committed offset of `topic`'s `partition` (OffsetFetch v7; -1: none).
    pub fn committed(&mut self, group: &str, topic: &str, partition: i32) -> i64 {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        use kafka_protocol::messages::{
            GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
        };
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])]));
        let response: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, 7, &request);
        response.topics[0].partitions[0].committed_offset
    }
}

/// A real v2 record batch of `count` records.
pub fn record_batch(count: i32, compression: Compression) -> Vec<u8> {
    idempotent_batch(count, compression, -1, -1, 0)
}

/// A v2 batch from producer `producer_id` at `epoch` whose first sequence is `sequence`.
pub fn idempotent_batch(
    count: i32,
    compression: Compression,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> Vec<u8> {
    let values = (0..count).map(|i| Bytes::from(format!("value-{i}")));
    encode_batch(values, compression, producer_id, epoch, sequence)
}

/// A v2 batch of one record per value, from producer `producer_id` (-1: none) at `epoch`.
pub fn encode_batch(
    values: impl IntoIterator<Item = Bytes>,
    compression: Compression,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> Vec<u8> {
    let records: Vec<Record> = values
        .into_iter()
        .zip(0i32..)
        .map(|(value, i)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: sequence + i,
            timestamp: 1_700_000_000_000 + i64::from(i),
            key: None,
            value: Some(value),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// A `/proc/<pid>/status` memory field (`VmRSS`, `VmHWM`, ...) in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

impl Client {
    /// Changes how long reads wait.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// True if a read timed out with the connection still open (nothing to read, no EOF).
    pub fn would_block(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            self.stream.read(&mut byte),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    }
}

impl BrokerProcess {
    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Peak resident memory of process `pid` in KiB (`VmHWM` of /proc/<pid>/status).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Appends `value` as a Kafka zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// One v2 record (length prefix included): no key, no headers, `value_len` bytes of value of
/// which only the length is written (the caller appends the value bytes, then `[0]` for the
/// header count: see [`raw_record`] for the whole record at once).
pub fn raw_record_head(offset_delta: i64, timestamp_delta: i64, value_len: usize) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1);
    put_varint(&mut body, value_len as i64);
    let mut head = Vec::new();
    // Attributes..value length, the value, and the one-byte header count.
    put_varint(&mut head, (body.len() + value_len + 1) as i64);
    head.extend(body);
    head
}

/// One whole v2 record with no key and no headers.
pub fn raw_record(offset_delta: i64, timestamp_delta: i64, value: &[u8]) -> Vec<u8> {
    let mut record = raw_record_head(offset_delta, timestamp_delta, value.len());
    record.extend_from_slice(value);
    record.push(0);
    record
}

/// A v2 batch around `records` (compressed already if `attributes` says so) with the header
/// fields given, whatever they claim, and a valid CRC.
pub fn raw_batch(
    records: &[u8],
    attributes: i16,
    record_count: i32,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(61 + records.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(records);
    fix_batch_crc(&mut out);
    out
}

/// Recomputes the CRC-32C of the v2 batch at the start of `batch`.
pub fn fix_batch_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

impl BrokerProcess {
    /// Kills the process with SIGKILL, runs `while_down`, and starts it again on the same
    /// storage and address.
    pub fn kill_and_restart_with(mut self, while_down: impl FnOnce(), extra: &[&str]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let storage = self.storage.take().expect("storage is held until drop");
        let addr = self.addr;
        drop(self);
        while_down();
        Self::start_on(storage, addr, extra)
    }
}

/// `name value` lines of the broker's `GET /metrics`, as a map.
pub fn scrape_metrics(addr: std::net::SocketAddr) -> std::collections::HashMap<String, f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: hotwire\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// A SASL/PLAIN login on `client`: SaslAuthenticate's error code.
pub fn plain_login(client: &mut Client, user: &str, password: &str) -> i16 {
    let handshake: SaslHandshakeResponse = client.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(handshake.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let answer: SaslAuthenticateResponse = client.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    );
    answer.error_code
}

/// One acks=all batch of `count` records of `size` bytes to `partition` of `topic`:
/// (error code, base offset).
pub fn produce_batch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    count: usize,
    size: usize,
) -> (i16, i64) {
    let values = (0..count).map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; size]));
    let batch: Bytes = encode_batch(values, Compression::None, -1, -1, 0).into();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// Sets each of `users` in the credential store under `storage` (a directory) with
/// `hotwire users`, its password its name followed by `-pa55`.
pub fn set_users(storage: &std::path::Path, users: &[&str]) {
    for user in users {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotwire"))
            .args(["users", "--storage"])
            .arg(format!("fs://{}", storage.display()))
            .args(["set", user])
            .env("HOTWIRE_USER_PASSWORD", format!("{user}-pa55"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
}
