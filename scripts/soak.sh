#!/usr/bin/env bash
# The soak: a replicating pair of tunnat (release build) in namespaces with the EC2 emulator, a realistic mix of
# traffic through it for DURATION (short HTTP connections to nginx, DNS queries to dnsmasq, UDP to many
# destinations, long-lived TCP and UDP, pings), and a long life's operations on top (metric scrapes and status calls
# every 2 s, SIGHUPs, planned handovers, bounded floods). Samples each tunnat process's RSS, descriptors, threads,
# flows and CPU, and fails when any grows without bound (scripts/lib/soak.py states the bounds). Prints the table
# docs/testing.md keeps (start, middle and end of each process's life) and the verdict; exit 1 if a check failed.
#
#   scripts/soak.sh DURATION [--tunnat BINARY] [--json FILE]
#       DURATION: seconds, or with s, m or h (180, 3m, 1h). As root; builds the release binary unless given one.
#       SOAK_SEED=N replays the random parts (the destinations, the DNS names).
#
# Runs beside the other suites and other soaks: its namespaces (tsk*) and its management network (a free /24 of
# 10.78.0.0/16) are its own.
set -euo pipefail
trap 'exit 143' TERM
trap 'exit 130' INT
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
usage() { echo "usage: scripts/soak.sh DURATION [--tunnat BINARY] [--json FILE]" >&2; exit 2; }
[ $# -ge 1 ] || usage
duration=$1
shift
case "$duration" in
  *h) seconds=$(( ${duration%h} * 3600 )) ;;
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *s) seconds=${duration%s} ;;
  *) seconds=$duration ;;
esac
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 60 ] \
  || { echo "soak.sh: DURATION: expected at least 60 seconds (180, 3m, 1h), got '$duration'" >&2; exit 2; }
tunnat=
json=
while [ $# -gt 0 ]; do
  case "$1" in
    --tunnat) tunnat=${2:?}; shift 2 ;;
    --json) json=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "soak.sh: NOT RUN: needs root (network namespaces, raw sockets)" >&2; exit 1; }
scripts/install-deps.sh --netns >/dev/null
if [ -z "$tunnat" ]; then
  swift build -c release --product tunnat 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' | tail -1
  tunnat=$here/.build/release/tunnat
fi
tunnat=$(realpath "$tunnat")
args=("$tunnat" "$seconds")
[ -n "$json" ] && args+=(--json "$(realpath -m "$json")")
cd scripts/lib
exec ../../.venv/bin/python soak.py "${args[@]}"
