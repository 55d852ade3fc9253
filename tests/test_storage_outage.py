"""The S3 store goes away and comes back: a real Garage server stopped under a running broker.

While the store is down, produce waits (and acks=all is never answered with success), readers of
data already durable and still in the hot cache keep reading, and the broker stays up. When the
store returns, the broker carries on by itself: an idempotent producer that kept going through
the outage ends with exactly its sequence in the log, and a broker restarted (kill -9) on the
same S3 prefix recovers all of it.
"""

import os
import time

import pytest
from conftest import BrokerFactory
from helpers import (SequenceProducer, consume_all, create_topic, make_producer, produce_all,
                     read_values, verify_numbered_log)

PARTITIONS = 2
OUTAGE_S = float(os.environ.get("HOTWIRE_OUTAGE_S", "30"))


@pytest.fixture
def s3_broker(hotwire_bin, tmp_path, garage):
    """A broker on the session's Garage server (this module is about S3 alone)."""
    factory = BrokerFactory(hotwire_bin, tmp_path, storage=garage)
    yield factory()
    factory.cleanup()


def test_s3_outage_blocks_acks_keeps_hot_reads_and_heals(s3_broker, garage):
    broker = s3_broker
    assert broker.storage_url.startswith("s3://"), broker.storage_url
    create_topic(broker.bootstrap, "before", PARTITIONS)
    before = produce_all(make_producer(broker.bootstrap), "before",
                         [{"value": b"before-%05d" % i, "partition": i % PARTITIONS}
                          for i in range(2000)])
    before.assert_no_failures()
    create_topic(broker.bootstrap, "through", PARTITIONS)

    producer = SequenceProducer(broker.bootstrap, "through", PARTITIONS, b"through",
                                conf={"enable.idempotence": True,
                                      "message.timeout.ms": int((OUTAGE_S + 120) * 1000)},
                                rate=500)
    producer.start()
    try:
        producer.wait_acked(500, 60, "before the outage ")
        garage.stop()
        outage_start = time.monotonic()
        time.sleep(2)  # flushes already in flight when the store vanished settle
        acked_at_stop = producer.acked

        # Durable data still in the hot cache is served while the store is down.
        hot = consume_all(broker.bootstrap, "before", PARTITIONS, timeout=30)
        assert sum(len(r) for r in hot.values()) == 2000

        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_start)))
        assert broker.running(), f"broker died during the outage\n{broker.log_tail()}"
        assert producer.acked == acked_at_stop, \
            f"{producer.acked - acked_at_stop} records acknowledged while the store was down"
        assert producer.log.failed == [], producer.log.failed[:3]
        sent_during_outage = producer.sent
        assert sent_during_outage > acked_at_stop + 100, "the producer was not producing"

        garage.start()
        producer.wait_acked(sent_during_outage, 120, "after the store came back ")
        total = producer.finish()
    finally:
        if producer.is_alive():
            producer.abandon()
        if not garage.running():
            garage.start()

    assert total > acked_at_stop
    verify_numbered_log(read_values(broker.bootstrap, "through", PARTITIONS), "through",
                        PARTITIONS, b"through", total)

    broker.kill9()
    broker.start()
    verify_numbered_log(read_values(broker.bootstrap, "through", PARTITIONS), "through",
                        PARTITIONS, b"through", total)
    again = consume_all(broker.bootstrap, "before", PARTITIONS)
    assert sorted(r.value for rs in again.values() for r in rs) == \
        sorted(b"before-%05d" % i for i in range(2000))
