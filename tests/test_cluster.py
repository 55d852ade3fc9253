"""A cluster on loopback: etcd, three brokers on one storage root (fs://, and S3 on Garage in
the `backends` runs). Leaders are killed with SIGKILL, paused with SIGSTOP, restarted, and etcd
itself is killed, under idempotent acks=all producers and a consumer group; every partition
must end up holding exactly the numbered sequence produced (nothing lost, nothing duplicated,
nothing reordered), and committed offsets must never go backwards.

`HOTWIRE_CLUSTER_TRIALS` sets the number of randomized failover trials (default 20, as the
issue asks; more for a long run): each kills -9, pauses or restarts the leader of a random
partition, or takes etcd down for up to 4 s; `HOTWIRE_CLUSTER_SEED` fixes their seed.
"""

import contextlib
import functools
import os
import random
import threading
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition

from cluster import Cluster
from helpers import (Delivery, SequenceProducer, create_topic, make_group_consumer, numbered,
                     read_values, verify_numbered_log, wait_until)


PARTITIONS = 8
IDEMPOTENT = {"enable.idempotence": True, "message.timeout.ms": 120000}


@pytest.fixture
def cluster(hotwire_bin, tmp_path, storage_backend):
    c = Cluster(hotwire_bin, tmp_path, storage=storage_backend)
    yield c
    c.kill()


# Known bugs, reported as xfail with their evidence until fixed; any other failure fails. Each
# is matched on its exact symptom: {symptom in the assertion message: the bug}. None is open:
# the fatal OUT_OF_ORDER_SEQUENCE_NUMBER seen once in 20 trials (issue 14, stop 22) was not
# seen again in 140 trials once a batch pipelined behind a refused one is refused too.
KNOWN_BUGS = {}


@contextlib.contextmanager
def known_bugs():
    """Turns the failures of KNOWN_BUGS into xfail, evidence attached; re-raises the rest."""
    try:
        yield
    except AssertionError as e:
        for symptom, bug in KNOWN_BUGS.items():
            if symptom in str(e):
                pytest.xfail(f"known bug ({bug}): {e}")
        raise


def xfail_known_bugs(test):
    """Runs `test` under known_bugs()."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        with known_bugs():
            return test(*args, **kwargs)
    return wrapper


class GroupReader(threading.Thread):
    """A group member consuming the topic and committing synchronously every 50 records; keeps
    every offset the coordinator acknowledged, so that a committed offset going backwards is
    caught.

    Synchronous, because librdkafka reorders asynchronous commits across a coordinator change:
    commits issued while the coordinator moves wait in the client, and older ones can reach the
    new coordinator after newer ones, legitimately overwriting them (last write wins, as in
    Kafka). With one commit at a time, what the coordinator acknowledged must stay."""

    def __init__(self, bootstrap, topic, group):
        super().__init__(daemon=True)
        self.topic, self.group = topic, group
        self.consumer = make_group_consumer(bootstrap, group, {
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        self.consumed = 0
        self.committed = {}  # partition -> highest offset committed (acknowledged)
        self.errors = []
        self.notes = []  # (time, consumed, positions) every 5 s, for failure messages
        self._halt = threading.Event()

    def run(self):
        self.consumer.subscribe([self.topic])
        since_commit = 0
        last_note = time.monotonic()
        while not self._halt.is_set():
            if time.monotonic() - last_note > 5:
                last_note = time.monotonic()
                try:
                    assigned = self.consumer.assignment()
                    self.notes.append((round(last_note), self.consumed, sorted(
                        (tp.partition, tp.offset) for tp in self.consumer.position(assigned))))
                except KafkaException as e:
                    self.notes.append(str(e))
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                self.errors.append(str(msg.error()))
                continue
            self.consumed += 1
            since_commit += 1
            if since_commit >= 50:
                since_commit = 0
                try:
                    self._committed(self.consumer.commit(asynchronous=False))
                except KafkaException as e:
                    self.errors.append(f"commit: {e}")

    def _committed(self, partitions):
        """Records a commit the coordinator acknowledged."""
        for tp in partitions or []:
            if tp.error is None and tp.offset >= 0:
                self.committed[tp.partition] = max(self.committed.get(tp.partition, -1),
                                                   tp.offset)
            elif tp.error is not None:
                self.errors.append(f"commit {tp.partition}: {tp.error}")

    def stop(self):
        self._halt.set()
        self.join(30)
        self.consumer.close()


def assert_commits_kept(bootstrap, reader):
    """The group's committed offsets, read back, are at least what each commit acknowledged."""
    consumer = make_group_consumer(bootstrap, reader.group)
    try:
        result = consumer.committed(
            [TopicPartition(reader.topic, p) for p in range(PARTITIONS)], timeout=30)
    finally:
        consumer.close()
    stored = {tp.partition: tp.offset for tp in result}
    behind = {p: (o, stored.get(p)) for p, o in reader.committed.items() if stored.get(p, -1) < o}
    assert not behind, (f"committed offsets went backwards (acknowledged, now): {behind}; "
                        f"consumer errors {reader.errors[-10:]}; positions {reader.notes[-4:]}")


