#!/usr/bin/env bash
# Integration tests of `tunnat run` in network namespaces (scripts/lib/topology.sh), with real clients and servers:
# curl and python's http.server, dig and dnsmasq, ping, traceroute, iperf3, and python sockets. Each test runs
# in packet output mode (the default) and in tun output mode; the core ones again in raw output mode. Needs root (namespaces, TUN, raw sockets).
#
#   scripts/tests/netns-test.sh [PATH-TO-TUNNAT]     (default .build/debug/tunnat)
#
# Every wait is bounded; every namespace, process and file made here is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD
tunnat=$(realpath "${1:-.build/debug/tunnat}")
source scripts/lib/topology.sh

if [ "$(id -u)" != 0 ]; then
  echo "netns-test.sh: NOT RUN: the namespace tests need root (network namespaces, a TUN device, raw sockets)" >&2
  exit 1
fi
[ -x "$tunnat" ] || { echo "netns-test.sh: $tunnat is not built" >&2; exit 1; }

p="tn$$"
work=$(mktemp -d /tmp/tunnat-netns.XXXXXX)
trap 'topology_cleanup "$p" "$work"' EXIT
# bash skips the EXIT trap when a signal kills it (timeout sends TERM): exit instead, so the namespaces go too.
trap 'exit 143' TERM
trap 'exit 130' INT

