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
    "--compaction-min-mib", "0",
    "--segment-target-mib", "1",
    "--segment-chunk-kib", "64",
]

TRIALS = {"fs": 20, "s3": 6}


def rounds_done(broker):
    return len(re.findall("compaction round done", broker.log_path.read_text(errors="replace")))


def kill_trials(broker, topic, trials, seed, most):
    """Produces, kills -9 at a random moment, restarts and reads everything back, `trials`
    times; returns {value: (partition, offset)} of every acknowledged record."""
    rng = random.Random(seed)
    acked, owner, sent = {}, {}, set()
    for trial in range(trials):
        began = time.monotonic()
        target = rng.randint(300, most)
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
    return acked


def test_kill9_during_compaction_loses_nothing_acknowledged(broker_factory, storage_kind):
    broker = broker_factory(extra_args=AGGRESSIVE)
    topic = "compacted"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    trials = int(os.environ.get("HOTWIRE_COMPACTION_TRIALS", TRIALS[storage_kind]))
    acked = kill_trials(broker, topic, trials, seed=11, most=4000)
    # The trials exercised compaction, not only flushes.
    done = rounds_done(broker)
    print(f"{trials} trials, {len(acked)} acknowledged records, {done} compaction rounds logged")
    assert done >= trials, f"only {done} compaction rounds ran over {trials} trials"
    interrupted = broker.log_path.read_text().count("deleting segments no checkpoint lists")
    print(f"{interrupted} restarts found segments of an interrupted compaction")


TIERED_TRIALS = 8  # CI; HOTWIRE_TIERED_TRIALS=20 for the long run


def uploads_done(broker):
    """Compaction rounds that wrote segments to the object store (uploads), from the log."""
    text = broker.log_path.read_text(errors="replace")
    return len(re.findall(r"compaction round done.*segments=[1-9]", text))


def test_kill9_during_uploads_of_a_tiered_broker_loses_nothing_acknowledged(
        hotwire_bin, tmp_path, garage):
    """Tiered mode: acks=all is answered from a local WAL, and compaction uploads to S3
    (Garage). kill -9 lands while uploads and their checkpoints are being written; after each
    restart every acknowledged record is read back at its offset (from the WAL for what was not
    uploaded yet, from S3 for the rest)."""
    from conftest import BrokerFactory
    factory = BrokerFactory(hotwire_bin, tmp_path, storage=garage)
    wal = tmp_path / "wal"
    try:
        broker = factory(extra_args=[*AGGRESSIVE, "--wal", f"fs://{wal}", "--wal-file-mib", "4"])
        topic = "tiered"
        create_topic(broker.bootstrap, topic, PARTITIONS)
        trials = int(os.environ.get("HOTWIRE_TIERED_TRIALS", TIERED_TRIALS))
        acked = kill_trials(broker, topic, trials, seed=13, most=3000)
        uploads = uploads_done(broker)
        print(f"{trials} trials, {len(acked)} acknowledged records, {uploads} uploads logged")
        assert uploads >= trials, f"only {uploads} uploads ran over {trials} trials"
        # The WAL is where acknowledgements came from, and it stays bounded by the uploads.
        assert list(wal.glob("*.hwl")), "no WAL files"
        prefix = broker.storage_url.split("/", 3)[3].split("?", 1)[0]
        segments = garage.list_objects(f"{prefix}/seg/")
        assert segments, "nothing uploaded"
        assert not garage.list_objects(f"{prefix}/wal/"), "flush objects went to S3, not the WAL"
    finally:
        factory.cleanup()
