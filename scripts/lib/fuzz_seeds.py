"""Seed corpora and dictionaries for the libFuzzer targets in Fuzz/ (scripts/fuzz.sh runs this).

    python3 scripts/lib/fuzz_seeds.py OUT_DIR TARGET...

Writes OUT_DIR/seeds/TARGET/* (one input per file, named by its SHA-1) and, for the text parsers,
OUT_DIR/TARGET.dict. Every seed is built from what the repository already holds: the IPv4 packets of
../shared/testdata/pcaps, the configurations embedded in the sources, tests and docs, the EC2 responses of the
tests, and the replication wire format (version 2 datagrams with the header right and the tag not, and message
sequences that the sync target seals itself). The control bytes in front of the packet and sync seeds are described
at the top of each target's source.
"""
import glob
import hashlib
import os
import re
import struct
import sys

from packets import ipv4

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


def write(out, data):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


# --- Packets -----------------------------------------------------------------------------------------------------

def pcap_files():
    return sorted(glob.glob(os.path.join(SHARED, "testdata", "pcaps", "*.pcap")))


def pcap_packets():
    """The IPv4 packets of the sample captures (Ethernet frames stripped), in capture order."""
    packets = []
    for path in pcap_files():
        data = open(path, "rb").read()
        endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        link = struct.unpack(endian + "I", data[20:24])[0]
        off = 24
        while off + 16 <= len(data):
            caplen = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
            frame = data[off + 16:off + 16 + caplen]
            off += 16 + caplen
            if link == 1:
                if frame[12:14] != b"\x08\x00":
                    continue
                frame = frame[14:]
            if frame and frame[0] >> 4 == 4:
                packets.append(frame)
    return packets


def ipv4_packet(proto, src, dst, payload):
    return ipv4(bytes(src), bytes(dst), proto, payload, 1)


