"""Long-poll Fetch: a consumer waiting at the end of a partition is answered when data arrives,
and an idle consumer does not make the broker spin."""

import json
import threading
import time

from confluent_kafka import KafkaError, TopicPartition
from helpers import create_topic, make_consumer, make_producer, produce_all

FETCH_WAIT_MS = 500
IDLE_S = 3.0


def fetch_requests_sent(stats):
    """Fetch requests sent so far, from a librdkafka statistics JSON (None if not reported)."""
    counts = [b.get("req", {}).get("Fetch") for b in json.loads(stats).get("brokers", {}).values()]
    counts = [c for c in counts if c is not None]
    return sum(counts) if counts else None


def poll_until_end(consumer, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        assert err is None or err.code() == KafkaError._PARTITION_EOF or msg.topic() is None, err
        assert err is not None, f"unexpected record at offset {msg.offset()}"
        if err.code() == KafkaError._PARTITION_EOF:
            return
    raise AssertionError(f"no end-of-partition within {timeout:.0f} s")


def test_waiting_consumer_is_woken_by_produce(broker):
    topic = "tail"
    create_topic(broker.bootstrap, topic, 1)
    log = produce_all(make_producer(broker.bootstrap), topic,
                      [{"value": b"old-%d" % i} for i in range(5)])
    log.assert_no_failures()
    end = len(log.delivered)

    stats = []
    consumer = make_consumer(broker.bootstrap, {"fetch.wait.max.ms": FETCH_WAIT_MS,
                                                "statistics.interval.ms": 1000,
                                                "stats_cb": stats.append})
    try:
        consumer.assign([TopicPartition(topic, 0, end)])
        poll_until_end(consumer)

        # Idle at the end: the broker holds each fetch for up to FETCH_WAIT_MS instead of
        # answering at once, and burns no CPU while it waits.
        stats.clear()
        cpu_before, started = broker.cpu_seconds(), time.monotonic()
        while time.monotonic() - started < IDLE_S:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is not None, f"unexpected record while idle: {msg.value()}"
                assert msg.error().code() == KafkaError._PARTITION_EOF or msg.topic() is None, \
                    f"consumer error while idle: {msg.error()}"
        cpu, wall = broker.cpu_seconds() - cpu_before, time.monotonic() - started
        assert cpu < 0.5 * wall, f"broker used {cpu:.2f} s CPU in {wall:.1f} s with one idle consumer"
        fetches = [f for f in map(fetch_requests_sent, stats) if f is not None]
        if len(fetches) >= 2:
            rate = (fetches[-1] - fetches[0]) / (len(fetches) - 1)  # per stats interval (1 s)
            assert rate <= 10, f"{rate:.0f} fetches/s while idle: fetches are not held by the broker"

        # A record produced while the consumer waits reaches it promptly.
        sent_at = []

        def produce_later():
            time.sleep(1.0)
            sent_at.append(time.monotonic())
            produce_all(make_producer(broker.bootstrap), topic, [{"value": b"new"}], timeout=30)

        producer = threading.Thread(target=produce_later, daemon=True)
        producer.start()
        deadline = time.monotonic() + 15
        received = None
        while received is None and time.monotonic() < deadline:
            msg = consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                received = (msg, time.monotonic())
        producer.join(timeout=30)
        assert received is not None, "the record produced while waiting never arrived"
        msg, received_at = received
        assert (msg.offset(), msg.value()) == (end, b"new")
        assert received_at - sent_at[0] < 2.0, \
            f"record arrived {received_at - sent_at[0]:.2f} s after it was produced"
    finally:
        consumer.close()
