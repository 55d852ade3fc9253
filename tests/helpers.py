"""Client-side helpers shared by the end-to-end tests: confluent-kafka (librdkafka) and kcat,
plus client-neutral checks used by the kafka-python and aiokafka modules too.

Every wait here has a deadline. `make_consumer`/`consume_all` never join their group: they
`assign()` partitions at explicit offsets and never commit (a neutral reader of the log). Group
consumers (`make_group_consumer`, `GroupMember`) subscribe and commit.
"""

import collections
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import namedtuple
from pathlib import Path

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
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
    if os.environ.get("HOTWIRE_TEST_RDKAFKA_DEBUG"):
        base["debug"] = os.environ["HOTWIRE_TEST_RDKAFKA_DEBUG"]
        base["logger"] = _debug_logger()
    return Producer(base)


def _debug_logger():
    import logging
    logger = logging.getLogger("rdkafka")
    if not logger.handlers:
        handler = logging.FileHandler(os.environ.get("HOTWIRE_TEST_RDKAFKA_LOG", "/tmp/rdkafka.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    return logger


class DeliveryLog:
    """An on_delivery callback that records every delivery report."""

    def __init__(self):
        self.delivered = []  # Delivery, in report order
        self.failed = []  # (KafkaError, key, value)
        self.failed_at = []  # (monotonic time, partition) of each failure

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append((err, msg.key(), msg.value()))
            self.failed_at.append((time.monotonic(), msg.partition()))
        else:
            # (msg.timestamp() is not reported back by librdkafka 2.0.2's delivery reports)
            self.delivered.append(Delivery(msg.partition(), msg.offset(), msg.key(), msg.value()))

    def assert_no_failures(self):
        if self.failed:
            sample = "\n".join(f"  {err} key={short(k)}" for err, k, _ in self.failed[:10])
            by_partition = collections.Counter(p for _, p in self.failed_at)
            span = self.failed_at[-1][0] - self.failed_at[0][0] if self.failed_at else 0
            raise AssertionError(f"{len(self.failed)} delivery failures (by partition "
                                 f"{dict(by_partition)}, reported over {span:.1f} s), "
                                 f"e.g.:\n{sample}")


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


# ---------------------------------------------------------------------------------------------
# Numbered sequences (client-neutral): value i is b"<tag>-%08d" and goes to partition i % P, so
# each partition must hold exactly its numbers, in order, once each.


def numbered(tag, i):
    return b"%s-%08d" % (tag, i)


def verify_numbered_log(values, topic, partitions, tag, count):
    """`values` is {partition: [(offset, value)] in consumed order}. Partition p must hold exactly
    numbered(tag, i) for i = p, p + partitions, ... < count at offsets 0, 1, 2, ...: no duplicate,
    no gap, no reordering, nothing else."""
    problems = []
    for p in range(partitions):
        got = values.get(p, [])
        offsets = [o for o, _ in got]
        if offsets != list(range(len(got))):
            bad = next((i for i, o in enumerate(offsets) if o != i), len(offsets))
            problems.append(f"{topic}[{p}]: offsets not contiguous from 0 at position {bad}: "
                            f"{offsets[max(0, bad - 2):bad + 3]}")
        want = [numbered(tag, i) for i in range(p, count, partitions)]
        have = [v for _, v in got]
        if have != want:
            seen, dups = set(), []
            for v in have:
                if v in seen:
                    dups.append(v)
                seen.add(v)
            missing = [v for v in want if v not in seen]
            first = next((i for i, (h, w) in enumerate(zip(have, want)) if h != w),
                         min(len(have), len(want)))
            problems.append(
                f"{topic}[{p}]: {len(have)} records, expected {len(want)}; first difference at "
                f"offset {first} (got {short(have[first:first + 3])}, expected "
                f"{short(want[first:first + 3])}); {len(dups)} duplicates e.g. {short(dups[:3])}; "
                f"{len(missing)} missing e.g. {short(missing[:3])}")
    if problems:
        raise AssertionError("partition contents differ from the numbered sequence:\n  " +
                             "\n  ".join(problems))


class SequenceProducer(threading.Thread):
    """A producer thread producing numbered(tag, i) to partition i % partitions, i = 0, 1, 2, ...
    (at most `rate` per second if given) until finish(). finish() stops producing and waits for
    every report (nothing is purged: everything produced must be delivered). This one drives
    confluent-kafka (make_producer's settings plus `conf`); a subclass drives another client by
    overriding the client_* methods."""

    def __init__(self, bootstrap, topic, partitions, tag, conf=None, rate=None):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions, self.tag = bootstrap, topic, partitions, tag
        self.conf = dict(conf or {})
        self.rate = rate
        self.log = DeliveryLog()
        self.sent = 0
        self.undelivered = None
        self.failure = None
        self.producer = None
        self._stopping = threading.Event()
        self._flush_timeout = 180.0

    @property
    def acked(self):
        return len(self.log.delivered)

    def run(self):
        try:
            self.client_open()
            start = time.monotonic()
            i = 0
            while not self._stopping.is_set():
                if self.rate and i >= self.rate * (time.monotonic() - start):
                    self.client_serve(0.005)
                    continue
                if not self.client_send(i, numbered(self.tag, i), i % self.partitions):
                    self.client_serve(0.05)  # local queue full
                    continue
                i += 1
                self.sent = i
                if i % 100 == 0:
                    self.client_serve(0)
            self.undelivered = self.client_flush(self._flush_timeout)
        except BaseException as e:  # reported by finish()
            self.failure = repr(e)

    def client_open(self):
        self.producer = make_producer(self.bootstrap, self.conf)

    def client_send(self, i, value, partition):
        """Hand one record to the client; False if its queue is full (retried later)."""
        try:
            self.producer.produce(self.topic, value=value, partition=partition,
                                  on_delivery=self.log)
            return True
        except BufferError:
            return False

    def client_serve(self, timeout):
        self.producer.poll(timeout)

    def client_flush(self, timeout):
        """Wait for every report; returns how many are still missing."""
        return self.producer.flush(timeout)

    def wait_acked(self, count, timeout, what=""):
        wait_until(lambda: self.acked >= count or not self.is_alive(), timeout,
                   f"{count} acknowledged records {what}(now {self.acked})")
        assert self.is_alive(), f"producer thread ended early: {self.failure}"

    def abandon(self):
        """Stop without checking anything (cleanup after a failure elsewhere)."""
        self._flush_timeout = 5.0
        self._stopping.set()
        self.join(40)

    def finish(self, flush_timeout=180.0):
        """Stop producing, wait for every delivery report; fail on any failed report."""
        self._flush_timeout = flush_timeout
        self._stopping.set()
        self.join(flush_timeout + 30)
        assert not self.is_alive(), "producer thread did not finish"
        assert self.failure is None, f"producer thread failed: {self.failure}"
        assert self.undelivered == 0, \
            f"{self.undelivered} of {self.sent} records undelivered after {flush_timeout:.0f} s"
        self.log.assert_no_failures()
        assert self.acked == self.sent, f"{self.acked} delivery reports for {self.sent} records"
        return self.sent


def read_values(bootstrap, topic, partitions, timeout=180.0):
    """{partition: [(offset, value)]} of the whole topic, read without a group."""
    records = consume_all(bootstrap, topic, partitions, timeout=timeout)
    return {p: [(r.offset, r.value) for r in recs] for p, recs in records.items()}


# ---------------------------------------------------------------------------------------------
# Consumer groups (confluent-kafka)


def make_group_consumer(bootstrap, group, conf=None):
    """A group consumer: librdkafka's defaults except group.id and what `conf` sets."""
    base = {"bootstrap.servers": bootstrap, "group.id": group}
    base.update(conf or {})
    if os.environ.get("HOTWIRE_TEST_RDKAFKA_DEBUG"):
        base["debug"] = os.environ["HOTWIRE_TEST_RDKAFKA_DEBUG"]
        base["logger"] = _debug_logger()
    return Consumer(base)


def tp_list(assignment):
    """Sorted [(topic, partition)] of a list of TopicPartition."""
    return sorted((tp.topic, tp.partition) for tp in assignment)


class GroupMember:
    """A subscribed confluent-kafka group consumer in this process. pump() serves its rebalance
    callbacks (librdkafka assigns only when the application polls) and keeps every record (at most
    `batch` per pump). With enable.partition.eof, `eof` holds the partitions read to their end."""

    def __init__(self, name, bootstrap, group, topics, conf=None, batch=1000):
        self.name = name
        self.consumer = make_group_consumer(bootstrap, group, conf)
        self.consumer.subscribe(list(topics))
        self.batch = batch
        self.records = []  # Record, in arrival order
        self.errors = []
        self.eof = set()
        self.closed = False

    def pump(self, timeout=0.05):
        if self.closed:
            return
        # poll(), not consume(): librdkafka 2.0 (Debian's) could auto-commit offsets of records
        # that a batch consume() interrupted by a rebalance never returned (seen here as holes;
        # cf. confluent-kafka-python #1013). poll() stores exactly what it returns.
        for msg in self._poll_batch(timeout):
            err = msg.error()
            if err is None:
                self.records.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value(),
                                           msg.headers(), msg.timestamp()))
                self.eof.discard(msg.partition())
            elif err.code() == KafkaError._PARTITION_EOF:
                self.eof.add(msg.partition())
            else:
                self.errors.append(str(err))

    def _poll_batch(self, timeout):
        """Up to `batch` messages: the first waits up to `timeout`, the rest only if ready."""
        msg = self.consumer.poll(timeout)
        for _ in range(self.batch):
            if msg is None:
                return
            yield msg
            msg = self.consumer.poll(0) if _ + 1 < self.batch else None

    def by_partition(self):
        """{partition: [Record] in arrival order}."""
        out = {}
        for r in self.records:
            out.setdefault(r.partition, []).append(r)
        return out

    def assignment(self):
        return [] if self.closed else tp_list(self.consumer.assignment())

    def close(self):
        if not self.closed:
            self.closed = True
            self.consumer.close()


