#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of outside bytes (fuzz/fuzz_targets/*.rs), with
# cargo-fuzz (libFuzzer, AddressSanitizer, debug assertions) on the nightly toolchain.
#
#   scripts/fuzz.sh                 long run: every target until 10 million executions
#                                   (FUZZ_RUNS=N to change), one target at a time
#   scripts/fuzz.sh SECONDS         every target for SECONDS each instead
#   scripts/fuzz.sh --ci            short: the committed regressions, then 20 s per target
#                                   (FUZZ_CI_SECONDS to change)
#   scripts/fuzz.sh --seeds         regenerate fuzz/corpus/ with the production encoders
#   ... [TARGET...]                 only these targets (fuzz/fuzz_targets/TARGET.rs)
#
# FUZZ_SANITIZER=none builds without AddressSanitizer (about twice the executions per second;
# the decoders are safe Rust, so long runs use it); the default is address.
# Installs the nightly toolchain and cargo-fuzz where they are missing. It builds into
# fuzz/target/SANITIZER, never into the stable target/. CI runs each target on the stable
# toolchain instead, as a short smoke run of seed mutations inside `cargo test` (see
# fuzz/src/smoke.rs): this script's instrumented build alone would take most of CI's budget.
# New inputs go to fuzz/work/corpus/TARGET (ignored by git; fuzz/corpus/TARGET holds the
# committed seeds), crashes to fuzz/artifacts/TARGET/. A crash fails the script: minimize it
# (`cargo +nightly fuzz tmin TARGET FILE`), commit it under fuzz/regressions/TARGET/ and add a
# regression test beside the code it crashed. Execution counts: fuzz/work/summary.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=long
SECONDS_EACH=""
TARGETS=()
for arg in "$@"; do
    case "$arg" in
        --ci) MODE=ci ;;
        --seeds) MODE=seeds ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d'
            exit 0
            ;;
        *[!0-9]*) TARGETS+=("$arg") ;;
        *) SECONDS_EACH="$arg" ;;
    esac
done

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing the nightly toolchain (cargo-fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$MODE" = seeds ]; then
    cargo +nightly run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus
    exit 0
fi

if [ ${#TARGETS[@]} -eq 0 ]; then
    for file in fuzz/fuzz_targets/*.rs; do
        TARGETS+=("$(basename "$file" .rs)")
    done
fi

start=$(date +%s)
SANITIZER=${FUZZ_SANITIZER:-address}
nice -n 19 cargo +nightly fuzz build --sanitizer "$SANITIZER" --target-dir "fuzz/target/$SANITIZER"
echo "fuzz.sh: built in $(($(date +%s) - start)) s (sanitizer: $SANITIZER)"
BIN=fuzz/target/$SANITIZER/x86_64-unknown-linux-gnu/release

if [ "$MODE" = ci ]; then
    LIMIT=(-max_total_time="${SECONDS_EACH:-${FUZZ_CI_SECONDS:-20}}")
elif [ -n "$SECONDS_EACH" ]; then
    LIMIT=(-max_total_time="$SECONDS_EACH")
else
    LIMIT=(-runs="${FUZZ_RUNS:-10000000}")
fi

mkdir -p fuzz/work
SUMMARY=fuzz/work/summary.txt
: >"$SUMMARY"
failed=()
for target in "${TARGETS[@]}"; do
    corpus=fuzz/work/corpus/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts" "fuzz/corpus/$target"
    # Every committed reproducer must pass before fuzzing goes on.
    if compgen -G "fuzz/regressions/$target/*" >/dev/null; then
        if ! "$BIN/$target" fuzz/regressions/"$target"/* >"fuzz/work/$target.regressions.log" 2>&1; then
            echo "fuzz.sh: $target: a committed regression crashes again (fuzz/work/$target.regressions.log)" >&2
            failed+=("$target")
            continue
        fi
    fi
    log=fuzz/work/$target.log
    t0=$(date +%s)
    # One process, one job, at the lowest priority: the machine is shared.
    if nice -n 19 "$BIN/$target" "$corpus" "fuzz/corpus/$target" "${LIMIT[@]}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$target")
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    line="$target: ${runs:-?} executions in $(($(date +%s) - t0)) s, $status"
    echo "$line" | tee -a "$SUMMARY"
    if [ "$status" = CRASH ]; then
        grep -E "^(==[0-9]+==ERROR|SUMMARY|thread '|artifact_prefix|Test unit written)" "$log" | head -n 20 >&2 || true
    fi
done

echo "fuzz.sh: $(($(date +%s) - start)) s in all; summary in $SUMMARY"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (logs in fuzz/work/, inputs in fuzz/artifacts/)" >&2
    exit 1
fi