def tcp_super_packet(size):
    """A TCP/IPv4 packet with `size` payload bytes and a zero checksum (the targets fill in what they need)."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 0xFFFFF000, 1, 5 << 4, 0x18 | 0x01 | 0x80, 65535, 0, 0)
    return ipv4_packet(6, [10, 0, 0, 1], [198, 19, 0, 10], tcp + bytes((i * 7 + 3) & 0xFF for i in range(size)))


def udp_super_packet(size):
    udp = struct.pack("!HHHH", 40000, 443, 8 + size, 0)
    return ipv4_packet(17, [10, 0, 0, 1], [198, 19, 0, 10], udp + bytes((i * 5 + 1) & 0xFF for i in range(size)))


def seeds_translate(out):
    for packet in pcap_packets():
        # engine | addressing << 2 | fix transport checksum (0x10) | time (<< 6); then the pick byte.
        for control, pick in [(0x00 | 1 << 2 | 0x10, 1), (0x01 | 3 << 2 | 0x10, 0), (0x02 | 2 << 2 | 0x10, 0),
                              (0x03 | 0 << 2 | 0x10, 0), (0x01 | 0 << 2, 0), (0x00 | 0x20 | 0x10, 2),
                              (0x02 | 1 << 2 | 0x10 | 0x80, 3)]:
            write(out, bytes([control, pick]) + packet)


def seeds_offload(out):
    packets = pcap_packets() + [tcp_super_packet(3000), udp_super_packet(3000)]
    for packet in packets:
        write(out, bytes([0x00]) + bytes(10) + packet)                   # a zeroed header (no offloads)
        write(out, bytes([0x01 | 0x08]) + packet)                        # NEEDS_CSUM, made outbound
        write(out, bytes([0x02 | 0x08]) + struct.pack("!H", 536) + packet)  # GSO, 536-byte segments
        write(out, bytes([0x03 | 0x10 | 0x04]) + packet)                 # DATA_VALID, hop compensated
    for packet, size in [(tcp_super_packet(3000), 1448), (udp_super_packet(3000), 1200)]:
        write(out, bytes([0x02 | 0x08]) + struct.pack("!H", size) + packet)
        # The same as the kernel's header bytes: NEEDS_CSUM, GSO type, hdr_len, gso_size, csum_start, csum_offset.
        tcp = packet[9] == 6
        raw = struct.pack("<BBHHHH", 1, 1 if tcp else 5, 40 if tcp else 28, size, 20, 16 if tcp else 6)
        write(out, bytes([0x00 | 0x08]) + raw + packet)


def ipv6(src, dst, next_header, upper, ext=b"", hop=64):
    return struct.pack("!IHBB", 0x60000000, len(ext) + len(upper), next_header, hop) + bytes(src) + bytes(dst) + ext + upper


def seeds_nat64(out):
    """IPv6 packets from a private host (control: addressing 1, checksum fixed) and IPv4 replies (addressing 3)."""
    host = bytes([0xfd, 0, 0, 1] + [0] * 11 + [1])
    server = bytes([0x20, 0x01, 0x0d, 0xb8, 0, 0x64] + [0] * 6 + [93, 184, 216, 34])
    udp = struct.pack("!HHHH", 5000, 53, 12, 0) + b"abcd"
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    echo = struct.pack("!BBHHH", 128, 0, 0, 77, 1) + b"x" * 16
    pad = bytes([17, 0, 1, 4, 0, 0, 0, 0])
    frag = struct.pack("!BBHI", 17, 0, 0 | 1, 0x12345678)
    later = struct.pack("!BBHI", 17, 0, 24, 0x12345678)
    inner = ipv6(server, host, 17, struct.pack("!HHHH", 53, 5000, 12, 0) + b"abcd")
    errors = [struct.pack("!BBHI", t, c, 0, w) + inner for t, c, w in [(1, 4, 0), (2, 0, 1400), (3, 0, 0), (4, 0, 7)]]
    packets = [ipv6(host, server, 17, udp), ipv6(host, server, 6, tcp), ipv6(host, server, 58, echo),
               ipv6(host, server, 0, udp, ext=pad), ipv6(host, server, 44, udp, ext=frag),
               ipv6(host, server, 44, b"tail" * 4, ext=later)] + [ipv6(host, server, 58, e) for e in errors]
    for i, packet in enumerate(packets):
        write(out, bytes([0x02 | 0x08]) + packet)
        write(out, bytes([0x03 | 0x08 | 0x10]) + packet)
    replies = [ipv4_packet(17, [93, 184, 216, 34], [198, 18, 0, 1], struct.pack("!HHHH", 53, 5000, 12, 0) + b"abcd"),
               ipv4_packet(6, [93, 184, 216, 34], [198, 18, 0, 1],
                           struct.pack("!HHIIBBHHH", 80, 40000, 5000, 1001, 5 << 4, 0x12, 65535, 0, 0)),
               ipv4_packet(1, [93, 184, 216, 34], [198, 18, 0, 1], struct.pack("!BBHHH", 0, 0, 0, 77, 1) + b"x" * 16)]
    for packet in replies:
        write(out, bytes([0x06 | 0x08]) + packet)
        write(out, bytes([0x04 | 0x08 | 0x40]) + packet)


def pcapng_block(kind, body):
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def as_pcapng(data):
    """A classic pcap as pcapng, little-endian: a section header, one interface of the file's link type (with
    if_tsresol 9 for a nanosecond file), and an Enhanced Packet Block per record."""
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanoseconds = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    snaplen, link = struct.unpack(endian + "II", data[16:24])
    out = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = struct.pack("<HHBxxxHH", 9, 1, 9, 0, 0) if nanoseconds else b""
    out += pcapng_block(1, struct.pack("<HHI", link & 0xFFFF, 0, snaplen) + options)
    off = 24
    while off + 16 <= len(data):
        seconds, fraction, caplen, origlen = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        units = seconds * (10 ** 9 if nanoseconds else 10 ** 6) + fraction
        out += pcapng_block(6, struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(frame), origlen) + frame)
    return out


def seeds_pcap(out):
    for path in pcap_files():
        data = open(path, "rb").read()
        write(out, data)
        write(out, as_pcapng(data))


# --- Replication ---------------------------------------------------------------------------------------------------

KINDS = {"heartbeat": 1, "entries": 2, "ack": 3, "resyncRequest": 4, "hello": 5, "handover": 6}


def unsealed(kind, payload, sender=1, receiver=2, key_id=1, flags=0, nonces=(0, 0), sequence=1, ack=0):
    """A wire-format-2 datagram as the sync target's mode 0 takes it: a real header and payload, and a tag of
    zeros (the target writes the session's nonces in; the tag it cannot: that is the point)."""
    header = struct.pack("!IBBBBIIQQQQHH", 0x544E5359, 2, KINDS[kind], key_id, flags, sender, receiver, nonces[0],
                         nonces[1], sequence, ack, len(payload), 0)
    return header + payload + bytes(16)


def heartbeat(role, term, leader, healthy=True, synced=False, routes=False):
    return struct.pack("!BBBBQI", role, (1 if healthy else 0) | (2 if synced else 0) | (4 if routes else 0), 0, 0,
                       term, leader)


def record(op, proto, internal, iport, external, eport, remote, rport, tcp_state=0):
    return struct.pack("!BBBB4sHH4s4sHH", op, proto, tcp_state, 0, bytes(internal), iport, eport, bytes(external),
                       bytes(remote), rport, 0)


def batch(number, flags, records):
    return struct.pack("!QBBH", number, flags, 0, len(records)) + b"".join(records)


RECORDS = [
    record(1, 17, [10, 0, 0, 1], 5000, [198, 18, 0, 1], 5000, [198, 19, 0, 1], 53),
    record(1, 6, [10, 0, 0, 2], 40000, [198, 18, 0, 1], 40001, [198, 19, 0, 2], 443, tcp_state=0x0F),
    record(1, 1, [10, 0, 0, 3], 77, [198, 18, 0, 1], 77, [198, 19, 0, 3], 77),
    record(2, 17, [10, 0, 0, 1], 5000, [198, 18, 0, 1], 5000, [198, 19, 0, 1], 53),
]


def message(desc, payload=b"", variant=0, ack=0):
    """One message of the sync target's sealed modes: [desc][variant][ack][u16 length][payload]."""
    return bytes([desc, variant, ack]) + struct.pack("!H", len(payload)) + payload


def seeds_sync(out):
    # Mode 0: raw datagrams to a standby in session with nodes 1 and 3 and following node 1. Flags: 1 a header that
    # parses, 2 the session's ids and nonces written in (so the bytes reach the tag), 4 as node 3.
    datagrams = [
        unsealed("heartbeat", heartbeat(2, 1, 1)),
        unsealed("entries", batch(1, 1, RECORDS[:2]), sequence=3),
        unsealed("entries", batch(2, 2, RECORDS[2:]), sequence=4, key_id=2),
        unsealed("ack", b"", sequence=5, ack=2),
        unsealed("resyncRequest", b"", sequence=6),
        unsealed("hello", struct.pack("!Q", 7), flags=1, nonces=(99, 0)),
        unsealed("handover", struct.pack("!Q", 1)),
    ]
    for flags in (0x00, 0x03, 0x07):
        write(out, bytes([0x00]) + b"".join(bytes([flags]) + struct.pack("!H", len(d)) + d for d in datagrams))
    write(out, bytes([0x04]) + b"".join(bytes([0x03]) + struct.pack("!H", len(d)) + d for d in datagrams))
    for d in datagrams:
        write(out, bytes([0x00, 0x03]) + struct.pack("!H", len(d)) + d)
    write(out, bytes([0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x05]) + b"TNSY")
    # The sealed modes. desc: the kind (0-7), 0x08 as node 3, 0x10 a huge acknowledgement, 0x20 0.3 s later,
    # 0x40 tick after it, 0x80 flip the node's health; variant: the tampering (0-7), 0x08 repeat the sequence,
    # 0x10-0x30 a hello's echo (none, the node's challenge, the session's, stale), 0x40 a new run id, 0x80 a bit
    # flipped.
    heartbeat_kind, entries_kind, ack_kind, resync_kind, hello_kind, handover_kind, begin_handover = 0, 1, 2, 3, 4, 5, 7
    node3, huge, later, tick, flip_health = 0x08, 0x10, 0x20, 0x40, 0x80
    # Mode 1: a standby following node 1: a resync in two batches, out of order, then heartbeats and acks.
    write(out, bytes([0x01])
          + message(entries_kind | tick, batch(7, 1, RECORDS[:2]))
          + message(entries_kind | tick, batch(8, 2, RECORDS[2:3]))
          + message(entries_kind, batch(9, 0, RECORDS[3:]))
          + message(heartbeat_kind | tick, heartbeat(2, 1, 1)))
    write(out, bytes([0x01])
          + message(entries_kind, batch(5, 1, RECORDS[:1]))
          + message(entries_kind, batch(7, 0, RECORDS[2:3]))
          + message(entries_kind | tick, batch(6, 2, RECORDS[1:2]))
          + message(heartbeat_kind | node3, heartbeat(1, 1, 1, synced=True))
          + message(heartbeat_kind | later | tick, heartbeat(2, 1, 1, healthy=False)))
    write(out, bytes([0x01])
          + message(heartbeat_kind | node3 | tick, heartbeat(2, 2, 3))
          + message(entries_kind | node3, batch(1, 1, RECORDS[:2]))
          + message(heartbeat_kind | tick, heartbeat(2, 3, 1))
          + message(entries_kind, batch(1, 1, RECORDS[:1]), variant=0x08))
    # A resync in one batch, then a planned handover from node 1: the standby takes over.
    write(out, bytes([0x01])
          + message(entries_kind | tick, batch(1, 3, RECORDS[:3]))
          + message(heartbeat_kind | tick, heartbeat(2, 1, 1))
          + message(handover_kind | tick, struct.pack("!Q", 1))
          + message(heartbeat_kind | tick, heartbeat(2, 1, 1))
          + message(entries_kind | tick, batch(2, 0, RECORDS[3:])))
    # New sessions: node 1 starts a handshake, completes it, restarts (a new run id); node 3 replays an old one.
    write(out, bytes([0x01])
          + message(hello_kind)
          + message(hello_kind, variant=0x10)
          + message(heartbeat_kind | tick, heartbeat(2, 1, 1))
          + message(hello_kind | later, variant=0x40)
          + message(hello_kind, variant=0x10, ack=1)
          + message(hello_kind | node3, variant=0x20)
          + message(hello_kind | node3, variant=0x30)
          + message(hello_kind | node3, variant=0x04)
          + message(heartbeat_kind | tick, heartbeat(2, 1, 1)))
    # Every tampering of a heartbeat and of a batch, a repeated sequence, a flipped bit, key id 2.
    write(out, bytes([0x01]) + b"".join(message(heartbeat_kind, heartbeat(2, 1, 1), variant=v) for v in range(8))
          + b"".join(message(entries_kind, batch(1, 1, RECORDS[:2]), variant=v) for v in (1, 2, 3, 4, 5, 7, 0x80, 6))
          + message(entries_kind | tick, batch(2, 2, RECORDS[2:]), variant=0x08))
    # Mode 2: an active (term 1) with three flows: a standby appears, is resynced, acknowledges; then an active of
    # a higher term makes it step down.
    write(out, bytes([0x02])
          + message(heartbeat_kind | tick, heartbeat(1, 1, 2))
          + message(ack_kind | tick, ack=1)
          + message(resync_kind | tick)
          + message(ack_kind | later | tick, ack=2)
          + message(heartbeat_kind | tick, heartbeat(1, 1, 2, synced=True)))
    write(out, bytes([0x02])
          + message(heartbeat_kind | tick, heartbeat(1, 1, 2))
          + message(heartbeat_kind | node3 | tick, heartbeat(2, 5, 3))
          + message(entries_kind | node3 | tick, batch(1, 1, RECORDS[:2])))
    # A planned handover to node 1 once it is synced: begun, taken (node 1 active, term 2, routes held), complete.
    write(out, bytes([0x02])
          + message(heartbeat_kind | tick, heartbeat(1, 1, 2))
          + message(ack_kind | tick, ack=1)
          + message(heartbeat_kind | tick, heartbeat(1, 1, 2, synced=True), ack=1)
          + message(ack_kind | tick, ack=1)
          + message(begin_handover | tick)
          + message(heartbeat_kind | later | tick, heartbeat(2, 2, 1))
          + message(heartbeat_kind | tick, heartbeat(2, 2, 1, routes=True), ack=1)
          + message(heartbeat_kind | huge | flip_health | tick, heartbeat(2, 2, 1, routes=True)))
    # Mode 3: the decoders: a batch, a header (and a message made of it), replay-window triples.
    write(out, bytes([0x03]) + batch(3, 3, RECORDS))
    write(out, bytes([0x03]) + datagrams[1])
    write(out, bytes([0x03]) + datagrams[5])
    write(out, bytes([0x03]) + bytes([0x00, 0x00, 0x05, 0x00, 0x00, 0x03, 0x00, 0x04, 0x10, 0x01, 0x00, 0x01,
                                      0x00, 0x00, 0x06, 0x03, 0x04, 0x00, 0x02, 0xFF, 0xFF, 0x03, 0x00, 0x01]))


def swift_strings(path):
    """Swift string literals of a source file: multi-line ones dedented as Swift does, single-line ones with their
    escapes decoded. Literals with interpolation are skipped."""
    text = open(path, encoding="utf-8").read()
    found = []
    for m in re.finditer(r'"""\n(.*?)\n([ \t]*)"""', text, re.S):
        body, indent = m.group(1), m.group(2)
        if "\\(" in body:
            continue
        lines = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in body.split("\n")]
        found.append("\n".join(lines) + "\n")
    for m in re.finditer(r'(?<!")"((?:[^"\\\n]|\\.)*)"(?!")', text):
        body = m.group(1)
        if "\\(" in body:
            continue
        found.append(re.sub(r'\\(.)', lambda e: {"n": "\n", "t": "\t", "0": "\0"}.get(e.group(1), e.group(1)), body))
    return found


