#!/usr/bin/env python3
"""Failover time of a Hotwire cluster: etcd and three brokers on loopback sharing one fs://
root, an idempotent acks=all producer (confluent-kafka) at a steady rate over 8 partitions,
and, trial after trial, a kill -9 of the leader of a random partition.

For each trial it measures, from the kill:
- `reassigned`: the shard's new assignment appears in etcd (the lease expiring, then the
  controller's next read of the cluster, `--cluster-poll-ms`);
- `opened`: the new leader serving the shard (its log's `leading shard ... opened_ms`, the
  shard's recovery from storage), counted from the reassignment;
- `first_ack`: the first acknowledgement, for that partition, of a record the producer sent
  after the kill (what a client sees: the above, then its metadata refresh and retry).
The killed broker is restarted and the cluster left to settle (shards moved back) before the
next trial. Results (every trial, then p50 and max) go to OUT/failover.json.

    bench/cluster/failover.py --broker target/release/hotwire --trials 20 --lease-s 1 \\
        -o docs/benchmarks/cluster-failover
"""

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from cluster import Cluster  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 8


class Acks:
    """A producer thread sending to every partition in turn at `rate` records/s; keeps, per
    partition, (send time, ack time) of every acknowledged record."""

    def __init__(self, bootstrap, topic, rate):
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 1,
                                  "message.timeout.ms": 120000})
        self.topic, self.rate = topic, rate
        self.acks = {p: [] for p in range(PARTITIONS)}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            if i >= self.rate * (time.monotonic() - start):
                self.producer.poll(0.001)
                continue
            sent = time.monotonic()
            partition = i % PARTITIONS

            def report(err, msg, sent=sent, partition=partition):
                if err is None:
                    with self.lock:
                        self.acks[partition].append((sent, time.monotonic()))
            try:
                self.producer.produce(self.topic, value=b"x" * 100, partition=partition,
                                      on_delivery=report)
                i += 1
            except BufferError:
                pass
            self.producer.poll(0)
        self.producer.flush(60)

    def first_ack_after(self, partition, t):
        with self.lock:
            later = [ack for sent, ack in self.acks[partition] if sent > t]
        return min(later) if later else None


def opened_ms(broker, shard, epoch):
    """The `opened_ms` of `broker`'s log line for taking `shard` over at `epoch`."""
    pattern = re.compile(rf"leading shard shard={shard} epoch={epoch} opened_ms=(\d+)")
    found = pattern.findall(broker.log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=str(REPO / "target/release/hotwire"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease-s", type=int, default=1)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hotwire-failover-"))
    cluster = Cluster(Path(args.broker), work, shards=8, lease_s=args.lease_s,
                      extra_args=["--log-level", "info"])
    trials = []
    try:
        topic = "failover"
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
        acks = Acks(cluster.bootstrap, topic, args.rate)
        acks.thread.start()
        time.sleep(3)
        for trial in range(args.trials):
            cluster.wait_settled()
            time.sleep(1)
            partition = rng.randrange(PARTITIONS)
            leaders = cluster.leaders(topic)
            before = cluster.shard_assignments()
            victim = cluster.broker(leaders[partition])
            victim.kill9()
            killed = time.monotonic()
            reassigned = None
            while reassigned is None and time.monotonic() - killed < 30:
                now = cluster.shard_assignments()
                moved = [s for s, a in now.items()
                         if before[s].get("leader") == victim.node_id
                         and a.get("leader") not in (None, victim.node_id)]
                if moved:
                    reassigned = time.monotonic() - killed
                    shard, assignment = moved[0], now[moved[0]]
                time.sleep(0.005)
            first_ack = None
            while first_ack is None and time.monotonic() - killed < 60:
                first_ack = acks.first_ack_after(partition, killed)
                time.sleep(0.01)
            new_leader = cluster.broker(assignment["leader"])
            opened = opened_ms(new_leader, shard, assignment["epoch"])
            row = {"trial": trial, "partition": partition, "killed": victim.node_id,
                   "new_leader": assignment["leader"], "reassigned_s": round(reassigned, 3),
                   "opened_ms": opened, "first_ack_s": round(first_ack - killed, 3)}
            print(row, flush=True)
            trials.append(row)
            victim.start()
        acks.stop.set()
        acks.thread.join(90)
    finally:
        cluster.kill()

    def summary(key):
        values = sorted(t[key] for t in trials if t[key] is not None)
        return {"p50": statistics.median(values), "max": values[-1]} if values else None
    result = {
        "lease_s": args.lease_s, "poll_ms": 50, "rate": args.rate, "trials": trials,
        "reassigned_s": summary("reassigned_s"), "opened_ms": summary("opened_ms"),
        "first_ack_s": summary("first_ack_s"),
    }
    (out / "failover.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}, indent=2))


if __name__ == "__main__":
    main()
