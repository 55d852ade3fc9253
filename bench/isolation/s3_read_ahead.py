#!/usr/bin/env python3
"""Catch-up read throughput with read-ahead on and off, on S3 (a local Garage server), where a
storage read costs milliseconds rather than a page-cache copy.

Starts Garage (the server the tests use), then for each round a fresh Hotwire on its own
bucket prefix with a metrics endpoint, and runs bench/workloads/catch-up.toml against it
(scaled: Garage here is a debug build on the same two cores), read-ahead on and off in
alternating rounds (on, off, off, on). Prints each run's catch-up figures and the broker's
read-ahead bytes loaded, used and wasted; writes the result.json files under --out.

Usage: bench/isolation/s3_read_ahead.py --broker target/release/hotwire \\
    --bench target/release/hotwire-bench --garage "$HOTWIRE_GARAGE_BIN" -o DIR
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench" / "storage"))
from s3_server import Garage  # noqa: E402  (the same server the tests use)
from policies import Broker  # noqa: E402  (a broker with a metrics endpoint)

# Caches sized so that the scaled backlog (64 MiB) is read mostly from storage, and the cold
# cache can hold the 16 readers' windows (2 readers x 8 partitions).
BROKER_ARGS = ["--hot-cache-mib", "16", "--cold-cache-mib", "64"]
MODES = {"read-ahead": [], "no-read-ahead": ["--read-ahead-max-mib", "0"]}


def run(args, garage, mode, index, out):
    url = garage.storage_url(f"catch-up-{mode}-{uuid.uuid4().hex[:6]}")
    work = out / f"{mode}-{index}"
    work.mkdir(parents=True, exist_ok=True)
    broker = Broker(args.broker, url, BROKER_ARGS + MODES[mode], garage.env(),
                    work / "broker.log")
    try:
        subprocess.run([args.bench, "run", "-w", str(REPO / "bench/workloads/catch-up.toml"),
                        "--bootstrap", f"127.0.0.1:{broker.port}", "--broker-metrics",
                        f"http://127.0.0.1:{broker.metrics}/metrics", "-o", str(work),
                        "--scale", args.scale, "--duration", args.duration, "--warmup", "3s",
                        "--quiet"], check=True, stdout=subprocess.DEVNULL)
    finally:
        broker.stop()
    phase = json.loads((work / "result.json").read_text())["phases"][1]
    catch_up = phase["catch_up"]
    ahead = (phase.get("broker_reads") or {}).get("read_ahead") or {}
    mb = lambda key: (ahead.get(key) or 0) / 1e6
    backlog = catch_up.get("backlog_read_mb_per_s")
    caught = catch_up.get("caught_up_after_s")
    print(f"| {mode}-{index} | {'not caught up' if backlog is None else f'{backlog:.1f} MB/s'} "
          f"| {'-' if caught is None else f'{caught:.1f} s'} | {catch_up['mb_per_s']:.1f} MB/s "
          f"| {mb('loaded'):.1f} / {mb('used'):.1f} / {mb('wasted'):.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--garage", required=True, help="the Garage binary")
    parser.add_argument("--scale", default="0.25")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--garage-cpus", help="run Garage on these CPUs only (e.g. 1), so that "
                        "it takes at most that share of the machine")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    confine = None
    if args.garage_cpus:
        cpus = {int(c) for c in args.garage_cpus.split(",")}
        confine = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
    garage = Garage(args.garage, Path(tempfile.mkdtemp(prefix="hotwire-s3-ra-")) / "garage",
                    preexec_fn=confine).start()
    print("| run | backlog read | caught up after | catch-up phase read | read-ahead MB loaded / used / wasted |")
    print("|---|---|---|---|---|")
    try:
        for index, mode in enumerate(["read-ahead", "no-read-ahead", "no-read-ahead", "read-ahead"]):
            run(args, garage, mode, index + 1, out)
    finally:
        garage.kill()


if __name__ == "__main__":
    main()
