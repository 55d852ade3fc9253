//! Broker configuration: a TOML file, then environment variables, then flags (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dfs_adapter::{CompactionConfig, Slicing};
use serde::Deserialize;
use thiserror::Error;

/// Everything the broker can be told. Field names are the TOML keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to (Metadata); defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Listeners, as Kafka's `listeners`: `PROTOCOL://host:port` each, named by the security
    /// protocol it speaks (`PLAINTEXT`, `SSL`), at most one per protocol; an empty host binds
    /// every address. Empty: one PLAINTEXT listener on `listen`.
    pub listeners: Vec<String>,
    /// Addresses given to clients in Metadata and FindCoordinator, per listener, as Kafka's
    /// `advertised.listeners`: `PROTOCOL://host:port`. A listener not named here advertises its
    /// own address (PLAINTEXT: `advertised_listener` when set). Clients are always told the
    /// address of the listener they came through.
    pub advertised_listeners: Vec<String>,
    /// Principals allowed everything the authorizer would refuse (Kafka's `super.users`), e.g.
    /// `User:admin`; today: DescribeUserScramCredentials and AlterUserScramCredentials. A client
    /// that did not authenticate is `User:ANONYMOUS`. Default none.
    pub super_users: Vec<String>,
    /// Whether ACLs are enforced (Kafka's `authorizer.class.name` set to its ACL authorizer):
    /// every request is checked against the ACLs stored with CreateAcls, and a resource no ACL
    /// names is refused unless `allow_everyone_if_no_acl_found`. Off (the default, as Kafka
    /// without an authorizer): everything is allowed, and the ACL APIs answer SECURITY_DISABLED.
    pub acl_authorizer: bool,
    /// With `acl_authorizer`: whether a resource that no ACL names is open to everyone
    /// (Kafka's `allow.everyone.if.no.acl.found`, default false).
    pub allow_everyone_if_no_acl_found: bool,
    /// SASL mechanisms offered on SASL listeners (Kafka's `sasl.enabled.mechanisms`): any of
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`. Default all three.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// How long a failed SASL authentication waits before its answer and the connection's close
    /// (Kafka's `connection.failed.authentication.delay.ms`): slows password guessing.
    pub sasl_failed_authentication_delay_ms: u64,
    /// The longest a SASL session lasts before the client must re-authenticate on the same
    /// connection (KIP-368, Kafka's `connections.max.reauth.ms`); a connection whose session
    /// expired is closed at its next request. 0: sessions never expire.
    pub connections_max_reauth_ms: u64,
    /// PEM certificate chain of the SSL listener (the broker's certificate first).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, SSL clients must present a certificate one of them signed
    /// (mutual TLS, Kafka's `ssl.client.auth=required`).
    pub tls_client_ca_file: Option<PathBuf>,
    /// How the subject of an SSL client's certificate becomes its principal's name (Kafka's
    /// `ssl.principal.mapping.rules`): `DEFAULT` (the RFC 2253 distinguished name itself) and
    /// `RULE:pattern/replacement/[LU]` rules, the first that matches the whole name applies;
    /// a certificate no rule matches is refused.
    pub ssl_principal_mapping_rules: String,
    /// Storage URL: `fs:///abs/path`, `fs://./relative`, `s3://bucket/prefix?endpoint=...`.
    pub storage: String,
    /// This broker's node id in Metadata.
    pub node_id: i32,
    /// Create unknown topics on Metadata and Produce requests.
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with `num_partitions = -1`.
    pub default_partitions: i32,
    /// Largest request frame accepted; larger frames close the connection.
    pub max_frame_bytes: usize,
    /// Memory for request frames of all connections together, from their length prefix until
    /// their response is ready (Kafka `queued.max.request.bytes`): a frame is read only once its
    /// bytes fit, so many clients sending large or slow requests at once cannot exhaust memory.
    /// Default 512; at least `max_frame_bytes`.
    pub max_request_memory_mib: usize,
    /// Connections served at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Requests in flight per connection (pipelining depth).
    pub max_in_flight_per_connection: usize,
    /// Hot cache (off-heap arena) size in MiB.
    pub hot_cache_mib: usize,
    /// Hot cache block size in KiB: also the largest record batch accepted.
    pub hot_block_kib: usize,
    /// Group commit: with no flush object being written, pending batches are flushed at once
    /// (what arrives meanwhile rides the next object). Unset: on for `fs://`, off for object
    /// stores, where every flush is a billed PUT (and a GET at the next start-up), so flushes
    /// there wait for the three limits below as before; `false` on `fs://` only measures the
    /// difference.
    pub flush_group_commit: Option<bool>,
    /// Flush policy: time limit after the first pending batch, in milliseconds (while an
    /// object is being written; with group commit an idle broker never waits for it).
    pub flush_interval_ms: u64,
    /// Flush policy: bytes pending.
    pub flush_max_bytes: usize,
    /// Flush policy: batches pending.
    pub flush_max_batches: usize,
    /// Flush objects written concurrently (acks still in order).
    pub flush_max_in_flight: usize,
    /// On `fs://`: flush objects are appended to an append-only WAL of preallocated, reused
    /// files of this many MiB (one data write and `fdatasync` per flush, no file creation, no
    /// directory sync). 0 writes one file per flush object instead. Ignored on object stores.
    pub wal_file_mib: u64,
    /// A WAL directory on a local or block device (`fs:///fast/dir`). With an object store
    /// this is the tiered mode: produce is acknowledged once the WAL holds the data, and
    /// compaction uploads it to the store in large rounds. With `fs://` storage it moves the
    /// WAL out of the root (onto a faster disk). Tied to its store once used.
    pub wal: Option<String>,
    /// Storage writes and reads above this many MiB go as concurrent slices (multipart uploads
    /// on object stores); at least 5, S3's smallest part.
    pub storage_slice_mib: usize,
    /// Slices of one object in flight at once.
    pub storage_slice_concurrency: usize,
    /// Cold cache (data read back from storage for catch-up readers) size in MiB.
    pub cold_cache_mib: usize,
    /// Threads of the cold-read runtime.
    pub cold_read_threads: usize,
    /// Scheduling niceness of the cold-read threads (0 to 19; higher yields more to the
    /// network threads when the CPU is short).
    pub cold_read_nice: i32,
    /// Bytes in flight from storage for cold reads and read-ahead, in MiB.
    pub cold_read_in_flight_mib: usize,
    /// Most bytes per second that all catch-up (cold) reads together return, in MiB (0: no
    /// limit): what a replaying consumer may take of the broker's CPU and network.
    pub cold_read_max_mib_per_s: usize,
    /// Largest read-ahead window of one catch-up reader, in MiB (0: no read-ahead). Unset: 16
    /// on object stores, 0 on `fs://`, where the kernel reads ahead into its page cache and a
    /// second copy in the cold cache only costs memory and writes.
    pub read_ahead_max_mib: Option<usize>,
    /// Stored chunks one catch-up read loads at once (1: one after another). Unset: 32 on
    /// object stores, where each load is a request with its own latency, 1 on `fs://`.
    pub cold_read_concurrent_chunks: Option<usize>,
    /// Cold reads on their own runtime (true), or on the network threads (false: only to
    /// measure the difference).
    pub cold_isolation: bool,
    /// Where to serve Prometheus metrics (`GET /metrics`); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// Period of the storage maintenance task: compaction rounds, deletion of objects obsolete
    /// since the previous period.
    pub compaction_interval_ms: u64,
    /// Flush objects waiting before a compaction round runs (0: never compact)...
    pub compaction_min_objects: usize,
    /// ... or when the oldest flush object has waited this many milliseconds.
    pub compaction_max_wait_ms: u64,
    /// Flush-object MiB folded into segments per round at most.
    pub compaction_max_mib: usize,
    /// A round also waits for this many MiB of flush objects (or `compaction_max_wait_ms`).
    /// Unset: `compaction_max_mib` when flushes go to a WAL (each round folds, or uploads, one
    /// large batch, however many tiny group-committed flushes it holds), else 0.
    pub compaction_min_mib: Option<usize>,
    /// Segments roll at this many MiB; a newest segment below an eighth of it is rewritten
    /// together with new data.
    pub segment_target_mib: usize,
    /// Consecutive chunks in a segment are merged up to this many KiB (a cold read's unit).
    pub segment_chunk_kib: usize,
    /// How often topics' `retention.ms` / `retention.bytes` are enforced (Kafka
    /// `log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Unix socket of the same-host one-sided path (shm provider); none by default.
    pub rdma_shm_socket: Option<PathBuf>,
    /// Token a one-sided client must present (the authentication hook); none: any local
    /// client that can open the socket.
    pub rdma_token: Option<String>,
    /// Offsets committed by fetch-and-add are made durable at least this often.
    pub rdma_commit_interval_ms: u64,
    /// One-sided sessions (shm and verbs together) served at once; further ones are closed at
    /// once. Each holds shared memory and slot grants. Default 1024.
    pub max_one_sided_sessions: usize,
    /// Size of each session's produce staging ring, in KiB.
    pub rdma_ring_kib: usize,
    /// Partitions the published index (one-sided fetch by READ alone) holds at once.
    pub rdma_index_partitions: u32,
    /// Latest hot batches the published index holds per partition.
    pub rdma_index_entries: u64,
    /// TCP address of the verbs control channel (RDMA NICs); none by default. Needs a broker
    /// built with the `verbs` feature.
    pub rdma_verbs_listen: Option<SocketAddr>,
    /// RDMA device for the verbs path (as `ibv_devices` lists it); the first one when unset.
    pub rdma_verbs_device: Option<String>,
    /// Port of that device (from 1).
    pub rdma_verbs_port: u8,
    /// GID index on that port; unset: chosen from the port's GID table (RoCE v2, IPv4 first;
    /// InfiniBand 0).
    pub rdma_verbs_gid_index: Option<u8>,
    /// Traffic class of the verbs path's packets (RoCE v2: DSCP and ECN bits).
    pub rdma_verbs_traffic_class: u8,
    /// Service level of the verbs path's packets (InfiniBand SL, RoCE VLAN priority), 0-15.
    pub rdma_verbs_service_level: u8,
    /// How long a produce waits for hot-cache space before it is answered with an error.
    pub produce_backpressure_ms: u64,
    /// Largest record batch a producer may send, in bytes, for topics without a
    /// `max.message.bytes` override (Kafka `message.max.bytes`, default 1048588). Compressed
    /// batches may also decompress to at most 64 times this.
    pub message_max_bytes: usize,
    /// How far in the past a record's CreateTime timestamp may lie, in ms, for topics without a
    /// `message.timestamp.before.max.ms` override (Kafka `log.message.timestamp.before.max.ms`,
    /// default i64::MAX: no limit).
    pub log_message_timestamp_before_max_ms: i64,
    /// How far in the future a record's CreateTime timestamp may lie, in ms, for topics without
    /// a `message.timestamp.after.max.ms` override (Kafka `log.message.timestamp.after.max.ms`;
    /// default 3600000 as in Kafka 4.0).
    pub log_message_timestamp_after_max_ms: i64,
    /// Committed-offset slots (group × partition) in the shared offset table.
    pub offset_slots: usize,
    /// Most partitions one topic may have (CreateTopics and auto-creation); more is refused
    /// with INVALID_PARTITIONS before anything is allocated. Default 10000.
    pub max_partitions_per_topic: usize,
    /// Most partitions on the broker, all topics together; a topic that would exceed it is
    /// refused with POLICY_VIOLATION. Default 100000.
    pub max_partitions: usize,
    /// Most topics on the broker; more is refused with POLICY_VIOLATION (auto-creation:
    /// UNKNOWN_TOPIC_OR_PARTITION). Default 10000.
    pub max_topics: usize,
    /// Largest fetch response in record bytes, whatever the client asks (Kafka
    /// `fetch.max.bytes`, default 57671680 = 55 MiB); exceeded only by a first batch larger
    /// than it, as in Kafka.
    pub fetch_max_bytes: usize,
    /// Record bytes all fetch responses in flight may hold together, in MiB (default 256); a
    /// fetch that finds the budget spent waits within its max_wait, then answers with what it
    /// has.
    pub fetch_memory_mib: usize,
    /// Connections with no request for this long are closed (Kafka
    /// `connections.max.idle.ms`, default 600000).
    pub connections_max_idle_ms: u64,
    /// A request frame whose bytes stop arriving for this long closes the connection (default
    /// 30000, like Kafka's `request.timeout.ms`).
    pub request_read_timeout_ms: u64,
    /// Connections served at once from one IP address; further ones are closed at once (Kafka
    /// `max.connections.per.ip`; default 10000).
    pub max_connections_per_ip: usize,
    /// Most consumer groups; a JoinGroup that would create one more is refused with
    /// GROUP_MAX_SIZE_REACHED. Default 100000.
    pub max_groups: usize,
    /// Most members (joined or awaiting their member id) of one group; a new member beyond it
    /// is refused with GROUP_MAX_SIZE_REACHED (Kafka `group.max.size`). Default 10000.
    pub group_max_size: usize,
    /// An idempotent producer's state in a partition is forgotten after it has written nothing
    /// there for this long (Kafka `producer.id.expiration.ms`, default 86400000).
    pub producer_id_expiration_ms: u64,
    /// A group that has had no members for this long, and no commit for as long, is deleted
    /// with its committed offsets (Kafka `offsets.retention.minutes`, default 7 days), checked
    /// every `retention_check_interval_ms`. A group a one-sided session holds is kept.
    pub offsets_retention_ms: u64,
    /// Most idempotent producers remembered per partition; the least recently active is
    /// forgotten first. Default 1000.
    pub max_producers_per_partition: usize,
    /// Smallest consumer session timeout accepted (Kafka `group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: u32,
    /// Largest consumer session timeout accepted (Kafka `group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: u32,
    /// How long a new group waits for more members before its first rebalance ends (Kafka
    /// `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u32,
    /// How long a graceful shutdown waits for pending data to become durable before giving up
    /// (exit code 1; only unacknowledged or acks=1 data can be lost then).
    pub shutdown_flush_ms: u64,
    /// `tracing` filter, e.g. `info` or `hotwire_broker=debug,info`.
    pub log_level: String,
    /// Join a cluster: `etcd://host:port[,host:port...][/name]`. Unset: a single broker that
    /// owns its storage root, with no etcd.
    pub cluster: Option<String>,
    /// Shards of a cluster this broker creates (an existing cluster keeps its count): the units
    /// of leadership, at most as many brokers as shards share the work. Default 16.
    pub cluster_shards: u32,
    /// TTL of this broker's etcd lease in seconds: how long a dead, paused or cut-off broker
    /// keeps its shards before the others take them (etcd's floor is 1.5 election timeouts:
    /// 2 s with etcd's defaults). Default 2.
    pub cluster_lease_s: u64,
    /// How often the cluster is read from etcd, in milliseconds. Default 100.
    pub cluster_poll_ms: u64,
    /// Smallest gap in produce load (bytes/s flushed) between the busiest and the idlest broker
    /// for which the controller moves shards although every broker leads as many; 0 never
    /// moves for load alone. Default 8 MiB/s.
    pub cluster_load_min_gap_bytes_s: u64,
    /// On an object store, whether each broker writes one flush stream for all the shards it
    /// leads (one object per flush) rather than one object per flush and shard. Default true;
    /// `false` is kept to measure the difference.
    pub cluster_flush_stream: bool,
    /// Rack reported in Metadata.
    pub rack: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            super_users: Vec::new(),
            acl_authorizer: false,
            allow_everyone_if_no_acl_found: false,
            sasl_enabled_mechanisms: crate::security::sasl::MECHANISMS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            sasl_failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            ssl_principal_mapping_rules: "DEFAULT".into(),
            storage: "fs://./data".into(),
            node_id: 0,
            auto_create_topics: true,
            default_partitions: 1,
            max_frame_bytes: 100 << 20,
            max_request_memory_mib: 512,
            max_connections: 10_000,
            max_in_flight_per_connection: 64,
            hot_cache_mib: 512,
            hot_block_kib: 4096,
            flush_group_commit: None,
            flush_interval_ms: 5,
            flush_max_bytes: 8 << 20,
            flush_max_batches: 4096,
            flush_max_in_flight: 4,
            wal_file_mib: 64,
            wal: None,
            storage_slice_mib: 8,
            storage_slice_concurrency: 4,
            cold_cache_mib: 256,
            cold_read_threads: 2,
            cold_read_nice: 10,
            cold_read_in_flight_mib: 64,
            cold_read_max_mib_per_s: 0,
            read_ahead_max_mib: None,
            cold_read_concurrent_chunks: None,
            cold_isolation: true,
            metrics_listen: None,
            compaction_interval_ms: 10_000,
            compaction_min_objects: 64,
            compaction_max_wait_ms: 600_000,
            compaction_max_mib: 128,
            compaction_min_mib: None,
            segment_target_mib: 64,
            segment_chunk_kib: 4096,
            retention_check_interval_ms: 300_000,
            rdma_shm_socket: None,
            rdma_token: None,
            rdma_commit_interval_ms: 100,
            max_one_sided_sessions: 1024,
            rdma_ring_kib: 4096,
            rdma_index_partitions: 1024,
            rdma_index_entries: 256,
            rdma_verbs_listen: None,
            rdma_verbs_device: None,
            rdma_verbs_port: 1,
            rdma_verbs_gid_index: None,
            rdma_verbs_traffic_class: 0,
            rdma_verbs_service_level: 0,
            produce_backpressure_ms: 5_000,
            message_max_bytes: 1_048_588,
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_after_max_ms: 3_600_000,
            offset_slots: 1 << 20,
            max_partitions_per_topic: 10_000,
            max_partitions: 100_000,
            max_topics: 10_000,
            fetch_max_bytes: 57_671_680,
            fetch_memory_mib: 256,
            connections_max_idle_ms: 600_000,
            request_read_timeout_ms: 30_000,
            max_connections_per_ip: 10_000,
            max_groups: 100_000,
            group_max_size: 10_000,
            producer_id_expiration_ms: 86_400_000,
            offsets_retention_ms: 604_800_000,
            max_producers_per_partition: 1_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            shutdown_flush_ms: 60_000,
            log_level: "info".into(),
            cluster: None,
            cluster_shards: 16,
            cluster_lease_s: 2,
            cluster_flush_stream: true,
            cluster_poll_ms: 100,
            cluster_load_min_gap_bytes_s: 8 << 20,
            rack: None,
        }
    }
}

