#!/usr/bin/env bash
# Failover, measured: repeats "kill -9 the active" N times in the end-to-end topology of the failover test
# (scripts/lib/failover_cluster.py; the killed node comes back as the standby before the next round, so the roles
# alternate) with I idle and B busy TCP connections, a UDP stream and pings, and reports per round and in total:
#   - the outage: the longest gap in the busy TCP streams, the UDP stream and the pings;
#   - how many established TCP connections survived (idle and busy);
#   - the time to takeover (the standby says it is active) and to the route switch (the router follows moto);
#   - the replication overhead: entries messages, bytes and records per new flow (2000 new UDP flows), and the CPU
#     seconds the active and the standby spent on them.
# With PRELOAD > 0, before the rounds: PRELOAD idle UDP flows through the active (paced and resent until its table
# holds them all, at most 120 s), then a restart of the standby timed until its replica is complete (at most 60 s)
# while CHURN new UDP flows a second go through the active (a resync must stream while the active forwards), with
# both nodes' flows, the resync counters and the active's worst lock hold/wait ("n/a" if tunnat has no such
# counter); the rounds then run on top of the preloaded table. The design's scale is PRELOAD=1048576.
#
# With MODE=both, every second round is a planned handover (`tunnat handover` on the active) instead of a kill.
#
#   scripts/bench-failover.sh [N=5] [IDLE=100] [BUSY=10] [PRELOAD=0] [CHURN=200] [MODE=kill|both]
#       as root; builds tunnat in release mode (a debug build cannot push a million flows) and moto's venv first
set -euo pipefail
trap 'exit 143' TERM
trap 'exit 130' INT
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
n=${1:-5}
idle=${2:-100}
busy=${3:-10}
preload=${4:-0}
churn=${5:-200}
mode=${6:-kill}
[[ "$mode" == kill || "$mode" == both ]] || { echo "bench-failover.sh: MODE: expected kill or both, got '$mode'" >&2; exit 2; }
handover=()
[ "$mode" = both ] && handover=(--handover)
for v in "$n" "$idle" "$busy" "$preload" "$churn"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-failover.sh: expected whole numbers: [N] [IDLE] [BUSY] [PRELOAD] [CHURN], got '$v'" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench-failover.sh: needs root (network namespaces, TUN devices); not run" >&2; exit 1; }
scripts/install-deps.sh --netns >/dev/null
swift build -c release --product tunnat >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
.venv/bin/python scripts/lib/failover_cluster.py "$here/.build/release/tunnat" --bench "$n" --idle "$idle" \
  --busy "$busy" --preload "$preload" --churn "$churn" "${handover[@]}" > "$out" || status=$?
[ -s "$out" ] || { echo "bench-failover.sh: the cluster printed no figures (exit $status)" >&2; exit 1; }
python3 - "$out" "$idle" "$busy" <<'PY'
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
idle, busy = int(sys.argv[2]), int(sys.argv[3])
p, r = result.get("preload"), result.get("resync")
if p:
    print(f"preload: {p['made']} of {p['flows']} idle UDP flows in {p['seconds']:.1f}s ({p['flows_per_second']}/s), "
          f"{p['datagrams']} datagrams in {p['chunks']} chunks ({p['chunks_resent']} sent again, last rate "
          f"{p['last_rate']}/s, {p['send_failed']} unsendable), TUN queue drops {p['tun_tx_dropped']}, evicted "
          f"{p['flows_evicted']}" + (f"; FAILED: {p['error']}" if p["error"] else ""))
if r:
    na = lambda v: "n/a" if v is None else f"{v} us"
    ac, sc = r["active_counters"], r["standby_counters"]
    took = (f"synced in {r['seconds']:.2f}s" if r["synced"] else f"not synced after {r['limit']:.0f} s")
    print(f"standby restart with {r['churn_per_second']} new flows/s ({r['churn_flows']} made meanwhile): {took} "
          f"(standby from {'-' if r['standby_seconds'] is None else r['standby_seconds']}s); flows: active {r['active_flows']}, "
          f"standby {r['standby_flows']}; resyncs started/completed: active {ac['resyncs-started']}/"
          f"{ac['resyncs-completed']}, standby {sc['resyncs-started']}/{sc['resyncs-completed']}; records sent "
          f"{ac['records-sent']} (retransmits {ac['retransmits']}), applied {sc['records-applied']}")
    print(f"active's lock after the resync: replication held it at most {na(r['table_hold_max_us'])}, a worker "
          f"waited at most {na(r['lock_wait_max_us'])}")
print(f"bench-failover: {len(result['rounds'])} round(s) (kill -9 of the active, or a planned handover), {idle} idle + "
      f"{busy} busy TCP connections, a UDP stream (50/s) and pings (20/s) each")
print(f"{'round':>5} {'mode':>8} {'flows':>8} {'takeover':>9} {'switch':>7} {'tcp gap':>8} {'udp gap':>8} {'ping gap':>9} "
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
    print(f"{i:>5} {r.get('mode', 'kill'):>8} {r['flows_replicated']:>8} {r['takeover_seconds']:>8.3f}s {r['switch_seconds']:>6.3f}s "
          f"{g['tcp']:>7.3f}s {g['udp']:>7.3f}s {g['ping']:>8.3f}s {idle_ok:>4}/{idle:<3} {busy_ok:>4}/{busy:<3}")
o = result["overhead"]
print(f"outage (longest gap of any stream): worst {max(outages):.3f}s, mean {sum(outages) / len(outages):.3f}s")
print(f"established TCP connections surviving: {survived}/{total} ({100 * survived / total:.1f}%)")
print(f"replication per new flow: {o['entries_messages_per_flow']} entries messages, {o['entries_bytes_per_flow']} bytes, "
      f"{o['records_per_flow']} records; CPU for {o['new_flows']} new flows: active {o['active_cpu_seconds']}s, "
      f"standby {o['standby_cpu_seconds']}s")
print(f"router: at most {result['router_follow_max_ms']} ms to follow a change in moto (before the call returned)")
PY
exit $status