class RemoteGroupMember:
    """A confluent-kafka group consumer in a child process (tests/group_member.py, same
    interpreter), so that it can be killed with SIGKILL. Its JSON event lines are read by a
    thread: the latest assignment and every record it consumed (reported before its offset is
    stored for commit, so a committed record has always been reported)."""

    def __init__(self, name, bootstrap, group, topics, conf, log_path, lifetime_s=300):
        self.name = name
        self.records = []
        self.errors = []
        self._assignment = []
        self.assigned = threading.Event()
        self.log_path = Path(log_path)
        spec = {"bootstrap": bootstrap, "group": group, "topics": list(topics),
                "conf": conf or {}, "lifetime_s": lifetime_s}
        with open(self.log_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("group_member.py")),
                 json.dumps(spec)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            kind = event["event"]
            if kind == "assigned":
                self._assignment = sorted((t, p) for t, p in event["partitions"])
                self.assigned.set()
            elif kind == "revoked":
                self._assignment = []
            elif kind == "record":
                self.records.append(Record(event["partition"], event["offset"], None,
                                           event["value"].encode("latin-1"), None, None))
            elif kind == "error":
                self.errors.append(event["error"])

    def pump(self, timeout=0.05):
        time.sleep(0)  # it runs by itself

    def assignment(self):
        return [] if self.proc.poll() is not None else list(self._assignment)

    def kill9(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no member log: {e})"