/// Commands besides running the broker.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Operates a cluster through its etcd: its status, draining a broker.
    Admin {
        /// The cluster, as brokers are given it: `etcd://host:port[,host:port...]/name`.
        #[arg(long, env = "HOTWIRE_CLUSTER")]
        cluster: String,
        /// What to do.
        #[command(subcommand)]
        action: crate::cluster::admin::AdminAction,
    },
    /// Manages SASL/SCRAM users: of a single broker (`--storage`, the broker's storage URL) or
    /// of a cluster (`--cluster`).
    Users {
        /// A single broker's storage URL.
        #[arg(long, env = "HOTWIRE_STORAGE")]
        storage: Option<String>,
        /// A cluster: `etcd://host:port[,host:port...]/name`.
        #[arg(long, env = "HOTWIRE_CLUSTER")]
        cluster: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: crate::security::users::UsersAction,
    },
}

/// Command line; every option can also come from `HOTWIRE_<NAME>` in the environment.
#[derive(Debug, Parser)]
#[command(
    name = "hotwire",
    version,
    about = "Hotwire: a Kafka-compatible broker over shared storage"
)]
pub struct Args {
    /// Something other than running the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file (keys as the long option names, with underscores).
    #[arg(long, env = "HOTWIRE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "HOTWIRE_LISTEN")]
    listen: Option<SocketAddr>,
    #[arg(long, env = "HOTWIRE_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    #[arg(long, env = "HOTWIRE_LISTENERS", value_delimiter = ',')]
    listeners: Option<Vec<String>>,
    #[arg(long, env = "HOTWIRE_ADVERTISED_LISTENERS", value_delimiter = ',')]
    advertised_listeners: Option<Vec<String>>,
    // `;` as Kafka's super.users: principals from certificates hold commas (CN=a,O=b).
    #[arg(long, env = "HOTWIRE_SUPER_USERS", value_delimiter = ';')]
    super_users: Option<Vec<String>>,
    #[arg(long, env = "HOTWIRE_ACL_AUTHORIZER")]
    acl_authorizer: Option<bool>,
    #[arg(long, env = "HOTWIRE_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    allow_everyone_if_no_acl_found: Option<bool>,
    #[arg(long, env = "HOTWIRE_SASL_ENABLED_MECHANISMS", value_delimiter = ',')]
    sasl_enabled_mechanisms: Option<Vec<String>>,
    #[arg(long, env = "HOTWIRE_SASL_FAILED_AUTHENTICATION_DELAY_MS")]
    sasl_failed_authentication_delay_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_CONNECTIONS_MAX_REAUTH_MS")]
    connections_max_reauth_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    #[arg(long, env = "HOTWIRE_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    #[arg(long, env = "HOTWIRE_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<PathBuf>,
    #[arg(long, env = "HOTWIRE_SSL_PRINCIPAL_MAPPING_RULES")]
    ssl_principal_mapping_rules: Option<String>,
    #[arg(long, env = "HOTWIRE_STORAGE")]
    storage: Option<String>,
    #[arg(long, env = "HOTWIRE_NODE_ID")]
    node_id: Option<i32>,
    #[arg(long, env = "HOTWIRE_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    #[arg(long, env = "HOTWIRE_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    #[arg(long, env = "HOTWIRE_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_REQUEST_MEMORY_MIB")]
    max_request_memory_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_IN_FLIGHT_PER_CONNECTION")]
    max_in_flight_per_connection: Option<usize>,
    #[arg(long, env = "HOTWIRE_HOT_CACHE_MIB")]
    hot_cache_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_HOT_BLOCK_KIB")]
    hot_block_kib: Option<usize>,
    #[arg(long, env = "HOTWIRE_FLUSH_GROUP_COMMIT")]
    flush_group_commit: Option<bool>,
    #[arg(long, env = "HOTWIRE_FLUSH_INTERVAL_MS")]
    flush_interval_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_FLUSH_MAX_BYTES")]
    flush_max_bytes: Option<usize>,
    #[arg(long, env = "HOTWIRE_FLUSH_MAX_BATCHES")]
    flush_max_batches: Option<usize>,
    #[arg(long, env = "HOTWIRE_FLUSH_MAX_IN_FLIGHT")]
    flush_max_in_flight: Option<usize>,
    #[arg(long, env = "HOTWIRE_WAL_FILE_MIB")]
    wal_file_mib: Option<u64>,
    #[arg(long, env = "HOTWIRE_WAL")]
    wal: Option<String>,
    #[arg(long, env = "HOTWIRE_COMPACTION_MIN_MIB")]
    compaction_min_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_STORAGE_SLICE_MIB")]
    storage_slice_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_STORAGE_SLICE_CONCURRENCY")]
    storage_slice_concurrency: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_CACHE_MIB")]
    cold_cache_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_READ_THREADS")]
    cold_read_threads: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_READ_NICE")]
    cold_read_nice: Option<i32>,
    #[arg(long, env = "HOTWIRE_COLD_READ_IN_FLIGHT_MIB")]
    cold_read_in_flight_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_READ_MAX_MIB_PER_S")]
    cold_read_max_mib_per_s: Option<usize>,
    #[arg(long, env = "HOTWIRE_READ_AHEAD_MAX_MIB")]
    read_ahead_max_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_READ_CONCURRENT_CHUNKS")]
    cold_read_concurrent_chunks: Option<usize>,
    #[arg(long, env = "HOTWIRE_COLD_ISOLATION")]
    cold_isolation: Option<bool>,
    #[arg(long, env = "HOTWIRE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[arg(long, env = "HOTWIRE_COMPACTION_INTERVAL_MS")]
    compaction_interval_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_COMPACTION_MIN_OBJECTS")]
    compaction_min_objects: Option<usize>,
    #[arg(long, env = "HOTWIRE_COMPACTION_MAX_WAIT_MS")]
    compaction_max_wait_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_COMPACTION_MAX_MIB")]
    compaction_max_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_SEGMENT_TARGET_MIB")]
    segment_target_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_SEGMENT_CHUNK_KIB")]
    segment_chunk_kib: Option<usize>,
    #[arg(long, env = "HOTWIRE_RETENTION_CHECK_INTERVAL_MS")]
    retention_check_interval_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_RDMA_SHM_SOCKET")]
    rdma_shm_socket: Option<PathBuf>,
    #[arg(long, env = "HOTWIRE_RDMA_TOKEN")]
    rdma_token: Option<String>,
    #[arg(long, env = "HOTWIRE_RDMA_COMMIT_INTERVAL_MS")]
    rdma_commit_interval_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_MAX_ONE_SIDED_SESSIONS")]
    max_one_sided_sessions: Option<usize>,
    #[arg(long, env = "HOTWIRE_RDMA_RING_KIB")]
    rdma_ring_kib: Option<usize>,
    #[arg(long, env = "HOTWIRE_RDMA_INDEX_PARTITIONS")]
    rdma_index_partitions: Option<u32>,
    #[arg(long, env = "HOTWIRE_RDMA_INDEX_ENTRIES")]
    rdma_index_entries: Option<u64>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_LISTEN")]
    rdma_verbs_listen: Option<SocketAddr>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_DEVICE")]
    rdma_verbs_device: Option<String>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_PORT")]
    rdma_verbs_port: Option<u8>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_GID_INDEX")]
    rdma_verbs_gid_index: Option<u8>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_TRAFFIC_CLASS")]
    rdma_verbs_traffic_class: Option<u8>,
    #[arg(long, env = "HOTWIRE_RDMA_VERBS_SERVICE_LEVEL")]
    rdma_verbs_service_level: Option<u8>,
    #[arg(long, env = "HOTWIRE_PRODUCE_BACKPRESSURE_MS")]
    produce_backpressure_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<usize>,
    #[arg(long, env = "HOTWIRE_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS")]
    log_message_timestamp_before_max_ms: Option<i64>,
    #[arg(long, env = "HOTWIRE_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS")]
    log_message_timestamp_after_max_ms: Option<i64>,
    #[arg(long, env = "HOTWIRE_OFFSET_SLOTS")]
    offset_slots: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_PARTITIONS_PER_TOPIC")]
    max_partitions_per_topic: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_PARTITIONS")]
    max_partitions: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_TOPICS")]
    max_topics: Option<usize>,
    #[arg(long, env = "HOTWIRE_FETCH_MAX_BYTES")]
    fetch_max_bytes: Option<usize>,
    #[arg(long, env = "HOTWIRE_FETCH_MEMORY_MIB")]
    fetch_memory_mib: Option<usize>,
    #[arg(long, env = "HOTWIRE_CONNECTIONS_MAX_IDLE_MS")]
    connections_max_idle_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_REQUEST_READ_TIMEOUT_MS")]
    request_read_timeout_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    #[arg(long, env = "HOTWIRE_MAX_GROUPS")]
    max_groups: Option<usize>,
    #[arg(long, env = "HOTWIRE_GROUP_MAX_SIZE")]
    group_max_size: Option<usize>,
    #[arg(long, env = "HOTWIRE_PRODUCER_ID_EXPIRATION_MS")]
    producer_id_expiration_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_OFFSETS_RETENTION_MS")]
    offsets_retention_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_MAX_PRODUCERS_PER_PARTITION")]
    max_producers_per_partition: Option<usize>,
    #[arg(long, env = "HOTWIRE_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<u32>,
    #[arg(long, env = "HOTWIRE_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<u32>,
    #[arg(long, env = "HOTWIRE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u32>,
    #[arg(long, env = "HOTWIRE_SHUTDOWN_FLUSH_MS")]
    shutdown_flush_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_LOG_LEVEL")]
    log_level: Option<String>,
    #[arg(long, env = "HOTWIRE_CLUSTER")]
    cluster: Option<String>,
    #[arg(long, env = "HOTWIRE_CLUSTER_SHARDS")]
    cluster_shards: Option<u32>,
    #[arg(long, env = "HOTWIRE_CLUSTER_LEASE_S")]
    cluster_lease_s: Option<u64>,
    #[arg(long, env = "HOTWIRE_CLUSTER_POLL_MS")]
    cluster_poll_ms: Option<u64>,
    #[arg(long, env = "HOTWIRE_CLUSTER_LOAD_MIN_GAP_BYTES_S")]
    cluster_load_min_gap_bytes_s: Option<u64>,
    #[arg(long, env = "HOTWIRE_CLUSTER_FLUSH_STREAM")]
    cluster_flush_stream: Option<bool>,
    #[arg(long, env = "HOTWIRE_RACK")]
    rack: Option<String>,
}

