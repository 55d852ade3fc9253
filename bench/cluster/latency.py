#!/usr/bin/env python3
"""Produce latency of a 3-broker cluster against a single broker, same workload and total load,
measured by `hotwire-bench compare` in alternating rounds (both on this host's fs://, the
cluster's brokers sharing one root, etcd on loopback; with --s3, both on one Garage server
started here, whose binary HOTWIRE_GARAGE_BIN names).

    bench/cluster/latency.py --broker target/release/hotwire \\
        --bench target/release/hotwire-bench -w bench/workloads/batched.toml --scale 0.25 \\
        -o docs/benchmarks/cluster-latency
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from cluster import Cluster  # noqa: E402
from conftest import Broker  # noqa: E402
from s3_server import Garage  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=str(REPO / "target/release/hotwire"))
    parser.add_argument("--bench", default=str(REPO / "target/release/hotwire-bench"))
    parser.add_argument("-w", "--workload", default=str(REPO / "bench/workloads/batched.toml"))
    parser.add_argument("--scale", default="0.25")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--rounds", default="2")
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--single-arg", action="append", default=[],
                        help="extra flag for the single broker (repeatable), e.g. "
                             "--single-arg=--wal-file-mib --single-arg=0 for the cluster's "
                             "file-per-flush layout")
    parser.add_argument("--cluster-arg", action="append", default=[],
                        help="extra flag for the cluster's brokers (repeatable), e.g. "
                             "--cluster-arg=--cluster-flush-stream --cluster-arg=false for one "
                             "object per flush and shard on an object store")
    parser.add_argument("--s3", action="store_true",
                        help="both on S3 (a Garage server started here) instead of fs://")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hotwire-cluster-latency-"))
    garage = None
    if args.s3:
        garage = Garage(os.environ["HOTWIRE_GARAGE_BIN"], work / "garage")
        garage.start()
    single = Broker(Path(args.broker), work / "single", extra_args=args.single_arg,
                    storage=garage).start()
    cluster = Cluster(Path(args.broker), work / "cluster", storage=garage, shards=args.shards,
                      extra_args=args.cluster_arg)
    try:
        subprocess.run([args.bench, "compare", "-w", args.workload,
                        "--bootstrap-a", single.bootstrap, "--label-a", "1 broker",
                        "--bootstrap-b", cluster.bootstrap, "--label-b", "3 brokers",
                        "--rounds", args.rounds, "--scale", args.scale,
                        "--duration", args.duration, "-o", args.out], check=True)
    finally:
        cluster.kill()
        single.kill9()
        if garage is not None:
            garage.kill()


if __name__ == "__main__":
    main()
