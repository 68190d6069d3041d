#!/usr/bin/env bash
# Measures the data plane against the kernel's NAT and against a reference TUN forwarder, on one topology
# (scripts/lib/topology.sh), in interleaved rounds: every round runs every mode once, in turn, so that the
# machine's drift (the kernel's own figures move by up to 2x between runs here) falls on all modes alike. Modes:
#   kernel         nftables masquerade
#   tunnat-packet  tunnat, tun.output: packet (translated packets sent out of the egress interface through a
#                  packet socket)
#   tunnat-packet-1q  the same with one queue (tun.queues: 1) instead of one per core
#   tunnat-packet-read  the same reading the TUN with read(2) and poll(2) (tun.io_uring: false), not io_uring
#   tunnat-tun     tunnat, tun.output: tun (translated packets written back into the TUN)
#   tunnat-raw     tunnat, tun.output: raw
#   reference      Benchmarks/reference/tunfwd.c: a stateless 1:1 NAT of the client to the pool address over the
#                  same TUN path and offloads as tunnat-tun: the ceiling of that design
# and NAT64, from an IPv6-only client (c6, fd00:64:1::1) to the server at its address in fd64:ff9b::/96 (a
# network-specific prefix: tayga refuses any other in 64:ff9b::/32 than the Well-Known Prefix itself, which may not
# stand for the benchmarking addresses of the servers):
#   tayga          tayga (stateless NAT64 on a TUN, from Debian) with the kernel's NAT44 (nftables masquerade of
#                  tayga's dynamic pool) behind it: the usual Linux NAT64
#   tunnat64-packet   tunnat with nat.nat64, tun.output: packet
#   tunnat64-tun      tunnat with nat.nat64, tun.output: tun
# Each mode: iperf3 TCP single stream both ways, 4 streams, UDP 64-byte packets per second received (iperf3 -b 0),
# TCP connections per second (ab: short HTTP requests to nginx, a new connection each), ping RTT, and the CPU time
# of the forwarding process (all its threads, user and system, from /proc/PID/stat) per UDP packet received, at
# saturation and at a fixed 20,000 packets a second. Prints the medians over the rounds with their range, and the
# ratios of the medians to the kernel's and to the reference's; then one JSON line with every figure. Needs root.
#
#   scripts/bench-dataplane.sh [SECONDS] [ROUNDS]    seconds per test (default 5), rounds (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
rounds=${2:-3}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] && [ "$seconds" -le 60 ] \
  && [[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 20 ] \
  || { echo "usage: scripts/bench-dataplane.sh [SECONDS 1-60] [ROUNDS 1-20]" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "bench-dataplane.sh: needs root (network namespaces, TUN)" >&2; exit 1; }
source scripts/lib/topology.sh
scripts/install-deps.sh --netns

echo "== swift build -c release" >&2
swift build -c release >&2
tunnat=$(swift build -c release --show-bin-path)/tunnat

p="tb$$"
work=$(mktemp -d /tmp/tunnat-bench.XXXXXX)
forwarder_pid=
echo "== cc Benchmarks/reference/tunfwd.c" >&2
cc -O2 -Wall -Wextra -Werror -o "$work/tunfwd" Benchmarks/reference/tunfwd.c
trap 'topology_cleanup "$p" "$work"' EXIT
# bash skips the EXIT trap when a signal kills it (timeout sends TERM): exit instead, so the namespaces go too.
trap 'exit 143' TERM
trap 'exit 130' INT
topology_up "$p"
# Many short connections from one client: use the whole port range and reuse TIME_WAIT ports, in every mode.
ip netns exec "$p-c1" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
# The IPv6-only client of the NAT64 modes, on the NAT's lan6.
topology_ipv6_client "$p"
ip netns exec "$p-c6" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
server6=fd64:ff9b::c613:a

mkdir -p "$work/www"
echo ok > "$work/www/index.html"
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 198.19.0.10:8080 reuseport backlog=4096; root $work/www; }
}
EOF
timeout 1800 ip netns exec "$p-srv" nginx -c "$work/nginx.conf" -g 'daemon off;' &
topology_pids+=($!)
timeout 1800 ip netns exec "$p-srv" iperf3 -s -B 198.19.0.10 > /dev/null 2>&1 &
topology_pids+=($!)
sleep 1

