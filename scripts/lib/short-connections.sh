#!/usr/bin/env bash
# Records scripts/tests/data/short-connections.pcap: ordinary short TCP connections and DNS-like UDP, no attacker,
# captured on the client's side (a private-side capture for `tunnat replay --private-side`). Needs root, tcpdump,
# curl and ethtool (apt-get install ethtool); its namespaces (sc27c, sc27s) are removed on exit.
#
# Client 10.0.1.1 and server 198.19.0.10 in two namespaces joined by a veth pair, no NAT between them; offloads off,
# so the capture holds real checksums and MTU-sized segments. A single-threaded HTTP server (backlog 5) with slow
# and dripping handlers, stopped (SIGSTOP) for 0.5-2 s every 4-12 s; six curl loops with short timeouts, some
# killed mid-transfer; a UDP echo on port 53 getting one datagram per socket.
#
# What it catches: Linux picks connect() ports in sequence, so with about 2,000 ports a 4-tuple comes back 60-220 s
# later, and Linux's initial sequence numbers for one 4-tuple follow a clock that wraps 2^32 every 274.9 s: a
# 4-tuple reused more than 137.4 s later starts "behind" its previous connection (signed 32-bit), while a NAT
# still holds the closed flow for the transitory timeout (4 minutes). The tree before issue 27 kept the old
# connection's sequence marker and dropped 166 of the new connections' FINs and RSTs as out-of-window.
#
#   scripts/lib/short-connections.sh [SECONDS=240] [OUT=/tmp/short-connections.pcap] [PORTS="40000 41999"]
set -u
DUR=${1:-240}
OUT=${2:-/tmp/short-connections.pcap}
PORTS=${3:-"40000 41999"}
C=sc27c; S=sc27s; VC=sc27c0; VS=sc27s0
CIP=10.0.1.1; SIP=198.19.0.10
WORK=$(mktemp -d /tmp/shortconns.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  ip netns del $C 2>/dev/null; ip netns del $S 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add $C; ip netns add $S
ip link add $VC type veth peer name $VS
ip link set $VC netns $C; ip link set $VS netns $S
for ns in $C $S; do ip -n $ns link set lo up; done
ip -n $C addr add $CIP/32 dev $VC; ip -n $C link set $VC up; ip -n $C route add $SIP/32 dev $VC
ip -n $S addr add $SIP/32 dev $VS; ip -n $S link set $VS up; ip -n $S route add $CIP/32 dev $VS
# Real checksums and MTU-sized segments in the capture (no partial checksums, no GSO super-packets).
ip netns exec $C ethtool -K $VC tx off rx off tso off gso off gro off >/dev/null 2>&1
ip netns exec $S ethtool -K $VS tx off rx off tso off gso off gro off >/dev/null 2>&1
ip netns exec $C sysctl -qw net.ipv4.ip_local_port_range="$PORTS"
# TW_REUSE=1 lets the client reuse its own TIME_WAIT ports (Linux default 2: loopback only).
[ -n "${TW_REUSE:-}" ] && ip netns exec $C sysctl -qw net.ipv4.tcp_tw_reuse=$TW_REUSE

mkdir -p "$WORK/www"
head -c 200 /dev/urandom | base64 > "$WORK/www/small.txt"
head -c 1000 /dev/urandom | base64 > "$WORK/www/mid.txt"
cat > "$WORK/server.py" <<'PY'
import http.server, random, sys, time, os
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.startswith('/slow'):
            time.sleep(random.uniform(0.1, 0.8))
            body = b'slow\n' * 20
        elif self.path.startswith('/drip'):
            self.send_response(200); self.send_header('Content-Length', '3000'); self.end_headers()
            for _ in range(10):
                self.wfile.write(b'x' * 299 + b'\n'); self.wfile.flush(); time.sleep(0.06)
            return
        else:
            return super().do_GET()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
        self.wfile.write(body)
class Srv(http.server.HTTPServer):   # single-threaded, listen backlog 5
    def handle_error(self, request, client_address): pass
os.chdir(sys.argv[1])
Srv(('198.19.0.10', 80), H).serve_forever()
PY
cat > "$WORK/udpecho.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('198.19.0.10', 53))
while True:
    d, a = s.recvfrom(2048); s.sendto(d, a)
PY
cat > "$WORK/udpclient.py" <<'PY'
import socket, random, sys, time, os
end = time.time() + float(sys.argv[1])
while time.time() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.3)
    try:
        s.sendto(os.urandom(random.randint(20, 60)), ('198.19.0.10', 53)); s.recvfrom(2048)
    except OSError: pass
    s.close(); time.sleep(random.uniform(0.1, 0.5))
PY

ip netns exec $S python3 "$WORK/server.py" "$WORK/www" & SRV=$!; PIDS+=($SRV)
ip netns exec $S python3 "$WORK/udpecho.py" & PIDS+=($!)
sleep 1
ip netns exec $C tcpdump -i $VC -s 0 -U -w "$OUT" 2>/dev/null & TCPD=$!; PIDS+=($TCPD)
sleep 1
END=$(( $(date +%s) + DUR ))
rnd() { awk -v a="$1" -v b="$2" -v r=$RANDOM 'BEGIN{printf "%.2f", a+(b-a)*r/32767}'; }
U=http://$SIP
cur() { ip netns exec $C curl -s -o /dev/null "$@"; }
loop_plain() { while [ "$(date +%s)" -lt $END ]; do
  for p in / /small.txt /mid.txt; do cur --max-time "$(rnd 0.2 1)" "$U$p"; done; sleep "$(rnd 0.02 0.2)"; done; }
loop_connto() { while [ "$(date +%s)" -lt $END ]; do
  cur --connect-timeout 0.3 --max-time 0.8 "$U/slow"; sleep "$(rnd 0.05 0.3)"; done; }
loop_slowto() { while [ "$(date +%s)" -lt $END ]; do
  cur --max-time 0.2 "$U/slow"; sleep "$(rnd 0.2 0.8)"; done; }
loop_kill() { while [ "$(date +%s)" -lt $END ]; do
  timeout -s KILL "$(rnd 0.05 0.6)" ip netns exec $C curl -s -o /dev/null --limit-rate 2k "$U/drip"
  sleep "$(rnd 0.1 0.4)"; done; }
loop_stop() { while [ "$(date +%s)" -lt $END ]; do
  sleep "$(rnd 4 12)"; kill -STOP $SRV; sleep "$(rnd 0.5 2)"; kill -CONT $SRV; done; }
loop_plain & PIDS+=($!)
loop_plain & PIDS+=($!)
loop_connto & PIDS+=($!)
loop_slowto & PIDS+=($!)
loop_kill 2>/dev/null & PIDS+=($!)
loop_stop & PIDS+=($!)
ip netns exec $C python3 "$WORK/udpclient.py" "$DUR" & PIDS+=($!)
while [ "$(date +%s)" -lt $END ]; do sleep 1; done
kill -CONT $SRV
sleep 3          # let closes, retransmitted FINs and late RSTs land
kill -INT $TCPD; wait $TCPD 2>/dev/null
ls -l "$OUT"
