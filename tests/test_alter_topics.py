"""Administering existing topics: CreatePartitions, AlterConfigs and IncrementalAlterConfigs
from confluent-kafka's AdminClient (Debian's and the newest) and kafka-python's admin client,
with their effects checked: new partitions receive data and survive a restart, a lowered
retention deletes old segments, a lowered max.message.bytes refuses what it used to accept, and
configs the broker cannot honour are refused with INVALID_CONFIG and the reason; and
DescribeLogDirs from kafka-python."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewPartitions
from helpers import (admin_client, consume_all, create_topic, make_consumer, make_producer,
                     produce_all, topic_partition_counts, wait_until, watermarks)
from test_retention import MAINTENANCE, low_high, produce_numbered

pytestmark = pytest.mark.clients


def topic_resource(topic):
    return ConfigResource(ConfigResource.Type.TOPIC, topic)


def described(admin, topic):
    resource = topic_resource(topic)
    entries = admin.describe_configs([resource], request_timeout=15)[resource].result(timeout=15)
    return {name: entry.value for name, entry in entries.items()}


def refusal(future):
    """The KafkaError a refused admin future carries."""
    with pytest.raises(KafkaException) as refused:
        future.result(30)
    return refused.value.args[0]


def grow(admin, topic, count, validate_only=False):
    futures = admin.create_partitions([NewPartitions(topic, count)], validate_only=validate_only,
                                      request_timeout=30)
    return futures[topic]


def test_create_partitions_new_partitions_take_data_and_survive_a_restart(broker):
    admin = admin_client(broker.bootstrap)
    topic = "growing"
    create_topic(broker.bootstrap, topic, 2)
    grow(admin, topic, 4, validate_only=True).result(30)
    assert topic_partition_counts(admin)[topic] == 2, "validate_only must change nothing"

    grow(admin, topic, 5).result(30)
    wait_until(lambda: topic_partition_counts(admin).get(topic) == 5, 30, "5 partitions")
    producer = make_producer(broker.bootstrap)
    log = produce_all(producer, topic, [{"value": b"p%d" % p, "partition": p} for p in range(5)])
    log.assert_no_failures()
    for count, code in [(3, KafkaError.INVALID_PARTITIONS), (5, KafkaError.INVALID_PARTITIONS)]:
        error = refusal(grow(admin, topic, count))
        assert error.code() == code and "can only grow" in error.str(), error
    error = refusal(grow(admin, "no-such-topic", 3))
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, error

    broker.kill9()
    broker.start()
    admin = admin_client(broker.bootstrap)
    assert topic_partition_counts(admin)[topic] == 5
    records = consume_all(broker.bootstrap, topic, 5)
    assert {p: [r.value for r in rs] for p, rs in records.items()} == \
        {p: [b"p%d" % p] for p in range(5)}


def test_alter_configs_take_effect_at_once_and_survive_a_restart(broker_factory):
    broker = broker_factory(extra_args=MAINTENANCE)
    admin = admin_client(broker.bootstrap)
    topic = "altered"
    create_topic(broker.bootstrap, topic, 1)
    produce_numbered(broker.bootstrap, topic, 0, 3000)
    assert low_high(broker.bootstrap, topic) == (0, 3000)

    # AlterConfigs replaces the topic's overrides whole (every client has it).
    resource = topic_resource(topic)
    resource.set_config("retention.ms", "2000")
    resource.set_config("max.message.bytes", "2000")
    admin.alter_configs([resource], request_timeout=30)[resource].result(30)
    configs = described(admin, topic)
    assert configs["retention.ms"] == "2000" and configs["max.message.bytes"] == "2000", configs
    # A lowered retention deletes the old segments at its next rounds.
    wait_until(lambda: low_high(broker.bootstrap, topic) == (3000, 3000), 60,
               "every record to expire under the lowered retention.ms")
    # A lowered max.message.bytes refuses a batch it used to accept.
    log = produce_all(make_producer(broker.bootstrap), topic, [{"value": b"x" * 4000}])
    ((error, _, _),) = log.failed
    assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error

    # Refused overrides, with the reason; the topic keeps what it had.
    for name, value, reason in [("cleanup.policy", "compact", "no log compaction"),
                                ("message.timestamp.type", "LogAppendTime", "CreateTime"),
                                ("retention.mss", "1", "unknown topic config")]:
        bad = topic_resource(topic)
        bad.set_config(name, value)
        error = refusal(admin.alter_configs([bad], request_timeout=30)[bad])
        assert error.code() == KafkaError.INVALID_CONFIG and reason in error.str(), error
    broker_resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    broker_resource.set_config("num.partitions", "7")
    error = refusal(admin.alter_configs([broker_resource], request_timeout=30)[broker_resource])
    assert error.code() == KafkaError.INVALID_CONFIG and "static" in error.str(), error
    # The broker's settings, under Kafka's names, read-only.
    broker_resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    entries = admin.describe_configs([broker_resource], request_timeout=15)[broker_resource] \
        .result(timeout=15)
    assert entries["num.partitions"].value == "1", entries["num.partitions"]
    assert entries["message.max.bytes"].value == "1048588"
    assert entries["log.retention.ms"].value == "604800000"
    assert all(entry.is_read_only for entry in entries.values())
    assert described(admin, topic)["retention.ms"] == "2000"

    broker.kill9()
    broker.start()
    admin = admin_client(broker.bootstrap)
    configs = described(admin, topic)
    assert configs["retention.ms"] == "2000" and configs["max.message.bytes"] == "2000", configs


def test_incremental_alter_configs_changes_one_override_at_a_time(broker):
    admin = admin_client(broker.bootstrap)
    if not hasattr(admin, "incremental_alter_configs"):
        pytest.skip("this confluent-kafka has no incremental_alter_configs (added in 2.2)")
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    topic = "incremental"
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "86400000"})

    def alter(*entries):
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic,
                                  incremental_configs=list(entries))
        return admin.incremental_alter_configs([resource], request_timeout=30)[resource]

    alter(ConfigEntry("retention.bytes", "1000000",
                      incremental_operation=AlterConfigOpType.SET)).result(30)
    configs = described(admin, topic)
    assert configs["retention.ms"] == "86400000", "an incremental change keeps other overrides"
    assert configs["retention.bytes"] == "1000000", configs
    alter(ConfigEntry("retention.ms", None,
                      incremental_operation=AlterConfigOpType.DELETE)).result(30)
    assert described(admin, topic)["retention.ms"] == "604800000", "back to the default"
    error = refusal(alter(ConfigEntry("cleanup.policy", "compact",
                                      incremental_operation=AlterConfigOpType.APPEND)))
    assert error.code() == KafkaError.INVALID_CONFIG and "no log compaction" in error.str(), error
    # One refused operation fails its whole resource: the SET before it did not happen.
    error = refusal(alter(
        ConfigEntry("retention.bytes", "5", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)))
    assert error.code() == KafkaError.INVALID_CONFIG and "not a list" in error.str(), error
    assert described(admin, topic)["retention.bytes"] == "1000000"


def test_kafka_python_admin_grows_a_topic_and_alters_its_configs(broker):
    pytest.importorskip("kafka", minversion="3.0")
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType, NewPartitions as KpNewPartitions
    topic = "kp-growing"
    create_topic(broker.bootstrap, topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_partitions({topic: KpNewPartitions(total_count=3)})
        admin.alter_configs([KpResource(ConfigResourceType.TOPIC, topic,
                                        configs={"retention.ms": "5000"})])
    finally:
        admin.close()
    confluent = admin_client(broker.bootstrap)
    wait_until(lambda: topic_partition_counts(confluent).get(topic) == 3, 30, "3 partitions")
    assert described(confluent, topic)["retention.ms"] == "5000"
    consumer = make_consumer(broker.bootstrap)
    try:
        assert watermarks(consumer, topic, 2) == (0, 0)
    finally:
        consumer.close()


def test_kafka_python_describes_log_dirs(broker):
    pytest.importorskip("kafka", minversion="3.0")
    from kafka import KafkaAdminClient
    topic = "kp-sized"
    create_topic(broker.bootstrap, topic, 2)
    log = produce_all(make_producer(broker.bootstrap), topic,
                      [{"value": b"v" * 100, "partition": 1} for _ in range(50)])
    log.assert_no_failures()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = admin.describe_log_dirs()
    finally:
        admin.close()
    ((node, results),) = [(b["broker"], b["log_dirs"]) for b in response]
    (result,) = results
    assert result["error_code"] == 0 and result["log_dir"].startswith("fs://"), result
    (described,) = [t for t in result["topics"] if t["name"] == topic]
    sizes = {p["partition_index"]: p["partition_size"] for p in described["partitions"]}
    assert sizes[0] == 0 and sizes[1] >= 50 * 100, sizes
