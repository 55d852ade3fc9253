"""Produce and consume with real clients, for every compression codec.

Each client/codec pair gets its own 4-partition topic and 100,000 records whose key and value
encode (codec, index), so the consumed log can be checked byte for byte and in order.
"""

import os
import random
import string

import pytest
from helpers import (assert_contiguous, assert_log, assert_same_sequence, consume_all,
                     create_topic, kcat, log_from_deliveries, make_consumer, make_producer, produce_all, watermarks)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = int(os.environ.get("HOTWIRE_E2E_RECORDS", "100000"))
PARTITIONS = 4

pytestmark = pytest.mark.backends

_rng = random.Random(20261123)
_NOISE = _rng.randbytes(8192)  # incompressible bytes, every value 0..255 (NUL and \n included)
_TEXT = b"hotwire keeps the hot tail in memory and the rest in object storage; " * 64
_PRINTABLE = "".join(_rng.choice(string.ascii_letters + string.digits + " !#$%&()*+,-./:;<=>?@[]^_{|}~")
                     for _ in range(8192))


def index_of(key):
    return int(key.rsplit(b"-", 1)[1])


def py_message(codec, i):
    """Produce() kwargs for record i: mixed compressible/incompressible bytes of varying length,
    some empty and null values, some headers."""
    key = b"%s-%06d" % (codec.encode(), i)
    if i % 1009 == 0:
        value = None
    elif i % 997 == 0:
        value = b""
    else:
        start = (i * 7919) % 4096
        value = (b"%s:%06d:" % (codec.encode(), i) + _NOISE[start:start + i % 97]
                 + _TEXT[:(i * 13) % 300])
    message = {"key": key, "value": value}
    if i % 101 == 0:
        message["headers"] = [("seq", b"%d" % i), ("codec", codec.encode())]
    return message


def expected_entry(message):
    return (message["key"], message["value"], message.get("headers"))


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_roundtrip(module_broker, codec):
    bootstrap = module_broker.bootstrap
    topic = f"py-{codec}"
    create_topic(bootstrap, topic, PARTITIONS)
    messages = [py_message(codec, i) for i in range(RECORDS)]

    producer = make_producer(bootstrap, {"compression.type": codec})
    log = produce_all(producer, topic, messages)
    log.assert_no_failures()
    assert len(log.delivered) == RECORDS

    # Acknowledged offsets: contiguous from 0 in every partition, and in production order.
    acked = log_from_deliveries(log.delivered)
    assert sorted(acked) == list(range(PARTITIONS)), f"records reached partitions {sorted(acked)}"
    expected = {}
    for p, deliveries in acked.items():
        order = [index_of(d.key) for d in deliveries]
        assert_same_sequence(order, sorted(order), f"{topic}[{p}]: record index by offset")
        expected[p] = [expected_entry(messages[i]) for i in order]

    records = consume_all(bootstrap, topic, PARTITIONS)
    assert {p: len(r) for p, r in records.items()} == {p: len(e) for p, e in expected.items()}
    assert_log(records, expected, topic)

    consumer = make_consumer(bootstrap)
    try:
        for p in range(PARTITIONS):
            assert watermarks(consumer, topic, p) == (0, len(expected[p]))
    finally:
        consumer.close()


def kcat_line(codec, i):
    """key:value for kcat -K: (the key has no ':'; values are printable, without newlines)."""
    start = (i * 7919) % 4096
    value = "" if i % 997 == 0 else f"{codec}.{i:06d}." + _PRINTABLE[start:start + i % 150]
    return f"{codec}-{i:06d}", value


def parse_kcat_output(out):
    """Lines of '%p %o %k %s' -> {partition: [(offset, key, value)]} in output order."""
    records = {}
    for line in out.split(b"\n")[:-1]:
        p, o, k, v = line.split(b" ", 3)
        records.setdefault(int(p), []).append((int(o), k, v))
    return records


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_roundtrip(module_broker, codec, tmp_path):
    bootstrap = module_broker.bootstrap
    topic = f"kcat-{codec}"
    create_topic(bootstrap, topic, PARTITIONS)
    lines = [kcat_line(codec, i) for i in range(RECORDS)]
    input_file = tmp_path / "input.txt"
    input_file.write_text("".join(f"{k}:{v}\n" for k, v in lines))

    produced = kcat("-P", "-b", bootstrap, "-t", topic, "-z", codec, "-X", "acks=all",
                    "-X", "linger.ms=5", "-K:", "-l", str(input_file))
    assert b"Delivery failed" not in produced.stderr, produced.stderr[-2000:].decode(errors="replace")

    out = kcat("-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-o", "beginning",
               "-f", "%p %o %k %s\n").stdout
    by_partition = parse_kcat_output(out)
    assert sorted(by_partition) == list(range(PARTITIONS)), f"partitions seen: {sorted(by_partition)}"
    seen = set()
    for p, recs in by_partition.items():
        assert_same_sequence([o for o, _, _ in recs], list(range(len(recs))),
                             f"{topic}[{p}]: offsets")
        order = [index_of(k) for _, k, _ in recs]
        assert_same_sequence(order, sorted(set(order)), f"{topic}[{p}]: record index by offset")
        assert_same_sequence([(k.decode(), v.decode()) for _, k, v in recs],
                             [lines[i] for i in order], f"{topic}[{p}]: key:value by offset")
        seen.update(order)
    assert len(seen) == RECORDS == sum(len(r) for r in by_partition.values())

    # The same log read by the other client: identical partitions, offsets, keys and values.
    records = consume_all(bootstrap, topic, PARTITIONS)
    assert_contiguous(records, topic)
    for p, recs in by_partition.items():
        assert_same_sequence([(r.offset, r.key, r.value or b"") for r in records[p]], recs,
                             f"{topic}[{p}]: confluent-kafka's read vs kcat's")
