#!/usr/bin/env bash
# Measures the data plane against the kernel's NAT, in one run, on one topology (scripts/lib/topology.sh):
# the kernel's nftables masquerade, then tunnat with tun output, then tunnat with raw output. For each:
# iperf3 TCP single stream both ways, 4 parallel streams, UDP 64-byte packets per second (received), TCP
# connections per second (ab: short HTTP requests to nginx, a new connection each), and ping RTT.
# Prints a table, then one JSON line with every figure and every tunnat/kernel ratio. Needs root.
#
#   scripts/bench-dataplane.sh [SECONDS]     seconds per throughput test (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] && [ "$seconds" -le 60 ] \
  || { echo "usage: scripts/bench-dataplane.sh [SECONDS 1-60]" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "bench-dataplane.sh: needs root (network namespaces, TUN)" >&2; exit 1; }
source scripts/lib/topology.sh
scripts/install-deps.sh --netns

echo "== swift build -c release" >&2
swift build -c release >&2
tunnat=$(swift build -c release --show-bin-path)/tunnat

p="tb$$"
work=$(mktemp -d /tmp/tunnat-bench.XXXXXX)
tunnat_pid=
trap 'topology_cleanup "$p" "$work"' EXIT
# bash skips the EXIT trap when a signal kills it (timeout sends TERM): exit instead, so the namespaces go too.
trap 'exit 143' TERM
trap 'exit 130' INT
topology_up "$p"
# Many short connections from one client: use the whole port range and reuse TIME_WAIT ports, in every mode.
ip netns exec "$p-c1" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

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

iperf() {  # iperf ARGS...: JSON to stdout
  timeout $((seconds + 20)) ip netns exec "$p-c1" iperf3 -c 198.19.0.10 -t "$seconds" -J "$@"
}
gbits() { python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['end']['sum_received']['bits_per_second']/1e9, 2))"; }
udp_kpps() {
  python3 -c "
import json,sys
d=json.load(sys.stdin)['end']['sum']
print(round((d['packets']-d['lost_packets'])/d['seconds']/1e3, 1))"
}

measure() {  # measure MODE: one line "MODE tcp tcp_reverse tcp4 udp_kpps conn_per_s rtt_ms"
  local mode=$1 tcp rev par udp cps rtt
  sleep 1
  tcp=$(iperf | gbits)
  sleep 1
  rev=$(iperf -R | gbits)
  sleep 1
  par=$(iperf -P 4 | gbits)
  sleep 1
  udp=$(iperf -u -l 64 -b 0 | udp_kpps)
  sleep 1
  cps=$(timeout $((seconds + 30)) ip netns exec "$p-c1" ab -q -t "$seconds" -n 10000000 -c 32 -s 5 \
        http://198.19.0.10:8080/ 2>/dev/null | awk '/^Requests per second/ {print $4}')
  local failed
  sleep 1
  rtt=$(ip netns exec "$p-c1" ping -q -c 50 -i 0.01 198.19.0.10 | awk -F/ '/^rtt/ {print $5}')
  echo "$mode $tcp $rev $par $udp ${cps:-0} ${rtt:-0}"
}

start_tunnat() {  # start_tunnat OUTPUT
  cat > "$work/tunnat.yaml" <<EOF
nat:
  private_prefixes: [10.0.0.0/8]
  pool: [198.18.0.1]
tun:
  output: $1
control_socket: $work/control.sock
stats_interval: 0
EOF
  ip netns exec "$p-nat" "$tunnat" run --config "$work/tunnat.yaml" > "$work/tunnat-$1.log" 2>&1 &
  tunnat_pid=$!
  topology_pids+=("$tunnat_pid")
  for _ in $(seq 100); do grep -q translating "$work/tunnat-$1.log" && return 0; sleep 0.1; done
  cat "$work/tunnat-$1.log" >&2
  return 1
}
stop_tunnat() {
  "$tunnat" status --socket "$work/control.sock" > "$work/status-$1.txt" 2>&1 || true
  kill -TERM "$tunnat_pid"
  wait "$tunnat_pid" || true
}

results=()
echo "== kernel: nftables masquerade" >&2
topology_kernel_nat "$p"
results+=("$(measure kernel)")
topology_kernel_nat_off "$p"
ip netns exec "$p-nat" conntrack -F >/dev/null 2>&1 || true

for output in tun raw; do
  echo "== tunnat, output $output" >&2
  start_tunnat "$output"
  results+=("$(measure "tunnat-$output")")
  stop_tunnat "$output"
  grep -E '^  (dropped|write-errors|bad-virtio-header|unsupported-gso) ' "$work/status-$output.txt" | sed "s/^/   tunnat-$output: /" >&2 || true
done

python3 - "$seconds" "${results[@]}" <<'EOF'
import json, sys
seconds = int(sys.argv[1])
names = ["tcp_gbps", "tcp_reverse_gbps", "tcp_4_streams_gbps", "udp64_kpps", "conn_per_s", "ping_rtt_ms"]
rows = {}
for line in sys.argv[2:]:
    mode, *values = line.split()
    rows[mode] = {n: float(v) for n, v in zip(names, values)}
labels = {"tcp_gbps": "TCP 1 stream (Gbit/s)", "tcp_reverse_gbps": "TCP 1 stream, reverse (Gbit/s)",
          "tcp_4_streams_gbps": "TCP 4 streams (Gbit/s)", "udp64_kpps": "UDP 64 B received (kpps)",
          "conn_per_s": "TCP connections/s (HTTP)", "ping_rtt_ms": "ping RTT avg (ms)"}
modes = list(rows)
print(f"{'':34}" + "".join(f"{m:>14}" for m in modes) + "".join(f"{'ratio ' + m.split('-')[-1]:>12}" for m in modes[1:]))
ratios = {}
for n in names:
    k = rows["kernel"][n]
    line = f"{labels[n]:34}" + "".join(f"{rows[m][n]:>14g}" for m in modes)
    for m in modes[1:]:
        r = round(rows[m][n] / k, 3) if k else 0.0
        ratios[f"{m}/{n}"] = r
        line += f"{r:>12g}"
    print(line)
print(json.dumps({"seconds": seconds, "figures": rows, "ratios": ratios}, sort_keys=True))
EOF
