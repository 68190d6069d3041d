#!/usr/bin/env bash
# Builds the libFuzzer target (Fuzz/FuzzTargets.swift with PacketKit and NatTable, address sanitizer on) and runs
# it for SECONDS (default 60), seeded with the IPv4 packets of the sample captures.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
work=${FUZZ_DIR:-$(mktemp -d)}
mkdir -p "$work/corpus" "$work/obj"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g)
swiftc "${flags[@]}" -emit-module -emit-library -static -module-name PacketKit -emit-module-path "$work/obj/PacketKit.swiftmodule" \
  -o "$work/obj/libPacketKit.a" Sources/PacketKit/*.swift
swiftc "${flags[@]}" -I "$work/obj" -emit-module -emit-library -static -module-name NatTable \
  -emit-module-path "$work/obj/NatTable.swiftmodule" -o "$work/obj/libNatTable.a" Sources/NatTable/*.swift
swiftc "${flags[@]}" -I "$work/obj" -L "$work/obj" -lNatTable -lPacketKit -module-name FuzzTargets \
  -o "$work/fuzz" Fuzz/FuzzTargets.swift
python3 - "$work/corpus" ../shared/testdata/pcaps/*.pcap <<'PY'
import struct, sys, hashlib
out = sys.argv[1]
for path in sys.argv[2:]:
    data = open(path, 'rb').read()
    open(f"{out}/{hashlib.sha1(data).hexdigest()}", 'wb').write(data)
    link = struct.unpack('<I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack('<I', data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        packet = frame[14:] if link == 1 else frame
        open(f"{out}/{hashlib.sha1(packet).hexdigest()}", 'wb').write(packet)
PY
"$work/fuzz" -max_total_time="$seconds" -print_final_stats=1 "$work/corpus"
