#!/usr/bin/env bash
# Compatibility gate: librdkafka's own integration tests against one Hotwire broker.
#
# librdkafka's source, its tests included, ships in the `rdkafka-sys` crate that hotwire-bench
# already builds; its build script configures and builds librdkafka inside the crate's OUT_DIR,
# so the test runner (tests/test-runner) builds there against that very library.
#
# The tests that need one plaintext broker with topic auto-creation and 4-partition topics
# (librdkafka's tests/scenarios/default.json) are listed in tests/librdkafka/tests.txt; each runs
# in its own test-runner process, in quick mode (-Q), with a per-test timeout, several at a time,
# against one broker started here. tests/librdkafka/expected-failures.txt lists those known to
# fail, each with its reason. The gate fails when a test outside that list fails, when a listed
# test passes (take it off the list: the list only shrinks), and when the broker died or logged a
# panic.
#
# GATE_SCENARIO=sasl runs tests/librdkafka/sasl-tests.txt (with sasl-expected-failures.txt)
# against a broker whose only listener is SASL_PLAINTEXT with SCRAM-SHA-256 and 5 s sessions
# (KIP-368 re-authentication). GATE_SCENARIO=ssl runs tests/librdkafka/ssl-tests.txt against a
# broker whose only listener is SSL and which requires client certificates from its CA (a PKI
# made here with openssl, in every form librdkafka's 0097 loads). GATE_SCENARIO=cluster runs
# tests/librdkafka/cluster-tests.txt against three brokers in one cluster (etcd started here, one
# storage root), the clients bootstrapped with all three. A list line's first field is the test number, or NUMBER/NAME
# when one test appears twice; `subtests="..."` on a line runs only the sub-tests whose names
# contain that text (librdkafka's SUBTESTS). Marks on a line:
#   [slow]               started first
#   [full]               run in full mode: quick mode leaves out every one of its sub-tests
#   [no-subtests]        its SUB_TESTs are only in its mock-cluster variant: not EMPTY
#   [kafka-group-delay]  run against a second broker with Kafka's default 3 s initial
#                        rebalance delay (the test's timing assumes both members join the
#                        group's first generation)
#
# Usage: scripts/librdkafka-gate.sh [--full] [TEST...]
#   --full         librdkafka's full mode instead of quick mode (more messages; slower)
#   TEST           run only these list entries (e.g. 0001 0044); expectations are still checked
# Environment: GATE_JOBS (tests at a time, default 8: they mostly wait), GATE_TEST_TIMEOUT_S (per test, default 180),
#   HOTWIRE_BIN (default target/release/hotwire, built if missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
FULL=no
SCENARIO="${GATE_SCENARIO:-plaintext}"
case "$SCENARIO" in
plaintext)
    LIST=tests/librdkafka/tests.txt
    EXPECTED=tests/librdkafka/expected-failures.txt
    ;;
ssl)
    LIST=tests/librdkafka/ssl-tests.txt
    EXPECTED=tests/librdkafka/ssl-expected-failures.txt
    ;;
cluster)
    LIST=tests/librdkafka/cluster-tests.txt
    EXPECTED=tests/librdkafka/cluster-expected-failures.txt
    ;;
sasl)
    LIST=tests/librdkafka/sasl-tests.txt
    EXPECTED=tests/librdkafka/sasl-expected-failures.txt
    # Full mode: quick mode skips 0142's sub-tests (none is marked quick), and the list is short.
    FULL=yes
    ;;
*)
    echo "GATE_SCENARIO must be plaintext, ssl, sasl or cluster" >&2
    exit 2
    ;;
esac
JOBS="${GATE_JOBS:-8}"
TEST_TIMEOUT_S="${GATE_TEST_TIMEOUT_S:-180}"
MODE=-Q
# The broker version the tests assume (it gates which features they exercise): the newest the
# suite's own Makefile names.
KAFKA_VERSION=3.4.0

