"""Durability across restarts: graceful (SIGTERM) and crash (kill -9 in the middle of produce)."""

import random
import threading

import pytest
from confluent_kafka import Producer
from helpers import (assert_contiguous, assert_log, consume_all, create_topic, log_from_deliveries,
                     make_consumer, make_producer, produce_all, wait_until, watermarks)

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


class BackgroundProducer(threading.Thread):
    """Produces keyless records (acks=all) as fast as it can until stopped, recording every
    acknowledged (partition, offset, value). On stop, everything not yet acknowledged is purged,
    so nothing is retried against the restarted broker (that could legitimately duplicate)."""

    def __init__(self, bootstrap, topic, tag):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.tag = bootstrap, topic, tag
        self.sent = []  # every value handed to produce()
        self.acked = []  # (partition, offset, value)
        self.early_errors = []  # delivery errors before the kill: the broker was healthy then
        self.killing = threading.Event()
        self.stopping = threading.Event()
        self.failure = None

    def _report(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        elif not self.killing.is_set():
            self.early_errors.append(str(err))

    def run(self):
        try:
            producer = Producer({
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "compression.type": "snappy",
                "message.timeout.ms": 300000,
                "log_level": 2,  # the broker is killed on purpose; spare the connection errors
            })
            i = 0
            while not self.stopping.is_set():
                value = b"%s-%09d|" % (self.tag, i) + b"%d" % (i * 2654435761 % 10**9) * (i % 13)
                try:
                    producer.produce(self.topic, value=value, on_delivery=self._report)
                except BufferError:
                    producer.poll(0.01)
                    continue
                self.sent.append(value)
                i += 1
                if i % 100 == 0:
                    producer.poll(0)
            producer.purge(in_queue=True, in_flight=True, blocking=True)
            left = producer.flush(60)
            if left:
                self.failure = f"{left} messages still queued after purge"
        except BaseException as e:  # reported by the test thread
            self.failure = repr(e)


def verify_after_crash(records, acked, sent, topic):
    """Every acknowledged value is at its acknowledged position; nothing is duplicated or
    unknown; offsets are contiguous (the log reads to its end)."""
    assert_contiguous(records, topic)
    position = {}
    problems = []
    for p, recs in records.items():
        for r in recs:
            if r.value not in sent:
                problems.append(f"unknown value {r.value[:40]!r} at {p}/{r.offset}")
            elif r.value in position:
                problems.append(f"{r.value[:24]!r} at {position[r.value]} and again at {p}/{r.offset}")
            position[r.value] = (p, r.offset)
    lost = [(v, pos) for v, pos in acked.items() if position.get(v) != pos]
    for value, pos in lost[:10]:
        found = position.get(value)
        problems.append(f"acknowledged {value[:24]!r} at {pos[0]}/{pos[1]} is "
                        f"{'missing' if found is None else f'at {found[0]}/{found[1]}'}")
    if problems:
        raise AssertionError(f"{len(lost)} of {len(acked)} acknowledged records lost or moved; "
                             "problems:\n  " + "\n  ".join(problems[:30]))


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