def markdown_blocks(path, language):
    text = open(path, encoding="utf-8").read()
    return [m.group(1) for m in re.finditer(r"```" + language + r"\n(.*?)```", text, re.S)]


def seeds_config(out):
    texts = swift_strings(os.path.join(REPO, "Sources/TunnatKit/Config/DefaultConfiguration.swift"))[:1]
    for path in sorted(glob.glob(os.path.join(REPO, "Tests/TunnatKitTests/*Config*.swift"))):
        texts += [t for t in swift_strings(path) if re.search(r"^(nat|failover|routetables|route_tables|healthchecks|poll_time)\s*:", t, re.M)]
    for path in sorted(glob.glob(os.path.join(REPO, "docs/*.md")) + [os.path.join(REPO, "README.md")]):
        texts += markdown_blocks(path, "yaml")
    texts += [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(REPO, "examples/*.yaml")))]
    for t in texts:
        write(out, t.encode())
    return len(texts)


def dict_config(path):
    words = set()
    for source in glob.glob(os.path.join(REPO, "Sources/TunnatKit/Config/*.swift")):
        for word in re.findall(r'"([a-zA-Z_][a-zA-Z_0-9.-]{1,40})"', open(source, encoding="utf-8").read()):
            words.add(word)
    words |= {"true", "false", "unlimited", "SELF", "10.0.0.0/8", "198.18.0.1", "10.0.1.10:7800", "0.0.0.0/0",
              "5m", "2h4m", "300s", "1h30m15s", "1024-65535", ": ", "- ", "{", "}", "[", "]", "&a", "*a", "!!str",
              "---", "...", "<<: "}
    with open(path, "w") as f:
        for w in sorted(words):
            f.write('"%s"\n' % w.replace("\\", "\\\\").replace('"', '\\"'))


