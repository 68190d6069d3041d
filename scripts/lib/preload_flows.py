#!/usr/bin/env python3
"""Idle UDP flows by the million, for the failover benchmark's preload (failover_cluster.py --preload): run inside
the client namespace, it sends one small datagram per flow and nothing else, so each flow lives in the NAT until its
UDP timeout.

  preload_flows.py SOCKETS
      Opens SOCKETS UDP sockets (the kernel picks their ports) and prints "ready". Then, per line read from stdin,
      "FIRST COUNT RATE" sends the datagrams of flows FIRST .. FIRST+COUNT-1 at about RATE per second and prints
      "sent DATAGRAMS FAILED SECONDS"; end of input (or "quit") ends it. Sending a flow again is harmless: the NAT
      refreshes it, so the caller resends whatever it found missing. The sockets stay open between lines, so a
      resent flow has the same source port as the first time.

Flow i goes from socket i % SOCKETS to 198.19.A.B port 10000 + j // 65536, where j = i // SOCKETS and A.B = j % 65536:
the whole of 198.19.0.0/16, a part of the benchmarking range 198.18.0.0/15 that the cluster's router blackholes (no
reply and no ICMP ever comes back). Nothing is sent anywhere else.
"""
import errno
import socket
import sys
import time

PREFIX = "198.19."       # 198.19.0.0/16, blackholed in the router namespace (failover_cluster.PRELOAD_PREFIX)
FIRST_PORT = 10000
MAX_PER_SOCKET = 1 << 24  # flows per socket at most: destination ports stay below 10256
PACE_EVERY = 64           # datagrams between two looks at the clock
RETRIES = 200             # sends of one datagram refused for a full buffer (ENOBUFS, EAGAIN) before it counts as failed


def send(socks, addresses, first, count, rate):
    """Sends flows first .. first+count-1 paced to `rate` per second; returns (sent, failed, seconds)."""
    n = len(socks)
    sent = failed = 0
    payload = b"p"
    start = time.monotonic()
    for i in range(first, first + count):
        j = i // n
        target = (addresses[j & 0xFFFF], FIRST_PORT + (j >> 16))
        s = socks[i % n]
        for attempt in range(RETRIES):
            try:
                s.sendto(payload, target)
                sent += 1
                break
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                time.sleep(0.0005)
        else:
            failed += 1
        done = i - first + 1
        if done % PACE_EVERY == 0:
            ahead = start + done / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return sent, failed, time.monotonic() - start


def main(argv):
    if len(argv) != 2 or not argv[1].isdigit() or not 1 <= int(argv[1]) <= 16:
        sys.exit(__doc__)
    socks = []
    for _ in range(int(argv[1])):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    addresses = [f"{PREFIX}{a >> 8}.{a & 0xFF}" for a in range(1 << 16)]
    print("ready", " ".join(str(s.getsockname()[1]) for s in socks), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words == ["quit"]:
            break
        first, count, rate = int(words[0]), int(words[1]), float(words[2])
        if first < 0 or count < 0 or first + count > MAX_PER_SOCKET * len(socks) or rate <= 0:
            sys.exit(f"preload_flows.py: flows {first}+{count} at {rate}/s: out of range")
        sent, failed, seconds = send(socks, addresses, first, count, rate)
        print(f"sent {sent} {failed} {seconds:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
