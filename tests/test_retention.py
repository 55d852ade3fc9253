"""Retention (retention.bytes, retention.ms) and DeleteRecords: the log start moves, what is
left reads back exactly, and the new log start survives a restart."""

import time

import pytest
from confluent_kafka import TopicPartition
from helpers import (admin_client, consume_all, create_topic, make_consumer, make_producer,
                     produce_all, wait_until, watermarks)

pytestmark = pytest.mark.clients

# Compaction and retention checks run often; segments stay small so retention has several to
# choose from.
# Flush objects of at most 256 KiB: a segment holds whole flush chunks, so segments roll near
# the 1 MiB target only if one flush's chunk of the partition is smaller than that.
MAINTENANCE = [
    "--flush-interval-ms", "5",
    "--flush-max-bytes", "262144",
    "--compaction-interval-ms", "100",
    "--compaction-min-objects", "2",
    "--compaction-min-mib", "0",
    "--compaction-max-wait-ms", "300",
    "--segment-target-mib", "1",
    "--segment-chunk-kib", "256",
    "--retention-check-interval-ms", "200",
]

VALUE_PAD = b"x" * 90


def value(i):
    return b"%08d|" % i + VALUE_PAD


def produce_numbered(bootstrap, topic, first, count):
    log = produce_all(make_producer(bootstrap, {"linger.ms": 20}), topic,
                      [{"value": value(i)} for i in range(first, first + count)])
    log.assert_no_failures()


def low_high(bootstrap, topic):
    consumer = make_consumer(bootstrap)
    try:
        return watermarks(consumer, topic, 0)
    finally:
        consumer.close()


def stable_low_high(bootstrap, topic, quiet_s=1.5, timeout=60):
    """The watermarks once the log start has not moved for `quiet_s`."""
    deadline = time.monotonic() + timeout
    last, since = low_high(bootstrap, topic), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = low_high(bootstrap, topic)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"{topic}: log start still moving after {timeout} s ({last})")


def assert_reads_from(bootstrap, topic, low, high):
    """Reading from the beginning starts at `low` and returns value(o) at every offset o."""
    records = consume_all(bootstrap, topic, 1)[0]
    offsets = [r.offset for r in records]
    assert offsets == list(range(low, high)), f"offsets {offsets[:3]}..{offsets[-3:]}"
    bad = [r.offset for r in records if r.value != value(r.offset)]
    assert not bad, f"wrong values at offsets {bad[:5]}"


def test_retention_bytes_deletes_oldest_segments(broker_factory):
    broker = broker_factory(extra_args=MAINTENANCE)
    topic = "by-size"
    create_topic(broker.bootstrap, topic, 1, config={"retention.bytes": "1500000"})
    total = 40000  # about 4.5 MB of batches
    produce_numbered(broker.bootstrap, topic, 0, total)
    wait_until(lambda: low_high(broker.bootstrap, topic)[0] > 0, 60, "retention to move the log start")
    # Compaction and retention go on while the last flush objects are folded in: wait until the
    # log start stays put (several retention checks) before reading from it.
    low, high = stable_low_high(broker.bootstrap, topic)
    assert high == total
    retained = (high - low) * (len(value(0)) + 10)
    assert retained >= 1_500_000 * 0.8, f"kept only {high - low} records: deleted too much"
    assert_reads_from(broker.bootstrap, topic, low, high)

    broker.kill9()
    broker.start()
    low_after, high_after = stable_low_high(broker.bootstrap, topic)
    assert (low_after, high_after) >= (low, high) and high_after == total
    assert_reads_from(broker.bootstrap, topic, low_after, high_after)


def test_retention_ms_deletes_expired_segments(broker_factory):
    broker = broker_factory(extra_args=MAINTENANCE)
    topic = "by-age"
    # 3 s: long enough that the records produced after the expiry are still there when read.
    create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "3000"})
    produce_numbered(broker.bootstrap, topic, 0, 5000)
    # Once compacted and 3 s old, every segment expires; the log end stays.
    wait_until(lambda: low_high(broker.bootstrap, topic) == (5000, 5000), 60,
               "every record to expire")
    produce_numbered(broker.bootstrap, topic, 5000, 100)
    assert_reads_from(broker.bootstrap, topic, 5000, 5100)
    broker.restart()
    low, high = low_high(broker.bootstrap, topic)
    assert high == 5100 and low >= 5000


def delete_records(bootstrap, topic, offset):
    """DeleteRecords through the newest confluent-kafka; returns the low watermark."""
    admin = admin_client(bootstrap)
    if not hasattr(admin, "delete_records"):
        pytest.skip("this confluent-kafka has no AdminClient.delete_records (added in 2.4)")
    futures = admin.delete_records([TopicPartition(topic, 0, offset)], request_timeout=30)
    (result,) = [f.result(timeout=30) for f in futures.values()]
    return result.low_watermark


def test_delete_records_moves_the_log_start_durably(broker_factory):
    broker = broker_factory(extra_args=MAINTENANCE)
    topic = "trimmed"
    create_topic(broker.bootstrap, topic, 1)
    produce_numbered(broker.bootstrap, topic, 0, 3000)
    assert delete_records(broker.bootstrap, topic, 1234) == 1234
    assert low_high(broker.bootstrap, topic) == (1234, 3000)
    assert_reads_from(broker.bootstrap, topic, 1234, 3000)
    # A fetch below the log start is out of range, as in Kafka.
    consumer = make_consumer(broker.bootstrap)
    try:
        consumer.assign([TopicPartition(topic, 0, 10)])
        msg = consumer.poll(15)
        assert msg is not None and msg.error() is not None, "fetch below the log start served"
    finally:
        consumer.close()
    # Past the high watermark: refused; -1 means up to it.
    with pytest.raises(Exception):
        delete_records(broker.bootstrap, topic, 99999)
    broker.kill9()
    broker.start()
    assert low_high(broker.bootstrap, topic) == (1234, 3000)
    assert delete_records(broker.bootstrap, topic, -1) == 3000
    produce_numbered(broker.bootstrap, topic, 3000, 10)
    assert_reads_from(broker.bootstrap, topic, 3000, 3010)
