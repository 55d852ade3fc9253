#!/usr/bin/env bash
# Installs Garage, the S3-compatible distributed object store the storage tests run against, and
# prints the path of its binary. Garage comes from crates.io and is built from source (no
# prebuilt binaries can be fetched here); the build is cached outside the clone, in
# $HOTWIRE_TOOLS_DIR (default ~/.cache/hotwire-tools), so only the first run on a machine pays
# for it (~4-5 minutes on two cores, a debug build: the tests need correctness, not speed).
#
# Usage: scripts/install-garage.sh        # prints e.g. /root/.cache/hotwire-tools/bin/garage
set -euo pipefail

GARAGE_VERSION=2.5.0
TOOLS_DIR="${HOTWIRE_TOOLS_DIR:-$HOME/.cache/hotwire-tools}"
BIN="$TOOLS_DIR/garage-$GARAGE_VERSION/bin/garage"

if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$TOOLS_DIR"
echo "building garage $GARAGE_VERSION into $TOOLS_DIR (first run on this machine only)" >&2
# --locked: Garage's own lock file. bundled-libs: no system sqlite or lmdb needed.
CARGO_PROFILE_DEV_DEBUG=0 cargo install garage --version "$GARAGE_VERSION" --locked --debug \
    --no-default-features --features bundled-libs,lmdb,sqlite \
    --root "$TOOLS_DIR/garage-$GARAGE_VERSION" \
    --target-dir "$TOOLS_DIR/garage-build" >&2
# The build tree is only needed to rebuild: keep the cache small.
rm -rf "$TOOLS_DIR/garage-build"
"$BIN" --version >&2
echo "$BIN"