/// A configuration that cannot be used, with the reason.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// Copies every option that was given over the file's value.
macro_rules! overlay {
    ($config:ident, $args:ident, $($field:ident),+ $(,)?) => {
        $( if let Some(value) = $args.$field { $config.$field = value; } )+
    };
}

impl Config {
    /// Builds the configuration from the file named by `args` (if any), then the options.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if args.advertised_listener.is_some() {
            config.advertised_listener = args.advertised_listener.clone();
        }
        if args.metrics_listen.is_some() {
            config.metrics_listen = args.metrics_listen;
        }
        if args.rdma_shm_socket.is_some() {
            config.rdma_shm_socket = args.rdma_shm_socket.clone();
        }
        if args.rdma_token.is_some() {
            config.rdma_token = args.rdma_token.clone();
        }
        if args.rdma_verbs_listen.is_some() {
            config.rdma_verbs_listen = args.rdma_verbs_listen;
        }
        if args.flush_group_commit.is_some() {
            config.flush_group_commit = args.flush_group_commit;
        }
        if args.read_ahead_max_mib.is_some() {
            config.read_ahead_max_mib = args.read_ahead_max_mib;
        }
        if args.cold_read_concurrent_chunks.is_some() {
            config.cold_read_concurrent_chunks = args.cold_read_concurrent_chunks;
        }
        if args.wal.is_some() {
            config.wal = args.wal.clone();
        }
        if args.compaction_min_mib.is_some() {
            config.compaction_min_mib = args.compaction_min_mib;
        }
        if args.rdma_verbs_device.is_some() {
            config.rdma_verbs_device = args.rdma_verbs_device.clone();
        }
        if args.rdma_verbs_gid_index.is_some() {
            config.rdma_verbs_gid_index = args.rdma_verbs_gid_index;
        }
        if args.cluster.is_some() {
            config.cluster = args.cluster.clone();
        }
        if args.rack.is_some() {
            config.rack = args.rack.clone();
        }
        for (given, field) in [
            (&args.tls_cert_file, &mut config.tls_cert_file),
            (&args.tls_key_file, &mut config.tls_key_file),
            (&args.tls_client_ca_file, &mut config.tls_client_ca_file),
        ] {
            if given.is_some() {
                field.clone_from(given);
            }
        }
        overlay!(
            config,
            args,
            listen,
            listeners,
            advertised_listeners,
            super_users,
            acl_authorizer,
            allow_everyone_if_no_acl_found,
            sasl_enabled_mechanisms,
            sasl_failed_authentication_delay_ms,
            connections_max_reauth_ms,
            ssl_principal_mapping_rules,
            storage,
            node_id,
            cluster_shards,
            cluster_lease_s,
            cluster_poll_ms,
            cluster_load_min_gap_bytes_s,
            cluster_flush_stream,
            auto_create_topics,
            default_partitions,
            max_frame_bytes,
            max_request_memory_mib,
            max_connections,
            max_in_flight_per_connection,
            hot_cache_mib,
            hot_block_kib,
            flush_interval_ms,
            flush_max_bytes,
            flush_max_batches,
            flush_max_in_flight,
            wal_file_mib,
            storage_slice_mib,
            storage_slice_concurrency,
            cold_cache_mib,
            cold_read_threads,
            cold_read_nice,
            cold_read_in_flight_mib,
            cold_read_max_mib_per_s,
            cold_isolation,
            compaction_interval_ms,
            compaction_min_objects,
            compaction_max_wait_ms,
            compaction_max_mib,
            segment_target_mib,
            segment_chunk_kib,
            retention_check_interval_ms,
            rdma_commit_interval_ms,
            max_one_sided_sessions,
            rdma_ring_kib,
            rdma_index_partitions,
            rdma_index_entries,
            rdma_verbs_port,
            rdma_verbs_traffic_class,
            rdma_verbs_service_level,
            produce_backpressure_ms,
            message_max_bytes,
            log_message_timestamp_before_max_ms,
            log_message_timestamp_after_max_ms,
            offset_slots,
            max_partitions_per_topic,
            max_partitions,
            max_topics,
            fetch_max_bytes,
            fetch_memory_mib,
            connections_max_idle_ms,
            request_read_timeout_ms,
            max_connections_per_ip,
            max_groups,
            group_max_size,
            producer_id_expiration_ms,
            offsets_retention_ms,
            max_producers_per_partition,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms,
            shutdown_flush_ms,
            log_level,
        );
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &PathBuf) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source: Box::new(source),
        })
    }

    /// Rejects values the broker cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.default_partitions < 1 {
            return invalid("default_partitions", "must be at least 1".into());
        }
        for principal in &self.super_users {
            // A principal is `Type:name`; `User:a,User:b` is two principals written with the
            // wrong separator, which would otherwise make one principal of both.
            let typed = principal
                .split_once(':')
                .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
            if !typed || principal.contains(",User:") {
                return invalid(
                    "super_users",
                    format!("{principal:?}: expected Type:name principals separated by ';'"),
                );
            }
        }
        if let Err(error) = crate::security::principal_mapping::PrincipalMapper::parse(
            &self.ssl_principal_mapping_rules,
        ) {
            return invalid("ssl_principal_mapping_rules", error.to_string());
        }
        if let Some(url) = &self.cluster {
            if let Err(error) = crate::cluster::ClusterConfig::from_url(url) {
                return invalid("cluster", error.to_string());
            }
            if self.wal.is_some() {
                return invalid(
                    "wal",
                    "a broker-local WAL holds acknowledged data no other broker can reach; \
                     a cluster keeps every flush object in the shared store"
                        .into(),
                );
            }
            if self.rdma_shm_socket.is_some() || self.rdma_verbs_listen.is_some() {
                return invalid(
                    "rdma_shm_socket",
                    "the one-sided (RDMA) path is not served in a cluster yet: its windows \
                     and offset table belong to one broker's arena, not to a shard that moves; \
                     run it on a single broker"
                        .into(),
                );
            }
            if !(1..=4096).contains(&self.cluster_shards) {
                return invalid("cluster_shards", "must be 1 to 4096".into());
            }
            if self.cluster_lease_s == 0 || self.cluster_poll_ms == 0 {
                return invalid(
                    "cluster_lease_s",
                    "lease and poll period must be positive".into(),
                );
            }
            if self.node_id < 0 {
                return invalid("node_id", "must be at least 0 in a cluster".into());
            }
        }
        if self.max_frame_bytes < 1024 {
            return invalid("max_frame_bytes", "must be at least 1024".into());
        }
        if (self.max_request_memory_mib as u64) << 20 < self.max_frame_bytes as u64 {
            return invalid(
                "max_request_memory_mib",
                "must hold at least one frame of max_frame_bytes".into(),
            );
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return invalid(
                "group_min_session_timeout_ms",
                "must not exceed group_max_session_timeout_ms".into(),
            );
        }
        if self.log_message_timestamp_before_max_ms < 0
            || self.log_message_timestamp_after_max_ms < 0
        {
            return invalid(
                "log_message_timestamp_*_max_ms",
                "timestamp bounds must be at least 0".into(),
            );
        }
        if self.max_partitions_per_topic == 0
            || self.max_partitions == 0
            || self.max_topics == 0
            || self.max_groups == 0
            || self.group_max_size == 0
            || self.max_producers_per_partition == 0
        {
            return invalid("max_*", "resource limits must be at least 1".into());
        }
        if self.fetch_max_bytes == 0 || self.fetch_memory_mib == 0 {
            return invalid("fetch_*", "fetch limits must be at least 1".into());
        }
        if self.connections_max_idle_ms == 0
            || self.request_read_timeout_ms == 0
            || self.max_connections_per_ip == 0
        {
            return invalid(
                "connections_*",
                "connection limits must be at least 1".into(),
            );
        }
        if self.offset_slots == 0 {
            return invalid("offset_slots", "must be at least 1".into());
        }
        if self.max_connections == 0 || self.max_in_flight_per_connection == 0 {
            return invalid("max_connections", "limits must be at least 1".into());
        }
        if self.hot_block_kib < 4 {
            return invalid("hot_block_kib", "must be at least 4".into());
        }
        if self.hot_cache_mib * 1024 < 2 * self.hot_block_kib {
            return invalid(
                "hot_cache_mib",
                format!(
                    "{} MiB holds fewer than two blocks of {} KiB",
                    self.hot_cache_mib, self.hot_block_kib
                ),
            );
        }
        if self.flush_max_bytes == 0 || self.flush_max_batches == 0 || self.flush_max_in_flight == 0
        {
            return invalid("flush_max_*", "flush limits must be at least 1".into());
        }
        if self.wal.is_some() && self.wal_file_mib == 0 {
            return invalid(
                "wal_file_mib",
                "0 (one file per flush object) cannot be combined with a `wal` directory".into(),
            );
        }
        if let Some(wal) = &self.wal {
            if let Err(e) = dfs_adapter::fs_path(wal) {
                return invalid("wal", e.to_string());
            }
        }
        if self.wal_file_mib > 1 << 20 {
            return invalid(
                "wal_file_mib",
                format!("{} MiB is more than 1 TiB per WAL file", self.wal_file_mib),
            );
        }
        if self.cold_cache_mib == 0
            || self.cold_read_threads == 0
            || self.cold_read_in_flight_mib == 0
        {
            return invalid(
                "cold_*",
                "cold cache, threads and in-flight bytes must be at least 1".into(),
            );
        }
        if self.cold_read_concurrent_chunks == Some(0) {
            return invalid("cold_read_concurrent_chunks", "must be at least 1".into());
        }
        if !(0..=19).contains(&self.cold_read_nice) {
            return invalid("cold_read_nice", "must be 0 to 19".into());
        }
        if self.offsets_retention_ms == 0 {
            return invalid("offsets_retention_ms", "must be at least 1".into());
        }
        if self.compaction_interval_ms == 0 || self.retention_check_interval_ms == 0 {
            return invalid(
                "compaction_interval_ms",
                "maintenance intervals must be at least 1 ms".into(),
            );
        }
        if self.compaction_max_mib == 0 || self.segment_chunk_kib == 0 {
            return invalid(
                "compaction_max_mib",
                "compaction sizes must be at least 1".into(),
            );
        }
        if self.max_one_sided_sessions == 0 {
            return invalid("max_one_sided_sessions", "must be at least 1".into());
        }
        if !(1..=1 << 20).contains(&self.rdma_index_partitions)
            || !(1..=1 << 16).contains(&self.rdma_index_entries)
        {
            return invalid(
                "rdma_index_partitions",
                "the published index needs 1 to 1048576 partitions of 1 to 65536 entries".into(),
            );
        }
        if self.rdma_commit_interval_ms == 0 || self.rdma_ring_kib == 0 {
            return invalid(
                "rdma_commit_interval_ms",
                "rdma interval and ring size must be at least 1".into(),
            );
        }
        if self.rdma_verbs_listen.is_some() && !cfg!(feature = "verbs") {
            return invalid(
                "rdma_verbs_listen",
                "this hotwire was built without the verbs provider: build it with \
                 `cargo build --release --features verbs` (needs libibverbs-dev, \
                 librdmacm-dev, clang)"
                    .into(),
            );
        }
        if self.rdma_verbs_listen.is_some() && self.rdma_token.is_none() {
            return invalid(
                "rdma_verbs_listen",
                "the verbs control channel is reachable over the network: set rdma_token too"
                    .into(),
            );
        }
        if self.rdma_verbs_port == 0 {
            return invalid("rdma_verbs_port", "ports are numbered from 1".into());
        }
        if self.rdma_verbs_service_level > 15 {
            return invalid(
                "rdma_verbs_service_level",
                "service levels are 0 to 15".into(),
            );
        }
        if let Err(e) = self.slicing().validate() {
            return invalid("storage_slice_*", e.to_string());
        }
        if self
            .advertised_listener
            .as_deref()
            .is_some_and(|a| parse_host_port(a).is_none())
        {
            return invalid("advertised_listener", "expected host:port".into());
        }
        let listeners = self.parse_listeners()?;
        if listeners.iter().any(|l| l.protocol.is_tls())
            && (self.tls_cert_file.is_none() || self.tls_key_file.is_none())
        {
            return invalid(
                "tls_cert_file",
                "an SSL or SASL_SSL listener needs tls_cert_file and tls_key_file".into(),
            );
        }
        if let Some(unknown) = self
            .sasl_enabled_mechanisms
            .iter()
            .find(|m| !crate::security::sasl::MECHANISMS.contains(&m.as_str()))
        {
            return invalid(
                "sasl_enabled_mechanisms",
                format!(
                    "{unknown:?} is not one of {}",
                    crate::security::sasl::MECHANISMS.join(", ")
                ),
            );
        }
        Ok(())
    }

    /// Host and port given to clients of the first listener (the cluster registers these).
    pub fn advertised(&self) -> (String, i32) {
        self.advertised_for(0)
    }

    /// Host and port given to clients that came through listener `index`.
    pub fn advertised_for(&self, index: usize) -> (String, i32) {
        let listeners = self.listeners();
        let listener = listeners.get(index).or(listeners.first());
        listener.map_or_else(
            || (self.listen.ip().to_string(), i32::from(self.listen.port())),
            |l| l.advertised.clone(),
        )
    }

    /// The security protocol name of listener `index`.
    pub fn protocol_of(&self, index: usize) -> &'static str {
        self.listeners()
            .get(index)
            .map_or("PLAINTEXT", |l| l.protocol.name())
    }

    /// The listeners to serve (of a validated configuration).
    pub fn listeners(&self) -> Vec<Listener> {
        self.parse_listeners().unwrap_or_default()
    }

    fn parse_listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        let plaintext = format!("PLAINTEXT://{}", self.listen);
        let given: Vec<&str> = if self.listeners.is_empty() {
            vec![plaintext.as_str()]
        } else {
            self.listeners.iter().map(String::as_str).collect()
        };
        let mut advertised = Vec::new();
        for entry in &self.advertised_listeners {
            let (protocol, host_port) = split_listener(entry).ok_or_else(|| {
                invalid(
                    "advertised_listeners",
                    format!("{entry:?}: {LISTENER_FORM}"),
                )
            })?;
            let address = parse_host_port(host_port).ok_or_else(|| {
                invalid(
                    "advertised_listeners",
                    format!("{entry:?}: expected host:port"),
                )
            })?;
            advertised.push((protocol, address));
        }
        let mut listeners: Vec<Listener> = Vec::new();
        for entry in given {
            let (protocol, host_port) = split_listener(entry)
                .ok_or_else(|| invalid("listeners", format!("{entry:?}: {LISTENER_FORM}")))?;
            if listeners.iter().any(|l| l.protocol == protocol) {
                return Err(invalid(
                    "listeners",
                    format!("more than one {} listener", protocol.name()),
                ));
            }
            let addr = parse_bind_address(host_port).ok_or_else(|| {
                invalid(
                    "listeners",
                    format!("{entry:?}: expected an IP address (or nothing) and a port"),
                )
            })?;
            let own = match (protocol, &self.advertised_listener) {
                (SecurityProtocol::Plaintext, Some(a)) => parse_host_port(a),
                _ => None,
            };
            let advertised = advertised
                .iter()
                .find(|(p, _)| *p == protocol)
                .map(|(_, a)| a.clone())
                .or(own)
                .unwrap_or_else(|| (addr.ip().to_string(), i32::from(addr.port())));
            listeners.push(Listener {
                protocol,
                addr,
                advertised,
            });
        }
        if let Some((protocol, _)) = advertised
            .iter()
            .find(|(p, _)| !listeners.iter().any(|l| l.protocol == *p))
        {
            return Err(invalid(
                "advertised_listeners",
                format!("no {} listener to advertise", protocol.name()),
            ));
        }
        Ok(listeners)
    }

    /// Flush time policy.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// Whether flush objects go to an append-only WAL: `wal` given, or `fs://` storage with
    /// `wal_file_mib` above 0.
    pub fn flushes_to_wal(&self) -> bool {
        self.wal.is_some() || (self.storage.starts_with("fs:") && self.wal_file_mib > 0)
    }

    /// How compaction rounds are sized.
    pub fn compaction(&self) -> CompactionConfig {
        CompactionConfig {
            min_objects: self.compaction_min_objects,
            max_wait: Duration::from_millis(self.compaction_max_wait_ms),
            // Tiny flushes under group commit: thousands a second must be folded within a
            // tick's rounds, and an upload round (tiered) holds tens of thousands; max_bytes
            // bounds a round's memory.
            max_objects: 1 << 20,
            min_bytes: (self.compaction_min_mib.unwrap_or(if self.flushes_to_wal() {
                self.compaction_max_mib
            } else {
                0
            }) as u64)
                << 20,
            max_bytes: (self.compaction_max_mib as u64) << 20,
            segment_target_bytes: (self.segment_target_mib as u64) << 20,
            chunk_bytes: (self.segment_chunk_kib as u64) << 10,
        }
    }

    /// The authorizer's settings.
    pub fn authorizer_settings(&self) -> crate::security::acl::AuthorizerSettings {
        crate::security::acl::AuthorizerSettings {
            super_users: self.super_users.clone(),
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }
    }

    /// How storage splits large writes and reads.
    pub fn slicing(&self) -> Slicing {
        Slicing {
            slice_bytes: self.storage_slice_mib.saturating_mul(1 << 20),
            concurrency: self.storage_slice_concurrency,
        }
    }
}