def cover_problem(assignments, topic, partitions):
    """None if the members' assignments ({name: [(topic, partition)]}) together hold every
    partition of `topic` exactly once and nothing else; otherwise what is wrong."""
    held = [tp for tps in assignments.values() for tp in tps]
    if sorted(held) == [(topic, p) for p in range(partitions)]:
        return None
    return f"assignments {assignments} do not cover {topic}[0..{partitions - 1}] exactly once"


def wait_for_balanced_group(members, topic, partitions, sizes, timeout=60.0):
    """Pump `members` until their assignments cover `topic` exactly once with the partition
    counts `sizes` (any order). Returns {name: [(topic, partition)]}."""
    last = {}

    def balanced():
        for m in members:
            m.pump(0.05)
        last.clear()
        last.update({m.name: m.assignment() for m in members})
        return (cover_problem(last, topic, partitions) is None and
                sorted(len(tps) for tps in last.values()) == sorted(sizes))

    try:
        wait_until(balanced, timeout, f"members {[m.name for m in members]} to hold "
                   f"{sorted(sizes)} partitions of {topic}", interval=0)
    except AssertionError as e:
        raise AssertionError(f"{e}; last assignments: {last}") from None
    return dict(last)


def pump_until(members, predicate, timeout, what):
    def done():
        for m in members:
            m.pump(0.05)
        return predicate()
    return wait_until(done, timeout, what, interval=0)


def committed_offsets(consumer, topic, partitions, timeout=15):
    """{partition: committed offset} (OFFSET_INVALID, -1001, where none)."""
    result = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                timeout=timeout)
    errors = [(tp.partition, str(tp.error)) for tp in result if tp.error is not None]
    assert not errors, f"OffsetFetch errors for {topic}: {errors}"
    return {tp.partition: tp.offset for tp in result}


