//! Topic-level configuration: Kafka's names and defaults, and validation of overrides.

use std::collections::BTreeMap;

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
    ("message.timestamp.after.max.ms", "9223372036854775807"),
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

/// Checks overrides given at topic creation: known names, well-formed values.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in configs {
        let Some(default) = default_of(name) else {
            return Err(format!("unknown topic config {name}"));
        };
        let numeric = default.parse::<i64>().is_ok();
        if numeric && value.parse::<i64>().is_err() {
            return Err(format!("{name} must be an integer, got {value:?}"));
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
        assert!(validate(&one("cleanup.policy", "compact,delete")).is_ok());
    }

    #[test]
    fn unknown_names_and_bad_values_fail() {
        assert!(validate(&one("retention.mss", "1")).is_err());
        assert!(validate(&one("retention.ms", "soon")).is_err());
        assert!(validate(&one("compression.type", "brotli")).is_err());
    }
}
