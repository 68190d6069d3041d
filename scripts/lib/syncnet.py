#!/usr/bin/env python3
"""The sync link between the two NATs of the failover cluster, passed through a userspace relay in the router
namespace that can lose, duplicate, delay, reorder or block each direction, and forge or replay datagrams from a
peer's address. It stands in for tc netem, which the test machines' kernels lack (no netem, no prio qdisc).

  syncnet.py A_ADDRESS B_ADDRESS PORT        (in the router namespace, as root)

How the datagrams reach it: the router's policy rules send UDP to PORT that arrives from either NAT's link to a
table whose only route is `local 0.0.0.0/0`, so the kernel delivers them here instead of forwarding them; each is
sent on (or not) from a raw socket with its own source address and port, exactly as it came. Nothing else the
NATs send is touched, and what the relay sends goes only to A_ADDRESS or B_ADDRESS.

Commands, one JSON object per line on stdin; each is answered with one JSON line on stdout:
  {"impair": {"a>b": {"loss": 0.2, "dup": 0.1, "delay": 0.05, "jitter": 0.02, "reorder": 0.25, "block": false},
              "b>a": {...}}}      a direction not named is left as it is; {} clears it
  {"clear": true}                 every direction back to a plain pass-through, and any paced forgery stopped
  {"forge": N, "from": "a"}       N datagrams as from a's address and port to b: captured headers with fresh nonces,
                                  sequence and tag (hellos among them), and random garbage; with "rate": R, spread
                                  at R a second (the answer comes at once)
  {"replay": N, "from": "a"}      the last N datagrams a sent to b (of the last 4,096 kept), again, verbatim
  {"stats": true}                 what was passed, lost, duplicated, delayed, blocked, forged and replayed
  {"quit": true}
"""
import heapq
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time

