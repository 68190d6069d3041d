#!/usr/bin/env bash
# NAT64 in network namespaces: an IPv6-only client reaches IPv4-only servers by name through `tunnat run`, with
# DNS64 from unbound's dns64 module (as Route 53 Resolver does on AWS). The namespace topology of
# scripts/lib/topology.sh, plus:
#
#   c6 fd00:64:1::1 (IPv6 only) -- lan6 fd00:64:1::fe  nat   unbound on fd00:64:1::fe, DNS64 prefix 64:ff9b:1::/96
#                                                           forwarding nat64.test to a dnsmasq in srv (port 5353)
#
# The NAT64 prefix is the local-use 64:ff9b:1::/96 (RFC 8215): a network-specific prefix may stand for the
# benchmarking addresses the servers have, which the Well-Known Prefix must not (RFC 6052 section 3.1).
# Runs in packet output mode (the default) and tun output mode. Needs root.
#
#   scripts/tests/nat64-test.sh [PATH-TO-TUNNAT]     (default .build/debug/tunnat)
set -euo pipefail
cd "$(dirname "$0")/../.."
tunnat=$(realpath "${1:-.build/debug/tunnat}")
source scripts/lib/topology.sh

if [ "$(id -u)" != 0 ]; then
  echo "nat64-test.sh: NOT RUN: the namespace tests need root (network namespaces, a TUN device)" >&2
  exit 1
