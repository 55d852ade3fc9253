#!/usr/bin/env python3
"""Produce latency of a 3-broker cluster on S3 with one flush stream per broker (A) against the
same cluster writing one object per flush and shard (B, `--cluster-flush-stream false`), same
workload, measured by `hotwire-bench compare` in alternating rounds, both clusters on one
Garage server started here (HOTWIRE_GARAGE_BIN names its binary). Also prints how many
objects each cluster's shards and streams wrote (from the brokers' metrics).

    HOTWIRE_GARAGE_BIN=... bench/cluster/streams.py --scale 0.02 -o docs/benchmarks/cluster-streams
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from cluster import Cluster  # noqa: E402
from s3_server import Garage, _free_port  # noqa: E402


def objects_written(cluster, ports):
    """(stream objects, shard flush objects) written by all brokers of `cluster`."""
    streams = shards = 0
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        for line in text.decode().splitlines():
            if line.startswith("hotwire_cluster_stream_objects_total"):
                streams += int(float(line.split()[-1]))
            m = re.match(r"hotwire_flush_objects_total\{[^}]*\} (\S+)", line)
            if m:
                shards += int(float(m.group(1)))
    return streams, shards


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=str(REPO / "target/release/hotwire"))
    parser.add_argument("--bench", default=str(REPO / "target/release/hotwire-bench"))
    parser.add_argument("-w", "--workload", default=str(REPO / "bench/workloads/batched.toml"))
    parser.add_argument("--scale", default="0.02")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--rounds", default="3")
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hotwire-cluster-streams-"))
    garage = Garage(os.environ["HOTWIRE_GARAGE_BIN"], work / "garage")
    garage.start()
    clusters, ports = [], []
    try:
        for label, extra in (("streams", []), ("per-shard", ["--cluster-flush-stream", "false"])):
            metric_ports = [_free_port() for _ in range(3)]
            cluster = Cluster(Path(args.broker), work / label, storage=garage,
                              shards=args.shards, extra_args=extra,
                              per_broker_args=[["--metrics-listen", f"127.0.0.1:{p}"]
                                               for p in metric_ports])
            clusters.append(cluster)
            ports.append(metric_ports)
        subprocess.run([args.bench, "compare", "-w", args.workload,
                        "--bootstrap-a", clusters[0].bootstrap, "--label-a", "one stream per broker",
                        "--bootstrap-b", clusters[1].bootstrap, "--label-b", "object per shard",
                        "--rounds", args.rounds, "--scale", args.scale,
                        "--duration", args.duration, "-o", args.out], check=True)
        report = []
        for label, cluster, metric_ports in zip(("streams", "per-shard"), clusters, ports):
            streams, shards = objects_written(cluster, metric_ports)
            report.append(f"{label}: stream objects {streams}, shard flush objects {shards}")
        text = "\n".join(report) + "\n"
        print(text, end="")
        (Path(args.out) / "objects.txt").write_text(text)
    finally:
        for cluster in clusters:
            cluster.kill()
        garage.kill()


if __name__ == "__main__":
    main()