client=c1 target=198.19.0.10 url_host=198.19.0.10  # the NAT64 modes set c6 and the server's NAT64 address
iperf() {  # iperf ARGS...: JSON to stdout
  timeout $((seconds + 20)) ip netns exec "$p-$client" iperf3 -c "$target" -t "$seconds" -J "$@"
}
gbits() { python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['end']['sum_received']['bits_per_second']/1e9, 2))"; }
# udp RATE: "KPPS PACKETS" received, for iperf3 -u -l 64 at RATE bits a second (0: as fast as it can).
udp() {
  iperf -u -l 64 -b "$1" | python3 -c "
import json,sys
d=json.load(sys.stdin)['end']['sum']
got=d['packets']-d['lost_packets']
print(round(got/d['seconds']/1e3, 1), got)"
}
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { if [ -n "$forwarder_pid" ]; then awk '{print $14 + $15}' "/proc/$forwarder_pid/stat"; else echo 0; fi; }
# us_per_packet TICKS_BEFORE PACKETS: the forwarder's CPU microseconds per packet since TICKS_BEFORE ("-" for the
# kernel, whose forwarding runs in softirqs charged to no process).
us_per_packet() {
  [ -n "$forwarder_pid" ] || { echo -; return; }
  python3 -c "t=($(cpu_ticks) - $1) / $clk_tck; n=$2; print(round(t * 1e6 / n, 2) if n else '-')"
}

measure() {  # measure: "tcp tcp_reverse tcp4 udp_kpps udp_cpu_us udp20k_cpu_us conn_per_s rtt_ms"
  local tcp rev par udp_kpps udp_n cpu udp_cpu udp20 cps rtt
  sleep 1
  tcp=$(iperf | gbits)
  sleep 1
  rev=$(iperf -R | gbits)
  sleep 1
  par=$(iperf -P 4 | gbits)
  sleep 1
  cpu=$(cpu_ticks)
  read -r udp_kpps udp_n <<<"$(udp 0)"
  udp_cpu=$(us_per_packet "$cpu" "$udp_n")
  sleep 1
  cpu=$(cpu_ticks)
  read -r _ udp_n <<<"$(udp 10240K)"  # 20,000 packets of 64 bytes a second
  udp20=$(us_per_packet "$cpu" "$udp_n")
  sleep 1
  cps=$(timeout $((seconds + 30)) ip netns exec "$p-$client" ab -q -t "$seconds" -n 10000000 -c 32 -s 5 \
        "http://$url_host:8080/" 2>/dev/null | awk '/^Requests per second/ {print $4}')
  sleep 1
  rtt=$(ip netns exec "$p-$client" ping -q -c 50 -i 0.01 "$target" | awk -F/ '/^rtt/ {print $5}')
  echo "$tcp $rev $par $udp_kpps $udp_cpu $udp20 ${cps:-0} ${rtt:-0}"
}

start_tunnat() {  # start_tunnat OUTPUT [QUEUES [IO_URING [nat64]]]
  local nat64=""
  [ "${4:-}" = nat64 ] && nat64="  nat64: {prefix: 'fd64:ff9b::/96', private_prefixes: ['fd00:64:1::/64']}"
  cat > "$work/tunnat.yaml" <<EOF
nat:
  private_prefixes: [10.0.0.0/8]
  pool: [198.18.0.1]
$nat64
tun:
  output: $1
  queues: ${2:-0}
  io_uring: ${3:-true}
control_socket: $work/control.sock
stats_interval: 0
EOF
  ip netns exec "$p-nat" "$tunnat" run --config "$work/tunnat.yaml" > "$work/tunnat-$1.log" 2>&1 &
  forwarder_pid=$!
  topology_pids+=("$forwarder_pid")
  for _ in $(seq 100); do grep -q translating "$work/tunnat-$1.log" && return 0; sleep 0.1; done
  cat "$work/tunnat-$1.log" >&2
  return 1
}
stop_tunnat() {
  "$tunnat" status --socket "$work/control.sock" > "$work/status-$1.txt" 2>&1 || true
  kill -TERM "$forwarder_pid"
  wait "$forwarder_pid" || true
  forwarder_pid=
  # A stop keeps the fence that stops private traffic leaving untranslated; the next mode needs it gone.
  ip netns exec "$p-nat" "$tunnat" routing remove --config "$work/tunnat.yaml" >&2
  grep -E '^  (dropped|host-limit|table-full|write-errors|bad-virtio-header|unsupported-gso|frames-direct|frames-fallback|egress-lookups|lock-wait-max-us) ' "$work/status-$1.txt" \
    | sed "s/^/   tunnat-$1: /" >&2 || true
}

