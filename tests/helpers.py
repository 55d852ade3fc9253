"""Client-side helpers shared by the end-to-end tests: confluent-kafka (librdkafka) and kcat.

Every wait here has a deadline. Consumers never join a group (consumer groups are not
implemented yet): they `assign()` partitions at explicit offsets and never commit.
"""

import shutil
import subprocess
import time
import uuid
from collections import namedtuple

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

Record = namedtuple("Record", "partition offset key value headers timestamp")
Delivery = namedtuple("Delivery", "partition offset key value")


def wait_until(predicate, timeout, what, interval=0.1):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def assert_same_sequence(got, want, what):
    """got == want for long lists, reporting the first difference (pytest's verbose diff of two
    100,000-element lists would take minutes)."""
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise AssertionError(f"{what}: first difference at position {i}: got {short(g)}, "
                                 f"expected {short(w)}")
    raise AssertionError(f"{what}: {len(got)} items, expected {len(want)}")


def short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...(+{len(text) - limit} chars)"


# ---------------------------------------------------------------------------------------------
# Admin and metadata


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def topic_partition_counts(admin):
    """{topic: partition count} from a Metadata request for all topics.

    Listing all topics never auto-creates one (asking for a named topic may)."""
    md = admin.list_topics(timeout=15)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def create_topic(bootstrap, topic, partitions, config=None, timeout=30):
    admin = admin_client(bootstrap)
    new = NewTopic(topic, partitions, 1, config=config or {})
    admin.create_topics([new], request_timeout=timeout)[topic].result(timeout=timeout)
    wait_until(lambda: topic_partition_counts(admin).get(topic) == partitions, timeout,
               f"topic {topic} with {partitions} partitions in Metadata")


# ---------------------------------------------------------------------------------------------
# Producing


def make_producer(bootstrap, conf=None):
    base = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120000,
    }
    base.update(conf or {})
    return Producer(base)


class DeliveryLog:
    """An on_delivery callback that records every delivery report."""

    def __init__(self):
        self.delivered = []  # Delivery, in report order
        self.failed = []  # (KafkaError, key, value)

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append((err, msg.key(), msg.value()))
        else:
            # (msg.timestamp() is not reported back by librdkafka 2.0.2's delivery reports)
            self.delivered.append(Delivery(msg.partition(), msg.offset(), msg.key(), msg.value()))

    def assert_no_failures(self):
        if self.failed:
            sample = "\n".join(f"  {err} key={short(k)}" for err, k, _ in self.failed[:10])
            raise AssertionError(f"{len(self.failed)} delivery failures, e.g.:\n{sample}")


def produce_all(producer, topic, messages, timeout=180.0):
    """Produce each message (a dict of produce() keyword arguments) and wait for every report.

    Returns the DeliveryLog; fails if reports are still missing at the deadline."""
    log = DeliveryLog()
    deadline = time.monotonic() + timeout
    for n, message in enumerate(messages):
        while True:
            try:
                producer.produce(topic, on_delivery=log, **message)
                break
            except BufferError:  # local queue full: serve reports, then retry
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise AssertionError(f"producer queue still full after {timeout:.0f} s")
        if n % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout:.0f} s"
    return log


def log_from_deliveries(deliveries, start=None):
    """{partition: [Delivery sorted by offset]}, checking the acknowledged offsets of each
    partition are unique and contiguous from start[partition] (default 0)."""
    by_partition = {}
    for d in deliveries:
        by_partition.setdefault(d.partition, []).append(d)
    for p, items in by_partition.items():
        items.sort(key=lambda d: d.offset)
        first = (start or {}).get(p, 0)
        offsets = [d.offset for d in items]
        if offsets != list(range(first, first + len(items))):
            bad = next(i for i, o in enumerate(offsets) if o != first + i)
            raise AssertionError(
                f"partition {p}: acknowledged offsets are not contiguous from {first}: "
                f"position {bad} has offset {offsets[bad]} (neighbours {offsets[max(0, bad - 2):bad + 3]})")
    return by_partition


# ---------------------------------------------------------------------------------------------
# Consuming


