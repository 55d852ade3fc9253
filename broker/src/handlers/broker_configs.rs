//! The broker's settings as DescribeConfigs reports them, under Kafka's names where Kafka has
//! the setting (what `kafka-configs.sh --describe --broker` and admin UIs look for), and the
//! topic defaults Kafka keeps as broker settings (`log.retention.ms`...). All are static here:
//! AlterConfigs on a broker is refused, so every entry is read-only.

use super::super::log::topic_config;
use crate::config::Config;

/// One setting: Kafka's name and the value this broker runs with.
pub struct BrokerConfig {
    /// Kafka's name.
    pub name: &'static str,
    /// The value.
    pub value: String,
}

fn entry(name: &'static str, value: impl ToString) -> BrokerConfig {
    BrokerConfig {
        name,
        value: value.to_string(),
    }
}

/// Every broker setting with a Kafka name, as this broker runs.
pub fn of(config: &Config) -> Vec<BrokerConfig> {
    let listeners: Vec<String> = config
        .listeners()
        .iter()
        .map(|l| format!("{}://{}", l.protocol.name(), l.addr))
        .collect();
    let advertised: Vec<String> = config
        .listeners()
        .iter()
        .map(|l| {
            format!(
                "{}://{}:{}",
                l.protocol.name(),
                l.advertised.0,
                l.advertised.1
            )
        })
        .collect();
    let authorizer = if config.acl_authorizer {
        "hotwire.acl"
    } else {
        ""
    };
    let mut entries = vec![
        entry("broker.id", config.node_id),
        entry("broker.rack", config.rack.clone().unwrap_or_default()),
        entry("listeners", listeners.join(",")),
        entry("advertised.listeners", advertised.join(",")),
        entry("auto.create.topics.enable", config.auto_create_topics),
        entry("num.partitions", config.default_partitions),
        entry("default.replication.factor", 1),
        entry("socket.request.max.bytes", config.max_frame_bytes),
        entry("message.max.bytes", config.message_max_bytes),
        entry(
            "log.message.timestamp.before.max.ms",
            config.log_message_timestamp_before_max_ms,
        ),
        entry(
            "log.message.timestamp.after.max.ms",
            config.log_message_timestamp_after_max_ms,
        ),
        entry(
            "log.retention.check.interval.ms",
            config.retention_check_interval_ms,
        ),
        entry(
            "offsets.retention.minutes",
            config.offsets_retention_ms / 60_000,
        ),
        entry(
            "group.min.session.timeout.ms",
            config.group_min_session_timeout_ms,
        ),
        entry(
            "group.max.session.timeout.ms",
            config.group_max_session_timeout_ms,
        ),
        entry(
            "group.initial.rebalance.delay.ms",
            config.group_initial_rebalance_delay_ms,
        ),
        entry("group.max.size", config.group_max_size),
        entry("connections.max.idle.ms", config.connections_max_idle_ms),
        entry("max.connections", config.max_connections),
        entry("max.connections.per.ip", config.max_connections_per_ip),
        entry(
            "producer.id.expiration.ms",
            config.producer_id_expiration_ms,
        ),
        entry("fetch.max.bytes", config.fetch_max_bytes),
        entry(
            "sasl.enabled.mechanisms",
            config.sasl_enabled_mechanisms.join(","),
        ),
        entry(
            "connection.failed.authentication.delay.ms",
            config.sasl_failed_authentication_delay_ms,
        ),
        entry(
            "connections.max.reauth.ms",
            config.connections_max_reauth_ms,
        ),
        entry("authorizer.class.name", authorizer),
        entry(
            "allow.everyone.if.no.acl.found",
            config.allow_everyone_if_no_acl_found,
        ),
        entry("super.users", config.super_users.join(";")),
    ];
    // Topic defaults, kept by Kafka as broker settings under `log.`-prefixed names.
    for (broker_name, topic_name) in [
        ("log.retention.ms", "retention.ms"),
        ("log.retention.bytes", "retention.bytes"),
        ("log.cleanup.policy", "cleanup.policy"),
        ("log.segment.bytes", "segment.bytes"),
        ("log.message.timestamp.type", "message.timestamp.type"),
        ("compression.type", "compression.type"),
        ("min.insync.replicas", "min.insync.replicas"),
    ] {
        let value = topic_config::default_of(topic_name).unwrap_or_default();
        entries.push(entry(broker_name, value));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_reports_kafka_names_with_its_values() {
        let config = Config {
            node_id: 7,
            super_users: vec!["User:a".into(), "User:b".into()],
            ..Config::default()
        };
        let entries = of(&config);
        let value = |name: &str| {
            let found = entries.iter().find(|e| e.name == name);
            found
                .map(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(value("broker.id"), "7");
        assert_eq!(value("super.users"), "User:a;User:b");
        assert_eq!(value("listeners"), "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(value("message.max.bytes"), "1048588");
        assert_eq!(value("log.retention.ms"), "604800000");
        assert_eq!(value("authorizer.class.name"), "");
        let mut names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), entries.len(), "a name reported twice");
    }
}