# The reference forwarder, with the routes tunnat installs (PolicyRouting.swift), in a table and at a rule priority
# of their own, so that whatever tunnat leaves in place (its fence) stays out of the way.
start_reference() {
  ip netns exec "$p-nat" "$work/tunfwd" ref0 10.0.1.1 198.18.0.1 > "$work/tunfwd.log" 2>&1 &
  forwarder_pid=$!
  topology_pids+=("$forwarder_pid")
  for _ in $(seq 100); do grep -q ready "$work/tunfwd.log" && break; sleep 0.1; done
  grep -q ready "$work/tunfwd.log" || { cat "$work/tunfwd.log" >&2; return 1; }
  ip -n "$p-nat" route add default dev ref0 table 150
  ip -n "$p-nat" route add throw 10.0.0.0/8 table 150
  ip -n "$p-nat" rule add from 10.0.0.0/8 iif lan1 lookup 150 pref 90
  ip -n "$p-nat" route add 198.18.0.1/32 dev ref0
}
stop_reference() {
  kill -TERM "$forwarder_pid"
  wait "$forwarder_pid" 2>/dev/null || true
  forwarder_pid=
  ip -n "$p-nat" rule del pref 90 2>/dev/null || true
  # The routes through ref0 went with it; the throw route would make the next round's 'route add' fail.
  ip -n "$p-nat" route flush table 150 2>/dev/null || true
}

# tayga with the kernel's NAT44 behind it: tayga maps each IPv6 host to an address of its dynamic pool
# (192.168.255.0/24), and nftables masquerades the pool out of wan.
start_tayga() {
  mkdir -p "$work/tayga"
  printf 'tun-device nat64\nipv4-addr 192.168.255.1\nprefix fd64:ff9b::/96\ndynamic-pool 192.168.255.0/24\ndata-dir %s\n' \
    "$work/tayga" > "$work/tayga.conf"
  # tayga makes its TUN device when it starts, and it goes with the process (with its routes).
  ip netns exec "$p-nat" tayga --config "$work/tayga.conf" --nodetach > "$work/tayga.log" 2>&1 &
  forwarder_pid=$!
  topology_pids+=("$forwarder_pid")
  for _ in $(seq 100); do ip -n "$p-nat" link show nat64 >/dev/null 2>&1 && break; sleep 0.1; done
  ip -n "$p-nat" link show nat64 >/dev/null 2>&1 || { cat "$work/tayga.log" >&2; return 1; }
  ip -n "$p-nat" link set nat64 up
  ip -n "$p-nat" route add 192.168.255.0/24 dev nat64
  ip -n "$p-nat" -6 route add fd64:ff9b::/96 dev nat64
  printf '%s\n' 'table ip tayga_nat44 {' '  chain postrouting {' \
    '    type nat hook postrouting priority srcnat; policy accept;' \
    '    oifname "wan" ip saddr 192.168.255.0/24 masquerade' '  }' '}' | ip netns exec "$p-nat" nft -f -
}
stop_tayga() {
  kill -TERM "$forwarder_pid"
  wait "$forwarder_pid" 2>/dev/null || true
  forwarder_pid=
  ip netns exec "$p-nat" nft delete table ip tayga_nat44
  rm -rf "${work:?}/tayga"
  ip netns exec "$p-nat" conntrack -F >/dev/null 2>&1 || true
}

