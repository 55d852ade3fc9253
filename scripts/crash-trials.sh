#!/usr/bin/env bash
# The long version of the randomized kill -9 trials that CI runs briefly
# (broker/tests/integration/crash_trials.rs): commits by TCP, pipelined TCP and one-sided fetch-and-add on
# the same slots, and acks=all records, checked after every restart.
#   scripts/crash-trials.sh [TRIALS]        default 200 trials
#   HOTWIRE_CRASH_SEED=N scripts/crash-trials.sh 50   replays a failing seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HOTWIRE_CRASH_TRIALS="${1:-200}"
exec cargo test --release -p hotwire-broker --test integration crash_trials:: -- --nocapture
