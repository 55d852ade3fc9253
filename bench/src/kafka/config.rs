//! librdkafka client settings derived from a workload.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::workload::Workload;

/// How long a record may wait for its delivery report before it counts as failed. Shorter
/// than librdkafka's 300 s default so that a broker that stops answering ends the run.
const MESSAGE_TIMEOUT_MS: &str = "60000";

/// Settings every client gets: the address, its id, the run's `client` settings.
fn base(bootstrap: &str, client_id: &str, client: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in client {
        config.set(key, value);
    }
    // After the run's settings: `compare --client-b bootstrap.servers=...` must not send a side
    // elsewhere than its report says.
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id);
    config
}

/// A measured producer: the workload's batching, acks and compression.
pub fn producer(bootstrap: &str, w: &Workload, client_id: &str) -> ClientConfig {
    producer_with_linger(bootstrap, w, client_id, w.producers.linger.0)
}

/// The backlog pre-fill producer: like the measured ones but lingering at least 5 ms, so the
/// backlog is written in full batches as fast as the broker takes it.
pub fn prefill_producer(bootstrap: &str, w: &Workload, client_id: &str) -> ClientConfig {
    let linger = w.producers.linger.0.max(Duration::from_millis(5));
    producer_with_linger(bootstrap, w, client_id, linger)
}

fn producer_with_linger(
    bootstrap: &str,
    w: &Workload,
    client_id: &str,
    linger: Duration,
) -> ClientConfig {
    let p = &w.producers;
    let record = w.records.size.0.max(1);
    let batch = p.batch_size.0;
    // librdkafka caps a batch at message.max.bytes (default 1,000,000): raise it so that a
    // 1 MiB batch.size really gives 1 MiB batches, and a large record still fits.
    let message_max = (batch + 65_536)
        .max(record + 65_536)
        .clamp(1_000_000, 1_000_000_000);
    // batch.num.messages (default 10,000) must not be what cuts small records' batches.
    let batch_messages = (batch / record + 1).clamp(10_000, 1_000_000);
    let mut config = base(bootstrap, client_id, &w.client);
    config
        .set("acks", p.acks.as_config())
        .set("linger.ms", format_ms(linger))
        .set("batch.size", batch.to_string())
        .set("batch.num.messages", batch_messages.to_string())
        .set("message.max.bytes", message_max.to_string())
        .set("compression.type", p.compression.as_config())
        .set("enable.idempotence", p.idempotence.to_string())
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS);
    for (key, value) in &p.extra {
        config.set(key, value);
    }
    config
}

/// A tailing consumer: joins the run's group. It starts at the group's committed offsets,
/// else at the beginning: the run's topics are new, and a backlog written before the
/// consumers start is skipped by committing its end offsets for the group first (see
/// `consumer::commit_end_offsets`). "latest" would lose the records produced while the
/// consumer was still looking up the end offset, and make the delivered count inexact.
pub fn tailing_consumer(
    bootstrap: &str,
    w: &Workload,
    group: &str,
    client_id: &str,
) -> ClientConfig {
    consumer(bootstrap, w, group, client_id, true)
}

/// A catch-up consumer: partitions assigned by the bench (no group rebalance to wait for),
/// read from the beginning, nothing committed.
pub fn catch_up_consumer(
    bootstrap: &str,
    w: &Workload,
    group: &str,
    client_id: &str,
) -> ClientConfig {
    consumer(bootstrap, w, group, client_id, false)
}

/// A consumer of `group` from the earliest offset, with the workload's extra properties last.
fn consumer(
    bootstrap: &str,
    w: &Workload,
    group: &str,
    client_id: &str,
    auto_commit: bool,
) -> ClientConfig {
    let mut config = base(bootstrap, client_id, &w.client);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        )
        .set("enable.partition.eof", "false");
    for (key, value) in &w.consumers.extra {
        config.set(key, value);
    }
    config
}

/// The admin client (topic creation and deletion, metadata), with the run's `client` settings.
pub fn admin(bootstrap: &str, client: &BTreeMap<String, String>) -> ClientConfig {
    base(bootstrap, "hotwire-bench-admin", client)
}

/// Milliseconds as librdkafka's float properties take them ("1", "0.5").
fn format_ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1_000.0;
    let text = format!("{ms:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload::parse(WORKLOAD_TEXT).unwrap()
    }

    const WORKLOAD_TEXT: &str = r#"
name = "t"
[topics]
partitions = 1
[records]
size = "1KiB"
[producers]
count = 1
rate = 10
batch_size = "1MiB"
linger = "1ms"
compression = "zstd"
[producers.extra]
"queue.buffering.max.kbytes" = "1024"
[run]
duration = "1s"
"#;

    #[test]
    fn the_client_table_reaches_every_client_and_extra_comes_after_it() {
        let mut w = Workload::parse(
            &(WORKLOAD_TEXT.to_string()
                + "[client]\n\"security.protocol\" = \"SSL\"\n\"queue.buffering.max.kbytes\" = \"9\"\n"),
        )
        .unwrap();
        assert_eq!(
            producer("h:1", &w, "p0").get("security.protocol"),
            Some("SSL")
        );
        // The producers' own extra wins over the run-wide setting.
        assert_eq!(
            producer("h:1", &w, "p0").get("queue.buffering.max.kbytes"),
            Some("1024")
        );
        assert_eq!(
            tailing_consumer("h:1", &w, "g", "c0").get("security.protocol"),
            Some("SSL")
        );
        assert_eq!(
            admin("h:1", &w.client).get("security.protocol"),
            Some("SSL")
        );
        w.client.insert("sasl.password".into(), "hunter2".into());
        w.client
            .insert("sasl.oauthbearer.config".into(), "hunter2".into());
        w.client
            .insert("bootstrap.servers".into(), "elsewhere:1".into());
        assert_eq!(
            producer("h:1", &w, "p0").get("bootstrap.servers"),
            Some("h:1")
        );
        w.client.remove("bootstrap.servers");
        let written = serde_json::to_string(&w).unwrap();
        assert!(
            written.contains("\"security.protocol\":\"SSL\""),
            "{written}"
        );
        assert!(
            !written.contains("hunter2"),
            "a password reached the result file"
        );
        w.client
            .insert("bootstrap.servers".into(), "elsewhere:1".into());
        assert!(
            crate::workload::validate(&w).is_err(),
            "reserved keys are refused"
        );
    }

    #[test]
    fn producer_settings_follow_the_workload() {
        let config = producer("h:1", &workload(), "p0");
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("linger.ms"), Some("1"));
        assert_eq!(config.get("batch.size"), Some("1048576"));
        assert_eq!(config.get("message.max.bytes"), Some("1114112"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("queue.buffering.max.kbytes"), Some("1024"));
        let prefill = prefill_producer("h:1", &workload(), "p");
        assert_eq!(prefill.get("linger.ms"), Some("5"));
    }

    #[test]
    fn fractional_milliseconds_are_kept() {
        assert_eq!(format_ms(Duration::from_micros(500)), "0.5");
        assert_eq!(format_ms(Duration::ZERO), "0");
        assert_eq!(format_ms(Duration::from_millis(20)), "20");
    }
}
