#!/usr/bin/env bash
# The verbs figures on a machine with an RDMA NIC (ConnectX with RoCE v2 or InfiniBand), or on
# soft-RoCE (rxe) where the kernel has it: one command, from a clone.
#
#   scripts/rdma-hardware.sh [--device mlx5_0] [--addr 10.0.0.5] [--gid-index N]
#                            [--traffic-class TC] [--service-level SL] [--rxe NETDEV]
#                            [--out DIR] [--mib 256]
#
# It builds the broker and the bench with the verbs provider, runs the rdma crate's tests
# (whose device tests run when a device is present), starts a broker on local storage serving
# the verbs listener and the shm socket's absence (an IBV_ATOMIC_HCA NIC may not serve both),
# runs the one-sided workload against it, and leaves the JSON report, the broker's log and the
# device description in --out (default target/rdma-hardware). Both ends run on this host:
# loopback through the NIC. For two hosts, start the broker as printed and run the bench
# command on the other host.
#
# --rxe NETDEV sets up soft-RoCE first (modprobe rdma_rxe; rdma link add rxe0 type rxe netdev
# NETDEV; needs root and a kernel built with CONFIG_RDMA_RXE), then uses rxe0.
set -euo pipefail

cd "$(dirname "$0")/.."
device="" addr="" gid_index="" traffic_class=0 service_level=0 rxe="" out=target/rdma-hardware
mib=256
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --addr) addr="$2"; shift 2 ;;
        --gid-index) gid_index="$2"; shift 2 ;;
        --traffic-class) traffic_class="$2"; shift 2 ;;
        --service-level) service_level="$2"; shift 2 ;;
        --rxe) rxe="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --mib) mib="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

need() { command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 1; }; }
need ibv_devices "apt-get install rdma-core ibverbs-utils libibverbs-dev librdmacm-dev ibverbs-providers pkg-config clang libclang-dev"
need cargo "install Rust (rustup)"

if [ -n "$rxe" ]; then
    need rdma "apt-get install iproute2"
    modprobe rdma_rxe || { echo "this kernel has no rdma_rxe (CONFIG_RDMA_RXE): no soft-RoCE here" >&2; exit 1; }
    rdma link show rxe0 >/dev/null 2>&1 || rdma link add rxe0 type rxe netdev "$rxe"
    device=rxe0
fi

if ! ibv_devices | awk 'NR > 2 { found = 1 } END { exit !found }'; then
    echo "no RDMA device (ibv_devices lists none): nothing to measure here" >&2
    echo "soft-RoCE: $0 --rxe <netdev> (root, kernel with CONFIG_RDMA_RXE)" >&2
    exit 1
fi
device="${device:-$(ibv_devices | awk 'NR > 2 { print $1; exit }')}"

# The address the control channel listens on: the device's netdev's IPv4 address.
if [ -z "$addr" ]; then
    netdev="$({ rdma link show 2>/dev/null || true; } | awk -v d="$device" '$2 ~ "^"d"/" { for (i = 1; i < NF; i++) if ($i == "netdev") print $(i + 1) }' | head -n1)"
    if [ -n "$netdev" ]; then
        addr="$({ ip -4 -o addr show dev "$netdev" || true; } | awk '{ split($4, a, "/"); print a[1]; exit }')"
    fi
    addr="${addr:-127.0.0.1}"
fi

locked="$(ulimit -l)"
if [ "$locked" != unlimited ] && [ "$locked" -lt $(( (mib + 512) * 1024 )) ]; then
    echo "ulimit -l is $locked KiB: registering the HotCache needs more (ulimit -l unlimited)" >&2
    exit 1
fi

mkdir -p "$out"
{ ibv_devinfo -d "$device" -v || true; command -v show_gids >/dev/null && show_gids "$device" || true; } \
    > "$out/device.txt" 2>&1

cargo build --release --features hotwire-broker/verbs,hotwire-bench/verbs \
    --bin hotwire --bin hotwire-bench
cargo test --release -p hotwire-rdma --features verbs 2>&1 | tee "$out/rdma-tests.txt"

token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
data="$(mktemp -d)"
verbs_args=(--rdma-verbs-device "$device")
bench_args=(--rdma-device "$device" --rdma-traffic-class "$traffic_class" --rdma-service-level "$service_level")
if [ -n "$gid_index" ]; then
    verbs_args+=(--rdma-verbs-gid-index "$gid_index")
    bench_args+=(--rdma-gid-index "$gid_index")
fi
HOTWIRE_RDMA_TOKEN="$token" target/release/hotwire --storage "fs://$data" \
    --listen "$addr:19092" --hot-cache-mib $(( mib + 256 )) \
    --rdma-verbs-listen "$addr:19093" "${verbs_args[@]}" \
    --rdma-verbs-traffic-class "$traffic_class" --rdma-verbs-service-level "$service_level" \
    > "$out/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data"' EXIT
started=""
for _ in $(seq 100); do
    if grep -q "serving the one-sided path (verbs)" "$out/broker.log"; then started=1; break; fi
    kill -0 $broker 2>/dev/null || { echo "the broker exited:" >&2; cat "$out/broker.log" >&2; exit 1; }
    sleep 0.2
done
[ -n "$started" ] || { echo "the broker did not start its verbs listener in 20 s:" >&2; cat "$out/broker.log" >&2; exit 1; }

echo "broker (verbs on $addr:19093, device $device): see $out/broker.log"
echo "from another host: HOTWIRE_RDMA_TOKEN=$token target/release/hotwire-bench one-sided -b $addr:19092 --rdma-verbs $addr:19093 ${bench_args[*]} -o DIR"
HOTWIRE_RDMA_TOKEN="$token" target/release/hotwire-bench one-sided -b "$addr:19092" \
    --rdma-verbs "$addr:19093" "${bench_args[@]}" -o "$out" --mib "$mib" \
    --commits 20000 --rounds 3 --tail-rate 2000,20000 --tail-seconds 10 --broker-pid "$broker"
echo "results: $out/one-sided.json (provider \"verbs\"), $out/device.txt, $out/rdma-tests.txt"