class AioSequence(SequenceProducer):
    """SequenceProducer driving aiokafka's idempotent producer on its own event loop."""

    def run(self):
        import asyncio

        from aiokafka import AIOKafkaProducer

        async def produce():
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap.split(","),
                                        enable_idempotence=True, acks="all",
                                        request_timeout_ms=30000)
            await producer.start()
            pending = []
            start = time.monotonic()
            i = 0
            try:
                while not self._stopping.is_set():
                    if self.rate and i >= self.rate * (time.monotonic() - start):
                        await asyncio.sleep(0.005)
                        continue
                    value = numbered(self.tag, i)
                    future = await producer.send(self.topic, value=value,
                                                 partition=i % self.partitions)
                    pending.append((value, future))
                    i += 1
                    self.sent = i
                    if len(pending) >= 500:
                        await self._settle(pending)
                await self._settle(pending)
            finally:
                await producer.stop()

        try:
            asyncio.run(produce())
            self.undelivered = 0
        except BaseException as e:  # reported by finish()
            self.failure = repr(e)

    async def _settle(self, pending):
        for value, future in pending:
            try:
                md = await future
                self.log.delivered.append(Delivery(md.partition, md.offset, None, value))
            except Exception as e:  # noqa: BLE001 - every failure is reported
                self.log.failed.append((e, None, value))
        pending.clear()


def sequence_producer(family, bootstrap, topic, tag, rate):
    """An idempotent acks=all producer thread of `family` (skipped where it is not installed)."""
    if family == "confluent-kafka":
        return SequenceProducer(bootstrap, topic, PARTITIONS, tag, conf=IDEMPOTENT, rate=rate)
    if family == "kafka-python":
        pytest.importorskip("kafka", minversion="3.0")
        from test_kafka_python import KafkaPythonSequence
        # kafka-python 3's defaults: idempotent, acks=all.
        return KafkaPythonSequence(bootstrap.split(","), topic, PARTITIONS, tag, rate=rate)
    pytest.importorskip("aiokafka")
    return AioSequence(bootstrap, topic, PARTITIONS, tag, rate=rate)


