#!/usr/bin/env python3
"""Tiered mode (a local WAL in front of S3) against fs:// and against S3 alone, same workload.

Starts a local Garage server, then three brokers one after the other, each measured with
hotwire-bench on the same workload (default: batched.toml at a quarter of its rate, 5,000
records/s of 1 KiB, acks=all):

- fs:       `--storage fs://...` (the append-only WAL in the root),
- tiered:   `--storage s3://...` `--wal fs://...` (acknowledged from the WAL, uploaded by
            compaction rounds of `compaction_min_mib`),
- s3:       `--storage s3://...` alone (every flush a PUT).

For the tiered broker it also counts what reached the object store while the workload ran and
during a drain after it: uploads (compaction rounds), segment objects and checkpoints written,
bytes uploaded, hence objects per GiB uploaded, and every PUT-class request (lease renewals and
multipart parts included) per GiB. Everything lands in OUT/tiered.json.

    bench/storage/tiered.py --broker target/release/hotwire \\
        --bench target/release/hotwire-bench --garage GARAGE_BIN -o docs/benchmarks/tiered
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies import REPO, Broker, Garage, bench, scrape  # noqa: E402


def run(args, name, storage_url, flags, env, work):
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    log_path = work / f"{name}.log"
    broker = Broker(args.broker, storage_url, ["--log-level", "info", *flags], env, log_path)
    try:
        before, _ = scrape(broker.metrics)
        produce = bench(args.bench, args.workload, f"127.0.0.1:{broker.port}", out,
                        args.duration, args.scale)
        # Let the uploads of what was produced finish (at most max_wait), then count.
        deadline = time.monotonic() + args.drain_s
        while time.monotonic() < deadline:
            values, _ = scrape(broker.metrics)
            if values.get("hotwire_stored_flush_objects", 0) == 0:
                break
            time.sleep(1)
        after, _ = scrape(broker.metrics)
    finally:
        broker.stop()
    rounds = [dict(re.findall(r"(\w+)=(\d+)", line))
              for line in log_path.read_text(errors="replace").splitlines()
              if "compaction round done" in line]
    uploaded = sum(int(r.get("bytes_written", 0)) for r in rounds)
    segments = sum(int(r.get("segments", 0)) for r in rounds)
    # Objects per round: logged since shared objects; before, one per segment.
    objects = sum(int(r.get("objects", r.get("segments", 0))) for r in rounds)
    gib = uploaded / (1 << 30)
    puts = after.get("hotwire_storage_put_requests_total", 0) - before.get(
        "hotwire_storage_put_requests_total", 0)
    row = {
        "name": name,
        "storage": storage_url.split("?")[0],
        "flags": flags,
        "produce": {k: produce["latency"][k] for k in ("p50_ms", "p99_ms", "p99_9_ms", "max_ms")},
        "produce_mb_per_s": produce["mb_per_s"],
        "produce_errors": produce["errors"],
        "uploads": len(rounds),
        "segments_uploaded": segments,
        "objects_uploaded": objects,
        "bytes_uploaded": uploaded,
        # One checkpoint per upload round.
        "objects_per_gib_uploaded": (objects + len(rounds)) / gib if gib else None,
        "put_requests": puts,
        "put_requests_per_gib_uploaded": puts / gib if gib else None,
        "flush_objects_left": after.get("hotwire_stored_flush_objects", 0),
    }
    print(f"{name:7} produce p50/p99/p99.9 "
          + "/".join(f"{row['produce'][k]:.2f}" for k in ("p50_ms", "p99_ms", "p99_9_ms"))
          + f" ms; {len(rounds)} uploads, {segments} segments in {objects} objects, {uploaded / 1e6:.0f} MB uploaded, "
          f"objects/GiB {row['objects_per_gib_uploaded'] or 0:.1f}, "
          f"PUTs/GiB {row['put_requests_per_gib_uploaded'] or 0:.1f}", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--garage", required=True, metavar="GARAGE_BIN")
    parser.add_argument("--workload", default=str(REPO / "bench/workloads/batched.toml"))
    parser.add_argument("--scale", default="0.25")
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--drain-s", type=int, default=30)
    parser.add_argument("--no-s3-alone", action="store_true")
    parser.add_argument("--garage-dir", help="Garage's data and metadata directory (default: "
                        "beside the brokers'); on tmpfs (/dev/shm) it no longer shares the WAL's "
                        "disk, as a remote object store would not")
    parser.add_argument("--garage-nice", type=int, default=0,
                        help="run Garage at this nice level: it shares the broker's cores here, "
                             "where a real object store would not")
    parser.add_argument("--garage-cpus", help="run Garage on these CPUs only (e.g. 1): the "
                        "S3 server then takes at most that share of the machine, as a remote "
                        "one would take none")
    parser.add_argument("--tiered-flag", action="append", default=[],
                        help="extra broker flag for the tiered run (repeatable)")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hotwire-tiered-bench-"))
    def confine_garage():
        if args.garage_nice:
            os.nice(args.garage_nice)
        if args.garage_cpus:
            os.sched_setaffinity(0, {int(c) for c in args.garage_cpus.split(",")})
    garage_dir = Path(tempfile.mkdtemp(dir=args.garage_dir)) if args.garage_dir else work / "garage"
    garage = Garage(args.garage, garage_dir, preexec_fn=confine_garage).start()
    results = {"workload": args.workload, "scale": args.scale, "duration": args.duration,
               "command": " ".join(sys.argv), "rows": []}
    try:
        results["rows"].append(run(args, "fs", f"fs://{work / 'fs'}", [], {}, work))
        # Uploads drain within the run: a round once 128 MiB wait, or after 20 s.
        tiered = ["--wal", f"fs://{work / 'wal'}", "--compaction-max-wait-ms", "20000",
                  *args.tiered_flag]
        results["rows"].append(run(args, "tiered", garage.storage_url(f"t-{uuid.uuid4().hex}"),
                                   tiered, garage.env(), work))
        if not args.no_s3_alone:
            results["rows"].append(run(args, "s3", garage.storage_url(f"s-{uuid.uuid4().hex}"),
                                       [], garage.env(), work))
    finally:
        garage.kill()
    (Path(args.out) / "tiered.json").write_text(json.dumps(results, indent=2) + "\n")
    fs, tier = results["rows"][0], results["rows"][1]
    print(f"tiered/fs produce p99: {tier['produce']['p99_ms'] / fs['produce']['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
