"""aiokafka 0.14 (ApiVersions v0; InitProducerId v0 with enable_idempotence=True): its default
producer, then an idempotent one; a group of two consumers (its defaults: roundrobin assignor,
auto-commit) that consumes everything and commits; a new consumer resumes at the commits.

Runs only where aiokafka imports (the venv of scripts/test.sh); the log is read back and checked
with the neutral confluent-kafka reader of helpers.py.
"""

import asyncio
import time

import pytest

aiokafka = pytest.importorskip("aiokafka")
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from helpers import (cover_problem, create_topic, end_offsets, group_committed,  # noqa: E402
                     numbered, read_values, short, verify_numbered_log)

pytestmark = pytest.mark.clients

PARTITIONS = 3
TAG = b"aio"


async def produce(bootstrap, topic, start, count, **conf):
    """numbered(TAG, i) for start <= i < start + count to partition i % PARTITIONS; returns
    [(partition, offset, value)] as acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **conf)
    await producer.start()
    try:
        values = [numbered(TAG, i) for i in range(start, start + count)]
        futures = [await producer.send(topic, value=v, partition=i % PARTITIONS)
                   for i, v in enumerate(values, start)]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset, v) for m, v in zip(metas, values)]


async def consume_until(consumers, records, done, timeout, what):
    """getmany() on every consumer, appending (partition, offset, value), until done()."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            held = {i: sorted(c.assignment()) for i, c in enumerate(consumers)}
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"{len(records)} records, assignments {held}")
        for c in consumers:
            for tp, batch in (await c.getmany(timeout_ms=100)).items():
                records.extend((tp.partition, r.offset, r.value) for r in batch)


def check_records(records, values, who):
    at = {(p, o): v for p, recs in values.items() for o, v in recs}
    for p, o, v in records:
        assert at.get((p, o)) == v, f"{who}: {p}@{o} read {short(v)}, log holds {short(at.get((p, o)))}"


def test_producers_and_group_consumers(module_group_broker):
    bootstrap = module_group_broker.bootstrap
    topic, group = "aio", "g-aio"
    create_topic(bootstrap, topic, PARTITIONS)

    async def scenario():
        acked = await produce(bootstrap, topic, 0, 1000)  # defaults: not idempotent
        acked += await produce(bootstrap, topic, 1000, 2000, enable_idempotence=True)
        values = read_values(bootstrap, topic, PARTITIONS)
        verify_numbered_log(values, topic, PARTITIONS, TAG, 3000)
        at = {(p, o): v for p, recs in values.items() for o, v in recs}
        assert all(at.get((p, o)) == v for p, o, v in acked), "acknowledged positions differ"

        consumers = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                      auto_offset_reset="earliest", client_id=f"aio-{i}")
                     for i in range(2)]
        records = []
        for c in consumers:
            await c.start()
        try:
            def balanced_and_done():
                held = {i: sorted((tp.topic, tp.partition) for tp in c.assignment())
                        for i, c in enumerate(consumers)}
                return (cover_problem(held, topic, PARTITIONS) is None and
                        all(held.values()) and len({(p, o) for p, o, _ in records}) == 3000)
            await consume_until(consumers, records, balanced_and_done, 60,
                                "two aiokafka members sharing the topic and 3000 records")
            for c in consumers:
                await c.commit()
        finally:
            for c in consumers:
                await c.stop()
        check_records(records, values, "aiokafka group")
        end = end_offsets(bootstrap, topic, PARTITIONS)
        assert group_committed(bootstrap, group, topic, PARTITIONS) == end

        # A new consumer of the group resumes at the commits: only the 300 new records.
        await produce(bootstrap, topic, 3000, 300, enable_idempotence=True)
        resumed = []
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            await consume_until([consumer], resumed, lambda: len(resumed) >= 300, 60,
                                "300 new records after resuming")
            for _ in range(5):  # nothing else arrives
                for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                    resumed.extend((tp.partition, r.offset, r.value) for r in batch)
            await consumer.commit()
            committed = {p: await consumer.committed(TopicPartition(topic, p))
                         for p in range(PARTITIONS)}
        finally:
            await consumer.stop()
        values = read_values(bootstrap, topic, PARTITIONS)
        verify_numbered_log(values, topic, PARTITIONS, TAG, 3300)
        check_records(resumed, values, "resumed aiokafka consumer")
        assert sorted((p, o) for p, o, _ in resumed) == \
            sorted((p, o) for p in range(PARTITIONS) for o in range(end[p], end[p] + 100))
        assert committed == {p: end[p] + 100 for p in range(PARTITIONS)}
        assert group_committed(bootstrap, group, topic, PARTITIONS) == committed

    asyncio.run(asyncio.wait_for(scenario(), 240))
