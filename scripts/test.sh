#!/usr/bin/env bash
# The whole Hotwire test suite, as CI runs it:
#   1. installs the real Kafka clients the end-to-end tests drive (Debian: kcat,
#      python3-confluent-kafka, python3-pytest), only if something is missing
#   2. cargo fmt --check   3. cargo clippy -D warnings   4. release build
#   5. cargo test (Rust unit and integration tests)   6. pytest end-to-end tests against
#      target/release/hotwire
# Fails fast on the first failing step. Extra arguments go to pytest (e.g. -k restart).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONDONTWRITEBYTECODE=1
# Debian's python3-confluent-kafka imports only under the system interpreter.
PYTHON=/usr/bin/python3
PYTEST_TIMEOUT_S="${PYTEST_TIMEOUT_S:-1200}"

STEPS=()
CURRENT=""
STEP_START=0
SUITE_START=$(date +%s)

step() {
    finish_step ok
    CURRENT="$1"
    STEP_START=$(date +%s)
    printf '\n==> %s\n' "$CURRENT"
}

finish_step() {
    if [[ -n "$CURRENT" ]]; then
        STEPS+=("$(printf '%-6s %5ss  %s' "$1" "$(($(date +%s) - STEP_START))" "$CURRENT")")
        CURRENT=""
    fi
}

summary() {
    local rc=$?
    finish_step "$([[ $rc -eq 0 ]] && echo ok || echo FAILED)"
    printf '\n==> Summary (%ss)\n' "$(($(date +%s) - SUITE_START))"
    printf '  %s\n' "${STEPS[@]}"
    if [[ $rc -eq 0 ]]; then
        echo "ALL PASSED"
    else
        echo "FAILED (exit code $rc)"
    fi
}
trap summary EXIT

have_test_clients() {
    command -v kcat >/dev/null 2>&1 &&
        "$PYTHON" -c 'import confluent_kafka, pytest' >/dev/null 2>&1
}

step "install test clients (kcat, python3-confluent-kafka, python3-pytest)"
if have_test_clients; then
    echo "already installed"
else
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends kcat python3-confluent-kafka python3-pytest
    have_test_clients || { echo "test clients still missing after apt-get install" >&2; exit 1; }
fi
echo "kcat: $(kcat -V 2>&1 | grep -m1 Version)"
"$PYTHON" -c 'import confluent_kafka as c, pytest; print("confluent-kafka", c.version()[0], "librdkafka", c.libversion()[0], "pytest", pytest.__version__)'

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "rustup component add rustfmt clippy"
    rustup component add rustfmt clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (release, -D warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo build --release"
cargo build --release --workspace --bins

step "cargo test --release"
cargo test --release --workspace

step "end-to-end tests (pytest)"
HOTWIRE_BIN="$PWD/target/release/hotwire" \
    timeout --kill-after=30 "$PYTEST_TIMEOUT_S" "$PYTHON" -m pytest -v tests/ "$@"