IP_PKTINFO = 8
KEPT = 4096


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def datagram(src, sport, dst, dport, payload):
    """An IPv4 UDP datagram with any source (UDP checksum 0: none, which IPv4 allows)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


class Relay:
    def __init__(self, a, b, port, seed):
        self.addresses = {"a": a, "b": b}
        self.port = port
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.bind(("0.0.0.0", port))
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.lock = threading.Lock()
        self.rules = {"a>b": {}, "b>a": {}}
        self.kept = {"a>b": [], "b>a": []}
        self.delayed = []       # heap of (due, order, bytes, dst)
        self.order = 0
        self.generation = 0     # a paced forgery stops when `clear` moves it on
        self.stats = {k: 0 for k in ("passed", "lost", "duplicated", "delayed", "reordered", "blocked", "forged",
                                     "replayed", "foreign")}

    def direction(self, src, dst):
        a, b = self.addresses["a"], self.addresses["b"]
        if (src, dst) == (a, b):
            return "a>b"
        if (src, dst) == (b, a):
            return "b>a"
        return None

    def transmit(self, packet, dst):
        try:
            self.raw.sendto(packet, (dst, 0))
        except OSError:     # ENOBUFS in a burst: the datagram is lost, as on a congested link
            self.stats["send_errors"] = self.stats.get("send_errors", 0) + 1

    def send(self, src, dst, payload, delay=0.0):
        packet = datagram(src, self.port, dst, self.port, payload)
        if delay <= 0:
            self.transmit(packet, dst)
            return
        with self.lock:
            self.order += 1
            heapq.heappush(self.delayed, (time.monotonic() + delay, self.order, packet, dst))

    def flush_due(self):
        now = time.monotonic()
        while True:
            with self.lock:
                if not self.delayed or self.delayed[0][0] > now:
                    return
                _, _, packet, dst = heapq.heappop(self.delayed)
            self.transmit(packet, dst)

    def next_due(self):
        with self.lock:
            return self.delayed[0][0] - time.monotonic() if self.delayed else 0.05

    def receive(self):
        try:
            data, ancillary, _, (src, sport) = self.sock.recvmsg(65535, 1024, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        dst = next((socket.inet_ntoa(d[8:12]) for level, kind, d in ancillary if kind == IP_PKTINFO), None)
        way = self.direction(src, dst) if sport == self.port else None
        if way is None:
            self.stats["foreign"] += 1      # not between the two NATs' sync ports: dropped
            return True
        with self.lock:
            rule = dict(self.rules[way])
            kept = self.kept[way]
            kept.append(data)
            if len(kept) > KEPT:
                del kept[:len(kept) - KEPT]
        if rule.get("block"):
            self.stats["blocked"] += 1
            return True
        if self.rng.random() < rule.get("loss", 0):
            self.stats["lost"] += 1
            return True
        copies = 2 if self.rng.random() < rule.get("dup", 0) else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            delay = max(0.0, rule.get("delay", 0) + self.rng.uniform(-1, 1) * rule.get("jitter", 0))
            if self.rng.random() < rule.get("reorder", 0):
                # Held back behind the datagrams that follow it.
                delay += rule.get("delay", 0) + 0.03
                self.stats["reordered"] += 1
            if delay > 0:
                self.stats["delayed"] += 1
            self.send(src, dst, data, delay)
        self.stats["passed"] += 1
        return True

    def forge(self, n, sender, hellos=False, generation=None):
        way = f"{sender}>{'b' if sender == 'a' else 'a'}"
        src, dst = self.addresses[sender], self.addresses["b" if sender == "a" else "a"]
        with self.lock:
            templates = [d for d in self.kept[way] if len(d) >= 52]
        rng = random.Random(self.rng.random()) if generation is None else random.Random(generation * 7919 + n)
        for i in range(n):
            if generation is not None and generation != self.generation:
                return      # cleared meanwhile
            if templates and (hellos or i % 4 != 3):
                t = bytearray(rng.choice(templates))
                if i % 4 == 0 or hellos:
                    t[5] = 5                                    # a hello
                    t[24:32] = bytes(8)                         # with no echo, as a starting node's
                for lo, hi in ((16, 24), (24, 32), (32, 40)):   # nonces and sequence
                    t[lo:hi] = os.urandom(hi - lo)
                t[-16:] = os.urandom(16)                        # the tag
                payload = bytes(t)
            else:
                payload = os.urandom(rng.randrange(1, 1400))
            self.send(src, dst, payload)
            with self.lock:
                self.stats["forged"] += 1

    def replay(self, n, sender):
        way = f"{sender}>{'b' if sender == 'a' else 'a'}"
        src, dst = self.addresses[sender], self.addresses["b" if sender == "a" else "a"]
        with self.lock:
            old = list(self.kept[way][-n:])
        for d in old:
            self.send(src, dst, d)
            self.stats["replayed"] += 1

    def command(self, c):
        if "impair" in c:
            with self.lock:
                for way, rule in c["impair"].items():
                    self.rules[way] = dict(rule)
        if c.get("clear"):
            with self.lock:
                self.rules = {"a>b": {}, "b>a": {}}
                self.generation += 1
        if "forge" in c and c.get("rate"):
            # Spread over time (N at `rate` a second) on a thread of its own; the answer comes at once.
            n, rate, sender, hellos = int(c["forge"]), float(c["rate"]), c.get("from", "a"), bool(c.get("hellos"))

            generation = self.generation

            def paced():
                step = max(1, int(rate / 50))
                for done in range(0, n, step):
                    if generation != self.generation:
                        return      # cleared: the fault is healed
                    self.forge(min(step, n - done), sender, hellos, generation)
                    time.sleep(step / rate)
            threading.Thread(target=paced, daemon=True).start()
        elif "forge" in c:
            self.forge(int(c["forge"]), c.get("from", "a"), bool(c.get("hellos")))
        if "replay" in c:
            self.replay(int(c["replay"]), c.get("from", "a"))
        return {"ok": True, "stats": dict(self.stats), "rules": self.rules}

    def run(self):
        print(json.dumps({"ready": True}), flush=True)
        while True:
            wait = min(max(self.next_due(), 0.0), 0.05)
            ready, _, _ = select.select([self.sock, sys.stdin], [], [], wait)
            self.flush_due()
            if self.sock in ready:
                for _ in range(256):
                    if not self.receive():
                        break
            if sys.stdin in ready:
                line = sys.stdin.readline()
                if not line:
                    return
                c = json.loads(line)
                if c.get("quit"):
                    return
                print(json.dumps(self.command(c)), flush=True)


def main():
    a, b, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seed = int(os.environ.get("SYNCNET_SEED", "1"))
    Relay(a, b, port, seed).run()


if __name__ == "__main__":
    main()
