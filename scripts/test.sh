#!/usr/bin/env bash
# The whole Hotwire test suite, as CI runs it:
#   1. installs the real Kafka clients the end-to-end tests drive (Debian: kcat,
#      python3-confluent-kafka, python3-pytest; curl to list S3 objects; openssl for the TLS
#      tests' certificates; etcd-server for the
#      cluster tests), only if something is
#      missing, and the newest clients (confluent-kafka on the newest librdkafka, kafka-python,
#      aiokafka) in a venv, .venv-clients, with the python3 on PATH, only if the pinned versions
#      are not there yet
#   2. Garage, the S3-compatible store the `backends` test modules also run on, built from
#      crates.io once per machine and cached outside the clone (scripts/install-garage.sh)
#   3. cargo fmt --check   4. cargo clippy -D warnings (and the rdma crate's verbs provider,
#      with its tests, and the broker built with it)   5. release build
#   6. cargo test (Rust unit and integration tests, with a 4 s smoke run of each fuzz target:
#      fuzz/src/smoke.rs; coverage-guided fuzzing is scripts/fuzz.sh)   7. pytest end-to-end tests against
#      target/release/hotwire: all of them with Debian's clients (modules marked `backends`
#      on fs:// and on S3), then the modules marked `clients` (groups, offsets, idempotence,
#      kafka-python, aiokafka) again in the venv   8. the librdkafka compatibility gate:
#      librdkafka's own integration tests against one broker (scripts/librdkafka-gate.sh, with
#      tests/librdkafka/expected-failures.txt), then over SASL, over TLS, and against a
#      three-broker cluster
# Fails fast on the first failing step. Extra arguments go to both pytest runs (e.g. -k restart).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONDONTWRITEBYTECODE=1
# Debian's python3-confluent-kafka imports only under the system interpreter.
PYTHON=/usr/bin/python3
# The newest clients, from PyPI, in a venv made with the python3 on PATH (not Debian's).
VENV=.venv-clients
VENV_PINS=(confluent-kafka==2.16.1 kafka-python==3.0.12 aiokafka==0.14.0 pytest==9.2.0)
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
    command -v kcat >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 &&
        command -v openssl >/dev/null 2>&1 &&
        command -v etcd >/dev/null 2>&1 && command -v clang >/dev/null 2>&1 &&
        [[ -f /usr/include/rapidjson/document.h ]] && pkg-config --exists openssl &&
        pkg-config --exists libibverbs librdmacm >/dev/null 2>&1 &&
        "$PYTHON" -c 'import confluent_kafka, pytest' >/dev/null 2>&1
}

step "install test clients (kcat, python3-confluent-kafka, python3-pytest, curl, openssl) and etcd"
if have_test_clients; then
    echo "already installed"
else
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    # libibverbs/librdmacm headers and clang (bindgen) build the rdma crate's verbs provider.
    # etcd-server: the coordination service the cluster tests start on loopback.
    # openssl: the TLS tests' certificate authorities and certificates.
    # rapidjson-dev: headers the librdkafka gate's statistics tests compile against.
    # libssl-dev: librdkafka's TLS (the bench measures SSL listeners; rdkafka's ssl feature).
    $SUDO apt-get install -y --no-install-recommends kcat python3-confluent-kafka python3-pytest \
        curl ca-certificates openssl etcd-server libibverbs-dev librdmacm-dev pkg-config clang libclang-dev \
        rapidjson-dev libssl-dev
    have_test_clients || { echo "test clients still missing after apt-get install" >&2; exit 1; }
fi
echo "kcat: $(kcat -V 2>&1 | grep -m1 Version)"
echo "etcd: $(etcd --version 2>&1 | head -n 1)"
"$PYTHON" -c 'import confluent_kafka as c, pytest; print("confluent-kafka", c.version()[0], "librdkafka", c.libversion()[0], "pytest", pytest.__version__)'

# Exit 0 if the venv has exactly the pinned versions.
venv_has_pins() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
' "${VENV_PINS[@]}" >/dev/null 2>&1
}