source scripts/lib/check.sh
in_ns() { local ns=$1; shift; ip netns exec "$p-$ns" "$@"; }
status_json() { "$tunnat" status --socket "$work/control.sock" --json; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

topology_up "$p"

# Servers, each with a bounded lifetime.
head -c 52428800 /dev/urandom > "$work/big.bin"
want_sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
topology_servers "$p" "$work" 900
timeout 900 ip netns exec "$p-srv" python3 scripts/lib/nettools.py echo-server 198.19.0.10 8000 900 &
topology_pids+=($!)
wait_until 10 listening "$p-srv" t 8000 && wait_until 10 listening "$p-srv" t 80 \
  || { echo "netns-test.sh: the servers in srv do not listen" >&2; exit 1; }

# Raw output reads the TUN with read(2) and poll(2) (tun.io_uring: false), the others through io_uring: both readers
# run every test of the loop below.
write_config() {  # write_config OUTPUT-MODE [ROUTING-MAPPING]
  local io_uring=true
  [ "$1" = raw ] && io_uring=false
  cat > "$work/tunnat.yaml" <<EOF
nat:
  private_prefixes: [10.0.0.0/8]
  pool: [198.18.0.1]
tun:
  name: tun0
  output: $1
  io_uring: $io_uring
${2:+  routing: $2}
control_socket: $work/control.sock
stats_interval: 0
EOF
}

tunnat_pid=
tunnat_gone() { ! kill -0 "$tunnat_pid" 2>/dev/null; }
translating_or_gone() { grep -q 'translating' "$1" || tunnat_gone; }
tun0_gone() { ! ip -n "$p-nat" link show tun0 >/dev/null 2>&1; }
start_tunnat() {  # start_tunnat OUTPUT-MODE [ROUTING-MAPPING]
  write_config "$@"
  : > "$work/tunnat-$1.log"  # emptied here, before the start: an earlier run's "translating" must not count
  # Not through in_ns: a backgrounded function is a subshell, and $! must be tunnat itself.
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
  kill -TERM "$tunnat_pid"
  wait_until 5 tunnat_gone || { echo "tunnat still running 5 s after SIGTERM" >&2; return 1; }
  wait "$tunnat_pid"
}

# A test that starts tunnat itself runs in check's subshell: `trap stop_if_running EXIT` there stops it however the
# test ends, so that the next test can create tun0.
stop_if_running() {
  if [ -n "$tunnat_pid" ] && kill -0 "$tunnat_pid" 2>/dev/null; then stop_tunnat >/dev/null 2>&1 || kill -KILL "$tunnat_pid"; fi
}

kill_tunnat() {  # SIGKILL: none of tunnat's own clean-up runs; the kernel removes the device with its last fd.
  kill -KILL "$tunnat_pid"
  wait "$tunnat_pid" 2>/dev/null || true
  wait_until 5 tun0_gone || { echo "tun0 still there 5 s after SIGKILL"; return 1; }
}

# The fence: what keeps private traffic from leaving untranslated whether tunnat runs or not. One rule per private
# interface (lan1 and lan2, found in the main table), each with iif, none without; one blackhole in table 100.
fence_in_place() {
  local rules table closing
  rules=$(ip -n "$p-nat" -N rule show | grep -E '^100:.*lookup 100' || true)
  closing=$(ip -n "$p-nat" -N rule show | grep -E '^10[12]:' || true)
  table=$(ip -n "$p-nat" route show table 100 2>&1 || true)
  if [ "$(grep -c '^101:.*from 10.0.0.0/8 iif lo lookup 254' <<<"$closing")" != 1 ] \
     || [ "$(grep -cE '^102:.*from 10.0.0.0/8 (blackhole|6)$' <<<"$closing")" != 1 ] || [ "$(grep -c . <<<"$closing")" != 2 ]; then
    printf 'the rules after the private side are not as expected:\n%s\n' "$closing"
    return 1
  fi
  # The forwarding fence, once each: nop, the host's own and the TUN's traffic and the pool past the blackhole.
  local forwarding
  forwarding=$(ip -n "$p-nat" -N rule show | grep -E '^10[3-6]:' || true)
  if [ "$(grep -c . <<<"$forwarding")" != 5 ] || ! grep -q '^103:.*from all iif lo goto 106' <<<"$forwarding" \
     || ! grep -q '^103:.*from all iif tun0 .*goto 106' <<<"$forwarding" \
     || ! grep -q '^104:.*from all to 198.18.0.1 lookup 100' <<<"$forwarding" \
     || ! grep -qE '^105:.*from all (blackhole|6)$' <<<"$forwarding" || ! grep -q '^106:.*from all nop' <<<"$forwarding"; then
    printf 'the forwarding fence is not as expected:\n%s\n' "$forwarding"
    return 1
  fi
  if [ "$(grep -c '^100:.*from 10.0.0.0/8 iif lan1 lookup 100' <<<"$rules")" != 1 ] \
     || [ "$(grep -c '^100:.*from 10.0.0.0/8 iif lan2 lookup 100' <<<"$rules")" != 1 ] \
     || [ "$(grep -c . <<<"$rules")" != 2 ] || [ "$(grep -c '^blackhole default' <<<"$table")" != 1 ] \
     || ! grep -q '^throw 10.0.0.0/8' <<<"$table"; then
    printf 'the fence is not as expected:\n%s\n%s\n' "$rules" "$table"
    return 1
  fi
}

no_tunnat_routing() {
  local rules table
  rules=$(ip -n "$p-nat" -N rule show | grep -E 'lookup 100|^10[1-6]:' || true)
  table=$(ip -n "$p-nat" route show table 100 2>/dev/null || true)
  [ -z "$rules$table" ] || { printf 'left behind:\n%s\n%s\n' "$rules" "$table"; return 1; }
}

# --- the tests ---------------------------------------------------------------------------------------------

t_ping() { in_ns c1 ping -c 5 -i 0.2 -W 2 198.19.0.10 | grep -q ' 0% packet loss'; }

t_curl_50mb() {
  in_ns c1 curl -sS --max-time 120 -o "$work/down.bin" http://198.19.0.10/big.bin
  local got
  got=$(sha256sum "$work/down.bin" | cut -d' ' -f1)
  rm -f "$work/down.bin"
  [ "$got" = "$want_sha" ] || { echo "sha256 $got, want $want_sha"; return 1; }
}

# The server must have seen the pool address, which is on no interface anywhere: only tunnat can have written it.
t_server_saw_pool_address() {
  grep -q '^198\.18\.0\.1 - - .*"GET /big.bin' "$work/http.log" || { tail -3 "$work/http.log"; return 1; }
  ! ip -n "$p-nat" -o addr | grep -q '198\.18\.0\.1/'
}

t_dns() { topology_dns_queries "$p" 20; }

t_traceroute() {
  local hops
  hops=$(in_ns c1 traceroute -n -q 1 -w 2 -m 6 198.19.0.10 | awk 'NR > 1 {print $1, $2}' | tr '\n' ' ')
  [ "$hops" = "1 10.0.1.254 2 198.18.1.254 3 198.19.0.10 " ] || { echo "hops: $hops"; return 1; }
}

t_port_unreachable() { in_ns c1 python3 scripts/lib/nettools.py udp-refused 198.19.0.10 9999; }

t_pmtud() {
  in_ns c1 ip route flush cache
  # The first DF packet too big for srv2's 1400-byte link draws "fragmentation needed" from rtr, sent to the
  # pool address and translated back to c1, which must then know the path MTU.
  in_ns c1 ping -M do -s 1472 -c 2 -W 2 198.19.1.10 >/dev/null 2>&1 || true
  in_ns c1 ip route get 198.19.1.10 | grep -q 'mtu 1400' || { in_ns c1 ip route get 198.19.1.10; return 1; }
  # TCP: srv2 advertises MSS 1460, so c1's first full segments are too big; the upload only completes if
  # PMTUD works through the NAT.
  in_ns c1 ip route flush cache
  timeout 30 ip netns exec "$p-srv2" iperf3 -s -1 -B 198.19.1.10 >/dev/null 2>&1 &
  local server=$!
  wait_until 10 listening "$p-srv2" t 5201 || { echo "iperf3 -s does not listen"; return 1; }
  timeout 30 ip netns exec "$p-c1" iperf3 -c 198.19.1.10 -n 20M -J > "$work/pmtud.json"
  wait "$server" || true
  # iperf3 -n ends when the last byte is written; most of it must have arrived by then.
  python3 -c "import json; d=json.load(open('$work/pmtud.json')); e=d['end']; assert 'error' not in d and e['sum_sent']['bytes'] >= 20*2**20 and e['sum_received']['bytes'] >= 10*2**20, e"
}

t_hairpin() {
  timeout 10 ip netns exec "$p-c2" python3 scripts/lib/nettools.py hairpin-listen 7000 198.19.0.10:9 6 &
  local listener=$!
  wait_until 5 listening "$p-c2" u 7000 || { echo "the hairpin listener is not bound"; return 1; }
  in_ns c1 python3 scripts/lib/nettools.py hairpin-send 198.18.0.1 7000 198.18.0.1
  wait "$listener"
}

t_unsolicited() {
  local before after
  before=$(status_json | json_field "['drops']['no-mapping']")
  in_ns rtr python3 scripts/lib/nettools.py unsolicited 198.18.0.1
  after=$(status_json | json_field "['drops']['no-mapping']")
  [ $((after - before)) -ge 2 ] || { echo "no-mapping drops went from $before to $after"; return 1; }
}

t_1000_connections() {
  (ulimit -n 8192 && in_ns c1 timeout 120 python3 scripts/lib/nettools.py many-connections 198.19.0.10 8000 1000)
  local flows
  flows=$(status_json | json_field "['flows']")
  [ "$flows" -ge 1000 ] || { echo "tunnat has $flows flows after 1000 connections"; return 1; }
}

# No netfilter NAT anywhere in the NAT's namespace, and no conntrack entry with a translation.
t_kernel_nat_unused() {
  if in_ns nat nft list ruleset | grep -q 'type nat'; then echo "an nftables nat chain exists"; return 1; fi
  local out
  out=$(in_ns nat conntrack -L --src-nat 2>&1; in_ns nat conntrack -L --dst-nat 2>&1)
  [ "$(grep -c ' 0 flow entries' <<<"$out")" = 2 ] || { echo "$out"; return 1; }
}

t_status() {
  local text
  text=$("$tunnat" status --socket "$work/control.sock")
  grep -q '^flows [1-9]' <<<"$text" && grep -Eq '^  outbound +[1-9]' <<<"$text" \
    && grep -Eq '^  inbound +[1-9]' <<<"$text" && grep -q '^drops' <<<"$text" || { echo "$text"; return 1; }
}

# Packet output: most frames left straight through the packet socket, none was refused, and the kernel's
# fallback took the rest (the first packets to a new next hop, hairpinned ones).
t_direct_frames() {
  local json
  json=$("$tunnat" status --json --socket "$work/control.sock")
  python3 - "$json" <<'PYCHECK' || { echo "$json"; return 1; }
import json, sys
io = json.loads(sys.argv[1])["io"]
direct, fallback = io["frames-direct"], io["frames-fallback"]
print(f"frames-direct {direct}, frames-fallback {fallback}, egress-lookups {io['egress-lookups']}, write-errors {io['write-errors']}")
assert direct > 10 * fallback > 0 and io["write-errors"] == 0, io
PYCHECK
}

# The rules name the private interfaces the main table routes 10.0.0.0/8 to (lan1, lan2), never wan; the log says so.
t_private_side_rules() {
  fence_in_place || return 1
  grep 'private side:' "$work/tunnat-$mode.log" | grep -qE 'interfaces=lan1,lan2( |$)' \
    && grep 'policy routing installed' "$work/tunnat-$mode.log" | grep -q 'rules=from 10.0.0.0/8 iif lan1, from 10.0.0.0/8 iif lan2 ' \
    || { grep 'private side\|policy routing' "$work/tunnat-$mode.log"; return 1; }
}

# A datagram with a private source arriving on wan (sent from rtr as a raw Ethernet frame to wan's MAC) is dropped
# by the policy rules: srv sees nothing of it, neither translated (from the pool address) nor forwarded with its
# spoofed source, and tunnat translates nothing. wan's receive counter shows the frames did arrive.
t_spoofed_private_source() {
  local wan_mac before after counts rx_before rx_after
  wan_mac=$(ip -n "$p-nat" -o link show wan | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  before=$(status_json | json_field "['nat']['outbound']")
  rx_before=$(cat "/proc/$tunnat_pid/net/dev" | awk '$1 == "wan:" {print $3}')
  timeout 10 ip netns exec "$p-srv" python3 scripts/lib/nettools.py udp-sources 7777 3 > "$work/spoofed.json" 2>&1 &
  local listener=$!
  wait_until 5 listening "$p-srv" u 7777 || { echo "the listener in srv is not bound"; return 1; }
  in_ns rtr python3 scripts/lib/nettools.py spoof nat "$wan_mac" 10.0.1.1 198.19.0.10 7777 20 || return 1
  wait "$listener" || { cat "$work/spoofed.json"; return 1; }
  after=$(status_json | json_field "['nat']['outbound']")
  rx_after=$(cat "/proc/$tunnat_pid/net/dev" | awk '$1 == "wan:" {print $3}')
  counts=$(cat "$work/spoofed.json")
  python3 -c "import json,sys; c=json.loads(sys.argv[1]); assert c.get('198.18.0.1', 0) == 0 and c.get('10.0.1.1', 0) == 0, c" "$counts" \
    || { echo "srv received (by source): $counts"; return 1; }
  [ $((rx_after - rx_before)) -ge 20 ] || { echo "wan received $((rx_after - rx_before)) packets, want >= 20 (the spoofing did not reach it)"; return 1; }
  [ "$after" = "$before" ] || { echo "tunnat's outbound count went from $before to $after"; return 1; }
}

# send_udp NS SOURCE DESTINATION PORT COUNT: COUNT datagrams from SOURCE (an address of NS) to DESTINATION:PORT.
send_udp() {
  in_ns "$1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for _ in range(int(sys.argv[4])):
    s.sendto(b"fence", (sys.argv[2], int(sys.argv[3])))' "$2" "$3" "$4" "$5"
}

# fenced LISTENER_NS LISTEN_PORT SENDER_NS SOURCE DESTINATION ARRIVAL_IF: 20 datagrams that tunnat does not
# translate reach the NAT's ARRIVAL_IF (its receive counter shows it) and never LISTENER_NS, from any source.
fenced() {
  local listener rx_before rx_after counts
  rx_before=$(awk -v d="$6:" '$1 == d {print $3}' "/proc/$tunnat_pid/net/dev")
  timeout 10 ip netns exec "$p-$1" python3 scripts/lib/nettools.py udp-sources "$2" 3 > "$work/fenced.json" 2>&1 &
  listener=$!
  wait_until 5 listening "$p-$1" u "$2" || { echo "the listener in $1 is not bound"; return 1; }
  send_udp "$3" "$4" "$5" "$2" 20 || return 1
  wait "$listener" || { cat "$work/fenced.json"; return 1; }
  rx_after=$(awk -v d="$6:" '$1 == d {print $3}' "/proc/$tunnat_pid/net/dev")
  counts=$(cat "$work/fenced.json")
  [ "$counts" = "{}" ] || { echo "$1 received (by source): $counts"; return 1; }
  [ $((rx_after - rx_before)) -ge 20 ] || { echo "$6 received $((rx_after - rx_before)) packets, want >= 20"; return 1; }
}

# The forwarding fence: the NAT forwards nothing tunnat did not translate. srv sends straight to c1's private
# address (rtr routes 10.0.1.0/24 to the NAT for the test): the kernel would forward it to c1.
t_fence_inbound_to_private() {
  ip -n "$p-rtr" route add 10.0.1.0/24 via 198.18.1.1 || return 1
  fenced c1 7779 srv 198.19.0.10 10.0.1.1 wan
  local rc=$?
  ip -n "$p-rtr" route del 10.0.1.0/24 via 198.18.1.1
  return $rc
}

# c1 sends from an address outside the private prefixes (192.168.77.1): not translated, and not forwarded either.
t_fence_foreign_source() {
  ip -n "$p-c1" addr add 192.168.77.1/32 dev eth0 || return 1
  fenced srv 7779 c1 192.168.77.1 198.19.0.10 lan1
  local rc=$?
  ip -n "$p-c1" addr del 192.168.77.1/32 dev eth0
  return $rc
}

# The kernel's own counters of tun0 are in the report, and tun-tx-dropped counts what the kernel could not queue to
# tunnat: with tunnat stopped (SIGSTOP), 3,000 datagrams overflow its queues (500 packets each). They go to a
# listener, so that srv sends no port unreachables (rate-limited per destination: the next tests would miss theirs).
t_kernel_counters() {
  local before after
  timeout 10 ip netns exec "$p-srv" python3 scripts/lib/nettools.py udp-sources 7778 4 > /dev/null 2>&1 &
  local sink=$!
  wait_until 5 listening "$p-srv" u 7778 || { echo "the sink in srv is not bound"; return 1; }
  status_json | python3 -c "import json,sys; k=json.load(sys.stdin)['kernel']; assert sorted(k) == ['tun-rx-dropped', 'tun-rx-errors', 'tun-tx-dropped', 'tun-tx-errors'] and all(type(v) is int for v in k.values()), k" \
    || return 1
  before=$(status_json | json_field "['kernel']['tun-tx-dropped']")
  kill -STOP "$tunnat_pid"
  in_ns c1 python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x', ('198.19.0.10', 7778)) for _ in range(3000)]"
  kill -CONT "$tunnat_pid"
  wait "$sink" || true
  after=$(status_json | json_field "['kernel']['tun-tx-dropped']")
  [ "$after" -gt "$before" ] || { echo "tun-tx-dropped went from $before to $after"; return 1; }
  "$tunnat" status --socket "$work/control.sock" | grep -Eq "^  tun-tx-dropped +$after\$"
}

# A clean stop takes the device and the routes through it, and keeps the fence (tun.routing.on_stop: keep).
t_clean_exit() {
  stop_tunnat
  if ip -n "$p-nat" link show tun0 >/dev/null 2>&1; then echo "tun0 left behind"; return 1; fi
  if ip -n "$p-nat" route | grep -q 'tun0'; then echo "a route through tun0 left behind"; return 1; fi
  [ ! -e "$work/control.sock" ] || { echo "control socket left behind"; return 1; }
  fence_in_place || return 1
  grep -q 'policy routing kept (tun.routing.on_stop: keep)' "$work/tunnat-$mode.log"
}

t_reads() {  # the reader the loop asked for, and no refusal
  local want='reads=io_uring'
  [ "$mode" = raw ] && want='reads=read(2) (tun.io_uring: false)'
  grep -F "translating" "$work/tunnat-$mode.log" | grep -qF "$want" || { grep -F translating "$work/tunnat-$mode.log"; return 1; }
  ! grep -q 'io_uring refused' "$work/tunnat-$mode.log"
}

for mode in packet tun raw; do
  echo "== tunnat run, output $mode"
  start_tunnat "$mode"
  check "the TUN is read through $([ "$mode" = raw ] && echo "read(2) (tun.io_uring: false)" || echo io_uring)" t_reads
  check "ICMP echo through the NAT" t_ping
  check "TCP: curl downloads 50 MB, sha256 matches" t_curl_50mb
  check "the server saw the pool address 198.18.0.1" t_server_saw_pool_address
  check "UDP: 20 DNS queries with dig" t_dns
  check "traceroute: NAT, router, server; time-exceeded translated back" t_traceroute
  check "ICMP port unreachable for UDP to a closed port reaches the client" t_port_unreachable
  check "path MTU discovery across a 1400-byte link (ICMP and TCP)" t_pmtud
  check "hairpinning between two clients through the pool address" t_hairpin
  if [ "$mode" != raw ]; then
    check "policy rules from 10.0.0.0/8 name the private interfaces lan1 and lan2 (iif), not wan" t_private_side_rules
    check "unsolicited inbound TCP and UDP to the pool address are dropped" t_unsolicited
    check "a spoofed private source arriving on wan is dropped: neither translated nor forwarded" t_spoofed_private_source
    check "forwarding fence: a datagram from the internet to a private address is not forwarded" t_fence_inbound_to_private
    check "forwarding fence: a source outside the private prefixes is neither translated nor forwarded" t_fence_foreign_source
    check "1,000 concurrent TCP connections" t_1000_connections
  fi
  check "no netfilter NAT rule, no translated conntrack entry" t_kernel_nat_unused
  check "tunnat status shows flows, packets and drops" t_status
  if [ "$mode" = packet ]; then
    check "packet output: frames leave through the packet socket, the first ones through the TUN" t_direct_frames
  fi
  if [ "$mode" = tun ]; then
    check "tunnat status --json has tun0's kernel counters; a full queue shows in tun-tx-dropped" t_kernel_counters
  fi
  check "SIGTERM: device, socket and routes through tun0 gone; rules and blackhole kept" t_clean_exit
done

echo "== never untranslated"
# Killed, tunnat leaves the fence; a second start adds what is missing, keeps what is there, doubles nothing, works.
t_restart_after_sigkill() {
  trap stop_if_running EXIT
  start_tunnat tun || return 1
  kill_tunnat || return 1
  fence_in_place || return 1
  start_tunnat tun || return 1
  fence_in_place || return 1
  grep 'policy routing installed' "$work/tunnat-tun.log" | grep 'added=2' | grep -q 'already-there=11' \
    || { grep 'policy routing installed' "$work/tunnat-tun.log"; return 1; }
  t_ping || { echo "no ping through the restarted tunnat"; return 1; }
  stop_tunnat
}

# Echo requests c1 has sent (its namespace's ICMP counters), and pings from the pool address captured on wan.
pings_sent() { in_ns c1 awk '/^Icmp:/ { if (!n++) { for (i = 1; i <= NF; i++) f[$i] = i } else print $f["OutEchos"] }' /proc/net/snmp; }
pings_translated() { tcpdump -n -r "$work/wan.pcap" 'icmp and src host 198.18.0.1' 2>/dev/null | wc -l; }
grown() { [ "$("pings_$1")" -ge "$2" ]; }
more_pings() {  # more_pings sent|translated [N]: waits (at most 20 s) until that count has grown by N (50)
  local want=$(($("pings_$1") + ${2:-50}))
  wait_until 20 grown "$1" "$want" || { echo "pings $1: $("pings_$1"), not $want within 20 s"; return 1; }
}

# tcpdump on wan while c1 pings srv 100 times a second, through a SIGKILL, a restart, a clean stop and a restart:
# never a packet from 10.0.0.0/8 on wan, and pings from the pool address while tunnat runs.
t_capture_never_untranslated() {
  stream= capture=  # not local: the EXIT trap runs after the function has returned
  trap 'stop_if_running; [ -n "${stream:-}" ] && kill "$stream" 2>/dev/null; [ -n "${capture:-}" ] && kill "$capture" 2>/dev/null' EXIT
  start_tunnat tun || return 1
  ip netns exec "$p-nat" timeout 60 tcpdump -i wan -n -U -Z root -w "$work/wan.pcap" ip > "$work/tcpdump.log" 2>&1 &
  capture=$!
  wait_until 5 grep -q 'listening on' "$work/tcpdump.log" || { cat "$work/tcpdump.log"; return 1; }
  ip netns exec "$p-c1" timeout 60 ping -q -i 0.01 -W 1 198.19.0.10 > /dev/null 2>&1 &
  stream=$!
  # Each phase lasts until more pings have gone through it: 50 captured translated on wan while tunnat runs, 100
  # sent by c1 while it does not (a second at 100 a second, the window in which a leak would show).
  more_pings translated || return 1
  kill_tunnat || return 1          # (a)
  more_pings sent 100 || return 1
  start_tunnat tun || return 1     # (b)
  more_pings translated || return 1
  stop_tunnat || return 1          # (c)
  more_pings sent 100 || return 1
  start_tunnat tun || return 1     # (d)
  more_pings translated || return 1
  stop_tunnat || return 1
  kill "$stream"; wait "$stream" 2>/dev/null || true
  kill -INT "$capture"; wait "$capture" 2>/dev/null || true
  stream= capture=
  local private translated
  private=$(tcpdump -n -r "$work/wan.pcap" 'src net 10.0.0.0/8' 2>/dev/null | wc -l)
  translated=$(tcpdump -n -r "$work/wan.pcap" 'icmp and src host 198.18.0.1' 2>/dev/null | wc -l)
  echo "on wan: $private packets from 10.0.0.0/8, $translated pings from 198.18.0.1"
  [ "$private" = 0 ] || { tcpdump -n -r "$work/wan.pcap" 'src net 10.0.0.0/8' 2>/dev/null | head -5; return 1; }
  # Three runs of 50 pings or more: the capture is known to work only if it holds them.
  [ "$translated" -ge 150 ]
}

# `tunnat routing remove` gives the host back: refused while tunnat runs; after a stop, the rules and table go.
t_routing_remove() {
  trap stop_if_running EXIT
  start_tunnat tun || return 1
  local out rc=0
  out=$(in_ns nat "$tunnat" routing remove --config "$work/tunnat.yaml" 2>&1) || rc=$?
  [ "$rc" != 0 ] && grep -q 'tun0 exists, so tunnat is running' <<<"$out" || { echo "while running: exit $rc: $out"; return 1; }
  fence_in_place || return 1
  stop_tunnat || return 1
  fence_in_place || return 1
  out=$(in_ns nat "$tunnat" routing remove --config "$work/tunnat.yaml" 2>&1) || { echo "$out"; return 1; }
  grep -q 'rule del from 10.0.0.0/8 iif lan1 lookup 100 pref 100' <<<"$out" && grep -q 'route flush table 100' <<<"$out" \
    || { echo "$out"; return 1; }
  no_tunnat_routing || return 1
  out=$(in_ns nat "$tunnat" routing remove --config "$work/tunnat.yaml" 2>&1) || { echo "$out"; return 1; }
  grep -q 'no tunnat policy routing found' <<<"$out" || { echo "a second time: $out"; return 1; }
}

# tun.routing.on_stop: remove: a clean stop removes everything, and says so.
t_on_stop_remove() {
  trap stop_if_running EXIT
  start_tunnat tun '{on_stop: remove}' || return 1
  fence_in_place || return 1
  t_ping || return 1
  stop_tunnat || return 1
  no_tunnat_routing || return 1
  grep -q 'policy routing removed (tun.routing.on_stop: remove)' "$work/tunnat-tun.log"
}
check "SIGKILL then a second start: the fence stays, nothing doubled, traffic flows" t_restart_after_sigkill
check "tcpdump on wan through SIGKILL, restart, SIGTERM, restart: no private source, translated pings" t_capture_never_untranslated
check "tunnat routing remove: refused while running; after a stop removes the rules and the table" t_routing_remove
check "tun.routing.on_stop: remove: a clean stop removes the rules and the table" t_on_stop_remove

echo "== refusals"
t_existing_device() {
  ip -n "$p-nat" link add tunx type veth peer name tunx-peer || return 1
  write_config tun
  sed -i 's/name: tun0/name: tunx/' "$work/tunnat.yaml"
  local out rc=0
  out=$(in_ns nat timeout 10 "$tunnat" run --config "$work/tunnat.yaml" 2>&1) || rc=$?
  ip -n "$p-nat" link del tunx
  [ "$rc" != 0 ] && grep -q 'tunx already exists' <<<"$out" || { echo "exit $rc: $out"; return 1; }
}
t_wrong_config() {
  printf 'nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\ntun:\n  output: fast\n' > "$work/bad.yaml"
  local out rc=0
  out=$(in_ns nat timeout 10 "$tunnat" run --config "$work/bad.yaml" 2>&1) || rc=$?
  [ "$rc" = 2 ] && grep -q "bad.yaml:5: tun.output: expected tun, raw or packet, got 'fast'" <<<"$out" || { echo "exit $rc: $out"; return 1; }
}
t_no_privilege() {
  write_config tun
  chmod 755 "$work"; chmod 644 "$work/tunnat.yaml"
  local out rc=0
  out=$(in_ns nat timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
        "$tunnat" run --config "$work/tunnat.yaml" 2>&1) || rc=$?
  [ "$rc" != 0 ] && grep -q 'CAP_NET_ADMIN' <<<"$out" || { echo "exit $rc: $out"; return 1; }
}
t_no_forwarding() {
  write_config tun
  local out rc=0
  out=$(in_ns c1 timeout 10 "$tunnat" run --config "$work/tunnat.yaml" 2>&1) || rc=$?
  [ "$rc" != 0 ] && grep -q 'net.ipv4.ip_forward is 0' <<<"$out" || { echo "exit $rc: $out"; return 1; }
}
t_no_private_interface() {
  printf 'nat:\n  private_prefixes: [172.16.0.0/12]\n  pool: [198.18.0.1]\ncontrol_socket: %s/control.sock\n' "$work" \
    > "$work/noprivate.yaml"
  local out rc=0
  out=$(in_ns nat timeout 10 "$tunnat" run --config "$work/noprivate.yaml" 2>&1) || rc=$?
  [ "$rc" != 0 ] && grep -q 'set tun.routing.interface to the interface private traffic arrives on' <<<"$out" \
    || { echo "exit $rc: $out"; return 1; }
  if ip -n "$p-nat" -N rule show | grep -q '172.16'; then echo "a rule was installed"; return 1; fi
}
check "an existing device is refused with a clear message" t_existing_device
check "a wrong config names the file, line, key and what is accepted" t_wrong_config
check "without CAP_NET_ADMIN: a clear message, non-zero exit" t_no_privilege
check "without IP forwarding: a clear message, non-zero exit" t_no_forwarding
check "no route into the private prefixes and tun.routing.interface empty: refused, naming the key" t_no_private_interface

echo
echo "namespaces: $passed passed, $failed failed"
[ "$failed" = 0 ]