# BENCH_MODES="kernel reference ..." runs only those modes.
read -r -a modes <<<"${BENCH_MODES:-kernel tunnat-packet tunnat-packet-1q tunnat-packet-read tunnat-tun tunnat-raw reference tayga tunnat64-packet tunnat64-tun}"
results=()
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    echo "== round $round/$rounds: $mode" >&2
    client=c1 target=198.19.0.10 url_host=198.19.0.10
    case "$mode" in tayga|tunnat64-*) client=c6 target=$server6 url_host="[$server6]" ;; esac
    case "$mode" in
      kernel) topology_kernel_nat "$p" ;;
      tayga) start_tayga ;;
      tunnat64-*) start_tunnat "${mode#tunnat64-}" 0 true nat64 ;;
      tunnat-packet-1q) start_tunnat packet 1 ;;
      tunnat-packet-read) start_tunnat packet 0 false ;;
      tunnat-*) start_tunnat "${mode#tunnat-}" ;;
      reference) start_reference ;;
    esac
    line="$round $mode $(measure)"
    echo "   $line" >&2
    results+=("$line")
    case "$mode" in
      kernel) topology_kernel_nat_off "$p"; ip netns exec "$p-nat" conntrack -F >/dev/null 2>&1 || true ;;
      tayga) stop_tayga ;;
      tunnat64-*) stop_tunnat "${mode#tunnat64-}" ;;
      tunnat-*) stop_tunnat "${mode#tunnat-}" ;;
      reference) stop_reference ;;
    esac
  done
done

python3 - "$seconds" "$rounds" "${results[@]}" <<'EOF'
import json, statistics, sys
seconds, rounds = int(sys.argv[1]), int(sys.argv[2])
names = ["tcp_gbps", "tcp_reverse_gbps", "tcp_4_streams_gbps", "udp64_kpps", "udp64_cpu_us_per_packet",
         "udp64_20k_cpu_us_per_packet", "conn_per_s", "ping_rtt_ms"]
labels = {"tcp_gbps": "TCP 1 stream (Gbit/s)", "tcp_reverse_gbps": "TCP 1 stream, reverse (Gbit/s)",
          "tcp_4_streams_gbps": "TCP 4 streams (Gbit/s)", "udp64_kpps": "UDP 64 B received (kpps)",
          "udp64_cpu_us_per_packet": "CPU/packet, UDP saturated (us)",
          "udp64_20k_cpu_us_per_packet": "CPU/packet, UDP 20 kpps (us)",
          "conn_per_s": "TCP connections/s (HTTP)", "ping_rtt_ms": "ping RTT avg (ms)"}
samples, modes = {}, []
for line in sys.argv[3:]:
    _, mode, *values = line.split()
    if mode not in modes:
        modes.append(mode)
    for n, v in zip(names, values):
        if v != "-":
            samples.setdefault(mode, {}).setdefault(n, []).append(float(v))
median = {m: {n: statistics.median(v) for n, v in samples.get(m, {}).items()} for m in modes}
spread = {m: {n: [min(v), max(v)] for n, v in samples.get(m, {}).items()} for m in modes}


def cell(m, n):
    if n not in median[m]:
        return "-"
    lo, hi = spread[m][n]
    return f"{median[m][n]:g} ({lo:g}-{hi:g})"


print(f"medians of {rounds} interleaved round(s), {seconds} s per test, (range)")
print(f"{'':32}" + "".join(f"{m:>24}" for m in modes))
for n in names:
    print(f"{labels[n]:32}" + "".join(f"{cell(m, n):>24}" for m in modes))
ratios = {}
for base in ("kernel", "reference", "tayga"):
    if base not in modes:
        continue
    # NAT64 modes against tayga; the IPv4 ones against the kernel and the reference.
    others = [m for m in modes if m != base and (m.startswith("tunnat64") == (base == "tayga")) and m != "tayga"]
    print(f"\nratios of the medians to {base}")
    print(f"{'':32}" + "".join(f"{m:>14}" for m in others))
    for n in names:
        row = []
        for m in others:
            a, b = median[m].get(n), median.get(base, {}).get(n)
            r = round(a / b, 3) if a is not None and b else None
            if r is not None:
                ratios[f"{m}/{base}/{n}"] = r
            row.append("-" if r is None else f"{r:g}")
        print(f"{labels[n]:32}" + "".join(f"{x:>14}" for x in row))
print(json.dumps({"seconds": seconds, "rounds": rounds, "medians": median, "ranges": spread, "ratios": ratios},
                 sort_keys=True))
EOF
