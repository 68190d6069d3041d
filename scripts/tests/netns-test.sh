#!/usr/bin/env bash
# Integration tests of `tunnat run` in network namespaces (scripts/lib/topology.sh), with real clients and servers:
# curl and python's http.server, dig and dnsmasq, ping, traceroute, iperf3, and python sockets. Each test runs
# in tun output mode; the core ones again in raw output mode. Needs root (namespaces, TUN, raw sockets).
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

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, shows its output only when it fails.
check() {
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf '  ✔ %s\n' "$name"
  else
    failed=$((failed + 1))
    printf '  ✘ %s\n' "$name"
    printf '%s\n' "$out" | sed 's/^/      /' | tail -20
  fi
}
in_ns() { local ns=$1; shift; ip netns exec "$p-$ns" "$@"; }
status_json() { "$tunnat" status --socket "$work/control.sock" --json; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

topology_up "$p"

# Servers, each with a bounded lifetime.
head -c 52428800 /dev/urandom > "$work/big.bin"
want_sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
(cd "$work" && exec timeout 900 ip netns exec "$p-srv" python3 -m http.server 80 --bind 198.19.0.10 \
   > "$work/http.log" 2>&1) &
topology_pids+=($!)
timeout 900 ip netns exec "$p-srv" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --user=root \
  --listen-address=198.19.0.10 --bind-interfaces --address=/tunnat.test/198.19.0.77 --pid-file= \
  > "$work/dns.log" 2>&1 &
topology_pids+=($!)
timeout 900 ip netns exec "$p-srv" python3 scripts/lib/nettools.py echo-server 198.19.0.10 8000 900 &
topology_pids+=($!)
for _ in $(seq 50); do
  in_ns srv ss -ltn | grep -q ':8000' && in_ns srv ss -ltn | grep -q ':80 ' && break
  sleep 0.1
done

write_config() {  # write_config OUTPUT-MODE
  cat > "$work/tunnat.yaml" <<EOF
nat:
  private_prefixes: [10.0.0.0/8]
  pool: [198.18.0.1]
tun:
  name: tun0
  output: $1
control_socket: $work/control.sock
stats_interval: 0
EOF
}

tunnat_pid=
start_tunnat() {  # start_tunnat OUTPUT-MODE
  write_config "$1"
  # Not through in_ns: a backgrounded function is a subshell, and $! must be tunnat itself.
  ip netns exec "$p-nat" "$tunnat" run --config "$work/tunnat.yaml" > "$work/tunnat-$1.log" 2>&1 &
  tunnat_pid=$!
  topology_pids+=("$tunnat_pid")
  for _ in $(seq 100); do
    grep -q 'translating' "$work/tunnat-$1.log" && return 0
    kill -0 "$tunnat_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "tunnat did not start:" >&2
  cat "$work/tunnat-$1.log" >&2
  return 1
}

stop_tunnat() {
  kill -TERM "$tunnat_pid"
  for _ in $(seq 50); do
    kill -0 "$tunnat_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$tunnat_pid" 2>/dev/null; then echo "tunnat still running 5 s after SIGTERM" >&2; return 1; fi
  wait "$tunnat_pid"
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

t_dns() {
  local i answer
  for i in $(seq 20); do
    answer=$(in_ns c1 dig @198.19.0.10 +short +tries=1 +time=2 "q$i.tunnat.test" A)
    [ "$answer" = 198.19.0.77 ] || { echo "query $i: got '$answer'"; return 1; }
  done
}

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
  sleep 0.5
  timeout 30 ip netns exec "$p-c1" iperf3 -c 198.19.1.10 -n 20M -J > "$work/pmtud.json"
  wait "$server" || true
  # iperf3 -n ends when the last byte is written; most of it must have arrived by then.
  python3 -c "import json; d=json.load(open('$work/pmtud.json')); e=d['end']; assert 'error' not in d and e['sum_sent']['bytes'] >= 20*2**20 and e['sum_received']['bytes'] >= 10*2**20, e"
}

t_hairpin() {
  timeout 10 ip netns exec "$p-c2" python3 scripts/lib/nettools.py hairpin-listen 7000 198.19.0.10:9 6 &
  local listener=$!
  sleep 0.5
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

t_clean_exit() {
  stop_tunnat
  if ip -n "$p-nat" rule | grep -q 'lookup 100'; then echo "policy rules left behind"; return 1; fi
  if ip -n "$p-nat" link show tun0 >/dev/null 2>&1; then echo "tun0 left behind"; return 1; fi
  [ ! -e "$work/control.sock" ] || { echo "control socket left behind"; return 1; }
  grep -q 'policy routing removed' "$work/tunnat-$mode.log"
}

for mode in tun raw; do
  echo "== tunnat run, output $mode"
  start_tunnat "$mode"
  check "ICMP echo through the NAT" t_ping
  check "TCP: curl downloads 50 MB, sha256 matches" t_curl_50mb
  check "the server saw the pool address 198.18.0.1" t_server_saw_pool_address
  check "UDP: 20 DNS queries with dig" t_dns
  check "traceroute: NAT, router, server; time-exceeded translated back" t_traceroute
  check "ICMP port unreachable for UDP to a closed port reaches the client" t_port_unreachable
  check "path MTU discovery across a 1400-byte link (ICMP and TCP)" t_pmtud
  check "hairpinning between two clients through the pool address" t_hairpin
  if [ "$mode" = tun ]; then
    check "unsolicited inbound TCP and UDP to the pool address are dropped" t_unsolicited
    check "1,000 concurrent TCP connections" t_1000_connections
  fi
  check "no netfilter NAT rule, no translated conntrack entry" t_kernel_nat_unused
  check "tunnat status shows flows, packets and drops" t_status
  check "SIGTERM: clean exit, routing, device and socket removed" t_clean_exit
done

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
  [ "$rc" = 2 ] && grep -q "bad.yaml:5: tun.output: expected tun or raw, got 'fast'" <<<"$out" || { echo "exit $rc: $out"; return 1; }
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
check "an existing device is refused with a clear message" t_existing_device
check "a wrong config names the file, line, key and what is accepted" t_wrong_config
check "without CAP_NET_ADMIN: a clear message, non-zero exit" t_no_privilege
check "without IP forwarding: a clear message, non-zero exit" t_no_forwarding

echo
echo "namespaces: $passed passed, $failed failed"
[ "$failed" = 0 ]
