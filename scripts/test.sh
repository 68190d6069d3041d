#!/usr/bin/env bash
# The whole test suite: unit, requirement and golden tests (swift test), the CLI end to end, the live data
# plane in network namespaces (needs root), the failover control plane against an EC2 emulator, and the zero-malloc gate on the established-flow path
# (package-benchmark). .ci/run calls exactly this.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-bench everything but the benchmark gate (a few minutes less)
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

bench=1
for arg in "$@"; do
  case "$arg" in
    --no-bench) bench=0 ;;
    *) echo "usage: scripts/test.sh [--no-bench]" >&2; exit 64 ;;
  esac
done

scripts/install-deps.sh --netns

step() { printf '\n== %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

shared=$(cd "$here/.." && pwd)/shared
[ -d "$shared/testdata/pcaps" ] || { echo "test.sh: ../shared/testdata/pcaps is missing: the golden tests need it beside this repository" >&2; exit 1; }

step "swift build"
swift build

step "swift test"
swift test 2>&1 | tee "$log" | grep -vE '^(\[[0-9]+/[0-9]+\]|◇|✔ Test [a-zA-Z].* passed after)' || true
if ! grep -qE '^✔ Test run with [0-9]+ tests? in [0-9]+ suites? passed' "$log"; then
  echo "test.sh: swift test failed (the failures are listed above)" >&2
  exit 1
fi

step "tunnat CLI end to end"
scripts/cli-test.sh "$here/.build/debug/tunnat" "$shared/testdata/pcaps"

step "live data plane in network namespaces (tunnat run, tun and raw output)"
scripts/netns-test.sh "$here/.build/debug/tunnat" | tee -a "$log"

step "failover control plane: tunnat routes against moto_server (SigV4 verified), fake IMDSv2, namespace targets"
.venv/bin/python scripts/failover-test.py "$here/.build/debug/tunnat" | tee -a "$log"

step "connection-preserving failover end to end: two tunnat instances replicating, kill -9 of the active"
.venv/bin/python scripts/failover-e2e.py "$here/.build/debug/tunnat" | tee -a "$log"

if [ "$bench" = 1 ]; then
  step "benchmark gate: zero mallocs per packet on the established-flow path"
  scripts/bench.sh --gate
fi

echo
grep -E '^✔ Test run with' "$log"
grep -E '^namespaces: [0-9]+ passed, 0 failed' "$log"
grep -E '^failover: [0-9]+ passed, 0 failed' "$log"
grep -E '^failover-e2e: [0-9]+ passed, 0 failed' "$log"
