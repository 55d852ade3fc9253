"""Compaction and the manifest under crashes: kill -9 at random moments while flush objects are
being folded into segments and checkpoints written, on every backend. Every acknowledged record
must be read back at its offset after each restart."""

import os
import random
import re
import time

import pytest
from helpers import (BackgroundProducer, consume_all, create_topic, verify_after_crash,
                     wait_until)

PARTITIONS = 3

pytestmark = pytest.mark.backends

# Compaction every 50 ms as soon as two flush objects wait, small segments that are rewritten
# often, small chunks: a kill lands inside compaction or a checkpoint write most of the time.
AGGRESSIVE = [
    "--flush-interval-ms", "2",
    "--compaction-interval-ms", "50",
    "--compaction-min-objects", "2",
    "--segment-target-mib", "1",
    "--segment-chunk-kib", "64",
]

TRIALS = {"fs": 20, "s3": 6}


def rounds_done(broker):
    return len(re.findall("compaction round done", broker.log_path.read_text(errors="replace")))


def test_kill9_during_compaction_loses_nothing_acknowledged(broker_factory, storage_kind):
    broker = broker_factory(extra_args=AGGRESSIVE)
    topic = "compacted"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    rng = random.Random(11)
    acked, owner, sent = {}, {}, set()
    trials = int(os.environ.get("HOTWIRE_COMPACTION_TRIALS", TRIALS[storage_kind]))
    for trial in range(trials):
        began = time.monotonic()
        target = rng.randint(300, 4000)
        producer = BackgroundProducer(broker.bootstrap, topic, b"t%02d" % trial, rate=5000)
        producer.start()
        try:
            wait_until(lambda: len(producer.acked) >= target or not producer.is_alive(), 120,
                       f"{target} acknowledged records (trial {trial})")
            assert producer.is_alive(), f"producer thread died: {producer.failure}"
            # Let compaction catch up with the new flush objects, then kill at a random moment.
            time.sleep(rng.uniform(0.0, 0.3))
            producer.killing.set()
            broker.kill9()
        finally:
            producer.killing.set()
            producer.stopping.set()
            producer.join(timeout=120)
        assert producer.failure is None, producer.failure
        assert not producer.early_errors, f"errors before the kill: {producer.early_errors[:5]}"
        for p, offset, value in producer.acked:
            assert (p, offset) not in owner, f"{p}/{offset} acknowledged twice"
            owner[(p, offset)] = value
            acked[value] = (p, offset)
        sent.update(producer.sent)

        broker.start()
        records = consume_all(broker.bootstrap, topic, PARTITIONS)
        verify_after_crash(records, acked, sent, topic)
        print(f"trial {trial}: {time.monotonic() - began:.1f} s")
    # The trials exercised compaction, not only flushes.
    done = rounds_done(broker)
    print(f"{trials} trials, {len(acked)} acknowledged records, {done} compaction rounds logged")
    assert done >= trials, f"only {done} compaction rounds ran over {trials} trials"
    interrupted = broker.log_path.read_text().count("deleting segments no checkpoint lists")
    print(f"{interrupted} restarts found segments of an interrupted compaction")