EC2_RESPONSES = [
    """<?xml version="1.0" encoding="UTF-8"?>
<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>fc45294c-example</requestId>
  <networkInterfaceSet>
    <item>
      <networkInterfaceId>eni-0f7db0e1e2b8f2a61</networkInterfaceId>
      <subnetId>subnet-9</subnetId>
      <vpcId>vpc-1</vpcId>
      <macAddress>02:a1:b2:c3:d4:e5</macAddress>
      <privateIpAddress>10.0.1.10</privateIpAddress>
      <sourceDestCheck>false</sourceDestCheck>
      <attachment><attachmentId>eni-attach-1</attachmentId><instanceId>i-0123</instanceId><status>attached</status></attachment>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.1.10</privateIpAddress><primary>true</primary></item>
        <item><privateIpAddress>10.0.1.50</privateIpAddress><primary>false</primary>
          <association><publicIp>203.0.113.7</publicIp></association></item>
      </privateIpAddressesSet>
    </item>
  </networkInterfaceSet>
  <nextToken/>
</DescribeNetworkInterfacesResponse>
""",
    """<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstanceStatusResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>3be1508e-example</requestId>
  <instanceStatusSet>
    <item>
      <instanceId>i-0456</instanceId>
      <availabilityZone>eu-west-1a</availabilityZone>
      <instanceState><code>16</code><name>running</name></instanceState>
      <systemStatus><status>ok</status><details><item><name>reachability</name><status>passed</status></item></details></systemStatus>
      <instanceStatus><status>impaired</status><details><item><name>reachability</name><status>failed</status></item></details></instanceStatus>
    </item>
  </instanceStatusSet>
  <nextToken>page-2</nextToken>
</DescribeInstanceStatusResponse>
""",
    """<?xml version="1.0" encoding="UTF-8"?>
<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>f7de5e98-example</requestId>
  <addressesSet>
    <item><publicIp>203.0.113.7</publicIp><allocationId>eipalloc-1</allocationId><domain>vpc</domain>
      <networkInterfaceId>eni-0f7db0e1e2b8f2a61</networkInterfaceId><privateIpAddress>10.0.1.50</privateIpAddress></item>
  </addressesSet>
</DescribeAddressesResponse>
""",
    """<?xml version="1.0" encoding="UTF-8"?>
<ReplaceRouteResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>59dbff89-example</requestId><return>true</return></ReplaceRouteResponse>
""",
    """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>5a2a-example</RequestID></Response>
""",
]


