#!/usr/bin/env python3
"""Summarizes catch-up runs (hotwire-bench result.json files) as the isolation table of
docs/benchmarks.md: each run's catch-up phase over its own baseline phase. The catch-up phase
lasts until the readers have caught up (at most the workload's phase duration).

Usage: bench/isolation/summarize.py NAME=DIR [NAME=DIR ...]
"""
import json
import sys


def ratio(a, b):
    return b / a if a else float("nan")


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def per_second_p99(result, phase):
    """Median over the phase's seconds of each second's produce p99: robust to a single
    spike (a compaction, a stall of the machine) that decides a whole phase's p99. A phase's
    last sample covers what is left of its last second; under half a second, it is left out."""
    values, previous = [], 0.0
    for point in result["timeline"]:
        window, previous = point["t_s"] - previous, point["t_s"]
        if point["phase"] == phase and window >= 0.5:
            values.append(point["produce_p99_ms"])
    return median(values)


def row(name, path):
    result = json.load(open(f"{path}/result.json"))
    base, catch = result["phases"][0], result["phases"][1]
    bp, cp = base["produce"]["latency"], catch["produce"]["latency"]
    be, ce = base["end_to_end"]["latency"], catch["end_to_end"]["latency"]
    reads_b = base.get("broker_reads") or {}
    reads_c = catch.get("broker_reads") or {}
    hit = lambda r, k: "-" if r.get(k) is None else f"{100 * r[k]:.2f}%"
    cu = catch["catch_up"]
    backlog = cu.get("backlog_read_mb_per_s")
    sb, sc = per_second_p99(result, base["name"]), per_second_p99(result, catch["name"])
    return (
        f"| {name} | {catch['duration_s']:.1f} s | {bp['p99_ms']:.1f} → {cp['p99_ms']:.1f} | {ratio(bp['p99_ms'], cp['p99_ms']):.2f} "
        f"| {ratio(bp['p99_9_ms'], cp['p99_9_ms']):.2f} | {sb:.0f} → {sc:.0f} ({ratio(sb, sc):.2f}) "
        f"| {ratio(be['p99_ms'], ce['p99_ms']):.2f} "
        f"| {ratio(base['produce']['records_per_s'], catch['produce']['records_per_s']):.3f} "
        f"| {hit(reads_b, 'tailing_hot_ratio')} / {hit(reads_c, 'tailing_hot_ratio')} "
        f"| {hit(reads_c, 'catch_up_hot_ratio')} "
        f"| {'not caught up' if backlog is None else f'{backlog:.1f} MB/s'} |"
    )


print("| run | catch-up phase | produce p99 ms (baseline → catch-up) | ×p99 | ×p99.9"
      " | median 1-s p99 ms (×) | e2e ×p99 | produce rate ×"
      " | tailing hot hits (baseline / catch-up) | catch-up hot hits | backlog read |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    print(row(name, path))
