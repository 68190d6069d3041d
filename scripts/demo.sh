#!/usr/bin/env bash
# The demo: tunnat's live data plane in network namespaces (scripts/lib/topology.sh), with the embedded default
# configuration (tunnat default-config): private 10.0.0.0/8, pool address 198.18.0.1, device tun0, policy
# routing installed by tunnat itself. A client then runs curl, ping and traceroute through it, and the demo
# shows what happened and `tunnat status`. Everything is removed at the end. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (network namespaces and a TUN device)" >&2; exit 1; }
scripts/install-deps.sh --netns
source scripts/lib/topology.sh

echo "== building tunnat"
swift build --product tunnat 2>&1 | tail -1
tunnat=$(realpath .build/debug/tunnat)

p="demo$$"
work=$(mktemp -d /tmp/tunnat-demo.XXXXXX)
trap 'topology_cleanup "$p" "$work"' EXIT
# bash skips the EXIT trap when a signal kills it (timeout sends TERM): exit instead, so the namespaces go too.
trap 'exit 143' TERM
trap 'exit 130' INT
say() { printf '\n== %s\n' "$*"; }

say "topology: client 10.0.1.1 -> nat (tunnat) -> router 198.18.1.254 -> server 198.19.0.10"
topology_up "$p"
echo "hello from the server in namespace $p-srv" > "$work/index.html"
(cd "$work" && exec timeout 300 ip netns exec "$p-srv" python3 -m http.server 80 --bind 198.19.0.10 \
  > "$work/http.log" 2>&1) &
topology_pids+=($!)

say "tunnat run (embedded default configuration) in namespace $p-nat"
ip netns exec "$p-nat" "$tunnat" run > "$work/tunnat.log" 2>&1 &
tunnat_pid=$!
topology_pids+=("$tunnat_pid")
for _ in $(seq 100); do grep -q translating "$work/tunnat.log" && break; sleep 0.1; done
cat "$work/tunnat.log"
say "what tunnat installed in $p-nat: ip rule, table 100, the pool route"
ip -n "$p-nat" rule | grep -v -e 'lookup local' -e 'lookup default'
ip -n "$p-nat" route show table 100
ip -n "$p-nat" route show dev tun0

for _ in $(seq 50); do ip netns exec "$p-srv" ss -ltn | grep -q ':80 ' && break; sleep 0.1; done
say "client: curl http://198.19.0.10/"
ip netns exec "$p-c1" curl -sS --max-time 10 http://198.19.0.10/
echo "the server's log says who connected (the pool address, on no interface anywhere):"
tail -1 "$work/http.log"

say "client: ping -c 3 198.19.0.10"
ip netns exec "$p-c1" ping -c 3 -i 0.2 198.19.0.10

say "client: traceroute -n 198.19.0.10 (the router's time-exceeded comes back through the NAT)"
ip netns exec "$p-c1" traceroute -n -q 1 -w 2 -m 6 198.19.0.10

say "tunnat status"
"$tunnat" status

say "stopping tunnat (SIGTERM): the device goes; the rules and the blackhole stay (tun.routing.on_stop: keep)"
kill -TERM "$tunnat_pid"
wait "$tunnat_pid" || true
tail -3 "$work/tunnat.log"
ip -n "$p-nat" rule | grep 'lookup 100' || echo "no tunnat rules in $p-nat!"
ip -n "$p-nat" route show table 100

say "tunnat routing remove: gives the host back to the kernel's forwarding"
ip netns exec "$p-nat" "$tunnat" routing remove
ip -n "$p-nat" rule | grep -q 'lookup 100' && echo "policy rules left behind!" || echo "no tunnat rules left in $p-nat"
