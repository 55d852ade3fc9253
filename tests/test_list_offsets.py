"""ListOffsets: earliest/latest (watermarks) and lookup by timestamp."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition
from confluent_kafka.admin import AdminClient
from helpers import (admin_client, assert_log, consume_all, create_topic, log_from_deliveries,
                     make_consumer, make_producer, produce_all, watermarks)

END = -1  # what ListOffsets answers when no record has a timestamp >= the one asked for


def offset_for_time(consumer, topic, partition, ts):
    [tp] = consumer.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=15)
    assert tp.error is None, f"offsets_for_times({topic}[{partition}], {ts}): {tp.error}"
    return tp.offset


def first_at_or_after(timestamps, ts):
    """Kafka's answer: the offset of the first record whose timestamp is >= ts, else -1."""
    return next((offset for offset, t in enumerate(timestamps) if t >= ts), END)


def produce_timestamped(bootstrap, topic, batches):
    """batches: [[(partition, timestamp_ms or 0 for now, value)]]; each batch is flushed before
    the next.
    Returns the delivery reports of all batches."""
    producer = make_producer(bootstrap)
    deliveries = []
    for batch in batches:
        log = produce_all(producer, topic, [{"partition": p, "timestamp": ts, "value": v}
                                            for p, ts, v in batch])
        log.assert_no_failures()
        deliveries += log.delivered
    return deliveries


def test_watermarks_and_offsets_for_times(broker):
    topic, partitions = "timed", 2
    create_topic(broker.bootstrap, topic, partitions)
    consumer = make_consumer(broker.bootstrap)
    try:
        for p in range(partitions):
            assert watermarks(consumer, topic, p) == (0, 0)
            assert offset_for_time(consumer, topic, p, int(time.time() * 1000)) == END

        # Timestamps an hour ago (inside any retention), increasing per partition, with a
        # minute's gap between batches; records of the same batch are 100 ms apart.
        base = int(time.time() * 1000) - 3_600_000
        batches = [[(p, base + b * 60_000 + j * 100 + p * 7, b"p%d-b%d-r%02d" % (p, b, j))
                    for p in range(partitions) for j in range(25)] for b in range(4)]
        acked = log_from_deliveries(produce_timestamped(broker.bootstrap, topic, batches))
        stamp_of = {v: ts for batch in batches for _, ts, v in batch}
        stamps = {p: [stamp_of[d.value] for d in ds] for p, ds in acked.items()}

        records = consume_all(broker.bootstrap, topic, partitions)
        assert_log(records, {p: [(None, d.value) for d in ds] for p, ds in acked.items()}, topic)
        for p, recs in records.items():
            assert [r.timestamp for r in recs] == [(TIMESTAMP_CREATE_TIME, t) for t in stamps[p]]
            assert watermarks(consumer, topic, p) == (0, len(recs))

        for p in range(partitions):
            ts = stamps[p]
            queries = {ts[0] - 10_000, ts[-1] + 1, ts[-1] + 3_600_000}
            for t in ts:
                queries.update({t - 1, t, t + 1})
            for q in sorted(queries):
                assert offset_for_time(consumer, topic, p, q) == first_at_or_after(ts, q), \
                    f"{topic}[{p}] timestamp {q} (base + {q - base})"

        # A newer record moves the latest offset and becomes the answer past the old end.
        late_ts = int(time.time() * 1000)
        [late] = produce_timestamped(broker.bootstrap, topic, [[(0, late_ts, b"late")]])
        assert late.offset == len(stamps[0])
        assert watermarks(consumer, topic, 0) == (0, len(stamps[0]) + 1)
        assert offset_for_time(consumer, topic, 0, stamps[0][-1] + 1) == late.offset
        assert offset_for_time(consumer, topic, 0, late_ts + 1) == END
    finally:
        consumer.close()


def test_offsets_for_times_with_unordered_timestamps(broker):
    """CreateTime need not increase: the answer is still the first record at or after the time,
    not merely the first batch whose largest timestamp is."""
    topic = "unordered"
    create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 600_000
    deltas = [0, 500, 200, 900, 100, 1000, 300]
    deliveries = produce_timestamped(broker.bootstrap, topic,
                                     [[(0, base + d, b"r%d" % i) for i, d in enumerate(deltas)]])
    assert sorted((d.offset, d.value) for d in deliveries) == \
        [(i, b"r%d" % i) for i in range(len(deltas))]
    stamps = [base + d for d in deltas]
    records = consume_all(broker.bootstrap, topic, 1)[0]
    assert [r.timestamp for r in records] == [(TIMESTAMP_CREATE_TIME, t) for t in stamps]
    consumer = make_consumer(broker.bootstrap)
    try:
        for q in sorted({base + d + e for d in deltas for e in (-1, 0, 1)}):
            assert offset_for_time(consumer, topic, 0, q) == first_at_or_after(stamps, q), \
                f"timestamp base + {q - base}"
    finally:
        consumer.close()


def test_list_offsets_admin_api(broker):
    """AdminClient.list_offsets, where the installed binding has it (confluent-kafka >= 2.3)."""
    if not hasattr(AdminClient, "list_offsets"):
        pytest.skip("this confluent-kafka has no AdminClient.list_offsets")
    from confluent_kafka.admin import OffsetSpec

    topic = "listed"
    create_topic(broker.bootstrap, topic, 1)
    produce_timestamped(broker.bootstrap, topic, [[(0, 0, b"a"), (0, 0, b"b")]])
    admin = admin_client(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    for spec, want in ((OffsetSpec.earliest(), 0), (OffsetSpec.latest(), 2)):
        result = admin.list_offsets({tp: spec}, request_timeout=15)[tp].result(timeout=15)
        assert result.offset == want