def group_committed(bootstrap, group, topic, partitions):
    """The group's committed offsets, asked by a consumer that does not join the group."""
    consumer = make_group_consumer(bootstrap, group)
    try:
        return committed_offsets(consumer, topic, partitions)
    finally:
        consumer.close()


def end_offsets(bootstrap, topic, partitions):
    consumer = make_consumer(bootstrap)
    try:
        return {p: watermarks(consumer, topic, p)[1] for p in range(partitions)}
    finally:
        consumer.close()


def decode_member_assignment(data):
    """Sorted [(topic, partition)] of a ConsumerProtocol Assignment (as DescribeGroups returns
    it: int16 version, [topic: string, partitions: [int32]], user data)."""
    if not data:
        return []
    pos = 2
    (topics,) = struct.unpack_from(">i", data, pos)
    pos += 4
    out = []
    for _ in range(max(topics, 0)):
        (n,) = struct.unpack_from(">h", data, pos)
        pos += 2
        topic = data[pos:pos + n].decode()
        pos += n
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        out.extend((topic, p) for p in struct.unpack_from(">%di" % count, data, pos))
        pos += 4 * count
    return sorted(out)


GroupView = namedtuple("GroupView", "group_id state protocol_type protocol members")
MemberView = namedtuple("MemberView", "member_id client_id host assignment")

_NEW_STATE_NAMES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead",
                    "PREPARING_REBALANCING": "PreparingRebalance",
                    "COMPLETING_REBALANCING": "CompletingRebalance", "UNKNOWN": "Unknown"}


def groups_legacy(admin, timeout=15):
    """{group_id: GroupView} from AdminClient.list_groups (librdkafka's rd_kafka_list_groups:
    ListGroups, then DescribeGroups; present in every binding version)."""
    views = {}
    for g in admin.list_groups(timeout=timeout):
        assert g.error is None or g.error.code() == KafkaError.NO_ERROR, \
            f"list_groups: group {g.id}: {g.error}"
        members = [MemberView(m.id, m.client_id, m.client_host,
                              decode_member_assignment(m.assignment)) for m in g.members]
        views[g.id] = GroupView(g.id, g.state, g.protocol_type, g.protocol, members)
    return views


def has_new_group_admin(admin):
    return hasattr(admin, "list_consumer_groups") and hasattr(admin, "describe_consumer_groups")


def groups_listed(admin, timeout=15):
    """{group_id: (state, is_simple_consumer_group)} from AdminClient.list_consumer_groups."""
    result = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    assert not result.errors, f"list_consumer_groups errors: {result.errors}"
    return {g.group_id: (_NEW_STATE_NAMES.get(g.state.name, g.state.name),
                         g.is_simple_consumer_group) for g in result.valid}


def group_described(admin, group, timeout=15):
    """GroupView from AdminClient.describe_consumer_groups (protocol_type is "" for a simple
    group, "consumer" otherwise: this API reports only that distinction)."""
    d = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(
        timeout=timeout)
    members = [MemberView(m.member_id, m.client_id, m.host,
                          tp_list(m.assignment.topic_partitions if m.assignment else []))
               for m in d.members]
    return GroupView(d.group_id, _NEW_STATE_NAMES.get(d.state.name, d.state.name),
                     "" if d.is_simple_consumer_group else "consumer", d.partition_assignor,
                     members)


def kafka_error_code(exc):
    """The KafkaError code a KafkaException (from a future or a call) carries."""
    assert isinstance(exc, KafkaException), f"not a KafkaException: {exc!r}"
    return exc.args[0].code()


# ---------------------------------------------------------------------------------------------
# Crash trials: a producer that runs until the broker is killed, and the check afterwards.


class BackgroundProducer(threading.Thread):
    """Produces keyless records (acks=all) as fast as it can until stopped, recording every
    acknowledged (partition, offset, value). On stop, everything not yet acknowledged is purged,
    so nothing is retried against the restarted broker (that could legitimately duplicate)."""

    def __init__(self, bootstrap, topic, tag, rate=None):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.tag = bootstrap, topic, tag
        self.rate = rate  # records per second at most (None: as fast as possible)
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
                    if self.rate:
                        time.sleep(100 / self.rate)
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
