#!/usr/bin/env python3
"""Long-lived flows across a NAT, for the failover test and benchmark.

  longflows.py serve ADDRESS PORT
      A TCP server (a line "hello"/"again" is answered with the address and port the connection comes from; any
      other line is echoed) and a UDP server on the same port (each datagram is answered with "SEQ from ADDR:PORT").
  longflows.py probe ADDRESS PORT --seconds S [--idle N] [--busy N] [--interval I] [--until PATH] [--patience P]
                                         [--settle W]
      Opens N idle TCP connections and N busy ones, and a UDP stream, all to the server; the busy connections and the
      UDP stream send a numbered line every I seconds for S seconds (or until the file PATH appears, if sooner) and
      time every answer (then wait, at most W seconds, default 5, for the UDP answers still due). A busy connection
      that gets no answer, or cannot send, for P seconds (default 10) counts as lost. Then each idle connection
      speaks once more. Prints one JSON object: per kind, what was sent and answered, the longest gap between two
      answers, errors (a reset, an early close), and the source addresses the server saw.

Every loop is bounded by S and by socket timeouts.
"""
import json
import os
import select
import socket
import socketserver
import sys
import threading
import time


def serve(address, port):
    class TCPHandler(socketserver.StreamRequestHandler):
        def handle(self):
            peer = "%s:%d" % self.client_address
            for line in self.rfile:
                word = line.split(b" ", 1)[0].strip()
                if word in (b"hello", b"again"):
                    self.wfile.write(b"from " + peer.encode() + b"\n")
                else:
                    self.wfile.write(line)

    class UDPHandler(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(data.strip() + b" from %s:%d" % (self.client_address[0].encode(), self.client_address[1]),
                        self.client_address)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    tcp = socketserver.ThreadingTCPServer((address, port), TCPHandler)
    udp = socketserver.UDPServer((address, port), UDPHandler)
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    print("serving", flush=True)
    tcp.serve_forever()


def max_gap(times, start, end):
    points = [start] + sorted(times) + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def probe(address, port, seconds, idle, busy, interval, until="", patience=10.0, settle=5.0):
    result = {"idle": {"total": idle, "survived": 0, "failures": []}}
    sources = {}

    # Idle connections: opened first, then left alone until the end.
    idles = []
    for i in range(idle):
        s = socket.create_connection((address, port), timeout=5)
        f = s.makefile("rwb")
        f.write(b"hello %d\n" % i)
        f.flush()
        sources[i] = f.readline().decode().split(" ", 1)[1].strip()
        idles.append((s, f))

    start = time.monotonic()
    end = start + seconds
    if until:
        # The sending ends when the file appears (looked for every 50 ms), at the latest after `seconds`.
        stop_at = [end]

        def watch():
            while time.monotonic() < stop_at[0]:
                if os.path.exists(until):
                    stop_at[0] = time.monotonic()
                    return
                time.sleep(0.05)
        threading.Thread(target=watch, daemon=True).start()
    else:
        stop_at = [end]
    busy_results = []

    def busy_flow(index):
        r = {"sent": 0, "answered": 0, "error": None, "times": []}
        busy_results.append(r)
        try:
            s = socket.create_connection((address, port), timeout=10)
            s.settimeout(patience)
            f = s.makefile("rwb")
            f.write(b"hello busy\n")
            f.flush()
            r["source"] = f.readline().decode().split(" ", 1)[1].strip()

            done = threading.Event()

            def reader():
                # Until every line sent is answered; `patience` seconds of silence with lines outstanding is a failure.
                # It waits with select, leaving the socket's own timeout (the sender's) as it is.
                last = time.monotonic()
                while not (done.is_set() and r["answered"] >= r["sent"]):
                    try:
                        if not select.select([s], [], [], 0.5)[0]:
                            if time.monotonic() - last > patience:
                                r["error"] = r["error"] or f"no answer for {patience:g} s ({r['answered']} of {r['sent']})"
                                return
                            continue
                        data = s.recv(65536)
                    except OSError as e:
                        r["error"] = r["error"] or repr(e)
                        return
                    if not data:
                        r["error"] = r["error"] or "closed by the other side"
                        return
                    last = time.monotonic()
                    for _ in range(data.count(b"\n")):
                        r["answered"] += 1
                        r["times"].append(last)

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            n = 0
            while time.monotonic() < stop_at[0]:
                n += 1
                try:
                    s.sendall(b"%d %s\n" % (n, b"x" * 200))
                except (TimeoutError, socket.timeout):
                    r["error"] = r["error"] or f"send blocked for {patience:g} s"
                    break
                r["sent"] = n
                time.sleep(interval)
            done.set()
            t.join(15)
            s.close()
        except OSError as e:
            r["error"] = r["error"] or repr(e)

    threads = [threading.Thread(target=busy_flow, args=(i,), daemon=True) for i in range(busy)]
    for t in threads:
        t.start()

    # The UDP stream, on this thread.
    u = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((address, port))
    u.setblocking(False)
    udp = {"sent": 0, "answered": 0, "times": [], "sources": set()}
    n = 0
    next_send = time.monotonic()
    # Sends until the end, then waits for the answers still due: until every datagram is answered, at most 5 s.
    while time.monotonic() < stop_at[0] + settle and (time.monotonic() < stop_at[0] or udp["answered"] < udp["sent"]):
        now = time.monotonic()
        if now < stop_at[0] and now >= next_send:
            n += 1
            try:
                u.send(b"%d" % n)
                udp["sent"] = n
            except OSError:
                pass
            next_send += interval
        try:
            while True:
                data = u.recv(2048)
                udp["answered"] += 1
                udp["times"].append(time.monotonic())
                udp["sources"].add(data.decode().split(" from ", 1)[1])
        except (BlockingIOError, OSError):
            pass
        time.sleep(min(interval / 4, 0.005))
    for t in threads:
        t.join(20)
    end = stop_at[0]

    for i, (s, f) in enumerate(idles):
        try:
            s.settimeout(10)
            f.write(b"again %d\n" % i)
            f.flush()
            line = f.readline().decode()
            seen = line.split(" ", 1)[1].strip() if line.startswith("from ") else None
            if seen == sources[i]:
                result["idle"]["survived"] += 1
            else:
                result["idle"]["failures"].append(f"{i}: answered {line.strip()!r}, first seen from {sources[i]}")
        except OSError as e:
            result["idle"]["failures"].append(f"{i}: {e!r}")
        s.close()

    result["idle"]["sources"] = sorted(set(sources.values()))
    result["busy"] = [{"sent": r["sent"], "answered": r["answered"], "error": r["error"], "source": r.get("source"),
                       "max_gap": round(max_gap(r["times"], start, min(end, r["times"][-1] if r["times"] else end)), 3)}
                      for r in busy_results]
    result["udp"] = {"sent": udp["sent"], "answered": udp["answered"], "sources": sorted(udp["sources"]),
                     "max_gap": round(max_gap([t for t in udp["times"] if t <= end], start, end), 3)}
    print(json.dumps(result))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) >= 4 and sys.argv[1] == "probe":
        opts = {"--seconds": 10.0, "--idle": 0, "--busy": 1, "--interval": 0.02, "--until": "", "--patience": 10.0,
                "--settle": 5.0}
        args = sys.argv[4:]
        for k, v in zip(args[::2], args[1::2]):
            if k not in opts:
                sys.exit(f"longflows.py: unknown option {k}")
            opts[k] = type(opts[k])(v)
        probe(sys.argv[2], int(sys.argv[3]), opts["--seconds"], int(opts["--idle"]), int(opts["--busy"]),
              opts["--interval"], opts["--until"], opts["--patience"], opts["--settle"])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
