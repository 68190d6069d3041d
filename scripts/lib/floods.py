#!/usr/bin/env python3
"""Bounded floods and their witnesses, for scripts/tests/test_floods.py. Each subcommand runs inside one network
namespace (`ip netns exec NS python3 floods.py ...`), builds its packets with packets.py (`struct` only: raw
sockets, no scapy), and prints one JSON object. Every flood stops at --count packets or --seconds,
whichever comes first, and is paced at --rate packets per second. Needs root (CAP_NET_RAW).

Floods (from the router or a client; every address they use lies inside the test's namespaces):
  udp --dst A --dport P --sources CIDR[,CIDR] [--payload HEX]
                                                    UDP datagrams from random sources in CIDRs (a /32: one
                                                    source) and random ports
  first-fragment --src A --sport P --dst A --dport P
                                                    one first fragment of a UDP datagram (MF, offset 0, one IP
                                                    ID), sent again and again
  tcp-oow --iface IF --server A:P --client A        sniffs one segment of a live connection server -> client on
                                                    IF, then sends RSTs and FIN|ACKs spoofed from the server with
                                                    sequence numbers 2^30 to 1.5 x 2^30 past the server's
  ack-sweep --src A --dst A --dport P --first-port N --last-port N
                                                    one bare ACK (no SYN) from each source port, TCP checksum right
  tcp-walk --iface IF --server A:P --client A       sniffs one segment as tcp-oow does, then 3 bare ACKs spoofed
                                                    from the server, each 2^30 + 100,000 further on, each followed
                                                    by 2 RSTs at its sequence number
  udp-ports --src A --dst A --dport P --first-port N --last-port N
                                                    one datagram from each source port (a mapping each)
  udp-spray --dst A --first-port N --last-port N --sources CIDR[,CIDR]
                                                    datagrams from random sources to each port in turn
  later-fragments --dst A --sources CIDR[,CIDR]     non-first UDP fragments (offset > 0), random IP IDs
  reversed-fragments --src A --sport P --dst A --dport P --size N --datagrams N --interval S --tag T
                                                    whole UDP datagrams cut into fragments, sent last fragment first
  echo-requests --src A --dst A --ident N           ICMP echo requests with one identifier
  l2-udp --iface IF --dst-mac M --src A --dst A --dport P --tag T
                                                    UDP in Ethernet frames written straight onto IF (AF_PACKET):
                                                    any source address, delivered to the neighbour with MAC M
Common flood options: --count N --rate PPS --seconds S. Each prints {"sent", "errors", "seconds", ...}.

Witnesses and clients:
  udp-hold --server A:P --seconds S --state FILE    a UDP socket that says "hello" to a longflows.py server (which
                                                    answers with the public address and port it saw), then counts
                                                    what arrives by tag (the first word) into FILE every 0.2 s
  udp-count --bind A --port P --seconds S           counts datagrams by tag and source until SIGTERM or S
  tcp-watch --src A --sport P --seconds S           counts arriving TCP segments from A:P with RST, FIN
  icmp-watch --type T [--ident N] [--src A] --seconds S
                                                    counts arriving ICMP messages of type T, and which identifiers
  ping-id --dst A --ident N --count N               echo requests with a fixed identifier; counts the replies
  udp-stream --server A:P --interval I --seconds S  a numbered datagram to a longflows.py server every I seconds
                                                    until SIGTERM or S; counts the answers (until all are in, at
                                                    most 5 s more)
  new-flow --dst A --port P [--timeout S]           a fresh TCP connection: connect, one line echoed (exit 1 if not)
Witnesses print "ready" once listening, stop at SIGTERM or after S seconds, then print their JSON.
"""
import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import struct
import sys
import time

from packets import IP_MF, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, icmp_echo, ipv4, link_sender, tcp, udp, udp_ipv4

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module does not name it

# --- packets (built by packets.py) ------------------------------------------------------------------------------


def addr(text):
    return socket.inet_aton(text)


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class RandomSources:
    """Random host addresses from a list of prefixes, each weighted by its size. The network and broadcast
    addresses are left out, except from a /31 or /32 (a /32 is one fixed address)."""

    def __init__(self, prefixes):
        self.ranges = []
        for text in prefixes.split(","):
            net = ipaddress.ip_network(text.strip())
            skip = 1 if net.num_addresses > 2 else 0
            self.ranges.append((int(net.network_address) + skip, net.num_addresses - 2 * skip))
        self.sizes = [size for _, size in self.ranges]

    def pick(self):
        first, size = random.choices(self.ranges, self.sizes)[0]
        return (first + random.randrange(size)).to_bytes(4, "big")


