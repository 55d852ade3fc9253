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
paced=(--broker-arg=--cold-read-max-mib-per-s=48)
off=(--broker-arg=--cold-isolation=false)
run on-1
run paced-1 "${paced[@]}"
run off-1 "${off[@]}"
run on-2
run paced-2 "${paced[@]}"
run no-read-ahead --broker-arg=--read-ahead-max-mib=0
run shared-cpu --catch-up-nice 0
run off-2 "${off[@]}"
run paced-3 "${paced[@]}"
run on-3
names=(on-1 on-2 on-3 paced-1 paced-2 paced-3 no-read-ahead shared-cpu off-1 off-2)
python3 bench/isolation/summarize.py $(for n in "${names[@]}"; do echo "$n=$out/$n"; done)
