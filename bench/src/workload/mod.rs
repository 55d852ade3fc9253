//! Workload files: what to run, shaped like the OpenMessaging Benchmark's workloads (topics,
//! partitions, record size, producers and rate, batching, acks, compression, consumers,
//! backlog, duration and warm-up), in TOML.
//!
//! Every table refuses unknown keys, so a misspelt setting is an error rather than a silently
//! different benchmark.

mod overrides;
mod plan;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::units::{ByteSize, Dur, Rate};

pub use overrides::Overrides;
pub use plan::{phases, PhaseKind, PhaseSpec};
pub use validate::validate;

/// One benchmark, as read from a workload file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name, used in topic and group names and in reports.
    pub name: String,
    /// What the workload shows, for people reading the results.
    #[serde(default)]
    pub description: String,
    pub topics: TopicsSpec,
    pub records: RecordSpec,
    pub producers: ProducerSpec,
    #[serde(default)]
    pub consumers: ConsumerSpec,
    #[serde(default)]
    pub backlog: BacklogSpec,
    /// Present for the catch-up shape: a baseline phase, then a phase with catch-up readers.
    #[serde(default)]
    pub catch_up: Option<CatchUpSpec>,
    /// Present for the max-throughput shape: the rate is stepped up until it breaks.
    #[serde(default)]
    pub max_throughput: Option<MaxThroughputSpec>,
    pub run: RunSpec,
    #[serde(default)]
    pub broker: BrokerSpec,
    /// librdkafka settings every client of the run gets, the admin client included (e.g.
    /// `security.protocol`, `ssl.ca.location`, SASL credentials): applied before the
    /// producers' and consumers' own `extra`. `compare --client-a/--client-b` add to it.
    /// In result files only the values of settings known to hold no secret are written; the
    /// others (passwords, user names, keys, tokens, OAUTHBEARER configs) as `<redacted>`.
    #[serde(default, serialize_with = "redacted")]
    pub client: BTreeMap<String, String>,
}

/// `client` with every value but those of [`PLAIN_SETTINGS`] replaced.
fn redacted<S: serde::Serializer>(
    client: &BTreeMap<String, String>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_map(client.iter().map(|(key, value)| {
        let plain = PLAIN_SETTINGS.contains(&key.as_str());
        (key, if plain { value.as_str() } else { "<redacted>" })
    }))
}

/// librdkafka settings whose values say how a client connects without giving anything away.
const PLAIN_SETTINGS: [&str; 8] = [
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.endpoint.identification.algorithm",
    "broker.address.family",
    "enable.ssl.certificate.verification",
];

/// Topics created for the run (fresh names each run, deleted afterwards by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSpec {
    #[serde(default = "one")]
    pub count: u32,
    pub partitions: u32,
    /// Replication factor asked for at creation (1 suits a single broker).
    #[serde(default = "one_i32")]
    pub replication_factor: i32,
}

/// The records produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Value size in bytes (no key). The first 16 bytes carry the bench's timestamp.
    pub size: ByteSize,
    /// Fraction of each value that is fresh random bytes (the rest is zeros): 1.0 is
    /// incompressible, 0.0 compresses to almost nothing.
    #[serde(default = "one_f64")]
    pub randomness: f64,
}

/// Producers: how many, how fast, and the client settings that shape their batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    pub count: u32,
    /// Total records per second across all producers, or "max". Absent in a max-throughput
    /// workload, where the steps set it.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// librdkafka `batch.size`.
    #[serde(default = "default_batch_size")]
    pub batch_size: ByteSize,
    /// librdkafka `linger.ms`.
    #[serde(default)]
    pub linger: Dur,
    #[serde(default)]
    pub acks: Acks,
    #[serde(default)]
    pub compression: Compression,
    /// librdkafka `enable.idempotence`.
    #[serde(default)]
    pub idempotence: bool,
    #[serde(default)]
    pub partitioning: Partitioning,
    /// Further librdkafka producer properties, applied last.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// Tailing consumers: they subscribe as one group and measure end-to-end latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    #[serde(default)]
    pub count: u32,
    /// Group id prefix; the run id is appended so that runs never share committed offsets.
    #[serde(default = "default_group")]
    pub group: String,
    /// Further librdkafka consumer properties, applied last.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// Data produced before the measured phases (read by catch-up consumers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacklogSpec {
    #[serde(default)]
    pub size: ByteSize,
}

