#!/usr/bin/env bash
# The whole test suite: unit, requirement and golden tests (swift test), the CLI end to end, the documents' figures
# against the code and this script's own parsing of the suites' output (pytest, no root), the live data
# plane in network namespaces (needs root), the Debian package installed and run as its user, the failover control
# plane against an EC2 emulator, the AWS template deployed into that emulator, the failover end to end and the floods (pytest, scripts/tests/), a three-minute soak, and the zero-malloc
# gate on the established-flow path (package-benchmark).
# Warnings are errors. .ci/run calls exactly this.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-bench everything but the benchmark gate (a few minutes less)
#
# Every suite runs even when one before it failed; the last line sums them all: "tests: N passed, M failed". The
# exit status is non-zero if any test failed, any suite ended non-zero, or any suite's count could not be read.
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shared=$(cd "$here/.." && pwd)/shared
[ -d "$shared/testdata/pcaps" ] || { echo "test.sh: ../shared/testdata/pcaps is missing: the golden tests need it beside this repository" >&2; exit 1; }
tunnat=$here/.build/debug/tunnat
# Warnings are errors in every target of ours through Package.swift (treatAllWarnings); not passed on the command
# line, which would hold the dependencies' warnings against us too.

passed=0
failed=0
summary=()
# tally SUITE STATUS PASSED FAILED: adds a suite's counts to the totals. A suite that exited non-zero with no
# failure counted (a crash, a setup error, a count that could not be read) counts as one failure.
tally() {
  local suite=$1 status=$2 p=${3:-0} f=${4:-0}
  if [ "$status" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  summary+=("$(printf '%-14s %4d passed, %d failed' "$suite:" "$p" "$f")")
}
# Each failure again, at the end, where the tail of a CI log shows it: the suite, the check, and the last lines of
# what it printed (from the shell drivers' log or pytest's report).
failures="$work/failures.txt"
: > "$failures"
# The parsing of the suites' output is scripts/lib/testlog.py's (with tests of its own in scripts/tests/).
testlog() { python3 "$here/scripts/lib/testlog.py" "$@"; }
# failed_checks SUITE LOG: a shell driver's failed checks ("  ✘ name" and the indented output under it).
failed_checks() { testlog driver-failures "$1" "$2" >> "$failures"; }
# failed_junit SUITE FILE: a pytest report's failed, errored or skipped tests and the end of their message.
failed_junit() { testlog junit-failures "$1" "$2" >> "$failures" 2>/dev/null || true; }
# count_line FILE PREFIX: "N M" from the last "PREFIX: N passed, M failed" line of FILE, or nothing.
count_line() { testlog count-line "$1" "$2"; }
# count_junit FILE: "PASSED FAILED" from a pytest --junitxml report; a skip counts as failed (as root, everything
# must run: a skipped test proves nothing).
count_junit() { testlog junit-counts "$1" 2>/dev/null || true; }

# pytest SUITE FILE [BINARY]: one pytest suite of scripts/tests/ against the debug build (or BINARY).
run_pytest() {
  local suite=$1 file=$2 binary=${3:-$tunnat} status=0 p f
  .venv/bin/python -m pytest "scripts/tests/$file" -q --tunnat "$binary" --junitxml "$work/$suite.xml" || status=$?
  read -r p f <<<"$(count_junit "$work/$suite.xml")" || true
  tally "$suite" "$status" "${p:-0}" "${f:-1}"
  [ -f "$work/$suite.xml" ] && failed_junit "$suite" "$work/$suite.xml"
}

step "swift build (warnings are errors)"
if ! swift build; then
  echo "test.sh: swift build failed; nothing was tested" >&2
  echo "tests: 0 passed, 1 failed"
  exit 1
fi

step "swift test (warnings are errors)"
status=0
swift test 2>&1 | tee "$work/swift-test.log" \
  | grep -vE '^(\[[0-9]+/[0-9]+\]|◇|✔ Test [a-zA-Z].* passed after)' || status=${PIPESTATUS[0]}
# Passed if it exited 0 and printed "✔ Test run with N tests in M suites passed"; else each "✘ Test ... failed" is
# a failure (at least one) and the rest of the N passed.
read -r p f <<<"$(testlog swift-test-counts "$work/swift-test.log" "$status")" || true
if [ "${f:-1}" = 0 ]; then
  tally "swift test" 0 "$p" 0
else
  echo "test.sh: swift test failed (the failures are listed above)" >&2
  testlog swift-test-failures "$work/swift-test.log" >> "$failures" || true
  tally "swift test" 1 "${p:-0}" "${f:-1}"
fi

step "tunnat CLI end to end"
status=0
scripts/tests/cli-test.sh "$tunnat" "$shared/testdata/pcaps" | tee "$work/cli.log" || status=$?
read -r p f <<<"$(count_line "$work/cli.log" cli)" || true
tally "cli" "$status" "${p:-0}" "${f:-1}"
failed_checks cli "$work/cli.log"

step "the figures docs/architecture.md names, against the code (no root needed)"
run_pytest docs-figures test_docs_figures.py

step "test.sh's parsing of the suites' output (scripts/lib/testlog.py) on sample logs and reports"
run_pytest testlog test_testlog.py

step "live data plane in network namespaces (tunnat run, packet, tun and raw output)"
status=0
scripts/tests/netns-test.sh "$tunnat" | tee "$work/netns.log" || status=$?
read -r p f <<<"$(count_line "$work/netns.log" namespaces)" || true
tally "namespaces" "$status" "${p:-0}" "${f:-1}"
failed_checks namespaces "$work/netns.log"

step "NAT64 in network namespaces: an IPv6-only client reaches IPv4 servers by name (unbound DNS64)"
status=0
scripts/tests/nat64-test.sh "$tunnat" | tee "$work/nat64.log" || status=$?
read -r p f <<<"$(count_line "$work/nat64.log" nat64)" || true
tally "nat64" "$status" "${p:-0}" "${f:-1}"
failed_checks nat64 "$work/nat64.log"

step "the Debian package: built, lintian, systemd-analyze, installed, run as the user tunnat in namespaces, removed"
status=0
scripts/tests/package-test.sh | tee "$work/package.log" || status=$?
read -r p f <<<"$(count_line "$work/package.log" package)" || true
tally "package" "$status" "${p:-0}" "${f:-1}"
failed_checks package "$work/package.log"

step "failover control plane: tunnat routes against moto_server (SigV4 verified), fake IMDSv2, namespace targets"
run_pytest failover test_failover_routes.py

step "the AWS deployment: tunnat-pair.yaml (size, cfn-lint, the IAM policy against the calls of the code and the user data), three zone stacks in moto with Auto Scaling groups of one, each node's user data against a fake IMDS, a replaced node, tunnat routes with what it wrote (failover, zone fallback)"
run_pytest deploy-aws test_deploy_aws.py

step "the AMI recipe: deploy/packer parsed and checked (python-hcl2; packer itself where installed)"
run_pytest deploy-image test_deploy_image.py

step "as a service: sd_notify (READY, STATUS, WATCHDOG from the packet path, STOPPING), /metrics with promtool, SIGHUP, CloudWatch to moto"
run_pytest service test_service.py

step "connection-preserving failover end to end: two tunnat instances replicating, kill -9 of the active"
run_pytest failover-e2e test_failover_e2e.py

step "NAT64 sessions across a kill -9 of the active and a handover back (the pair, dual-stack client, NAT64 route in moto)"
run_pytest nat64-failover test_nat64_failover.py

step "a pair's life with live connections: each node replaced, the release upgraded one node at a time from the previous one (built from git), handovers, kill -9"
run_pytest lifecycle test_lifecycle.py

step "the replication link under attack: a reflected datagram, a replayed session after a restart, a spoofed flood"
# Against the release build, as deployed: how fast a flood is refused is a matter of optimisation (a debug build
# refuses about a third as many datagrams a second, and the kernel drops the rest, the peer's heartbeats with them).
status=0
swift build -c release --product tunnat 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || status=${PIPESTATUS[0]}
if [ "$status" = 0 ]; then
  PYTEST_ADDOPTS=-s run_pytest sync-attacks test_sync_attacks.py "$here/.build/release/tunnat"
else
  echo "test.sh: the release build failed; the attacks on the sync link were not run" >&2
  tally sync-attacks 1 0 1
fi

step "the pair under faults: a lost, forged or replayed sync datagram, partitions, kill -9, a wrong key, EC2 hanging or throttled, clock steps (a seeded schedule)"
PYTEST_ADDOPTS=-s run_pytest chaos test_chaos.py

step "floods: bounded attacks on a running tunnat while established TCP and UDP flows run through it"
FLOOD_TABLE="$work/flood-table.md" run_pytest floods test_floods.py
[ -f "$work/flood-table.md" ] && cat "$work/flood-table.md"

step "soak: three minutes of a realistic mix through a replicating pair, a handover, SIGHUPs, floods; nothing may grow"
status=0
scripts/soak.sh 180 --tunnat "$here/.build/release/tunnat" --json "$work/soak.json" 2>&1 | tee "$work/soak.log" || status=$?
if [ "$status" = 0 ] && grep -q '^soak: passed$' "$work/soak.log"; then
  tally soak 0 1 0
else
  tally soak 1 0 1
  { echo "soak:"; grep -E '^soak: FAILED' "$work/soak.log" || tail -20 "$work/soak.log"; } >> "$failures"
fi

if [ "$bench" = 1 ]; then
  step "benchmark gate: zero mallocs per packet on the established-flow path"
  status=0
  scripts/bench.sh --gate | tee "$work/bench.log" || status=$?
  read -r p f <<<"$(count_line "$work/bench.log" 'bench gate')" || true
  tally "bench gate" "$status" "${p:-0}" "${f:-1}"
  grep -E '^bench gate: (FAILED|no |expected)' "$work/bench.log" >> "$failures" || true
fi

if [ -s "$failures" ]; then
  step "what failed"
  cat "$failures"
fi
echo
printf '%s\n' "${summary[@]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
