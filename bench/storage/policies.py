#!/usr/bin/env python3
"""Storage cost and latency of flush policies, on fs:// and on S3 (a local Garage server).

For each backend and flush policy this starts Hotwire with a metrics endpoint, runs a bench
workload against it with hotwire-bench, and reads the broker's counters before and after:

- PUT-class requests per GiB written in flush objects (multipart parts counted one by one),
- bytes per flush object,
- flush latency p50/p99/p99.9 (seal to durable, from the broker's x1.25-bucket histogram,
  interpolated within a bucket, so +-12 %),
- produce latency p50/p99/p99.9 from hotwire-bench (acks=all, coordinated omission corrected),

then one longer run with compaction samples the number of stored objects over time.
Everything lands in OUT/storage.json; OUT/<backend>-<policy>/ holds each bench result.

    bench/storage/policies.py --broker target/release/hotwire \\
        --bench target/release/hotwire-bench -o docs/benchmarks/storage [--s3 GARAGE_BIN]
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from s3_server import Garage  # noqa: E402  (the same server the tests use)

POLICIES = {
    "interval-1ms": ["--flush-interval-ms", "1"],
    "interval-5ms": [],  # the default: 5 ms, 8 MiB, 4096 batches
    "interval-20ms": ["--flush-interval-ms", "20"],
    "bytes-4MiB-or-100ms": ["--flush-interval-ms", "100", "--flush-max-bytes", str(4 << 20)],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.getsockname() != s.getpeername():
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {port}")


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values, buckets = {}, []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("hotwire_flush_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', name).group(1)
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
        else:
            values[name] = float(value)
    return values, buckets


def quantile(buckets, q):
    """Quantile q of a cumulative histogram [(upper bound, count)], linear within a bucket."""
    total = buckets[-1][1]
    if total == 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


class Broker:
    def __init__(self, binary, storage_url, args, env, log_path):
        self.port, self.metrics = free_port(), free_port()
        argv = [binary, "--listen", f"127.0.0.1:{self.port}", "--metrics-listen",
                f"127.0.0.1:{self.metrics}", "--storage", storage_url, *args]
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **env))
        wait_listening(self.port, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


def bench(bench_bin, workload, bootstrap, out, duration, scale):
    subprocess.run([bench_bin, "run", "-w", str(workload), "--bootstrap", bootstrap, "-o", str(out),
                    "--duration", duration, "--warmup", "3s", "--scale", scale, "--quiet"],
                   check=True)
    phase = json.loads((out / "result.json").read_text())["phases"][0]["produce"]
    return phase


def policy_run(args, backend, name, flags, storage_url, env, workdir):
    out = Path(args.out) / f"{backend}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    broker = Broker(args.broker, storage_url, flags, env, workdir / f"{backend}-{name}.log")
    try:
        before, hist_before = scrape(broker.metrics)
        produce = bench(args.bench, args.workload, f"127.0.0.1:{broker.port}", out, args.duration,
                        args.scale)
        after, hist_after = scrape(broker.metrics)
    finally:
        broker.stop()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    hist = [(le, c - dict(hist_before).get(le, 0)) for le, c in hist_after]
    flushed = delta["hotwire_flush_bytes_total"]
    objects = delta["hotwire_flush_objects_total"]
    gib = flushed / (1 << 30)
    row = {
        "backend": backend,
        "policy": name,
        "broker_flags": flags,
        "flush_objects": objects,
        "flushed_bytes": flushed,
        "bytes_per_object": flushed / objects if objects else None,
        "put_requests": delta["hotwire_storage_put_requests_total"],
        "puts_per_gib": delta["hotwire_storage_put_requests_total"] / gib if gib else None,
        "flush_ms": {f"p{q}": (quantile(hist, q / 100) or 0) * 1000 for q in (50, 99, 99.9)},
        "produce": {k: produce["latency"][k] for k in ("p50_ms", "p99_ms", "p99_9_ms", "max_ms")},
        "produce_mb_per_s": produce["mb_per_s"],
        "produce_errors": produce["errors"],
    }
    print(f"{backend:3} {name:20} objects {objects:7.0f}  {row['bytes_per_object'] or 0:10.0f} B/obj"
          f"  PUTs/GiB {row['puts_per_gib'] or 0:8.0f}  flush p50/p99/p99.9 "
          + "/".join(f"{v:.1f}" for v in row["flush_ms"].values())
          + "  produce p50/p99/p99.9 "
          + "/".join(f"{row['produce'][k]:.1f}" for k in ("p50_ms", "p99_ms", "p99_9_ms"))
          + " ms", flush=True)
    return row


def object_count_run(args, backend, storage_url, env, workdir, seconds):
    """Default policy and compaction settings; samples stored objects every 5 s."""
    flags = ["--compaction-interval-ms", "5000"]
    broker = Broker(args.broker, storage_url, flags, env, workdir / f"{backend}-objects.log")
    out = Path(args.out) / f"{backend}-object-count"
    samples = []
    try:
        bench_proc = subprocess.Popen(
            [args.bench, "run", "-w", str(args.workload), "--bootstrap", f"127.0.0.1:{broker.port}",
             "-o", str(out), "--duration", f"{seconds}s", "--warmup", "0s", "--scale", args.scale,
             "--quiet"])
        start = time.monotonic()
        while bench_proc.poll() is None:
            values, _ = scrape(broker.metrics)
            samples.append({
                "t_s": round(time.monotonic() - start, 1),
                "flush_objects_written": values.get("hotwire_flush_objects_total", 0),
                "stored_flush_objects": values.get("hotwire_stored_flush_objects", 0),
                "stored_segments": values.get("hotwire_stored_segments", 0),
                "written_bytes": values.get("hotwire_storage_written_bytes_total", 0),
            })
            time.sleep(5)
        if bench_proc.returncode:
            raise RuntimeError(f"bench exited with {bench_proc.returncode}")
    finally:
        broker.stop()
    last = samples[-1]
    print(f"{backend:3} object count over {seconds} s: {last['flush_objects_written']:.0f} flush "
          f"objects written, {last['stored_flush_objects']:.0f} flush objects + "
          f"{last['stored_segments']:.0f} segments stored at the end "
          f"(max {max(s['stored_flush_objects'] + s['stored_segments'] for s in samples):.0f})",
          flush=True)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--workload", default=str(REPO / "bench/workloads/batched.toml"))
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--object-run-s", type=int, default=120)
    parser.add_argument("--s3", metavar="GARAGE_BIN", help="also run on a local Garage server")
    parser.add_argument("--no-fs", action="store_true", help="skip the fs:// runs")
    parser.add_argument("--scale", default="1", help="multiply the workload's rates (hotwire-bench --scale)")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hotwire-storage-bench-"))
    backends = [] if args.no_fs else [("fs", None)]
    garage = None
    if args.s3:
        garage = Garage(args.s3, work / "garage").start()
        backends.append(("s3", garage))
    results = {"workload": args.workload, "duration": args.duration, "scale": args.scale,
               "command": " ".join(sys.argv), "rows": [], "object_count": {}}
    try:
        for backend, server in backends:
            for name, flags in POLICIES.items():
                if server is None:
                    url, env = f"fs://{work / (backend + '-' + name)}", {}
                else:
                    url, env = server.storage_url(f"bench-{name}-{uuid.uuid4().hex[:6]}"), server.env()
                results["rows"].append(policy_run(args, backend, name, flags, url, env, work))
            if server is None:
                url, env = f"fs://{work / 'fs-objects'}", {}
            else:
                url, env = server.storage_url(f"bench-objects-{uuid.uuid4().hex[:6]}"), server.env()
            results["object_count"][backend] = object_count_run(args, backend, url, env, work,
                                                                args.object_run_s)
    finally:
        if garage:
            garage.kill()
    (Path(args.out) / "storage.json").write_text(json.dumps(results, indent=2))
    print(f"results in {Path(args.out) / 'storage.json'}")


if __name__ == "__main__":
    main()
