"""Committed offsets with confluent-kafka group consumers: commit (synchronously), go away, and a
new consumer of the group resumes exactly at the committed offsets — after a consumer restart,
after a broker SIGTERM restart, and after a broker kill -9 straight after the commit was answered
(an answered OffsetCommit is durable)."""

import pytest
from confluent_kafka import TopicPartition
from helpers import (GroupMember, committed_offsets, create_topic, group_committed,
                     log_from_deliveries, make_group_consumer, wait_until,
                     make_producer, produce_all, pump_until, short)

pytestmark = [pytest.mark.clients, pytest.mark.usefixtures("librdkafka")]

PARTITIONS = 3
PER_PARTITION = 300


def _check_run(records, expected, first_offsets, topic, who):
    """records {p: [Record]} start at first_offsets[p] and follow the produced log."""
    for p, recs in records.items():
        start = first_offsets.get(p, 0)
        offsets = [r.offset for r in recs]
        assert offsets == list(range(start, start + len(recs))), \
            f"{who}: {topic}[{p}] offsets {short(offsets)} are not contiguous from {start}"
        for r in recs:
            assert (r.key, r.value) == expected[p][r.offset], \
                f"{who}: {topic}[{p}]@{r.offset} holds {short(r.value)}, " \
                f"produced {short(expected[p][r.offset][1])}"


@pytest.mark.parametrize("restart", ["consumer", "broker-sigterm", "broker-kill9"])
def test_commit_and_resume(group_broker, restart):
    bootstrap = group_broker.bootstrap
    topic, group = "resume", "g-resume"
    total = PARTITIONS * PER_PARTITION
    create_topic(bootstrap, topic, PARTITIONS)
    log = produce_all(make_producer(bootstrap), topic,
                      [{"key": b"k%d" % i, "value": b"resume-%06d" % i, "partition": i % PARTITIONS}
                       for i in range(total)])
    log.assert_no_failures()
    expected = {p: [(d.key, d.value) for d in ds]
                for p, ds in log_from_deliveries(log.delivered).items()}

    # A short session: after a kill -9 the first consumer's LeaveGroup is lost with its
    # connection, and the second one's join waits for the first member's session to expire
    # (librdkafka's default is 45 s).
    conf = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    first = GroupMember("first", bootstrap, group, [topic], conf, batch=10)
    try:
        pump_until([first], lambda: len(first.records) >= total // 2, 60,
                   f"{total // 2} records consumed by the first consumer")
        consumed = first.by_partition()
        _check_run(consumed, expected, {}, topic, "first consumer")
        commit = {p: recs[-1].offset + 1 for p, recs in consumed.items()}
        answer = first.consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in sorted(commit.items())],
            asynchronous=False)
        assert sorted((tp.partition, tp.offset, tp.error) for tp in answer) == \
            sorted((p, o, None) for p, o in commit.items()), answer
        if restart == "broker-kill9":
            group_broker.kill9()  # straight after the commit was answered
            group_broker.start()
        else:
            # An uncommitted tail: consumed, never committed, so it is delivered again.
            pump_until([first], lambda: len(first.records) >= total // 2 + 100, 60,
                       "an uncommitted tail of 100 records")
    finally:
        first.close()  # enable.auto.commit=false: commits nothing
    if restart == "broker-sigterm":
        group_broker.restart()
    print(f"committed {commit} after {total // 2}+ records; restart: {restart}")

    assert group_committed(bootstrap, group, topic, PARTITIONS) == \
        {p: commit.get(p, -1001) for p in range(PARTITIONS)}

    second = GroupMember("second", bootstrap, group, [topic],
                         dict(conf, **{"enable.partition.eof": True}))
    try:
        pump_until([second], lambda: second.eof == set(range(PARTITIONS)), 60,
                   "the second consumer to read every partition to its end")
        assert not second.errors, second.errors
        resumed = second.by_partition()
        for p in range(PARTITIONS):
            first_offset = resumed[p][0].offset if resumed.get(p) else PER_PARTITION
            assert first_offset == commit.get(p, 0), \
                f"{topic}[{p}]: resumed at offset {first_offset}, committed {commit.get(p)}"
            assert len(resumed.get(p, [])) == PER_PARTITION - commit.get(p, 0)
        _check_run(resumed, expected, commit, topic, "second consumer")
        # It commits the rest: the group's committed offsets are then the partition ends.
        second.consumer.commit(
            offsets=[TopicPartition(topic, p, PER_PARTITION) for p in range(PARTITIONS)],
            asynchronous=False)
    finally:
        second.close()
    assert group_committed(bootstrap, group, topic, PARTITIONS) == \
        {p: PER_PARTITION for p in range(PARTITIONS)}


def test_commits_sent_back_to_back_take_effect_in_order(group_broker):
    """librdkafka's test 0030 shape: 50 asynchronous commits of rising offsets go out back to
    back on the coordinator connection; once all are answered, OffsetFetch must return the
    last one (Kafka applies commits of one connection in the order they were sent)."""
    bootstrap = group_broker.bootstrap
    topic, group = "commit-order", "g-commit-order"
    create_topic(bootstrap, topic, 1)
    answered = []
    consumer = make_group_consumer(bootstrap, group, {
        "enable.auto.commit": False,
        "on_commit": lambda err, tps: answered.append((err, [(tp.offset, tp.error) for tp in tps])),
    })
    try:
        for round_ in range(3):
            base = round_ * 100
            for i in range(1, 51):
                consumer.commit(offsets=[TopicPartition(topic, 0, base + i)], asynchronous=True)
            wait_until(lambda: (consumer.poll(0.05), len(answered) >= 50 * (round_ + 1))[1], 30,
                       f"answers to round {round_}'s 50 commits")
            errors = [a for a in answered if a[0] is not None or any(e for _, e in a[1])]
            assert not errors, errors
            assert committed_offsets(consumer, topic, 1) == {0: base + 50}, \
                f"round {round_}: 50 commits answered, the last was {base + 50}"
    finally:
        consumer.close()