def make_consumer(bootstrap, conf=None):
    base = {
        "bootstrap.servers": bootstrap,
        # Required by the binding; no group protocol is used (assign() only, never commit).
        "group.id": f"hotwire-e2e-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        # A fetch at an offset the broker says is out of range is an error, not a silent reset.
        "auto.offset.reset": "error",
    }
    base.update(conf or {})
    return Consumer(base)


def watermarks(consumer, topic, partition):
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15, cached=False)


def consume_all(bootstrap, topic, partitions, timeout=180.0, conf=None):
    """Read every partition of `topic` from the beginning to its end (EOF).

    Returns {partition: [Record in arrival order]}."""
    consumer = make_consumer(bootstrap, conf)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        records = {p: [] for p in range(partitions)}
        at_end = set()
        other_errors = []
        deadline = time.monotonic() + timeout
        while len(at_end) < partitions:
            if time.monotonic() > deadline:
                counts = {p: len(r) for p, r in records.items()}
                raise AssertionError(
                    f"{topic}: not every partition reached its end within {timeout:.0f} s; "
                    f"records so far {counts}, at end {sorted(at_end)}, "
                    f"other consumer errors {other_errors[:5]}")
            for msg in consumer.consume(num_messages=10000, timeout=0.5):
                err = msg.error()
                if err is None:
                    p = msg.partition()
                    records[p].append(Record(p, msg.offset(), msg.key(), msg.value(),
                                             msg.headers(), msg.timestamp()))
                    at_end.discard(p)
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                elif msg.topic() == topic:
                    raise AssertionError(f"consumer error on {topic}[{msg.partition()}]: {err}")
                else:
                    # Client-level notices (e.g. about the group coordinator, which this consumer
                    # never needs); kept for the timeout message.
                    other_errors.append(str(err))
        return records
    finally:
        consumer.close()


def assert_contiguous(records, topic):
    """Each partition's consumed offsets are exactly 0, 1, 2, ... (nothing skipped or repeated)."""
    for p, recs in records.items():
        offsets = [r.offset for r in recs]
        if offsets != list(range(len(offsets))):
            bad = next(i for i, o in enumerate(offsets) if o != i)
            raise AssertionError(
                f"{topic}[{p}]: consumed offsets are not contiguous from 0: position {bad} has "
                f"offset {offsets[bad]} (neighbours {offsets[max(0, bad - 2):bad + 3]})")


def assert_log(records, expected, topic):
    """The consumed log equals `expected`: {partition: [(key, value[, headers])] by offset}.

    Offsets must run 0, 1, 2, ... and every key, value (and headers, if given) match byte for
    byte. Reports the first mismatch of each partition instead of dumping whole logs."""
    assert_contiguous(records, topic)
    problems = []
    for p in sorted(set(records) | set(expected)):
        got, want = records.get(p, []), expected.get(p, [])
        if len(got) != len(want):
            problems.append(f"{topic}[{p}]: {len(got)} records consumed, {len(want)} expected")
        for rec, exp in zip(got, want):
            actual = (rec.key, rec.value, rec.headers or None)[:len(exp)]
            if actual != tuple(exp):
                problems.append(
                    f"{topic}[{p}] offset {rec.offset}: got key={short(rec.key)} "
                    f"value={short(rec.value)}; expected key={short(exp[0])} value={short(exp[1])}")
                break
    if problems:
        raise AssertionError("consumed log differs from what was produced:\n  " +
                             "\n  ".join(problems))


# ---------------------------------------------------------------------------------------------
# kcat


def kcat(*args, timeout=180, stdin=None):
    """Run kcat with a deadline; fail with its stderr unless it exits 0."""
    binary = shutil.which("kcat")
    if binary is None:
        pytest.fail("kcat is not installed (apt-get install kcat)")
    try:
        proc = subprocess.run([binary, *args], input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"")[-3000:].decode(errors="replace")
        raise AssertionError(f"kcat {' '.join(args)} ran over {timeout} s\nstderr:\n{err}")
    if proc.returncode != 0:
        err = proc.stderr[-3000:].decode(errors="replace")
        raise AssertionError(f"kcat {' '.join(args)} exited {proc.returncode}\nstderr:\n{err}")
    return proc