fi
[ -x "$tunnat" ] || { echo "nat64-test.sh: $tunnat is not built" >&2; exit 1; }
for tool in unbound dnsmasq curl ping traceroute iperf3 dig; do
  command -v "$tool" >/dev/null || { echo "nat64-test.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

p="n6$$"
work=$(mktemp -d /tmp/tunnat-nat64.XXXXXX)
cleanup() {
  topology_cleanup "$p" "$work"
  rm -rf "/etc/netns/$p-c6"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

source scripts/lib/check.sh
in_ns() { local ns=$1; shift; ip netns exec "$p-$ns" "$@"; }
status_json() { "$tunnat" status --socket "$work/control.sock" --json; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

topology_up "$p"
topology_ipv6_client "$p"
# An IPv6 way out on the public side, as a NAT instance has: without the fence, packets to the prefix would take it.
ip -n "$p-nat" addr add fd00:99::1/64 dev wan nodad
ip -n "$p-rtr" addr add fd00:99::fe/64 dev nat nodad
ip -n "$p-nat" -6 route add default via fd00:99::fe
# The client resolves through the NAT's DNS64 (ip netns exec bind-mounts this over /etc/resolv.conf).
mkdir -p "/etc/netns/$p-c6"
echo "nameserver fd00:64:1::fe" > "/etc/netns/$p-c6/resolv.conf"

# Servers, each with a bounded lifetime: HTTP on srv, names in a dnsmasq that knows IPv4 only, DNS64 in nat.
head -c 20971520 /dev/urandom > "$work/big.bin"
want_sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
topology_servers "$p" "$work" 600
timeout 600 ip netns exec "$p-srv" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --user=root --port=5353 \
  --listen-address=198.19.0.10 --bind-interfaces --local=/nat64.test/ --address=/web.nat64.test/198.19.0.10 \
  --address=/far.nat64.test/198.19.1.10 --pid-file= > "$work/dns4.log" 2>&1 &
topology_pids+=($!)
cat > "$work/unbound.conf" <<EOF
server:
  interface: fd00:64:1::fe
  port: 53
  access-control: fd00:64:1::/64 allow
  module-config: "dns64 iterator"
  dns64-prefix: 64:ff9b:1::/96
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  use-syslog: no
  logfile: "$work/unbound.log"
  verbosity: 1
  do-not-query-localhost: no
  # "test." is a special-use domain (RFC 6761) that unbound answers itself unless told not to.
  local-zone: "test." nodefault
forward-zone:
  name: "nat64.test."
  forward-addr: 198.19.0.10@5353
EOF
timeout 600 ip netns exec "$p-nat" unbound -d -c "$work/unbound.conf" > "$work/unbound.out" 2>&1 &
topology_pids+=($!)
timeout 600 ip netns exec "$p-srv2" iperf3 -s -B 198.19.1.10 > "$work/iperf3.log" 2>&1 &
topology_pids+=($!)
wait_until 10 listening "$p-srv" t 80 && wait_until 10 listening "$p-srv" u 5353 \
  && wait_until 10 listening "$p-nat" u 53 && wait_until 10 listening "$p-srv2" t 5201 \
  || { echo "nat64-test.sh: the servers do not listen" >&2; cat "$work/unbound.out" "$work/unbound.log" >&2 || true; exit 1; }

write_config() {  # write_config OUTPUT-MODE
  cat > "$work/tunnat.yaml" <<EOF
nat:
  private_prefixes: [10.0.0.0/8]
  pool: [198.18.0.1]
  nat64:
    prefix: 64:ff9b:1::/96
    private_prefixes: [fd00:64:1::/64]
tun:
  name: tun0
  output: $1
control_socket: $work/control.sock
stats_interval: 0
EOF
}

tunnat_pid=
tunnat_gone() { ! kill -0 "$tunnat_pid" 2>/dev/null; }
translating_or_gone() { grep -q 'translating' "$1" || tunnat_gone; }
start_tunnat() {  # start_tunnat OUTPUT-MODE
  write_config "$1"
  : > "$work/tunnat-$1.log"
  ip netns exec "$p-nat" "$tunnat" run --config "$work/tunnat.yaml" >> "$work/tunnat-$1.log" 2>&1 &
  tunnat_pid=$!
  topology_pids+=("$tunnat_pid")
  wait_until 20 translating_or_gone "$work/tunnat-$1.log"
  grep -q 'translating' "$work/tunnat-$1.log" && return 0
  echo "tunnat did not start:" >&2
  cat "$work/tunnat-$1.log" >&2
  return 1
}
stop_tunnat() {
  kill -TERM "$tunnat_pid" 2>/dev/null || true
  wait_until 20 tunnat_gone
}

# 198.19.0.10 is c6.13.0.a: 64:ff9b:1::c613:a.
t_dns64() {
  local answer
  answer=$(in_ns c6 dig +short +tries=2 +time=3 AAAA web.nat64.test)
  [ "$answer" = "64:ff9b:1::c613:a" ] || { echo "AAAA web.nat64.test: '$answer'"; tail -5 "$work/unbound.log"; return 1; }
}

t_curl() {
  in_ns c6 curl -sS --max-time 60 -o "$work/down.bin" http://web.nat64.test/big.bin
  local got
  got=$(sha256sum "$work/down.bin" | cut -d' ' -f1)
  rm -f "$work/down.bin"
  [ "$got" = "$want_sha" ] || { echo "sha256 $got, want $want_sha"; return 1; }
  # The server saw the pool address: only tunnat can have written it.
  grep -q '^198\.18\.0\.1 - - .*"GET /big.bin' "$work/http.log" || { tail -3 "$work/http.log"; return 1; }
}

t_ping() { in_ns c6 ping -6 -c 5 -i 0.2 -W 2 web.nat64.test | grep -q ' 0% packet loss'; }

# Hop 1 is the NAT host (the kernel, forwarding into the TUN); hop 2 the IPv4 router, whose time-exceeded tunnat
# translated back to ICMPv6 from its embedded address; hop 3 the server, whose port unreachable ended it.
t_traceroute() {
  local hops
  hops=$(in_ns c6 traceroute -6 -n -q 1 -w 2 -m 6 web.nat64.test | awk 'NR > 1 {print $1, $2}' | tr '\n' ' ')
  [ "$hops" = "1 fd00:64:1::fe 2 64:ff9b:1::c612:1fe 3 64:ff9b:1::c613:a " ] || { echo "hops: $hops"; return 1; }
}

# A UDP stream of 2 Mbit/s for 3 s (iperf3, IPv6 client to an IPv4 server): no more than 1 % lost.
t_udp_stream() {
  # 1200-byte datagrams: within the IPv6 minimum MTU, whatever path MTU the client has learnt.
  timeout 30 ip netns exec "$p-c6" iperf3 -6 -c 64:ff9b:1::c613:10a -u -b 2M -l 1200 -t 3 -J > "$work/udp.json" || true
  python3 -c "
import json; d = json.load(open('$work/udp.json')); assert 'error' not in d, d.get('error')
s = d['end']['sum']; assert s['packets'] > 100 and s['lost_percent'] <= 1.0, s"
}

# Path MTU: srv2 sits behind a 1400-byte link; rtr's fragmentation-needed becomes packet-too-big with 1420.
t_pmtud() {
  in_ns c6 ip -6 route flush cache
  in_ns c6 ping -6 -M do -s 1452 -c 2 -W 2 far.nat64.test >/dev/null 2>&1 || true
  in_ns c6 ip -6 route get 64:ff9b:1::c613:10a | grep -q 'mtu 1420' || { in_ns c6 ip -6 route get 64:ff9b:1::c613:10a; return 1; }
}

t_status() {
  local json
  json=$(status_json)
  python3 -c "
import json, sys; d = json.loads(sys.argv[1]); c = d['nat']
assert c['nat64-outbound'] > 0 and c['nat64-inbound'] > 0, c
assert d['nat64']['prefix'] == '64:ff9b:1::/96', d.get('nat64')" "$json"
}

t_routes() {
  ip -n "$p-nat" -6 route show table 100 | grep -q '^64:ff9b:1::/96 dev tun0' \
    && ip -n "$p-nat" -6 route show table 100 | grep -q '^blackhole 64:ff9b:1::/96' \
    && ip -n "$p-nat" -6 rule show | grep -q 'to 64:ff9b:1::/96 lookup 100' \
    || { ip -n "$p-nat" -6 route show table 100; ip -n "$p-nat" -6 rule show; return 1; }
}

# Killed, tunnat leaves the IPv6 fence: packets to the prefix meet the blackhole, never the IPv6 routes.
t_fence_after_kill() {
  kill -9 "$tunnat_pid"
  wait_until 10 tunnat_gone
  # The rule and the blackhole stay; the route through tun0 went with it.
  ip -n "$p-nat" -6 rule show | grep -q 'to 64:ff9b:1::/96 lookup 100' || { ip -n "$p-nat" -6 rule show; return 1; }
  [ "$(ip -n "$p-nat" -6 route show table 100)" = "blackhole 64:ff9b:1::/96 dev lo metric 4294967295 pref medium" ] \
    || { ip -n "$p-nat" -6 route show table 100; return 1; }
  # Pings to the prefix go nowhere: nothing addressed to it reaches the router on the IPv6 default route.
  timeout 8 ip netns exec "$p-rtr" tcpdump -n -i nat -c 1 'ip6 and dst net 64:ff9b:1::/96' > "$work/leak.txt" 2>/dev/null &
  local capture=$!
  sleep 1  # tcpdump has no ready signal; a late start only makes the check weaker, never wrong
  ! in_ns c6 ping -6 -c 3 -i 0.2 -W 1 64:ff9b:1::c613:a >/dev/null 2>&1 || { echo "a ping was answered"; return 1; }
  wait "$capture" || true
  ! grep -q IP6 "$work/leak.txt" || { echo "leaked:"; cat "$work/leak.txt"; return 1; }
}

for mode in packet tun; do
  echo "== NAT64, tunnat run, output $mode"
  start_tunnat "$mode"
  check "IPv6 routing: the prefix into tun0, its blackhole, the rule" t_routes
  check "DNS64: unbound synthesises web.nat64.test's AAAA in 64:ff9b:1::/96" t_dns64
  check "HTTP by name: curl downloads 20 MB over NAT64, sha256 matches, the server saw the pool address" t_curl
  check "ping by name: ICMPv6 echo <-> ICMPv4 echo" t_ping
  check "traceroute by name: NAT host, embedded router, server (time exceeded and port unreachable translated)" t_traceroute
  check "UDP stream: iperf3 2 Mbit/s for 3 s, at most 1 % lost" t_udp_stream
  check "path MTU: fragmentation needed becomes packet too big (MTU + 20)" t_pmtud
  check "tunnat status counts NAT64 apart" t_status
  if [ "$mode" = tun ]; then
    check "kill -9: packets to the prefix meet the blackhole, never the IPv6 routes" t_fence_after_kill
  else
    stop_tunnat
  fi
done

echo
echo "nat64: $passed passed, $failed failed"
[ "$failed" = 0 ]