def raw_ip_socket():
    """A raw socket that sends whole IPv4 packets we built (IPPROTO_RAW implies IP_HDRINCL). The kernel routes them
    by destination and sets only what raw(7) says it always fills in: the header checksum and total length (both
    already right here), and an IP ID left 0 (never, here)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def ip_id():
    return random.randrange(1, 65536)


# --- pacing -----------------------------------------------------------------------------------------------------


def paced(send, make, count, rate, seconds):
    """Sends make(i) for i = 0, 1, ... at `rate` packets per second, in slices of about a millisecond, until
    `count` were tried or `seconds` have passed. A send the kernel refuses (ENOBUFS, ...) is counted, not retried."""
    start = time.monotonic()
    slice_ = max(1, rate // 1000)
    tried = errors = 0
    while tried < count:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        allowed = min(count, int(elapsed * rate) + slice_)
        if tried >= allowed:
            time.sleep(slice_ / rate)
            continue
        while tried < allowed:
            try:
                send(make(tried))
            except OSError:
                errors += 1
            tried += 1
    return {"sent": tried - errors, "errors": errors, "seconds": round(time.monotonic() - start, 3)}


def flood_ip(packets, dst, opts):
    """Paced flood of IPv4 packets (from packets(i)) through a raw socket, routed by the kernel towards dst."""
    s = raw_ip_socket()
    target = (dst, 0)
    return paced(lambda p: s.sendto(p, target), packets, opts.count, opts.rate, opts.seconds)


# --- floods -----------------------------------------------------------------------------------------------------


def cmd_udp(o):
    sources, dst = RandomSources(o.sources), addr(o.dst)
    payload = bytes.fromhex(o.payload) if o.payload else o.tag.encode() + b" " + b"u" * 32

    def packet(i):
        src = sources.pick()
        return udp_ipv4(src, dst, random.randrange(1024, 65536), o.dport, payload, ip_id())

    return flood_ip(packet, o.dst, o)


def cmd_replay_udp(o):
    """Sends captured UDP payloads (a file of 2-byte big-endian lengths, each followed by its payload) from
    src:sport to dst:dport, whatever src is: a replay, or a reflection when src is the receiver's own peer."""
    src, dst = addr(o.src), addr(o.dst)
    data = open(o.file, "rb").read()
    payloads, i = [], 0
    while i + 2 <= len(data):
        (n,) = struct.unpack_from("!H", data, i)
        payloads.append(data[i + 2:i + 2 + n])
        i += 2 + n
    s = raw_ip_socket()
    for p in payloads:
        s.sendto(udp_ipv4(src, dst, o.sport, o.dport, p, ip_id()), (o.dst, 0))
    return {"sent": len(payloads)}


def cmd_first_fragment(o):
    src, dst = addr(o.src), addr(o.dst)
    data = b"f" * 64  # a multiple of 8, so a second fragment could follow at offset 9 (72 bytes)
    packet = ipv4(src, dst, socket.IPPROTO_UDP, udp(src, dst, o.sport, o.dport, data, length=8 + o.length),
                  o.ident, IP_MF)
    result = flood_ip(lambda i: packet, o.dst, o)
    result["ident"] = o.ident
    return result


