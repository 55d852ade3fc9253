//! Topic-level configuration: Kafka's names and defaults, and validation of overrides.

use std::collections::BTreeMap;

use super::validate::ProduceLimits;
use crate::config::Config;

/// Kafka topic configs this broker knows, with the default it reports.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    // Kafka 4.0's default (KIP-1030); i64::MAX before.
    ("message.timestamp.after.max.ms", "3600000"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("preallocate", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// Default value of a known config.
pub fn default_of(name: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Settings that must not be negative.
const NON_NEGATIVE: &[&str] = &[
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
];

/// The produce limits of a topic with overrides `configs`: each override, else the broker's
/// setting (Kafka's broker defaults `message.max.bytes`, `log.message.timestamp.*.max.ms`).
pub fn produce_limits(configs: &BTreeMap<String, String>, broker: &Config) -> ProduceLimits {
    let value = |name: &str, default: i64| {
        configs
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .unwrap_or(default)
    };
    let max_message_bytes = i64::try_from(broker.message_max_bytes).unwrap_or(i64::MAX);
    if configs.get("message.timestamp.type").map(String::as_str) == Some("LogAppendTime") {
        // Kafka bounds only CreateTime timestamps.
        return ProduceLimits {
            max_message_bytes: value("max.message.bytes", max_message_bytes) as u64,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
        };
    }
    ProduceLimits {
        max_message_bytes: value("max.message.bytes", max_message_bytes) as u64,
        timestamp_before_max_ms: value(
            "message.timestamp.before.max.ms",
            broker.log_message_timestamp_before_max_ms,
        ),
        timestamp_after_max_ms: value(
            "message.timestamp.after.max.ms",
            broker.log_message_timestamp_after_max_ms,
        ),
    }
}

/// Why a well-formed override is refused: values Kafka knows whose behaviour this broker does
/// not have (accepting them would let a client believe it has it).
fn unsupported(name: &str, value: &str) -> Option<&'static str> {
    match name {
        "cleanup.policy" if value.split(',').any(|p| p.trim() == "compact") => {
            Some("there is no log compaction; only cleanup.policy=delete")
        }
        "message.timestamp.type" if value == "LogAppendTime" => {
            Some("records keep the producer's timestamps (CreateTime)")
        }
        "compression.type" if value != "producer" => {
            Some("batches are stored as the producer compressed them (compression.type=producer)")
        }
        _ => None,
    }
}

/// Checks overrides given at topic creation: known names, well-formed values, behaviour this
/// broker has.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let Some(default) = default_of(name) else {
            return Err(format!("unknown topic config {name}"));
        };
        let numeric = default.parse::<i64>().is_ok();
        if numeric && value.parse::<i64>().is_err() {
            return Err(format!("{name} must be an integer, got {value:?}"));
        }
        if NON_NEGATIVE.contains(&name.as_str()) && value.parse::<i64>().is_ok_and(|v| v < 0) {
            return Err(format!("{name} must not be negative, got {value}"));
        }
        if let Some(reason) = unsupported(name, value) {
            return Err(format!("{name}={value} is not supported: {reason}"));
        }
        let valid = match name.as_str() {
            "cleanup.policy" => value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact")),
            "compression.type" => matches!(
                value.as_str(),
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ),
            "message.timestamp.type" => matches!(value.as_str(), "CreateTime" | "LogAppendTime"),
            "preallocate" | "unclean.leader.election.enable" => {
                matches!(value.as_str(), "true" | "false")
            }
            _ => true,
        };
        if !valid {
            return Err(format!("invalid value {value:?} for {name}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_string(), value.to_string())])
    }

    #[test]
    fn known_configs_with_good_values_pass() {
        assert!(validate(&one("retention.ms", "1000")).is_ok());
        assert!(validate(&one("cleanup.policy", "delete")).is_ok());
    }

    #[test]
    fn unknown_names_and_bad_values_fail() {
        assert!(validate(&one("retention.mss", "1")).is_err());
        for (name, value) in [
            ("cleanup.policy", "compact"),
            ("cleanup.policy", "delete,compact"),
            ("message.timestamp.type", "LogAppendTime"),
            ("compression.type", "zstd"),
        ] {
            let err = validate(&one(name, value)).unwrap_err();
            assert!(err.contains("not supported"), "{name}={value}: {err}");
        }
        assert!(validate(&one("cleanup.policy", "delete")).is_ok());
        assert!(validate(&one("message.timestamp.type", "CreateTime")).is_ok());
        assert!(validate(&one("compression.type", "producer")).is_ok());
        assert!(validate(&one("retention.ms", "soon")).is_err());
        assert!(validate(&one("compression.type", "brotli")).is_err());
        assert!(validate(&one("max.message.bytes", "-1")).is_err());
    }

    #[test]
    fn produce_limits_take_overrides_else_the_broker_settings() {
        let broker = Config::default();
        let limits = produce_limits(&BTreeMap::new(), &broker);
        assert_eq!(limits.max_message_bytes, 1_048_588);
        assert_eq!(limits.timestamp_before_max_ms, i64::MAX);
        assert_eq!(limits.timestamp_after_max_ms, 3_600_000);
        let limits = produce_limits(&one("max.message.bytes", "1000"), &broker);
        assert_eq!(limits.max_message_bytes, 1000);
        assert_eq!(limits.max_decompressed(), 64_000);
        let limits = produce_limits(&one("message.timestamp.type", "LogAppendTime"), &broker);
        assert_eq!(limits.timestamp_after_max_ms, i64::MAX);
    }
}