const LISTENER_FORM: &str =
    "expected PROTOCOL://host:port, PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL";

/// The security protocol a listener speaks (its name, as in Kafka's default
/// `listener.security.protocol.map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// Kafka over plain TCP.
    Plaintext,
    /// Kafka over TLS.
    Ssl,
    /// Kafka over plain TCP, each connection authenticated with SASL first.
    SaslPlaintext,
    /// Kafka over TLS, each connection authenticated with SASL first.
    SaslSsl,
}

impl SecurityProtocol {
    /// Its name in `listeners`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether its connections are TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether its connections authenticate with SASL.
    pub fn is_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::Plaintext,
            Self::Ssl,
            Self::SaslPlaintext,
            Self::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// One listener to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// What it speaks.
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub addr: SocketAddr,
    /// Host and port its clients are told.
    pub advertised: (String, i32),
}

fn split_listener(entry: &str) -> Option<(SecurityProtocol, &str)> {
    let (name, rest) = entry.trim().split_once("://")?;
    Some((SecurityProtocol::parse(name)?, rest))
}

/// `ip:port`, `[ipv6]:port` or `:port` (every address).
fn parse_bind_address(text: &str) -> Option<SocketAddr> {
    match text.strip_prefix(':') {
        Some(port) => Some(SocketAddr::from(([0, 0, 0, 0], port.parse().ok()?))),
        None => text.parse().ok(),
    }
}