/// Catch-up readers, started from the beginning of every partition in the catch-up phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUpSpec {
    pub consumers: u32,
    /// Scheduling niceness (0-19) of the readers' threads, librdkafka's included: 19 stands in
    /// for readers on other machines, whose client CPU does not compete with the producers.
    #[serde(default)]
    pub nice: i32,
}

/// The rate steps of a max-throughput search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxThroughputSpec {
    /// Total records per second of the first step.
    pub start_rate: f64,
    /// Each step's rate is the previous one times this.
    #[serde(default = "default_step_factor")]
    pub step_factor: f64,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// A step is sustained if the acknowledged rate reaches this fraction of its target...
    #[serde(default = "default_min_achieved_ratio")]
    pub min_achieved_ratio: f64,
    /// ...and its produce p99 (measured from the intended send time) stays below this.
    #[serde(default = "default_max_p99")]
    pub max_p99: Dur,
}

/// Timing of the run. Each measured phase (main; baseline and catch-up; each rate step)
/// lasts `duration`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    #[serde(default)]
    pub warmup: Dur,
    pub duration: Dur,
}

/// Extra flags for a broker started with `--spawn-broker` (ignored with `--bootstrap`), so a
/// workload that needs e.g. a small hot cache says so next to the numbers it produces.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    #[serde(default)]
    pub args: Vec<String>,
}

/// Producer acknowledgements: `"all"` (or -1), 1 or 0, as a string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "AcksRepr")]
pub enum Acks {
    #[serde(rename = "0")]
    None,
    #[serde(rename = "1")]
    Leader,
    #[default]
    #[serde(rename = "all")]
    All,
}

/// How acks may be written in a file.
#[derive(Deserialize)]
#[serde(untagged)]
enum AcksRepr {
    Int(i64),
    Text(String),
}

impl TryFrom<AcksRepr> for Acks {
    type Error = String;
    fn try_from(repr: AcksRepr) -> std::result::Result<Acks, String> {
        let text = match repr {
            AcksRepr::Int(n) => n.to_string(),
            AcksRepr::Text(text) => text.trim().to_ascii_lowercase(),
        };
        match text.as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            _ => Err(format!("acks `{text}` must be \"all\" (or -1), 1 or 0")),
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Acks, String> {
        Acks::try_from(AcksRepr::Text(text.to_string()))
    }
}

impl Acks {
    /// The librdkafka `acks` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// librdkafka `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How producers pick partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Every producer cycles through all partitions of all topics, one record each.
    #[default]
    RoundRobin,
    /// No partition given: librdkafka's own partitioner (sticky for records without keys).
    Client,
}

impl Workload {
    /// Reads and parses a workload file (not yet validated: see [`validate`]).
    pub fn load(path: &Path) -> Result<Workload> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::Workload {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|message| BenchError::Workload {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses workload TOML; the error names the line and the key.
    pub fn parse(text: &str) -> std::result::Result<Workload, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Reads, applies overrides and validates: the workload exactly as it will run.
    pub fn load_effective(path: &Path, overrides: &Overrides) -> Result<Workload> {
        let mut workload = Self::load(path)?;
        overrides.apply(&mut workload);
        validate(&workload).map_err(|problems| BenchError::Workload {
            path: path.to_path_buf(),
            message: format!("invalid:\n  - {}", problems.join("\n  - ")),
        })?;
        Ok(workload)
    }

    /// Number of partitions over all topics.
    pub fn total_partitions(&self) -> u64 {
        u64::from(self.topics.count) * u64::from(self.topics.partitions)
    }
}

fn one() -> u32 {
    1
}
fn one_i32() -> i32 {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn default_batch_size() -> ByteSize {
    ByteSize(16 * 1024)
}
fn default_group() -> String {
    "hotwire-bench".to_string()
}
fn default_step_factor() -> f64 {
    1.5
}
fn default_max_steps() -> u32 {
    10
}
fn default_min_achieved_ratio() -> f64 {
    0.95
}
fn default_max_p99() -> Dur {
    Dur(std::time::Duration::from_secs(1))
}

impl Default for ConsumerSpec {
    fn default() -> Self {
        ConsumerSpec {
            count: 0,
            group: default_group(),
            extra: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests;