@pytest.mark.backends
@pytest.mark.clients
@pytest.mark.parametrize("family", ["confluent-kafka", "kafka-python", "aiokafka"])
@xfail_known_bugs
def test_kill9_of_a_leader_loses_and_duplicates_nothing(cluster, family, storage_backend):
    topic = "kill9"
    create_topic(cluster.bootstrap, topic, PARTITIONS)
    cluster.wait_topic_everywhere(topic)
    leaders = cluster.leaders(topic)
    producer = sequence_producer(family, cluster.bootstrap, topic, b"k", rate=2000)
    reader = GroupReader(cluster.bootstrap, topic, "kill9-group")
    producer.start()
    reader.start()
    try:
        producer.wait_acked(2000, 60)
        try:
            wait_until(lambda: reader.committed, 60, "a first commit")
        except AssertionError:
            raise AssertionError(f"no commit acknowledged in 60 s: consumed {reader.consumed}, "
                                 f"errors {reader.errors[-10:]}, positions {reader.notes[-4:]}")
        victim = cluster.broker(leaders[0])
        victim.kill9()
        killed_at, acked_at_kill = time.monotonic(), producer.acked
        new_leader = cluster.wait_leader_not(topic, 0, victim.node_id)
        producer.wait_acked(acked_at_kill + 2000, 60, "after the kill ")
        print(f"partition 0: {victim.node_id} -> {new_leader}; "
              f"2000 more acked {time.monotonic() - killed_at:.2f} s after the kill")
        victim.start()
        producer.wait_acked(producer.acked + 2000, 60, "after the restart ")
    finally:
        producer.finish()
    try:
        wait_until(lambda: reader.consumed >= producer.acked, 120,
                   f"the group consuming {producer.acked} records")
    except AssertionError:
        raise AssertionError(f"the group consumed {reader.consumed} of {producer.acked} "
                             f"acknowledged records in 120 s: errors {reader.errors[-10:]}, "
                             f"positions {reader.notes[-4:]}")
    reader.stop()
    verify_numbered_log(read_values(cluster.bootstrap, topic, PARTITIONS), topic, PARTITIONS,
                        b"k", producer.sent)
    assert_commits_kept(cluster.bootstrap, reader)
    if storage_backend is not None:
        assert_flushes_went_to_streams(storage_backend, cluster)


def assert_flushes_went_to_streams(s3, cluster):
    """On an object store every broker writes one flush stream for the shards it leads: the
    shards' roots hold stream markers and no flush objects of their own."""
    keys = list(s3.list_objects(f"{cluster.name}/"))
    own_flush_objects = [k for k in keys if "/wal/" in k and k.endswith(".hwf")]
    markers = [k for k in keys if "/shards/" in k and k.endswith(".marker")]
    stream_objects = [k for k in keys if k.startswith(f"{cluster.name}/streams/")]
    assert not own_flush_objects, f"shards wrote flush objects of their own: {own_flush_objects[:5]}"
    assert markers, f"no stream markers among {keys[:20]}"
    assert stream_objects, f"no stream objects among {keys[:20]}"


@xfail_known_bugs
@pytest.mark.backends
def test_a_paused_leader_acknowledges_nothing_after_its_shards_moved(cluster):
    topic = "paused"
    create_topic(cluster.bootstrap, topic, PARTITIONS)
    cluster.wait_topic_everywhere(topic)
    leaders = cluster.leaders(topic)
    producer = SequenceProducer(cluster.bootstrap, topic, PARTITIONS, b"p", conf=IDEMPOTENT,
                                rate=2000)
    producer.start()
    try:
        producer.wait_acked(2000, 60)
        victim = cluster.broker(leaders[0])
        victim.pause()
        paused_at = time.monotonic()
        cluster.wait_leader_not(topic, 0, victim.node_id)
        moved_in = time.monotonic() - paused_at
        producer.wait_acked(producer.acked + 2000, 60, "while the old leader is paused ")
        victim.resume()
        # The old leader wakes up past its lease: what it had queued is refused, and it
        # joins again under a new lease.
        producer.wait_acked(producer.acked + 2000, 60, "after it resumed ")
        print(f"paused leader's shards moved after {moved_in:.2f} s")
    finally:
        producer.finish()
    verify_numbered_log(read_values(cluster.bootstrap, topic, PARTITIONS), topic, PARTITIONS,
                        b"p", producer.sent)
    assert "lease" in cluster.broker(leaders[0]).log_tail(400)


# Flushes that wait 800 ms for more batches straddle the moment the lease stops being surely
# valid: batches appended just before it are written after it, so their writes are refused
# (not merely held back) until etcd returns.
FLUSH_AFTER_THE_LEASE = ("--flush-group-commit", "false", "--flush-interval-ms", "800")


@pytest.fixture(params=["group-commit", "flush-after-the-lease"])
def outage_cluster(request, hotwire_bin, tmp_path, storage_backend):
    extra = FLUSH_AFTER_THE_LEASE if request.param == "flush-after-the-lease" else ()
    c = Cluster(hotwire_bin, tmp_path, storage=storage_backend, extra_args=extra)
    yield c
    c.kill()


