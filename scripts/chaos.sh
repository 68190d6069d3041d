#!/usr/bin/env bash
# The chaos suite's long form: the HA pair (two tunnat nodes replicating, in namespaces, with the EC2 emulator and
# live TCP and UDP flows) under a seeded random schedule of faults for MINUTES minutes (scripts/lib/chaos.py: the
# fault kinds, the checks after each heal, how split-brain is measured). Prints the seed first, each episode as it
# ends, then the table that docs/high-availability.md keeps: faults by kind, the worst time to converge, the
# connections lost (and why each loss is allowed), split-brain seconds. Exit 1 if a check failed.
#
#   scripts/chaos.sh [MINUTES=30] [SEED=random]
#       as root; builds tunnat (debug, as the test command does) and moto's venv first. SEED replays a schedule.
set -euo pipefail
trap 'exit 143' TERM
trap 'exit 130' INT
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
minutes=${1:-30}
seed=${2:-}
[[ "$minutes" =~ ^[0-9]+$ ]] || { echo "chaos.sh: MINUTES: expected a whole number, got '$minutes'" >&2; exit 2; }
[[ -z "$seed" || "$seed" =~ ^[0-9]+$ ]] || { echo "chaos.sh: SEED: expected a whole number, got '$seed'" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "chaos.sh: needs root (network namespaces, raw sockets, the realtime clock); not run" >&2; exit 1; }
scripts/install-deps.sh --netns >/dev/null
swift build --product tunnat >/dev/null
args=(--minutes "$minutes")
[ -n "$seed" ] && args+=(--seed "$seed")
cd scripts/lib
exec ../../.venv/bin/python chaos.py "$here/.build/debug/tunnat" "${args[@]}" --json "${CHAOS_JSON:-/tmp/tunnat-chaos.json}"
