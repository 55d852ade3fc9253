"""Durability across restarts: graceful (SIGTERM) and crash (kill -9 in the middle of produce)."""

import random

import pytest
from confluent_kafka import Producer
from helpers import (BackgroundProducer, assert_log, consume_all, create_topic, log_from_deliveries,
                     make_consumer, make_producer, produce_all, verify_after_crash, wait_until,
                     watermarks)

PARTITIONS = 3

pytestmark = pytest.mark.backends


def messages(tag, count):
    return [{"key": b"%s-%06d" % (tag, i), "value": b"%s-%06d|" % (tag, i) + b"x" * (i % 200)}
            for i in range(count)]


def expected_log(*delivery_lists):
    """{partition: [(key, value)] by offset} from delivery reports."""
    acked = log_from_deliveries([d for deliveries in delivery_lists for d in deliveries])
    return {p: [(d.key, d.value) for d in ds] for p, ds in acked.items()}


def assert_watermarks(bootstrap, topic, counts):
    consumer = make_consumer(bootstrap)
    try:
        for p in range(PARTITIONS):
            assert watermarks(consumer, topic, p) == (0, counts.get(p, 0)), f"{topic}[{p}]"
    finally:
        consumer.close()


def test_sigterm_restart_keeps_everything(broker):
    topic = "graceful"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    first = produce_all(make_producer(broker.bootstrap, {"compression.type": "lz4"}), topic,
                        messages(b"before", 20000))
    first.assert_no_failures()
    expected = expected_log(first.delivered)

    broker.stop()  # asserts exit code 0
    broker.start()
    assert_log(consume_all(broker.bootstrap, topic, PARTITIONS), expected, topic)
    assert_watermarks(broker.bootstrap, topic, {p: len(r) for p, r in expected.items()})

    # Offsets continue where the recovered log ends.
    second = produce_all(make_producer(broker.bootstrap), topic, messages(b"after", 5000))
    second.assert_no_failures()
    log_from_deliveries(second.delivered, start={p: len(r) for p, r in expected.items()})
    expected = expected_log(first.delivered, second.delivered)
    assert_log(consume_all(broker.bootstrap, topic, PARTITIONS), expected, topic)

    # A restart straight after recovery changes nothing either.
    broker.restart()
    assert_log(consume_all(broker.bootstrap, topic, PARTITIONS), expected, topic)


def test_kill9_during_produce_loses_nothing_acknowledged(broker):
    topic = "crash"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    rng = random.Random(7)
    acked = {}  # value -> (partition, offset), over all rounds
    owner = {}  # (partition, offset) -> value: no position may be acknowledged twice
    sent = set()
    for rnd in range(3):
        target = rng.randint(3000, 9000)
        producer = BackgroundProducer(broker.bootstrap, topic, b"round%d" % rnd)
        producer.start()
        try:
            wait_until(lambda: len(producer.acked) >= target or not producer.is_alive(), 120,
                       f"{target} acknowledged records (round {rnd})")
            assert producer.is_alive(), f"producer thread died: {producer.failure}"
            producer.killing.set()
            broker.kill9()
        finally:
            producer.killing.set()
            producer.stopping.set()
            producer.join(timeout=120)
        assert not producer.is_alive(), "producer thread did not finish after purge"
        assert producer.failure is None, producer.failure
        assert not producer.early_errors, f"delivery errors before the kill: {producer.early_errors[:5]}"

        for p, offset, value in producer.acked:
            assert (p, offset) not in owner, \
                f"{p}/{offset} acknowledged for {owner[(p, offset)][:24]!r} and {value[:24]!r}"
            owner[(p, offset)] = value
            acked[value] = (p, offset)
        sent.update(producer.sent)
        print(f"round {rnd}: killed after {len(producer.acked)} acks "
              f"({len(producer.sent)} sent); {len(acked)} acknowledged in all")

        broker.start()
        records = consume_all(broker.bootstrap, topic, PARTITIONS)
        verify_after_crash(records, acked, sent, topic)
        assert_watermarks(broker.bootstrap, topic, {p: len(r) for p, r in records.items()})