def sniff_segment(iface, server, sport, client, seconds):
    """The first TCP segment server:sport -> client that crosses iface (an AF_PACKET socket sees both
    directions, when bound to every protocol: the kernel hands outgoing frames only to ETH_P_ALL taps): (client
    port, the sequence number after it, its acknowledgement number), or None."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, ETH_P_ALL))
    s.settimeout(0.2)
    srv, cli = addr(server), addr(client)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = s.recv(65535)
        except (TimeoutError, socket.timeout):
            continue
        ip = frame[14:]
        if frame[12:14] != b"\x08\x00" or len(ip) < 40 or ip[9] != socket.IPPROTO_TCP:
            continue
        if ip[12:16] != srv or ip[16:20] != cli:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        seg = ip[ihl:total]
        src_port, dst_port, seq, ack, off_flags = struct.unpack("!HHIIH", seg[:14])
        if src_port != sport:
            continue
        data_len = len(seg) - (off_flags >> 12) * 4
        flags = off_flags & 0xFF
        return dst_port, (seq + data_len + (1 if flags & (TCP_SYN | TCP_FIN) else 0)) & 0xFFFFFFFF, ack
    return None


def live_connection(o):
    """The connection server -> client that tcp-oow and tcp-walk spoof into, read off the wire: (server address and
    port, client port, the server's next sequence number, its acknowledgement number), or an error result."""
    server, sport = endpoint(o.server)
    seen = sniff_segment(o.iface, server, sport, o.client, 5)
    if seen is None:
        return {"error": f"no segment from {o.server} to {o.client} crossed {o.iface} in 5 s", "sent": 0}
    return (server, sport) + seen


def cmd_tcp_oow(o):
    live = live_connection(o)
    if isinstance(live, dict):
        return live
    server, sport, cport, seq_next, ack = live
    src, dst = addr(server), addr(o.client)

    def packet(i):
        # 2^30 to 1.5 x 2^30 past the server's next sequence number: far outside any window a TCP can open
        # (window scaling stops at 2^30), and as far from the other side of the circle.
        seq = (seq_next + (1 << 30) + random.getrandbits(29)) & 0xFFFFFFFF
        if i % 2 == 0:
            segment = tcp(src, dst, sport, cport, seq, 0, TCP_RST, window=0)
        else:
            segment = tcp(src, dst, sport, cport, seq, ack, TCP_FIN | TCP_ACK)
        return ipv4(src, dst, socket.IPPROTO_TCP, segment, ip_id())

    result = flood_ip(packet, o.client, o)
    result.update({"tuple": f"{server}:{sport} -> {o.client}:{cport}", "client_port": cport, "seq_next": seq_next,
                   "rst": (result["sent"] + 1) // 2, "fin": result["sent"] // 2})
    return result


def cmd_tcp_walk(o):
    """Off-path: 3 bare ACKs spoofed from the server, each 2^30 + 100,000 further along its sequence space than the
    last (ahead, as TCP compares: a tracker that moves its marker for any segment follows), each followed by 2 RSTs
    at the ACK's sequence number (far outside the real window, inside a walked one). A fourth step would wrap round
    to within a megabyte of the start. Not paced: 9 packets."""
    live = live_connection(o)
    if isinstance(live, dict):
        return live
    server, sport, cport, seq, ack = live
    src, dst = addr(server), addr(o.client)
    s = raw_ip_socket()
    step = (1 << 30) + 100_000
    for _ in range(3):
        seq = (seq + step) & 0xFFFFFFFF
        s.sendto(ipv4(src, dst, socket.IPPROTO_TCP, tcp(src, dst, sport, cport, seq, ack, TCP_ACK), ip_id()),
                 (o.client, 0))
        time.sleep(0.01)
        for i in range(2):
            rst = tcp(src, dst, sport, cport, (seq + i * 1000) & 0xFFFFFFFF, 0, TCP_RST, window=0)
            s.sendto(ipv4(src, dst, socket.IPPROTO_TCP, rst, ip_id()), (o.client, 0))
        time.sleep(0.01)
    return {"sent": 9, "tuple": f"{server}:{sport} -> {o.client}:{cport}", "client_port": cport}


def cmd_udp_ports(o):
    """One datagram from src to dst:dport from each source port first-port..last-port (a mapping each)."""
    src, dst = addr(o.src), addr(o.dst)
    payload = o.tag.encode() + b" " + b"p" * 16
    o.count = min(o.count, o.last_port - o.first_port + 1)

    def packet(i):
        return udp_ipv4(src, dst, o.first_port + i, o.dport, payload, ip_id())

    return flood_ip(packet, o.dst, o)


def cmd_udp_spray(o):
    """Datagrams from random spoofed sources to dst at every port first-port..last-port in turn, `--count` in all:
    an outsider filling mappings it guessed (port preservation makes them the private ports)."""
    sources, dst = RandomSources(o.sources), addr(o.dst)
    ports = o.last_port - o.first_port + 1
    payload = o.tag.encode() + b" " + b"s" * 16

    def packet(i):
        return udp_ipv4(sources.pick(), dst, random.randrange(1024, 65536), o.first_port + i % ports, payload, ip_id())

    return flood_ip(packet, o.dst, o)


def cmd_ack_sweep(o):
    src, dst = addr(o.src), addr(o.dst)
    ports = o.last_port - o.first_port + 1
    o.count = min(o.count, ports)

    def packet(i):
        segment = tcp(src, dst, o.first_port + i, o.dport, random.getrandbits(32), random.getrandbits(32), TCP_ACK)
        return ipv4(src, dst, socket.IPPROTO_TCP, segment, ip_id())

    return flood_ip(packet, o.dst, o)


def cmd_later_fragments(o):
    sources, dst = RandomSources(o.sources), addr(o.dst)
    data = b"l" * 64

    def packet(i):
        # Offset 1 to 1000 (8 to 8000 bytes in), more fragments or not: a fragment whose first never comes.
        frag = random.randrange(1, 1001) | (IP_MF if i % 2 else 0)
        return ipv4(sources.pick(), dst, socket.IPPROTO_UDP, data, ip_id(), frag)

    return flood_ip(packet, o.dst, o)


def cmd_reversed_fragments(o):
    src, dst = addr(o.src), addr(o.dst)
    s = raw_ip_socket()
    sent = []
    for n in range(o.datagrams):
        body = (b"%s %d " % (o.tag.encode(), n)).ljust(o.size - 8, b"r")
        datagram = udp(src, dst, o.sport, o.dport, body)
        ident = ip_id()
        chunk = 1480  # 1500-byte MTU less the IP header; a multiple of 8
        pieces = [(off, datagram[off:off + chunk]) for off in range(0, len(datagram), chunk)]
        for off, piece in reversed(pieces):
            more = IP_MF if off + chunk < len(datagram) else 0
            s.sendto(ipv4(src, dst, socket.IPPROTO_UDP, piece, ident, more | off // 8), (o.dst, 0))
        sent.append(len(pieces))
        time.sleep(o.interval)
    return {"sent": len(sent), "fragments": sum(sent)}


def cmd_echo_requests(o):
    src, dst = addr(o.src), addr(o.dst)
    payload = b"flood echo request".ljust(32, b".")

    def packet(i):
        return ipv4(src, dst, socket.IPPROTO_ICMP, icmp_echo(o.ident, i & 0xFFFF, payload), ip_id())

    result = flood_ip(packet, o.dst, o)
    result["ident"] = o.ident
    return result


def cmd_l2_udp(o):
    src, dst = addr(o.src), addr(o.dst)
    send, ethernet = link_sender(o.iface, o.dst_mac)

    def packet(i):
        return ethernet + udp_ipv4(src, dst, o.sport, o.dport, b"%s %d" % (o.tag.encode(), i), ip_id())

    return paced(send, packet, o.count, o.rate, o.seconds)


# --- witnesses ----------------------------------------------------------------------------------------------------

stopping = False


def stop_on_sigterm():
    def handler(signum, frame):
        global stopping
        stopping = True

    signal.signal(signal.SIGTERM, handler)


def big_receive_buffer(s, size=32 << 20):
    """A receive buffer that holds a whole flood's worth of small packets: SO_RCVBUFFORCE (we are root) goes past
    net.core.rmem_max; SO_RCVBUF, capped by it, if that is refused."""
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def raw_watch_socket(proto):
    """A raw socket of `proto` that receives a copy of each such packet delivered here, polled every 0.2 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    big_receive_buffer(s)
    s.settimeout(0.2)
    return s


def receive_until(s, seconds, each):
    """Calls each(data, peer) for what s receives, until SIGTERM or `seconds`; s must have a short timeout."""
    stop_on_sigterm()
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while not stopping and time.monotonic() < deadline:
        try:
            data, peer = s.recvfrom(65535)
        except (TimeoutError, socket.timeout, InterruptedError):
            continue
        each(data, peer)


def tag_of(data):
    """A datagram's first word when it looks like one of ours (short, printable), else "other"."""
    word = data.split(b" ", 1)[0][:16]
    return word.decode() if word.isalnum() else "other"


def count_tag(counts, tag):
    if tag in counts or len(counts) < 32:
        counts[tag] = counts.get(tag, 0) + 1
    else:
        counts["other"] = counts.get("other", 0) + 1


def cmd_udp_hold(o):
    host, port = endpoint(o.server)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_receive_buffer(s)
    s.bind(("0.0.0.0", 0))
    s.settimeout(0.2)
    external = None
    deadline = time.monotonic() + 10
    while external is None and time.monotonic() < deadline:  # a hello every 0.2 s until answered, at most 10 s
        s.sendto(b"hello", (host, port))
        try:
            data, peer = s.recvfrom(2048)
        except (TimeoutError, socket.timeout):
            continue
        if peer == (host, port) and data.startswith(b"hello from "):
            external = data.split(b" from ", 1)[1].decode()
            break
    state = {"local": s.getsockname()[1], "external": external, "received": 0, "tags": {}}

    def write():
        tmp = o.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, o.state)

    write()
    if external is None:
        return {"error": f"no answer from {o.server}", **state}
    stop_on_sigterm()
    print("ready", flush=True)
    deadline = time.monotonic() + o.seconds
    written = time.monotonic()
    while not stopping and time.monotonic() < deadline:
        try:
            data, _ = s.recvfrom(65535)
            state["received"] += 1
            count_tag(state["tags"], tag_of(data))
        except (TimeoutError, socket.timeout, InterruptedError):
            pass
        if time.monotonic() - written >= 0.2:
            write()
            written = time.monotonic()
    write()
    return state


def cmd_udp_count(o):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_receive_buffer(s)
    s.bind((o.bind, o.port))
    s.settimeout(0.2)
    result = {"received": 0, "tags": {}, "sources": {}}

    def each(data, peer):
        result["received"] += 1
        tag = tag_of(data)
        count_tag(result["tags"], tag)
        key = f"{tag} from {peer[0]}"
        if key in result["sources"] or len(result["sources"]) < 32:
            result["sources"][key] = result["sources"].get(key, 0) + 1

    receive_until(s, o.seconds, each)
    return result


def cmd_tcp_watch(o):
    # A raw TCP socket receives a copy of every TCP segment delivered to this namespace's addresses.
    s = raw_watch_socket(socket.IPPROTO_TCP)
    src = addr(o.src)
    result = {"segments": 0, "rst": 0, "fin": 0}

    def each(packet, peer):
        ihl = (packet[0] & 0x0F) * 4
        if packet[12:16] != src or struct.unpack("!H", packet[ihl:ihl + 2])[0] != o.sport:
            return
        flags = packet[ihl + 13]
        result["segments"] += 1
        result["rst"] += bool(flags & TCP_RST)
        result["fin"] += bool(flags & TCP_FIN)

    receive_until(s, o.seconds, each)
    return result


def cmd_icmp_watch(o):
    # A raw ICMP socket receives a copy of every ICMP message delivered to this namespace's addresses.
    s = raw_watch_socket(socket.IPPROTO_ICMP)
    result = {"count": 0, "idents": []}

    def each(packet, peer):
        ihl = (packet[0] & 0x0F) * 4
        kind, _, _, ident = struct.unpack("!BBHH", packet[ihl:ihl + 6])
        if kind != o.type or (o.ident is not None and ident != o.ident) or (o.src and peer[0] != o.src):
            return
        result["count"] += 1
        if ident not in result["idents"] and len(result["idents"]) < 32:
            result["idents"].append(ident)

    receive_until(s, o.seconds, each)
    return result


def cmd_udp_stream(o):
    host, port = endpoint(o.server)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.setblocking(False)
    stop_on_sigterm()
    print("ready", flush=True)
    result = {"sent": 0, "answered": 0}
    start = time.monotonic()
    end = start + o.seconds
    drain_until = None
    while time.monotonic() < (drain_until or end) and not (drain_until and result["answered"] >= result["sent"]):
        now = time.monotonic()
        if drain_until is None and stopping:
            drain_until = now + 5  # the answers to the last datagrams: until all are in, at most 5 s
        if drain_until is None and now >= start + result["sent"] * o.interval:
            try:
                s.send(b"%d" % result["sent"])
            except OSError:
                pass
            result["sent"] += 1
        try:
            while True:
                s.recv(2048)
                result["answered"] += 1
        except OSError:  # BlockingIOError: nothing more for now
            pass
        time.sleep(min(o.interval / 4, 0.005))
    return result


def cmd_ping_id(o):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.2)
    answered = set()
    for seq in range(1, o.count + 1):
        s.sendto(icmp_echo(o.ident, seq, b"ping with a fixed identifier"), (o.dst, 0))
        deadline = time.monotonic() + 3
        while seq not in answered and time.monotonic() < deadline:
            try:
                packet, peer = s.recvfrom(2048)
            except (TimeoutError, socket.timeout):
                continue
            ihl = (packet[0] & 0x0F) * 4
            kind, _, _, ident, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if kind == 0 and ident == o.ident and peer[0] == o.dst:
                answered.add(rseq)
        time.sleep(0.1)
    return {"sent": o.count, "answered": len(answered), "ident": o.ident}


def cmd_new_flow(o):
    start = time.monotonic()
    try:
        with socket.create_connection((o.dst, o.port), timeout=o.timeout) as s:
            s.settimeout(o.timeout)
            s.sendall(b"a new flow\n")
            reply = b""
            while not reply.endswith(b"\n"):
                data = s.recv(100)
                if not data:
                    break
                reply += data
        ok = reply == b"a new flow\n"
        error = None if ok else f"echoed {reply!r}"
    except OSError as e:
        ok, error = False, f"{type(e).__name__}: {e}"
    return {"ok": ok, "error": error, "seconds": round(time.monotonic() - start, 3)}


# --- command line ---------------------------------------------------------------------------------------------------


def number(v):
    return int(v, 0)


# Each option's type and whether it must be given; a subcommand names the ones it takes (with any default after
# a "=").
OPTIONS = {"src": str, "sport": int, "dst": str, "dport": int, "sources": str, "tag": str, "ident": number,
           "length": int, "iface": str, "server": str, "client": str, "first-port": int, "last-port": int,
           "size": int, "datagrams": int, "interval": float, "dst-mac": str, "seconds": float, "state": str,
           "bind": str, "port": int, "type": int, "count": int, "file": str, "timeout": float, "payload": str}
FLOOD_OPTIONS = ("count=1000", "rate=20000", "seconds=10")
ADDRESSES = ("src", "sport", "dst", "dport")
SUBCOMMANDS = {  # name: (a flood: --count --rate --seconds, its options)
    "udp": (True, ("dst", "dport", "sources", "tag=spoof", "payload=")),
    "first-fragment": (True, ADDRESSES + ("ident=0x7A7A", "length=2000")),
    "tcp-oow": (True, ("iface", "server", "client")),
    "ack-sweep": (True, ("src", "dst", "dport", "first-port=1", "last-port=65535")),
    "tcp-walk": (False, ("iface", "server", "client")),
    "udp-ports": (True, ("src", "dst", "dport", "first-port", "last-port", "tag=ports")),
    "udp-spray": (True, ("dst", "first-port", "last-port", "sources", "tag=spray")),
    "later-fragments": (True, ("dst", "sources")),
    "reversed-fragments": (False, ADDRESSES + ("size=3000", "datagrams=5", "interval=0.2", "tag=frag")),
    "echo-requests": (True, ("src", "dst", "ident")),
    "l2-udp": (True, ("iface", "dst-mac", "src", "sport=5555", "dst", "dport", "tag=spoofpriv")),
    "udp-hold": (False, ("server", "seconds", "state")),
    "udp-count": (False, ("bind", "port", "seconds=30")),
    "tcp-watch": (False, ("src", "sport", "seconds=30")),
    "icmp-watch": (False, ("type", "ident=", "src=", "seconds=30")),
    "udp-stream": (False, ("server", "interval=0.02", "seconds=30")),
    "ping-id": (False, ("dst", "ident", "count=3")),
    "replay-udp": (False, ADDRESSES + ("file",)),
    "new-flow": (False, ("dst", "port", "timeout=3")),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (flood, options) in SUBCOMMANDS.items():
        p = sub.add_parser(name)
        for option in (FLOOD_OPTIONS if flood else ()) + options:
            key, has_default, default = option.partition("=")
            kind = OPTIONS.get(key, int)
            if has_default:
                p.add_argument("--" + key, type=kind, default=kind(default) if default else None)
            else:
                p.add_argument("--" + key, type=kind, required=True)

    o = parser.parse_args()
    result = globals()["cmd_" + o.command.replace("-", "_")](o)
    print(json.dumps(result), flush=True)
    if result.get("error") or result.get("ok") is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
