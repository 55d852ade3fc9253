#!/usr/bin/env python3
"""Catch-up read throughput with read-ahead on and off, on S3 (a local Garage server), where a
storage read costs milliseconds rather than a page-cache copy.

For each run, starts a Garage of its own (the server the tests use; optionally behind
bench/storage/latency_proxy.py, which gives each storage request a real store's latency) and a
fresh Hotwire with a metrics endpoint, and runs bench/workloads/catch-up.toml against it
(scaled: Garage here is a debug build on the same two cores), read-ahead on and off in
alternating runs (on, off, off, on, ...). Prints each run's catch-up figures and the broker's
read-ahead bytes loaded, used and wasted; writes the result.json files under --out.

Usage: bench/isolation/s3_read_ahead.py --broker target/release/hotwire \\
    --bench target/release/hotwire-bench --garage "$HOTWIRE_GARAGE_BIN" -o DIR \\
    [--garage-cpus 1] [--s3-latency-ms 20] [--tiered] [--rounds N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench" / "storage"))
from s3_server import Garage  # noqa: E402  (the same server the tests use)
from policies import Broker  # noqa: E402  (a broker with a metrics endpoint)
from latency_proxy import LatencyProxy  # noqa: E402

# Caches sized so that the scaled backlog (64 MiB) is read mostly from storage, and the cold
# cache can hold the 16 readers' windows (2 readers x 8 partitions).
BROKER_ARGS = ["--hot-cache-mib", "16", "--cold-cache-mib", "64"]
MODES = {"read-ahead": [], "no-read-ahead": ["--read-ahead-max-mib", "0"]}


def run(args, mode, index, out):
    """One run on a Garage of its own (a debug Garage slows as its data grows: runs late in a
    shared one were slower whatever the mode)."""
    work = out / f"{mode}-{index}"
    work.mkdir(parents=True, exist_ok=True)
    confine = None
    if args.garage_cpus:
        cpus = {int(c) for c in args.garage_cpus.split(",")}
        confine = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
    garage_dir = Path(tempfile.mkdtemp(prefix="hotwire-s3-ra-"))
    garage = Garage(args.garage, garage_dir / "garage", preexec_fn=confine).start()
    proxy = None
    try:
        url = garage.storage_url(f"catch-up-{mode}-{uuid.uuid4().hex[:6]}")
        if args.s3_latency_ms:
            proxy = LatencyProxy(f"127.0.0.1:{garage.s3_port}", args.s3_latency_ms)
            url = url.replace(garage.endpoint, proxy.endpoint)
        flags = BROKER_ARGS + MODES[mode] + args.broker_arg
        if args.tiered:
            flags += ["--wal", f"fs://{garage_dir / 'wal'}", "--compaction-min-mib", "16"]
        cpu_before, started = cpu_seconds(garage.proc.pid), time.monotonic()
        run_broker(args, url, flags, garage.env(), work, mode, index)
        busy = (cpu_seconds(garage.proc.pid) - cpu_before) / (time.monotonic() - started)
        print(f"|   (Garage busy {busy:.2f} CPUs over the run) | | | | |", flush=True)
    finally:
        if proxy:
            proxy.stop()
        garage.kill()
        shutil.rmtree(garage_dir, ignore_errors=True)


def cpu_seconds(pid):
    """User plus system CPU seconds used so far by process `pid` (and its waited children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_broker(args, url, flags, env, work, mode, index):
    broker = Broker(args.broker, url, flags, env, work / "broker.log")
    try:
        subprocess.run([args.bench, "run", "-w", str(REPO / "bench/workloads/catch-up.toml"),
                        "--bootstrap", f"127.0.0.1:{broker.port}", "--broker-metrics",
                        f"http://127.0.0.1:{broker.metrics}/metrics", "-o", str(work),
                        "--scale", args.scale, "--duration", args.duration, "--warmup", "3s",
                        "--quiet", *args.bench_arg], check=True, stdout=subprocess.DEVNULL)
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
    parser.add_argument("--s3-latency-ms", type=float, default=0,
                        help="add this much latency to every storage request, through "
                             "bench/storage/latency_proxy.py: a real object store's time to "
                             "first byte, which Garage on loopback does not have")
    parser.add_argument("--tiered", action="store_true",
                        help="tiered mode: produce acknowledged from a local WAL, uploads of "
                             "16 MiB (so the backlog is in the store when the readers start, "
                             "and the store serves the readers rather than every flush)")
    parser.add_argument("--broker-arg", action="append", default=[],
                        help="extra broker flag for every run (repeatable), e.g. "
                             "--broker-arg=--compaction-min-objects=1000000 so that the readers "
                             "always read flush objects, not segments merged while they run")
    parser.add_argument("--bench-arg", action="append", default=[],
                        help="extra hotwire-bench flag (repeatable), e.g. --bench-arg=--catch-up-nice=0")
    parser.add_argument("--rounds", type=int, default=2,
                        help="pairs of runs, alternating (on, off, off, on, ...)")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.s3_latency_ms:
        print(f"storage requests delayed by {args.s3_latency_ms} ms")
    print("| run | backlog read | caught up after | catch-up phase read | read-ahead MB loaded / used / wasted |")
    print("|---|---|---|---|---|")
    modes = ["read-ahead", "no-read-ahead", "no-read-ahead", "read-ahead"] * args.rounds
    for index, mode in enumerate(modes[:2 * args.rounds]):
        run(args, mode, index + 1, out)


if __name__ == "__main__":
    main()
