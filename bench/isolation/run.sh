#!/usr/bin/env bash
# The hot/cold isolation runs of docs/benchmarks.md, one after another on an otherwise idle
# machine, then their table. Needs the release binaries (cargo build --release).
# Usage: bench/isolation/run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${1:?usage: bench/isolation/run.sh OUT_DIR}"
bench=target/release/hotwire-bench
broker=target/release/hotwire
run() {
    local name=$1
    shift
    echo "== $name: $*"
    "$bench" run -w bench/workloads/catch-up.toml --spawn-broker "$broker" --quiet \
        -o "$out/$name" "$@" | grep -E "phase|produce|end-to-end|catch-up read|hot reads"
}
run on-1
run off-1 --broker-arg=--cold-isolation=false
run on-2
run no-read-ahead --broker-arg=--read-ahead-max-mib=0
run shared-cpu --catch-up-nice 0
run off-2 --broker-arg=--cold-isolation=false
run on-3
python3 bench/isolation/summarize.py \
    on-1="$out/on-1" on-2="$out/on-2" on-3="$out/on-3" \
    no-read-ahead="$out/no-read-ahead" shared-cpu="$out/shared-cpu" \
    off-1="$out/off-1" off-2="$out/off-2"
