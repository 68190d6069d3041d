#!/usr/bin/env bash
# package-benchmark suites (Benchmarks/), release build.
#
#   scripts/bench.sh          every benchmark, the tables printed
#   scripts/bench.sh --gate   the per-packet translate benchmarks only (engine and tun frame path); fails unless every sample made
#                             zero mallocs (the per-packet path must not allocate)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null   # the system libraries tunnat's targets link (libssl, libcurl, liburing)
cd Benchmarks
gate=0
[ "${1:-}" = "--gate" ] && gate=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
filter=()
[ "$gate" = 1 ] && filter=(--filter 'Translate .*')
swift package --disable-sandbox benchmark --no-progress "${filter[@]}" 2>&1 | tee "$log" | grep -vE '^\[[0-9]+/[0-9]+\]'
[ "${PIPESTATUS[0]}" = 0 ] || { echo "bench.sh: the benchmark run failed" >&2; exit 1; }
[ "$gate" = 1 ] || exit 0
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
sections = re.split(r'\n(?=Translate )', text)
checked = 0
for section in sections[1:]:
    name = section.splitlines()[0]
    row = next((l for l in section.splitlines() if l.startswith('│ Malloc (total)')), None)
    if row is None:
        sys.exit(f"bench gate: no malloc row for {name}")
    cells = [c.strip() for c in row.strip('│').split('│')]
    p100 = int(cells[7])
    print(f"bench gate: {name}: mallocs per packet, worst sample (p100) = {p100}")
    if p100 != 0:
        sys.exit(f"bench gate: FAILED: {name} allocates")
    checked += 1
if checked < 3:
    sys.exit(f"bench gate: expected 3 per-packet benchmarks, found {checked}")
print(f"bench gate: {checked} passed, 0 failed")
PY