step "venv $VENV (${VENV_PINS[*]})"
if venv_has_pins; then
    echo "already installed"
else
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${VENV_PINS[@]}"
    venv_has_pins || { echo "$VENV still lacks ${VENV_PINS[*]} after pip install" >&2; exit 1; }
fi
"$VENV/bin/python" -c 'import confluent_kafka as c, kafka, aiokafka, pytest, sys; print("python", sys.version.split()[0], "confluent-kafka", c.version()[0], "librdkafka", c.libversion()[0], "kafka-python", kafka.__version__, "aiokafka", aiokafka.__version__, "pytest", pytest.__version__)'

step "garage (S3-compatible server for the storage tests)"
HOTWIRE_GARAGE_BIN="$(scripts/install-garage.sh)"
export HOTWIRE_GARAGE_BIN
echo "$HOTWIRE_GARAGE_BIN: $("$HOTWIRE_GARAGE_BIN" --version 2>&1 | head -n 1)"

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "rustup component add rustfmt clippy"
    rustup component add rustfmt clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (release, -D warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings

# The verbs provider builds against libibverbs; its tests run work requests through a fake
# verbs context and skip the device tests with a message when there is no RDMA device.
step "rdma crate with the verbs provider (clippy, tests; clippy of the broker and bench with it)"
cargo clippy -p hotwire-rdma --features verbs --all-targets --release -- -D warnings
cargo test -p hotwire-rdma --features verbs --release -- --nocapture
cargo clippy -p hotwire-broker -p hotwire-bench --features hotwire-broker/verbs,hotwire-bench/verbs \
    --all-targets --release -- -D warnings

# Binaries and test programs in one build: `cargo build` alone would compile the dependencies
# a second time with other features (dev-dependencies unify into the test build), and the
# binaries the tests run (target/release/hotwire, hotwire-bench) come out of this one.
step "cargo build --release (binaries and tests)"
cargo test --release --workspace --no-run

step "cargo test --release"
cargo test --release --workspace

step "end-to-end tests (pytest, Debian's librdkafka and kcat)"
HOTWIRE_BIN="$PWD/target/release/hotwire" \
    timeout --kill-after=30 "$PYTEST_TIMEOUT_S" "$PYTHON" -m pytest -v --durations=15 tests/ "$@"

step "end-to-end tests (pytest -m clients, newest clients in $VENV)"
rc=0
HOTWIRE_BIN="$PWD/target/release/hotwire" \
    timeout --kill-after=30 "$PYTEST_TIMEOUT_S" "$VENV/bin/python" -m pytest -v --durations=15 -m clients \
    tests/ "$@" || rc=$?
# 5: the extra arguments (e.g. -k restart) selected none of the client modules.
if [[ $rc -ne 0 && $rc -ne 5 ]]; then exit "$rc"; fi

# Only when no extra arguments narrowed the pytest runs: they select pytest tests, not these.
if [[ $# -eq 0 ]]; then
    step "librdkafka compatibility gate (librdkafka's integration tests, tests/librdkafka/)"
    HOTWIRE_BIN="$PWD/target/release/hotwire" timeout --kill-after=30 900 scripts/librdkafka-gate.sh
    step "librdkafka compatibility gate over SASL (SCRAM, KIP-368 re-authentication)"
    GATE_SCENARIO=sasl HOTWIRE_BIN="$PWD/target/release/hotwire" \
        timeout --kill-after=30 300 scripts/librdkafka-gate.sh
    step "librdkafka compatibility gate over TLS (client certificates required)"
    GATE_SCENARIO=ssl HOTWIRE_BIN="$PWD/target/release/hotwire" \
        timeout --kill-after=30 300 scripts/librdkafka-gate.sh
    step "librdkafka compatibility gate against a cluster (etcd, three brokers)"
    GATE_SCENARIO=cluster HOTWIRE_BIN="$PWD/target/release/hotwire" \
        timeout --kill-after=30 600 scripts/librdkafka-gate.sh
fi
