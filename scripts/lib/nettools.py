#!/usr/bin/env python3
"""Small network probes for the namespace tests, each bounded in time and count, each exiting non-zero with a
message when what it checks does not hold. Run inside a namespace with `ip netns exec`.

  nettools.py echo-server ADDR PORT SECONDS         TCP line echo server (asyncio), stops after SECONDS
  nettools.py many-connections ADDR PORT N          open N connections at once, then echo a line on each
  nettools.py udp-refused ADDR PORT                 a UDP datagram to a closed port (resent) must come back refused
  nettools.py unsolicited ADDR                      TCP and UDP to ADDR must get no answer at all
  nettools.py hairpin-listen PORT PRIMER SECONDS    bind UDP PORT, send one datagram to PRIMER (ADDR:PORT) to
                                                    open a mapping, then answer the first datagram received
  nettools.py hairpin-send ADDR PORT EXPECT         send to ADDR:PORT, expect a reply whose body names EXPECT
  nettools.py udp-sources PORT SECONDS              bind UDP PORT for SECONDS, then print how many datagrams came
                                                    from each source address (JSON)
  nettools.py spoof IFACE DSTMAC SRC DST PORT N     send N UDP datagrams SRC -> DST:PORT as raw Ethernet frames
                                                    (AF_PACKET) out of IFACE to DSTMAC: any source, no routing
"""
import asyncio
import json
import socket
import sys
import time

from packets import link_sender, udp_ipv4


def fail(message):
    print(f"nettools: {message}", file=sys.stderr)
    sys.exit(1)


async def echo_server(addr, port, seconds):
    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, addr, port, backlog=4096)
    async with server:
        await asyncio.sleep(seconds)


async def many_connections(addr, port, n):
    sem = asyncio.Semaphore(200)  # connection attempts in flight at once; all n stay open together

    async def open_one():
        async with sem:
            return await asyncio.wait_for(asyncio.open_connection(addr, port), 10)

    started = time.monotonic()
    conns = await asyncio.gather(*(open_one() for _ in range(n)))
    opened = time.monotonic() - started
    ok = 0

    async def echo(i, reader, writer):
        nonlocal ok
        message = f"connection {i}\n".encode()
        writer.write(message)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 10)
        if reply == message:
            ok += 1

    await asyncio.gather(*(echo(i, r, w) for i, (r, w) in enumerate(conns)))
    for _, w in conns:
        w.close()
    if ok != n:
        fail(f"{ok} of {n} connections echoed correctly")
    print(f"{n} concurrent connections open (in {opened:.2f}s), {ok} echoed")


def udp_refused(addr, port):
    """One datagram to a closed port, sent again every 0.5 s (8 times at most) as a client would: the server's kernel
    rate-limits its port unreachables per destination (1 a second once a burst is spent, and the tests before this
    one, traceroute among them, spend it), so a single datagram's ICMP error may never be sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.connect((addr, port))
    for attempt in range(1, 9):
        s.send(b"anyone there?")
        try:
            s.recv(100)
            fail("a closed port answered")
        except ConnectionRefusedError:
            print(f"udp {addr}:{port}: connection refused (ICMP port unreachable reached the client, datagram {attempt})")
            return
        except socket.timeout:
            continue
    fail("no ICMP port unreachable came back for 8 datagrams over 4 s")


def unsolicited(addr):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.settimeout(2)
    try:
        t.connect((addr, 22))
        fail(f"TCP to {addr}:22 was accepted")
    except ConnectionRefusedError:
        fail(f"TCP to {addr}:22 was refused: something answered it (the NAT must drop it silently)")
    except (socket.timeout, TimeoutError):
        pass
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    u.connect((addr, 5353))
    u.send(b"unsolicited")
    try:
        u.recv(100)
        fail(f"UDP to {addr}:5353 got an answer")
    except ConnectionRefusedError:
        fail(f"UDP to {addr}:5353 got port unreachable (the NAT must drop it silently)")
    except (socket.timeout, TimeoutError):
        pass
    print(f"unsolicited TCP and UDP to {addr}: no answer")


def hairpin_listen(port, primer, seconds):
    host, pport = primer.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.sendto(b"open a mapping", (host, int(pport)))
    s.settimeout(seconds)
    try:
        data, peer = s.recvfrom(1000)
    except socket.timeout:
        fail(f"hairpin listener on port {port}: nothing arrived in {seconds} s")
    s.sendto(b"seen " + peer[0].encode() + b" " + data, peer)
    print(f"hairpin listener: {data.decode()!r} from {peer[0]}:{peer[1]}")


def hairpin_send(addr, port, expect):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"hello through the pool address", (addr, port))
    try:
        data, peer = s.recvfrom(1000)
    except socket.timeout:
        fail(f"no reply from {addr}:{port} within 3 s")
    words = data.decode().split()
    if words[:2] != ["seen", expect]:
        fail(f"the listener saw the sender as {words[1] if len(words) > 1 else '?'}, expected {expect}")
    if peer != (addr, port):
        fail(f"the reply came from {peer}, expected {(addr, port)}")
    print(f"hairpin: the listener saw {expect}; the reply came back from {peer[0]}:{peer[1]}")


def udp_sources(port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    counts = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            _, peer = s.recvfrom(2000)
        except (socket.timeout, TimeoutError):
            break
        counts[peer[0]] = counts.get(peer[0], 0) + 1
    print(json.dumps(counts))


def spoof(iface, dst_mac, src, dst, port, n):
    send, ethernet = link_sender(iface, dst_mac)
    for i in range(n):
        send(ethernet + udp_ipv4(socket.inet_aton(src), socket.inet_aton(dst), 40000 + i, port,
                                 f"spoofed {i}".encode(), i))
        time.sleep(0.01)
    print(f"sent {n} UDP datagrams {src} -> {dst}:{port} out of {iface} to {dst_mac}")


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "echo-server":
        asyncio.run(echo_server(args[0], int(args[1]), float(args[2])))
    elif cmd == "many-connections":
        asyncio.run(many_connections(args[0], int(args[1]), int(args[2])))
    elif cmd == "udp-refused":
        udp_refused(args[0], int(args[1]))
    elif cmd == "unsolicited":
        unsolicited(args[0])
    elif cmd == "hairpin-listen":
        hairpin_listen(int(args[0]), args[1], float(args[2]))
    elif cmd == "hairpin-send":
        hairpin_send(args[0], int(args[1]), args[2])
    elif cmd == "udp-sources":
        udp_sources(int(args[0]), float(args[1]))
    elif cmd == "spoof":
        spoof(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]))
    else:
        fail(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
