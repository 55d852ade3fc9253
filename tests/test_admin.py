"""Topic administration: CreateTopics, DescribeConfigs, Metadata, DeleteTopics, auto-creation."""

import re

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic
from helpers import (admin_client, assert_log, consume_all, create_topic, kcat, make_consumer,
                     make_producer, produce_all, topic_partition_counts, wait_until, watermarks)

RETENTION_MS = "86400000"


def describe_topic(admin, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=15)[resource].result(timeout=15)
    return {name: entry.value for name, entry in entries.items()}


def produce_keyed(bootstrap, topic, count, conf=None):
    log = produce_all(make_producer(bootstrap, conf), topic,
                      [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(count)], timeout=60)
    log.assert_no_failures()
    return log


def test_create_describe_delete(broker):
    admin = admin_client(broker.bootstrap)
    futures = admin.create_topics([NewTopic("plain", 3, 1),
                                   NewTopic("tuned", 2, 1, config={"retention.ms": RETENTION_MS})],
                                  request_timeout=30)
    for future in futures.values():
        future.result(timeout=30)

    md = admin.list_topics(timeout=15)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", broker.port)]
    for name, count in (("plain", 3), ("tuned", 2)):
        topic = md.topics[name]
        assert topic.error is None
        assert sorted(topic.partitions) == list(range(count))
        for partition in topic.partitions.values():
            assert partition.error is None and partition.leader in md.brokers

    with pytest.raises(KafkaException) as existing:
        admin.create_topics([NewTopic("plain", 3, 1)], request_timeout=30)["plain"].result(30)
    assert existing.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    assert describe_topic(admin, "tuned").get("retention.ms") == RETENTION_MS
    describe_topic(admin, "plain")  # a topic with no overrides describes without error

    produce_keyed(broker.bootstrap, "plain", 30)
    admin.delete_topics(["plain"], request_timeout=30)["plain"].result(timeout=30)
    wait_until(lambda: "plain" not in topic_partition_counts(admin), 15, "plain to disappear")
    assert topic_partition_counts(admin).get("tuned") == 2

    broker.restart()
    admin = admin_client(broker.bootstrap)
    counts = topic_partition_counts(admin)
    assert "plain" not in counts, "a deleted topic came back after restart"
    assert counts.get("tuned") == 2
    assert describe_topic(admin, "tuned").get("retention.ms") == RETENTION_MS

    # The name is free again, and the new topic starts empty: none of the old records survive.
    create_topic(broker.bootstrap, "plain", 1)
    consumer = make_consumer(broker.bootstrap)
    try:
        assert watermarks(consumer, "plain", 0) == (0, 0)
    finally:
        consumer.close()
    log = produce_keyed(broker.bootstrap, "plain", 3)
    assert [d.offset for d in log.delivered] == [0, 1, 2]


def test_auto_create_on_produce(broker):
    log = produce_keyed(broker.bootstrap, "auto", 20)
    assert topic_partition_counts(admin_client(broker.bootstrap)).get("auto") == 1
    assert_log(consume_all(broker.bootstrap, "auto", 1),
               {0: [(d.key, d.value) for d in sorted(log.delivered, key=lambda d: d.offset)]}, "auto")


def test_default_partitions_from_environment(broker_factory):
    broker = broker_factory(env={"HOTWIRE_DEFAULT_PARTITIONS": "3"})
    produce_keyed(broker.bootstrap, "auto3", 20)
    assert topic_partition_counts(admin_client(broker.bootstrap)).get("auto3") == 3


def test_auto_create_disabled(broker_factory):
    broker = broker_factory(extra_args=["--auto-create-topics", "false"])
    producer = make_producer(broker.bootstrap, {"message.timeout.ms": 10000,
                                                "topic.metadata.propagation.max.ms": 1000})
    outcomes = []
    try:
        producer.produce("missing", value=b"x", on_delivery=lambda err, msg: outcomes.append(err))
    except KafkaException as e:  # the client may already know the topic does not exist
        outcomes.append(e.args[0])
    assert producer.flush(30) == 0
    assert len(outcomes) == 1 and outcomes[0] is not None, f"produce outcome: {outcomes}"
    assert outcomes[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), \
        f"expected an unknown-topic error, got {outcomes[0]}"
    assert "missing" not in topic_partition_counts(admin_client(broker.bootstrap))


def test_advertised_listener(broker_factory):
    broker = broker_factory(start=False)
    broker.extra_args += ["--advertised-listener", f"localhost:{broker.port}"]
    broker.start()
    md = admin_client(broker.bootstrap).list_topics(timeout=15)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("localhost", broker.port)]


def test_kcat_metadata_listing(broker):
    """kcat -L goes through librdkafka 2.0.2's ApiVersions v3 and Metadata handling."""
    create_topic(broker.bootstrap, "listed", 3)
    out = kcat("-L", "-b", broker.bootstrap, timeout=60).stdout.decode()
    assert re.search(rf"broker \d+ at 127\.0\.0\.1:{broker.port}\b", out), out
    assert 'topic "listed" with 3 partitions:' in out, out


def test_topic_configs_the_broker_cannot_honour_are_refused_with_the_reason(broker):
    """cleanup.policy=compact, LogAppendTime and a broker-side compression.type would be ignored:
    CreateTopics refuses them with INVALID_CONFIG and says why, and creates nothing."""
    admin = admin_client(broker.bootstrap)
    for name, value, reason in [("cleanup.policy", "compact", "no log compaction"),
                                ("message.timestamp.type", "LogAppendTime", "CreateTime"),
                                ("compression.type", "zstd", "as the producer compressed")]:
        topic = f"refused-{name.replace('.', '-')}"
        future = admin.create_topics([NewTopic(topic, 1, 1, config={name: value})],
                                     request_timeout=30)[topic]
        with pytest.raises(KafkaException) as refused:
            future.result(30)
        error = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_CONFIG, error
        assert reason in error.str(), error
        assert topic not in admin.list_topics(timeout=10).topics
