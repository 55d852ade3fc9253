#!/usr/bin/env bash
# The long version of the randomized kill -9 trials that CI runs briefly:
# broker/tests/integration/crash_trials.rs (commits by TCP, pipelined TCP and one-sided
# fetch-and-add on the same slots, and acks=all records, checked after every restart) and
# crash_trials_topic_changes.rs (topics grown and reconfigured while the broker dies).
#   scripts/crash-trials.sh [TRIALS]        default 200 trials of each
#   HOTWIRE_CRASH_SEED=N scripts/crash-trials.sh 50   replays a failing seed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HOTWIRE_CRASH_TRIALS="${1:-200}"
export HOTWIRE_TOPIC_CRASH_TRIALS="$HOTWIRE_CRASH_TRIALS"
exec cargo test --release -p hotwire-broker --test integration crash_trials -- --nocapture