fn parse_host_port(text: &str) -> Option<(String, i32)> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.trim_matches(['[', ']']).to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("hotwire").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hotwire.toml");
        std::fs::write(
            &file,
            "storage = \"fs:///from-file\"\ndefault_partitions = 3\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config =
            Config::load(args(&["--config", file, "--storage", "fs:///from-flag"])).unwrap();
        assert_eq!(config.storage, "fs:///from-flag");
        assert_eq!(config.default_partitions, 3);
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let err = Config::load(args(&["--default-partitions", "0"])).unwrap_err();
        assert!(err.to_string().contains("default_partitions"), "{err}");
        let err = Config::load(args(&["--advertised-listener", "nohost"])).unwrap_err();
        assert!(err.to_string().contains("advertised_listener"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::load(args(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_verbs_path_needs_a_broker_built_with_it() {
        let listen = ["--rdma-verbs-listen", "127.0.0.1:19093"];
        let loaded = Config::load(args(&[&listen[..], &["--rdma-token", "t"]].concat()));
        if cfg!(feature = "verbs") {
            assert_eq!(
                loaded.unwrap().rdma_verbs_listen,
                Some(SocketAddr::from(([127, 0, 0, 1], 19093)))
            );
        } else {
            let err = loaded.unwrap_err().to_string();
            assert!(err.contains("rdma_verbs_listen"), "{err}");
            assert!(err.contains("--features verbs"), "{err}");
        }
        let err = Config::load(args(&["--rdma-verbs-port", "0"])).unwrap_err();
        assert!(err.to_string().contains("rdma_verbs_port"), "{err}");
        let err = Config::load(args(&["--rdma-verbs-service-level", "16"])).unwrap_err();
        assert!(
            err.to_string().contains("rdma_verbs_service_level"),
            "{err}"
        );
        let chosen = Config::load(args(&[])).unwrap();
        assert_eq!(
            chosen.rdma_verbs_gid_index, None,
            "chosen from the GID table"
        );
        let given = Config::load(args(&["--rdma-verbs-gid-index", "3"])).unwrap();
        assert_eq!(given.rdma_verbs_gid_index, Some(3));
        if cfg!(feature = "verbs") {
            let err = Config::load(args(&listen)).unwrap_err().to_string();
            assert!(err.contains("rdma_token"), "{err}");
        }
    }

    #[test]
    fn super_users_are_separated_by_semicolons_so_certificate_names_keep_their_commas() {
        let config =
            Config::load(args(&["--super-users", "User:CN=admin,O=Acme;User:alice"])).unwrap();
        assert_eq!(config.super_users, ["User:CN=admin,O=Acme", "User:alice"]);
        for bad in ["User:a,User:b", "admin", "User:"] {
            let err = Config::load(args(&["--super-users", bad]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("super_users") && err.contains("';'"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_authorizer_runs_beside_either_one_sided_listener() {
        let authorizer = ["--acl-authorizer", "true"];
        assert!(Config::load(args(
            &[&authorizer[..], &["--rdma-shm-socket", "/tmp/s"]].concat()
        ))
        .is_ok());
        // On verbs the arena is reached only through per-session windows, so the authorizer
        // holds there too (a build without the feature refuses the listener for that reason).
        let verbs = [
            "--rdma-verbs-listen",
            "127.0.0.1:19093",
            "--rdma-token",
            "t",
        ];
        let loaded = Config::load(args(&[&authorizer[..], &verbs[..]].concat()));
        if cfg!(feature = "verbs") {
            assert!(loaded.unwrap().acl_authorizer);
        } else {
            let err = loaded.unwrap_err().to_string();
            assert!(err.contains("--features verbs"), "{err}");
        }
    }

    #[test]
    fn a_cluster_broker_refuses_what_it_cannot_serve() {
        let cluster = ["--cluster", "etcd://127.0.0.1:2379"];
        let with = |extra: &[&str]| Config::load(args(&[&cluster[..], extra].concat()));
        assert!(with(&[]).is_ok());
        let err = with(&["--rdma-shm-socket", "/tmp/s", "--rdma-token", "t"]).unwrap_err();
        assert!(err.to_string().contains("not served in a cluster"), "{err}");
        let err = with(&["--wal", "/tmp/w"]).unwrap_err();
        assert!(err.to_string().contains("wal"), "{err}");
    }

    #[test]
    fn listeners_are_read_as_kafka_writes_them() {
        let config = Config::load(args(&[
            "--listeners",
            "PLAINTEXT://127.0.0.1:19092,SSL://:19093",
            "--advertised-listeners",
            "SSL://broker-1.example.com:9093",
            "--tls-cert-file",
            "/c.pem",
            "--tls-key-file",
            "/k.pem",
        ]))
        .unwrap();
        let listeners = config.listeners();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(listeners[0].advertised, ("127.0.0.1".to_string(), 19092));
        assert_eq!(listeners[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(listeners[1].addr, SocketAddr::from(([0, 0, 0, 0], 19093)));
        assert_eq!(
            config.advertised_for(1),
            ("broker-1.example.com".into(), 9093)
        );
        assert_eq!(config.advertised(), ("127.0.0.1".to_string(), 19092));
    }

    #[test]
    fn bad_listeners_are_refused_with_the_reason() {
        for (list, key, reason) in [
            (
                &["--listeners", "HTTP://127.0.0.1:1"][..],
                "listeners",
                "PROTOCOL://",
            ),
            (
                &["--listeners", "PLAINTEXT://a.example:1"],
                "listeners",
                "IP address",
            ),
            (
                &["--listeners", "PLAINTEXT://:1,PLAINTEXT://:2"],
                "listeners",
                "more than one",
            ),
            (&["--listeners", "SSL://:1"], "tls_cert_file", "needs"),
            (&["--listeners", "SASL_SSL://:1"], "tls_cert_file", "needs"),
            (
                &["--sasl-enabled-mechanisms", "GSSAPI"],
                "sasl_enabled_mechanisms",
                "not one of",
            ),
            (
                &["--advertised-listeners", "SSL://h:1"],
                "advertised_listeners",
                "no SSL listener",
            ),
            (
                &["--advertised-listeners", "PLAINTEXT://h"],
                "advertised_listeners",
                "host:port",
            ),
        ] {
            let err = Config::load(args(list)).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(reason), "{list:?}: {err}");
        }
    }

    #[test]
    fn advertised_defaults_to_the_listen_address() {
        let config = Config::load(args(&["--listen", "127.0.0.1:19092"])).unwrap();
        assert_eq!(config.advertised(), ("127.0.0.1".to_string(), 19092));
    }
}
