#!/usr/bin/env bash
# The demo: real captures (../shared/testdata/pcaps) through tunnat's NAT engine, every packet listed with what
# the NAT made of it, then the counters. Nothing is installed system-wide and no traffic is sent anywhere.
# The live data plane has its own demo: scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
pcaps=$(cd .. && pwd)/shared/testdata/pcaps
[ -d "$pcaps" ] || { echo "demo.sh: $pcaps is missing: the demo replays the captures kept there" >&2; exit 1; }

echo "== building tunnat"
swift build --product tunnat 2>&1 | tail -1
tunnat=.build/debug/tunnat
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo
echo "== configuration (examples/capture-clients.yaml): each capture's client is the private host, 198.18.0.1 the pool"
"$tunnat" check-config examples/capture-clients.yaml

for capture in zeek-http-get zeek-icmp-5-pings zeek-ipv4-fragmented-3 zeek-tcp-rst-inject-rae; do
  echo
  echo "== tunnat replay --private-side --list $capture.pcap"
  echo "   (replies captured on the private side are readdressed to the NAT's external endpoint, then translated back)"
  "$tunnat" replay --config examples/capture-clients.yaml --private-side --list "$pcaps/$capture.pcap" "$out/$capture.out.pcap"
done

echo
echo "== the embedded default configuration (tunnat default-config) with a capture it does not translate"
"$tunnat" replay --list "$pcaps/zeek-dns53.pcap" "$out/dns.out.pcap"
