#!/usr/bin/env bash
# Failover, measured: repeats "kill -9 the active" N times in the end-to-end topology of the failover test
# (scripts/lib/failover_cluster.py; the killed node comes back as the standby before the next round, so the roles
# alternate) with I idle and B busy TCP connections, a UDP stream and pings, and reports per round and in total:
#   - the outage: the longest gap in the busy TCP streams, the UDP stream and the pings;
#   - how many established TCP connections survived (idle and busy);
#   - the time to takeover (the standby says it is active) and to the route switch (the router follows moto);
#   - the replication overhead: entries messages, bytes and records per new flow (2000 new UDP flows), and the CPU
#     seconds the active and the standby spent on them.
#
#   scripts/bench-failover.sh [N=5] [IDLE=100] [BUSY=10]      as root; builds tunnat (debug) and moto's venv first
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
n=${1:-5}
idle=${2:-100}
busy=${3:-10}
[ "$(id -u)" = 0 ] || { echo "bench-failover.sh: needs root (network namespaces, TUN devices); not run" >&2; exit 1; }
scripts/install-deps.sh --netns >/dev/null
swift build --product tunnat >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
.venv/bin/python scripts/lib/failover_cluster.py "$here/.build/debug/tunnat" --bench "$n" --idle "$idle" \
  --busy "$busy" > "$out"
python3 - "$out" "$idle" "$busy" <<'PY'
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
idle, busy = int(sys.argv[2]), int(sys.argv[3])
print(f"bench-failover: {len(result['rounds'])} kill(s) of the active, {idle} idle + {busy} busy TCP connections, "
      "a UDP stream (50/s) and pings (20/s) each")
print(f"{'round':>5} {'flows':>6} {'takeover':>9} {'switch':>7} {'tcp gap':>8} {'udp gap':>8} {'ping gap':>9} "
      f"{'idle ok':>8} {'busy ok':>8}")
outages, survived, total = [], 0, 0
for i, r in enumerate(result["rounds"], 1):
    f = r["flows"]
    busy_ok = sum(1 for b in f.get("busy", []) if b["error"] is None and b["answered"] == b["sent"])
    idle_ok = f.get("idle", {}).get("survived", 0)
    survived += busy_ok + idle_ok
    total += idle + busy
    g = r["gaps"]
    outages.append(max(g.values()))
    print(f"{i:>5} {r['flows_replicated']:>6} {r['takeover_seconds']:>8.3f}s {r['switch_seconds']:>6.3f}s "
          f"{g['tcp']:>7.3f}s {g['udp']:>7.3f}s {g['ping']:>8.3f}s {idle_ok:>4}/{idle:<3} {busy_ok:>4}/{busy:<3}")
o = result["overhead"]
print(f"outage (longest gap of any stream): worst {max(outages):.3f}s, mean {sum(outages) / len(outages):.3f}s")
print(f"established TCP connections surviving: {survived}/{total} ({100 * survived / total:.1f}%)")
print(f"replication per new flow: {o['entries_messages_per_flow']} entries messages, {o['entries_bytes_per_flow']} bytes, "
      f"{o['records_per_flow']} records; CPU for {o['new_flows']} new flows: active {o['active_cpu_seconds']}s, "
      f"standby {o['standby_cpu_seconds']}s")
print(f"router mirror: at most {result['router_lag_max_ms']} ms behind moto")
PY