@xfail_known_bugs
def test_without_etcd_brokers_stop_acknowledging_and_resume_when_it_returns(outage_cluster):
    cluster = outage_cluster
    topic = "etcd-down"
    create_topic(cluster.bootstrap, topic, PARTITIONS)
    cluster.wait_topic_everywhere(topic)
    producer = SequenceProducer(cluster.bootstrap, topic, PARTITIONS, b"e", conf=IDEMPOTENT,
                                rate=1000)
    producer.start()
    try:
        producer.wait_acked(1000, 60)
        cluster.etcd.kill()
        time.sleep(3)
        stalled = producer.acked
        time.sleep(float(os.environ.get("HOTWIRE_ETCD_OUTAGE_S", "30")) - 3)
        # Nothing acknowledged once the leases could no longer be renewed (1 s), and nothing
        # new becomes visible; what was durable before is still served.
        assert producer.acked == stalled, "writes acknowledged without a valid lease"
        during = read_values(cluster.bootstrap, topic, PARTITIONS, timeout=60)
        assert sum(len(v) for v in during.values()) >= stalled
        for p, got in during.items():
            want = [numbered(b"e", i) for i in range(p, p + PARTITIONS * len(got), PARTITIONS)]
            assert [v for _, v in got] == want, f"partition {p} is not the sequence's prefix"
        cluster.etcd.start()
        producer.wait_acked(stalled + 1000, 90, "after etcd returned ")
    finally:
        producer.finish()
    verify_numbered_log(read_values(cluster.bootstrap, topic, PARTITIONS), topic, PARTITIONS,
                        b"e", producer.sent)


@xfail_known_bugs
@pytest.mark.backends
def test_randomized_failover_trials(cluster):
    trials = int(os.environ.get("HOTWIRE_CLUSTER_TRIALS", "20"))
    seed = int(os.environ.get("HOTWIRE_CLUSTER_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"HOTWIRE_CLUSTER_SEED={seed}")
    topic = "trials"
    create_topic(cluster.bootstrap, topic, PARTITIONS)
    cluster.wait_topic_everywhere(topic)
    producer = SequenceProducer(cluster.bootstrap, topic, PARTITIONS, b"t", conf=IDEMPOTENT,
                                rate=1500)
    reader = GroupReader(cluster.bootstrap, topic, "trials-group")
    producer.start()
    reader.start()
    failovers = []
    try:
        producer.wait_acked(500, 60)
        for trial in range(trials):
            cluster.wait_settled()
            leaders = cluster.leaders(topic)
            partition = rng.randrange(PARTITIONS)
            victim = cluster.broker(leaders[partition])
            action = rng.choice(["kill", "pause", "restart", "etcd"])
            started = time.monotonic()
            if action == "etcd":
                # etcd down for up to a few lease TTLs: the leaders stop acknowledging once
                # their deadline passes and resume with the same shards when it returns.
                cluster.etcd.kill()
                time.sleep(rng.uniform(0.2, 4))
                cluster.etcd.start()
                producer.wait_acked(producer.acked + 300, 90, f"trial {trial} ({action}) ")
                failovers.append((action, time.monotonic() - started))
                continue
            if action == "kill":
                victim.kill9()
            elif action == "pause":
                victim.pause()
            else:
                victim.stop()
            cluster.wait_leader_not(topic, partition, victim.node_id)
            producer.wait_acked(producer.acked + 300, 60, f"trial {trial} ({action}) ")
            failovers.append((action, time.monotonic() - started))
            if action == "pause":
                time.sleep(rng.uniform(0, 1))
                victim.resume()
            else:
                victim.start()
            producer.wait_acked(producer.acked + 300, 60, f"trial {trial} after recovery ")
    finally:
        producer.finish()
    try:
        wait_until(lambda: reader.consumed >= producer.acked, 120, "the group catching up")
    except AssertionError:
        raise AssertionError(f"the group consumed {reader.consumed} of {producer.acked}; "
                             f"errors {reader.errors[-10:]}; notes {reader.notes[-6:]}")
    reader.stop()
    print("failovers (action, seconds to leader moved and 300 more acked):",
          [(a, round(s, 2)) for a, s in failovers])
    verify_numbered_log(read_values(cluster.bootstrap, topic, PARTITIONS), topic, PARTITIONS,
                        b"t", producer.sent)
    assert_commits_kept(cluster.bootstrap, reader)