def seeds_xml(out):
    texts = [t for t in swift_strings(os.path.join(REPO, "Tests/AWSTests/XMLTests.swift")) if "<" in t]
    texts += EC2_RESPONSES
    for t in texts:
        write(out, t.encode())


def dict_xml(path):
    names = set()
    for source in glob.glob(os.path.join(REPO, "Sources/AWS/*.swift")):
        names |= set(re.findall(r'(?:value|items|child|first)\("([A-Za-z]+)"\)', open(source, encoding="utf-8").read()))
    names |= {"item", "Error", "Errors", "Code", "Message", "gatewayId", "natGatewayId"}
    tokens = {"<?xml version=\"1.0\"?>", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE a>", "&amp;", "&lt;", "&gt;",
              "&quot;", "&apos;", "&#x41;", "&#65;", "&#x10FFFF;", "</", "/>", " xmlns=\"a\"", "a:b", "=\"v\"", "='v'"}
    with open(path, "w") as f:
        for n in sorted(names):
            f.write('"<%s>"\n"</%s>"\n' % (n, n))
        for t in sorted(tokens):
            f.write('"%s"\n' % t.replace("\\", "\\\\").replace('"', '\\"'))


def main():
    out, targets = sys.argv[1], sys.argv[2:]
    for target in targets:
        seeds = os.path.join(out, "seeds", target)
        if target == "translate":
            seeds_translate(seeds)
        elif target == "offload":
            seeds_offload(seeds)
        elif target == "sync":
            seeds_sync(seeds)
        elif target == "xml":
            seeds_xml(seeds)
            dict_xml(os.path.join(out, "xml.dict"))
        elif target == "config":
            seeds_config(seeds)
            dict_config(os.path.join(out, "config.dict"))
        elif target == "pcap":
            seeds_pcap(seeds)
        elif target == "nat64":
            seeds_nat64(seeds)
        else:
            sys.exit("fuzz_seeds.py: unknown target %s" % target)


if __name__ == "__main__":
    main()
