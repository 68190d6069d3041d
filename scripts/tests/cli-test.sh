#!/usr/bin/env bash
# The tunnat executable end to end: replays of the sample captures, the output file, exit codes and the one-line
# errors a person gets. Usage: scripts/tests/cli-test.sh PATH/TO/tunnat PATH/TO/pcaps
set -euo pipefail
tunnat=$1
pcaps=$2
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() {  # check NAME COMMAND...: passes when the command succeeds
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$work/out"; fi
}
expect_fail() {  # expect_fail NAME CODE PATTERN COMMAND...: passes when it exits CODE and stderr matches PATTERN
  local name=$1 code=$2 pattern=$3; shift 3
  set +e; "$@" >"$work/out" 2>"$work/err"; local rc=$?; set -e
  if [ "$rc" = "$code" ] && grep -qE "$pattern" "$work/err" && [ "$(wc -l <"$work/err")" = 1 ]; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name (exit $rc, wanted $code; stderr below)"; sed 's/^/     /' "$work/err"
  fi
}

replay_http() {
  "$tunnat" replay --config examples/capture-clients.yaml --private-side --list "$pcaps/zeek-http-get.pcap" "$work/http.pcap" >"$work/http.txt"
  grep -q '^translated outbound: *7$' "$work/http.txt" &&
  grep -q '^translated inbound: *7$' "$work/http.txt" &&
  grep -q '^dropped: *0$' "$work/http.txt" &&
  grep -q '^#1 outbound  tcp 141.142.228.5:59856 > 192.150.187.43:80  =>  tcp 198.18.0.1:59856 > 192.150.187.43:80$' "$work/http.txt" &&
  # The output is a pcap of link type 228 (raw IPv4) holding the 14 packets: 24-byte header, then records.
  python3 - "$work/http.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
magic, _, _, _, _, _, link = struct.unpack('<IHHiIII', data[:24])
assert magic == 0xa1b23c4d and link == 228, (hex(magic), link)
off, n = 24, 0
while off < len(data):
    caplen = struct.unpack('<I', data[off + 8:off + 12])[0]
    pkt = data[off + 16:off + 16 + caplen]
    assert pkt[0] >> 4 == 4
    off += 16 + caplen; n += 1
assert n == 14, n
PY
}
check "replay: the HTTP capture round-trips through the NAT" replay_http

replay_default() {
  # The embedded default translates 10.0.0.0/8: the time-exceeded capture's 10.0.0.1 -> 10.0.0.2 is outbound.
  "$tunnat" replay "$pcaps/zeek-icmp-icmp-timeexceeded.pcap" "$work/te.pcap" >"$work/te.txt"
  grep -q '^records read: *1$' "$work/te.txt" && grep -q 'icmp-error-no-flow *1' "$work/te.txt"
}
check "replay: embedded default config, an ICMP error with no flow is dropped and counted" replay_default

check "default-config: the embedded configuration checks clean" bash -c "'$tunnat' default-config > '$work/d.yaml' && '$tunnat' check-config '$work/d.yaml'"

printf 'nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n  port_range: 80-90\n' >"$work/bad.yaml"
expect_fail "bad value: one line naming file, line and key" 2 "bad.yaml:4: nat.port_range: expected LOW-HIGH" \
  "$tunnat" check-config "$work/bad.yaml"
printf 'nat:\n  private_prefixes: [10.0.0.0/8]\n  pools: [198.18.0.1]\n' >"$work/unknown.yaml"
expect_fail "unknown key: names it and what is accepted" 2 "nat.pools: unknown key; accepted here: private_prefixes, pool" \
  "$tunnat" replay --config "$work/unknown.yaml" "$pcaps/zeek-dns53.pcap" "$work/x.pcap"
expect_fail "missing capture" 1 "cannot read $work/none.pcap: No such file or directory" \
  "$tunnat" replay "$work/none.pcap" "$work/x.pcap"
head -c 40 "$pcaps/zeek-http-get.pcap" >"$work/cut.pcap"
expect_fail "truncated capture: error with the byte offset" 1 "record at offset 24 is cut short" \
  "$tunnat" replay "$work/cut.pcap" "$work/x.pcap"
expect_fail "unwritable output" 1 "cannot write /nonexistent/x.pcap" \
  "$tunnat" replay "$pcaps/zeek-dns53.pcap" /nonexistent/x.pcap

replay_truncated_tcp() {
  # A capture (link type 228, raw IPv4) holding a 22-byte IPv4/TCP packet: 2 bytes of TCP header. `replay --list`
  # once read its ports past the end of the buffer (a trap in a debug build). It must list the packet, count it
  # as dropped, and exit 0.
  python3 - "$work/short-tcp.pcap" <<'PY'
import struct, sys
ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 22, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([198, 19, 0, 1])))
s = sum(struct.unpack('!10H', bytes(ip)))
while s >> 16: s = (s & 0xFFFF) + (s >> 16)
ip[10:12] = struct.pack('!H', ~s & 0xFFFF)
packet = bytes(ip) + b'\x04\xd2'
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 228))
    f.write(struct.pack('<IIII', 1, 0, len(packet), len(packet)) + packet)
PY
  "$tunnat" replay --list "$work/short-tcp.pcap" "$work/short-out.pcap" >"$work/short.txt" &&
  grep -q '^#1 .*tcp 10.0.0.1 > 198.19.0.1' "$work/short.txt" &&
  grep -q '^dropped: *1$' "$work/short.txt"
}
check "replay --list: a packet with a 2-byte TCP header is listed and dropped, never read past its end" replay_truncated_tcp

# Ordinary short connections whose 4-tuples come back more than 137 s later with their sequence numbers "behind"
# (scripts/lib/short-connections.sh recorded it): every TCP and UDP packet is translated, none out-of-window. The
# tree before issue 27 dropped 166 of those connections' FINs and RSTs.
replay_short_connections() {
  gzip -dc scripts/tests/data/short-connections.pcap.gz > "$work/short-connections.pcap"
  "$tunnat" replay --private-side "$work/short-connections.pcap" "$work/short-connections-out.pcap" >"$work/sc.txt"
  grep -q '^records read: *16049$' "$work/sc.txt" &&
  grep -q '^translated outbound: *8877$' "$work/sc.txt" &&
  grep -q '^translated inbound: *7154$' "$work/sc.txt" &&
  grep -q '^dropped: *18$' "$work/sc.txt" &&
  grep -qE '^  not-ipv4 +18$' "$work/sc.txt" &&
  ! grep -q 'out-of-window' "$work/sc.txt" || { cat "$work/sc.txt"; return 1; }
}
check "replay: 16,049 packets of short connections with reused 4-tuples, none dropped out-of-window" replay_short_connections

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
