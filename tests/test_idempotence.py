"""Idempotent and transactional producers with confluent-kafka (librdkafka 2.0.x and newest).

An idempotent producer keeps producing a numbered sequence while the broker is killed (-9) and
restarted twice on the same port and storage: retries of batches the broker had already stored
must be recognised as duplicates (answered with their original offsets) from the rebuilt producer
state, so the log holds every number exactly once, in order, and every delivery report is a
success. A transactional producer gets a clear fatal error, not a hang.
"""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from helpers import SequenceProducer, create_topic, read_values, verify_numbered_log

pytestmark = [pytest.mark.clients, pytest.mark.usefixtures("librdkafka")]

PARTITIONS = 3
KILLS = 2
ACKS_PER_ROUND = 15000


def assert_acks_match_log(delivered, values, topic):
    """Every delivery report's (partition, offset) holds the value it reported: a retried
    duplicate was answered with its original offset."""
    at = {(p, o): v for p, recs in values.items() for o, v in recs}
    wrong = [(d.partition, d.offset, d.value, at.get((d.partition, d.offset)))
             for d in delivered if at.get((d.partition, d.offset)) != d.value]
    assert not wrong, f"{len(wrong)} delivery reports name a position holding something else, " \
                      f"e.g. (partition, offset, reported, stored) {wrong[:5]}"


def test_idempotent_producer_through_kill9(broker):
    topic, tag = "idempotent", b"idem"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    producer = SequenceProducer(broker.bootstrap, topic, PARTITIONS, tag, rate=10000, conf={
        "enable.idempotence": True,
        "message.timeout.ms": 300000,
        "log_level": 2,  # the broker is killed on purpose; spare the connection errors
    })
    producer.start()
    try:
        target = 0
        for kill in range(KILLS):
            target += ACKS_PER_ROUND
            producer.wait_acked(target, 120, f"before kill {kill + 1} ")
            broker.kill9()
            sent, acked = producer.sent, producer.acked
            broker.start()
            print(f"kill {kill + 1}: {acked} acknowledged of {sent} produced")
        # It goes on producing through the last restart.
        producer.wait_acked(target + ACKS_PER_ROUND, 180, "after the last restart ")
        count = producer.finish(flush_timeout=180)
    finally:
        if producer.is_alive():
            producer.abandon()
    print(f"{count} records produced and acknowledged")
    values = read_values(broker.bootstrap, topic, PARTITIONS)
    verify_numbered_log(values, topic, PARTITIONS, tag, count)
    assert_acks_match_log(producer.log.delivered, values, topic)


def test_transactional_producer_gets_fatal_error(broker):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "e2e-txn",
                         "log_level": 2})
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        producer.init_transactions(30)
    took = time.monotonic() - started
    err = raised.value.args[0]
    print(f"init_transactions failed after {took:.1f} s: {err} (fatal={err.fatal()})")
    assert took < 20, f"init_transactions took {took:.1f} s to fail: {err}"
    assert err.code() != KafkaError._TIMED_OUT, f"init_transactions timed out: {err}"
    assert err.fatal() or err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED or \
        "authoriz" in err.str().lower(), f"not a clear fatal error: {err}"