ONLY=()
for arg in "$@"; do
    case "$arg" in
    --full) FULL=yes ;;
    [0-9][0-9][0-9][0-9] | [0-9][0-9][0-9][0-9]/*) ONLY+=("$arg") ;;
    *)
        echo "usage: $0 [--full] [TEST...]" >&2
        exit 2
        ;;
    esac
done
if [[ $FULL == yes ]]; then MODE=""; fi

# Test numbers from a list file: the first word of each line, comments and blank lines skipped.
read_list() { sed -e 's/#.*//' "$1" | awk 'NF { print $1 }'; }

# Those marked [slow] first.
# (grep finding nothing is no error: a list may have no slow test.)
mapfile -t TESTS < <({ grep '\[slow\]' "$LIST" || true; } | read_list /dev/stdin
    { grep -v '\[slow\]' "$LIST" || true; } | read_list /dev/stdin)
if [[ ${#ONLY[@]} -gt 0 ]]; then
    for t in "${ONLY[@]}"; do
        printf '%s\n' "${TESTS[@]}" | grep -qx "$t" || { echo "$t is not in $LIST" >&2; exit 2; }
    done
    TESTS=("${ONLY[@]}")
fi
mapfile -t EXPECTED_FAILURES < <(read_list "$EXPECTED")

# The list line of a test key.
list_line() { grep -E "^$1[[:space:]]" "$LIST" || true; }

# The librdkafka tree rdkafka-sys built (the one holding the static library).
librdkafka_tree() {
    local lib
    lib=$(ls -t target/release/build/rdkafka-sys-*/out/src/librdkafka.a 2>/dev/null | head -n 1)
    [[ -n "$lib" ]] && dirname "$(dirname "$ROOT/$lib")"
}
TREE=$(librdkafka_tree || true)
if [[ -z "$TREE" ]]; then
    echo "==> building hotwire-bench (builds librdkafka from the rdkafka-sys crate)"
    cargo build --release -p hotwire-bench
    TREE=$(librdkafka_tree)
fi
if [[ -z "${HOTWIRE_BIN:-}" ]]; then
    HOTWIRE_BIN="$ROOT/target/release/hotwire"
    [[ -x "$HOTWIRE_BIN" ]] || cargo build --release --bin hotwire
fi
[[ -x "$HOTWIRE_BIN" ]] || { echo "HOTWIRE_BIN=$HOTWIRE_BIN is not an executable" >&2; exit 2; }

echo "==> test runner in $TREE/tests ($(sed -n 's/.*RD_KAFKA_VERSION *0x\([0-9a-f]*\).*/librdkafka 0x\1/p' "$TREE/src/rdkafka.h"))"
# -O1 without debug info (librdkafka's CPPFLAGS say -g -O2): the runner is built once per clean
# checkout, and these flags shorten its build; the library under test keeps its own flags.
# RapidJSON (Debian's rapidjson-dev, headers only) lets the tests that parse the client's
# statistics run (0053, 0098, 0101, 0110); without it they skip themselves.
RAPIDJSON=""
if [[ -f /usr/include/rapidjson/document.h ]]; then RAPIDJSON="-DWITH_RAPIDJSON=1"; fi
BUILD_LOG="$ROOT/target/librdkafka-runner-build.log"
make -s -C "$TREE/tests" -j"$(nproc)" test-runner CPPFLAGS="-O1 -fPIC -I$TREE/src $RAPIDJSON" \
    >"$BUILD_LOG" 2>&1 || { tail -n 60 "$BUILD_LOG"; echo "building the test runner failed" >&2; exit 1; }
RUNNER="$TREE/tests/test-runner"
# The runner links librdkafka's shared libraries, built beside the static one.
export LD_LIBRARY_PATH="$TREE/src:$TREE/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

WORK="$ROOT/target/librdkafka-gate/$SCENARIO"
rm -rf "$WORK"
mkdir -p "$WORK/results" "$WORK/storage" "$WORK/cwd"
# The tests open files relative to librdkafka's tests/ directory (../src/statistics_schema.json);
# they run in $WORK/cwd, beside a link to the tree's src/, and write their files there.
ln -s "$TREE/src" "$WORK/src"

# A free loopback port: bind to port 0 and read back what the kernel gave.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As librdkafka's test clusters: auto-created topics of 4 partitions, and no initial rebalance
# delay (Kafka's group.initial.rebalance.delay.ms, 3 s by default, a wait before every new
# group's first assignment that the tests would otherwise sit through dozens of times).
LISTENER=(--listen "127.0.0.1:$PORT")
SASL_PASSWORD=gate-pa55
# A PKI for the SSL scenario, in $WORK/pki: a CA, the broker's certificate for 127.0.0.1, and
# a client's key and certificate as PEM, DER and a password-protected PKCS#12 keystore (the
# forms librdkafka's 0097 loads, named by the SSL_* variables trivup would set).
make_pki() {
    local dir=$WORK/pki
    mkdir -p "$dir"
    (
        # errexit is off on the left of || : every step must stop the subshell itself.
        set -e
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=gate-ca"
        openssl x509 -in ca.pem -outform DER -out ca.der
        for name in broker client; do
            openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" \
                -subj "/CN=$name"
        done
        echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >broker.ext
        echo "basicConstraints=CA:FALSE" >client.ext
        for name in broker client; do
            openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out "$name.pem" -days 2 -extfile "$name.ext"
        done
        openssl x509 -in client.pem -outform DER -out client.der
        openssl pkey -in client.key -outform DER -out client.key.der
        openssl pkcs12 -export -in client.pem -inkey client.key -certfile ca.pem \
            -passout pass:gate-keystore -out client.p12
    ) >"$WORK/pki.log" 2>&1 || { cat "$WORK/pki.log"; echo "making the PKI failed" >&2; exit 1; }
    export SSL_pkcs=$dir/client.p12 SSL_password=gate-keystore SSL_client_auth=required \
        SSL_pub_der=$dir/client.der SSL_pub_pem=$dir/client.pem \
        SSL_priv_der=$dir/client.key.der SSL_priv_pem=$dir/client.key \
        SSL_ca_der=$dir/ca.der SSL_all_cas_pem=$dir/ca.pem
}
if [[ $SCENARIO == ssl ]]; then
    make_pki
    # 0097 reads librdkafka's own fixtures (an untrusted CA's client keys) from ./fixtures.
    ln -s "$TREE/tests/fixtures" "$WORK/cwd/fixtures"
    LISTENER=(--listeners "SSL://127.0.0.1:$PORT" --tls-cert-file "$WORK/pki/broker.pem"
        --tls-key-file "$WORK/pki/broker.key" --tls-client-ca-file "$WORK/pki/ca.pem")
fi
if [[ $SCENARIO == sasl ]]; then
    HOTWIRE_USER_PASSWORD=$SASL_PASSWORD "$HOTWIRE_BIN" users --storage "fs://$WORK/storage" \
        set gate >/dev/null
    LISTENER=(--listeners "SASL_PLAINTEXT://127.0.0.1:$PORT" --connections-max-reauth-ms 5000)
fi
# Starts a broker on 127.0.0.1:$1 with storage under $WORK/$2, logging to $WORK/$2.log,
# with the rest of the arguments added; sets STARTED_PID.
start_broker() {
    local port=$1 name=$2
    shift 2
    mkdir -p "$WORK/$name"
    "$HOTWIRE_BIN" "$@" --storage "fs://$WORK/$name" --auto-create-topics true \
        --default-partitions 4 >"$WORK/$name.log" 2>&1 &
    STARTED_PID=$!
}
# Waits until the broker $1 listens on port $2 (its log: $WORK/$3.log).
wait_listening() {
    local pid=$1 port=$2 name=$3
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log"; echo "hotwire exited" >&2; exit 1; }
        sleep 0.1
    done
    tail -n 40 "$WORK/$name.log"
    echo "hotwire did not listen within 30 s" >&2
    exit 1
}
BROKER_PIDS=()
# On exit or interruption: the brokers (and etcd), and any test runner still going.
trap 'kill "${BROKER_PIDS[@]}" 2>/dev/null || true; pkill -f "^$RUNNER" 2>/dev/null || true; wait "${BROKER_PIDS[@]}" 2>/dev/null || true' EXIT
BOOTSTRAP=127.0.0.1:$PORT
if [[ $SCENARIO == cluster ]]; then
    # etcd on loopback as the cluster tests start it (tests/cluster.py), then three brokers on
    # one storage root; the first broker's process is the one the tests' liveness is judged by.
    command -v etcd >/dev/null || { echo "the cluster scenario needs etcd (apt-get install etcd-server)" >&2; exit 1; }
    ETCD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ETCD_PEER=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    etcd --name gate --data-dir "$WORK/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
        --initial-cluster "gate=http://127.0.0.1:$ETCD_PEER" --election-timeout 500 --heartbeat-interval 50 \
        >"$WORK/etcd.log" 2>&1 &
    BROKER_PIDS+=($!)
    CLUSTER_URL="etcd://127.0.0.1:$ETCD_PORT/gate"
    CLUSTER_ARGS=(--cluster "$CLUSTER_URL" --cluster-shards 6 --cluster-lease-s 1 --cluster-poll-ms 50)
    for node in 1 2 3; do
        if [[ $node == 1 ]]; then node_port=$PORT; else
            node_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
            BOOTSTRAP="$BOOTSTRAP,127.0.0.1:$node_port"
        fi
        "$HOTWIRE_BIN" --listen "127.0.0.1:$node_port" --storage "fs://$WORK/storage" \
            --node-id "$node" "${CLUSTER_ARGS[@]}" --auto-create-topics true --default-partitions 4 \
            --group-initial-rebalance-delay-ms 0 >"$WORK/storage-node$node.log" 2>&1 &
        BROKER_PIDS+=($!)
        if [[ $node == 1 ]]; then BROKER_PID=$!; fi
        wait_listening "$!" "$node_port" "storage-node$node"
    done
    # Settled: three brokers registered, each leading some shard, none without a leader or moving.
    settled=no
    for _ in $(seq 600); do
        status=$("$HOTWIRE_BIN" admin --cluster "$CLUSTER_URL" status 2>/dev/null || true)
        if [[ $(grep -c 'leads [1-9]' <<<"$status") == 3 ]] && grep -q 'leader [0-9]' <<<"$status" &&
            ! grep -qE 'leader none|moving to' <<<"$status"; then
            settled=yes
            break
        fi
        sleep 0.1
    done
    [[ $settled == yes ]] || { echo "$status"; echo "the cluster did not settle within 60 s" >&2; exit 1; }
    echo "$status" | head -n 5
else
    start_broker "$PORT" storage "${LISTENER[@]}" --group-initial-rebalance-delay-ms 0
    BROKER_PID=$STARTED_PID
    BROKER_PIDS+=("$BROKER_PID")
    wait_listening "$BROKER_PID" "$PORT" storage
fi
DELAY_BROKER_PID=none
for key in "${TESTS[@]}"; do
    if [[ $(list_line "$key") == *"[kafka-group-delay]"* ]]; then
        DELAY_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        start_broker "$DELAY_PORT" storage-group-delay --listen "127.0.0.1:$DELAY_PORT"
        DELAY_BROKER_PID=$STARTED_PID
        BROKER_PIDS+=("$DELAY_BROKER_PID")
        wait_listening "$DELAY_BROKER_PID" "$DELAY_PORT" storage-group-delay
        printf 'bootstrap.servers=127.0.0.1:%s\nbroker.address.family=v4\n' "$DELAY_PORT" \
            >"$WORK/test-group-delay.conf"
        break
    fi
done

cat >"$WORK/test.conf" <<EOF
bootstrap.servers=$BOOTSTRAP
broker.address.family=v4
EOF
if [[ $SCENARIO == ssl ]]; then
    cat >>"$WORK/test.conf" <<EOF
security.protocol=SSL
ssl.ca.location=$WORK/pki/ca.pem
ssl.certificate.location=$WORK/pki/client.pem
ssl.key.location=$WORK/pki/client.key
EOF
fi
if [[ $SCENARIO == sasl ]]; then
    cat >>"$WORK/test.conf" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.username=gate
sasl.password=$SASL_PASSWORD
EOF
fi

# One test in its own runner process; writes PASS, FAIL or TIMEOUT and the seconds it took.
run_one() {
    local key=$1 t start rc verdict subtests line mode=$MODE conf=$WORK/test.conf pid=$BROKER_PID
    t=${key//\//-}
    line=$(grep -E "^${key}[[:space:]]" "$LIST")
    subtests=$(sed -n 's/.*subtests="\([^"]*\)".*/\1/p' <<<"$line")
    if [[ $line == *"[full]"* ]]; then mode=""; fi
    if [[ $line == *"[kafka-group-delay]"* ]]; then
        conf=$WORK/test-group-delay.conf
        pid=$DELAY_BROKER_PID
    fi
    start=$(date +%s)
    if ! kill -0 "$pid" 2>/dev/null; then
        # The broker died: the remaining tests would only run into their timeouts.
        echo "BROKERDOWN 0" >"$WORK/results/$t.verdict"
        return 0
    fi
    rc=0
    # CI=1: librdkafka's own CI mode, whatever the environment says, so that runs agree: the
    # tests' deadlines tripled, and latency and timing bounds that shared machines cannot keep
    # (0055's, 0053's) skipped or warned about, as upstream's CI does.
    (cd "$WORK/cwd" && CI=1 RDKAFKA_TEST_CONF="$conf" TESTS="${key%%/*}" \
        SUBTESTS="$subtests" TEST_KAFKA_VERSION="$KAFKA_VERSION" \
        timeout --kill-after=10 "$TEST_TIMEOUT_S" "$RUNNER" -L -E -S $mode -p1) \
        >"$WORK/results/$t.log" 2>&1 || rc=$?
    case $rc in
    0)
        # PASS only with the runner's PASSED banner. A test that found its preconditions unmet
        # (no SSL in this build, no SASL listener, full mode only) says SKIPPED: counted apart
        # so nobody mistakes it for a pass. One the runner filtered out before running it says
        # neither: NOTRUN, which fails the gate (it should not be on the list).
        # A test made of sub-tests (SUB_TEST in its source) that ran none of them (quick mode
        # leaves out those not marked quick; a subtests filter may match none) says PASSED
        # too: EMPTY, counted apart, and a failure where a filter or the scenario asks for it.
        if grep -q "Test .* PASSED ====" "$WORK/results/$t.log" &&
            [[ $line != *"[no-subtests]"* ]] &&
            grep -q "SUB_TEST" "$TREE"/tests/"${key%%/*}"-* &&
            ! grep -qE ': PASS \([0-9.]+s\) \]' "$WORK/results/$t.log"; then
            verdict=EMPTY
        elif grep -q "Test .* PASSED ====" "$WORK/results/$t.log"; then
            verdict=PASS
        elif grep -q "Test .* SKIPPED ====" "$WORK/results/$t.log"; then
            verdict=SKIP
        else
            verdict=NOTRUN
        fi
        ;;
    124 | 137) verdict=TIMEOUT ;;
    *) verdict=FAIL ;;
    esac
    echo "$verdict $(($(date +%s) - start))" >"$WORK/results/$t.verdict"
    printf '%-8s %4ss  %s\n' "$verdict" "$(($(date +%s) - start))" "$t"
}
export -f run_one
export WORK RUNNER KAFKA_VERSION TEST_TIMEOUT_S MODE BROKER_PID DELAY_BROKER_PID LIST TREE

START=$(date +%s)
echo "==> $SCENARIO: ${#TESTS[@]} tests, $JOBS at a time, ${TEST_TIMEOUT_S}s each at most, against 127.0.0.1:$PORT"
# run_one always returns 0 (its verdict is in the file); bash's "Aborted" notices for tests
# that abort on failure go to /dev/null, the tests' own output is in their logs.
printf '%s\n' "${TESTS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$1" 2>/dev/null' _ {}

# A test that fails and is not expected to runs once more, alone: one that then passes is
# reported as flaky (its first log kept beside) instead of failing the gate, so that a timing
# test losing a race on a loaded machine does not fail CI, and is not forgotten either.
flaky=()
for key in "${TESTS[@]}"; do
    t=${key//\//-}
    verdict=$(cut -d' ' -f1 "$WORK/results/$t.verdict" 2>/dev/null || echo MISSING)
    if [[ $verdict == FAIL || $verdict == TIMEOUT ]] &&
        ! printf '%s\n' "${EXPECTED_FAILURES[@]}" | grep -qx "$key"; then
        mv "$WORK/results/$t.log" "$WORK/results/$t.first-try.log"
        echo "retrying $key once"
        run_one "$key" 2>/dev/null
        if [[ $(cut -d' ' -f1 "$WORK/results/$t.verdict") == PASS ]]; then flaky+=("$t"); fi
    fi
done

status=0
unexpected_fail=()
unexpected_pass=()
skipped=()
empty=()
for key in "${TESTS[@]}"; do
    t=${key//\//-}
    verdict=$(cut -d' ' -f1 "$WORK/results/$t.verdict" 2>/dev/null || echo MISSING)
    expected=no
    printf '%s\n' "${EXPECTED_FAILURES[@]}" | grep -qx "$key" && expected=yes
    # In the SASL scenario every test is there for what it proves: one that skipped itself or
    # ran no sub-test proves nothing, so it fails (so does an empty one with a subtests filter).
    strict=no
    # So does one run in full mode for its sub-tests.
    if [[ $SCENARIO == sasl || $(list_line "$key") == *'subtests="'* ||
        $(list_line "$key") == *"[full]"* ]]; then
        strict=yes
    fi
    if [[ $verdict == NOTRUN || $verdict == BROKERDOWN || $verdict == MISSING ]] ||
        [[ $strict == yes && ($verdict == SKIP || $verdict == EMPTY) ]]; then
        unexpected_fail+=("$t ($verdict)")
    elif [[ ($verdict == FAIL || $verdict == TIMEOUT) && $expected == no ]]; then unexpected_fail+=("$t ($verdict)"); fi
    if [[ $verdict == PASS && $expected == yes ]]; then unexpected_pass+=("$t"); fi
    if [[ $verdict == EMPTY ]]; then empty+=("$t"); fi
    if [[ $verdict == SKIP ]]; then
        skipped+=("$t: $(sed 's/\x1b\[[0-9;]*m//g' "$WORK/results/$t.log" | grep -o 'SKIPPING TEST: .*' | grep -v -m1 'negative test flags' | cut -c16- || true)")
    fi
done

echo "==> $SCENARIO: ${#TESTS[@]} tests in $(($(date +%s) - START))s: $(grep -l '^PASS' "$WORK"/results/*.verdict | wc -l) passed, ${#empty[@]} ran no sub-test, ${#skipped[@]} skipped, $(grep -lE '^(FAIL|TIMEOUT)' "$WORK"/results/*.verdict | wc -l) failed; logs in $WORK/results"
for entry in "${skipped[@]}"; do echo "  skipped $entry"; done
if [[ ${#flaky[@]} -gt 0 ]]; then
    echo "  FLAKY (failed, then passed alone; first logs: results/*.first-try.log): ${flaky[*]}"
fi
if [[ ${#empty[@]} -gt 0 ]]; then
    echo "  ran no sub-test (quick mode leaves out those not marked quick; mark them [full]): ${empty[*]}"
fi
if [[ ${#unexpected_fail[@]} -gt 0 ]]; then
    echo "FAILED, not in $EXPECTED: ${unexpected_fail[*]}"
    for entry in "${unexpected_fail[@]}"; do
        t=${entry%% *}
        echo "---- $t (last 40 lines of $WORK/results/$t.log)"
        tail -n 40 "$WORK/results/$t.log"
    done
    status=1
fi
if [[ ${#unexpected_pass[@]} -gt 0 ]]; then
    echo "PASSED though listed in $EXPECTED: ${unexpected_pass[*]} (remove them from the list)"
    status=1
fi
for name in storage storage-group-delay storage-node1 storage-node2 storage-node3; do
    [[ -f "$WORK/$name.log" ]] || continue
    if grep -n "panicked" "$WORK/$name.log"; then
        echo "a broker logged a panic: $WORK/$name.log"
        status=1
    fi
done
for pid in "${BROKER_PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "a broker died during the run; logs: $WORK/storage*.log"
        tail -n 40 "$WORK"/storage*.log
        status=1
    fi
done
exit $status
