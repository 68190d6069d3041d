#!/usr/bin/env python3
"""The soak: a replicating pair of tunnat in front of a simulated VPC (failover_cluster.py, on a management network
of its own), a realistic mix of traffic through it for DURATION seconds, and the operations of a long life on top;
samples of each tunnat process (RSS, descriptors, threads, flows, CPU, packets) every few seconds; a verdict on
whether anything grows without bound.

  soak.py TUNNAT DURATION [--json FILE] [--handover-every S] [--sighup-every S] [--flood-every S]
  soak.py --judge FILE      a run saved with --json, judged again by this version's rules

The mix, from the private client to the server (all inside the run's namespaces):
  http      short HTTP/1.0 requests to nginx, a new connection each, 40 a second
  dns       DNS queries to dnsmasq, a new source port each, 50 a second
  udp       datagrams to port 53 of many destinations (198.19.0.0/16, which the router drops unanswered), 50 a second
  long      10 idle and 2 busy TCP connections and a UDP stream for the whole run (longflows.py): each must survive
            every handover
  ping      one echo request every 0.2 s
On top: a metrics scrape and a `tunnat status` of each node every sampling period (2 s), a SIGHUP of the active
every --sighup-every seconds, a planned handover every --handover-every seconds (the old active stops, as a
handover ends it, and comes back as the standby), and every --flood-every seconds a bounded flood (10 s, 4,000
packets a second of forged sources: from outside at the pool address's ports, from inside to the server's port 53).

The verdict, for each tunnat process that lived long (a third of the run, or one and a half handover periods if
less: a process lives two of them at most, as each handover ends the active), over the second half of its life (its
first half is its warm-up: a standby's takeover comes at its midpoint): the fewest descriptors, and the fewest
threads, seen in its last quarter no more than in the quarter before (a scrape, a status call or an EC2 call holds
one for an instant, and a sample may catch it: what leaks raises the least seen), their spread at most
DESCRIPTOR_SPREAD; `tunnat status` answered every sample but 1%. RSS follows the most flows the table has
held (each flow's slot and index pages are touched once, then stay resident), so its slope is judged over the steady
part of that half: from when the flows first reached 95% of their most; there it may grow RSS_SLOPE_LIMIT MB a
minute at most, if the part is a quarter of its life (STEADY_SECONDS at least). The mix's own flows expire
within 30 s (single UDP exchanges to port 53) to 4 minutes (closed TCP), and so do the floods' (the outside one
makes inbound flows at mapped ports, which wait 4 minutes): in a short run a process may not reach its steady part;
at least one must, and the output says which were judged. And the traffic: every long-lived TCP
connection survives, at most 1% of the HTTP requests, DNS queries, metric scrapes and pings fail. Exits 1 with the reason when any
check fails. Prints the table (start, middle and end of each process's life) and one JSON line.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time

from failover_cluster import SERVER, SERVER_PORT, Cluster, log
from testbed import LIB, end, sh, wait_for

RSS_SLOPE_LIMIT = 1.0        # MB a minute over a process's steady part
STEADY_SECONDS = 20          # the shortest steady part judged (and at least a quarter of the life)
DESCRIPTOR_SPREAD = 6        # descriptors up and down within the second half
FAILURE_SHARE = 0.01         # of HTTP requests, of DNS queries
SAMPLE_SECONDS = 2.0
HTTP_PORT = 8080


# --- the load generators (run inside the client namespace: soak.py load KIND SECONDS RATE) -----------------------

def paced(seconds, rate, once):
    """Calls once() `rate` times a second for `seconds`; returns (ok, failed)."""
    ok = failed = 0
    start = time.monotonic()
    n = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = start + n / rate
        if due > now:
            time.sleep(min(due - now, 0.2))
            continue
        n += 1
        try:
            good = once()
        except OSError:
            good = False
        ok, failed = ok + good, failed + (not good)
    return ok, failed


def http_once():
    with socket.create_connection((SERVER, HTTP_PORT), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: soak\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.startswith(b"HTTP/1.1 200") and data.endswith(b"soak\n")


def dns_query(name):
    header = struct.pack("!HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + labels + struct.pack("!HH", 1, 1)


def dns_once():
    dns_once.n = getattr(dns_once, "n", 0) + 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        query = dns_query(f"q{dns_once.n}.soak.test")
        s.sendto(query, (SERVER, 53))
        answer, _ = s.recvfrom(512)
    return answer[:2] == query[:2] and answer[-4:] == socket.inet_aton("198.19.0.77")


def udp_once():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(dns_query("nobody.soak.test"), (f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}", 53))
    return True


def load(kind, seconds, rate):
    once = {"http": http_once, "dns": dns_once, "udp": udp_once}[kind]
    ok, failed = paced(seconds, rate, once)
    print(json.dumps({"kind": kind, "ok": ok, "failed": failed}), flush=True)


# --- sampling ------------------------------------------------------------------------------------------------------

def proc_sample(pid):
    """RSS (MB), descriptors, threads, CPU seconds of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return {"rss": int(status["VmRSS"].split()[0]) / 1024, "fds": fds, "threads": int(status["Threads"]),
            "cpu": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}


def slope(points):
    """Least-squares slope of [(t, y)], per second; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


def floor(samples, key, part, parts):
    """The least `key` in part `part` of `parts` equal spans of `samples`."""
    first, last = samples[0]["t"], samples[-1]["t"]
    span = (last - first) / parts
    chosen = [s[key] for s in samples if first + part * span <= s["t"] <= first + (part + 1) * span]
    return min(chosen) if chosen else None


def verdict(lives, duration, long_life):
    """Per process that lived at least `long_life` seconds: the slopes and spreads of its descriptors and threads
    over its second half, and of its RSS over its steady part (see the module's notes); the checks that fail."""
    results, problems = [], []
    for life in lives:
        samples = life["samples"]
        if not samples or samples[-1]["t"] - samples[0]["t"] < long_life:
            continue
        first, last = samples[0]["t"], samples[-1]["t"]
        half = [s for s in samples if s["t"] >= (first + last) / 2]
        most = max(s["flows"] or 0 for s in samples)
        full = next(s["t"] for s in samples if (s["flows"] or 0) >= 0.95 * most)
        steady = [s for s in half if s["t"] >= full]
        judged = bool(steady) and steady[-1]["t"] - steady[0]["t"] >= max(STEADY_SECONDS, (last - first) / 4)
        r = {"node": life["node"], "pid": life["pid"], "from": round(first), "to": round(last),
             "steady_from": round(steady[0]["t"]) if steady else None, "rss_judged": judged,
             "rss_mb_per_min": round(slope([(s["t"], s["rss"]) for s in steady]) * 60, 3) if judged else None,
             # The floors: a scrape, a status call or an EC2 call holds a descriptor for an instant, and a sample
             # may catch it; what leaks raises the least seen.
             "fds_floor": (floor(half, "fds", 0, 2), floor(half, "fds", 1, 2)),
             "threads_floor": (floor(half, "threads", 0, 2), floor(half, "threads", 1, 2)),
             "fds_spread": max(s["fds"] for s in half) - min(s["fds"] for s in half),
             "threads_spread": max(s["threads"] for s in half) - min(s["threads"] for s in half),
             "status_missed": sum(1 for s in samples if s["flows"] is None)}
        results.append(r)
        name = f"{life['node']} (pid {life['pid']})"
        if judged and r["rss_mb_per_min"] > RSS_SLOPE_LIMIT:
            problems.append(f"{name}: RSS grows {r['rss_mb_per_min']} MB/min from {r['steady_from']} s, with the "
                            f"table at its size (limit {RSS_SLOPE_LIMIT})")
        for what in ("fds", "threads"):
            before, after = r[f"{what}_floor"]
            if after > before:
                problems.append(f"{name}: the fewest {what} rose from {before} to {after} between the quarters of its "
                                "second half")
            if r[f"{what}_spread"] > DESCRIPTOR_SPREAD:
                problems.append(f"{name}: {what} spread {r[f'{what}_spread']} (limit {DESCRIPTOR_SPREAD})")
        if r["status_missed"] > max(1, FAILURE_SHARE * len(samples)):
            problems.append(f"{name}: `tunnat status` went unanswered {r['status_missed']} times of {len(samples)}")
    if not results:
        problems.append(f"no tunnat process lived {long_life:.0f} s: nothing to judge")
    elif not any(r["rss_judged"] for r in results):
        problems.append("no tunnat process had a steady part (its table at its size for a quarter of its life): "
                        "RSS not judged (flows that do not expire, or a leak that follows them)")
    return results, problems


def table(lives):
    """Start, middle and end of each process's life: RSS, descriptors, threads, flows, CPU per packet."""
    rows = ["| node (pid) | at | t (s) | RSS (MB) | descriptors | threads | flows | CPU per packet (µs) |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for life in lives:
        samples = [s for s in life["samples"] if s.get("packets") is not None]
        if len(samples) < 3:
            continue
        for label, i in (("start", 0), ("middle", len(samples) // 2), ("end", len(samples) - 1)):
            s = samples[i]
            # CPU per packet over the window of a tenth of the life around the sample.
            j = max(0, i - max(1, len(samples) // 10))
            k = min(len(samples) - 1, max(i, j + 1))
            if k == i and i > 0:
                a, b = samples[j], samples[i]
            else:
                a, b = samples[i], samples[k]
            dp = b["packets"] - a["packets"]
            per = f"{(b['cpu'] - a['cpu']) / dp * 1e6:.1f}" if dp > 0 else "-"
            rows.append(f"| {life['node']} ({life['pid']}) | {label} | {s['t']:.0f} | {s['rss']:.1f} | {s['fds']} | "
                        f"{s['threads']} | {s['flows']} | {per} |")
    return "\n".join(rows)


# --- the run ---------------------------------------------------------------------------------------------------------

def servers(cluster):
    work = cluster.work
    os.makedirs(os.path.join(work, "www"), exist_ok=True)
    with open(os.path.join(work, "www", "index.html"), "w") as f:
        f.write("hello from the soak\n" * 50)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen {SERVER}:{HTTP_PORT} backlog=4096; root {work}/www; }}
}}
""")
    cluster.procs.start(cluster.ns.argv("s", "nginx", "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster.procs.start(cluster.ns.argv("s", "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                                        "--user=root", f"--listen-address={SERVER}", "--bind-interfaces",
                                        "--address=/soak.test/198.19.0.77", "--pid-file=", "--dns-forward-max=1000"),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = lambda: f"{SERVER}:{HTTP_PORT} " in sh(*cluster.ns.argv("s", "ss", "-ltn")).stdout \
        and f"{SERVER}:53 " in sh(*cluster.ns.argv("s", "ss", "-lun")).stdout
    if not wait_for(listening, 10):
        raise RuntimeError("nginx or dnsmasq did not start in the server namespace")


def start_load(cluster, duration):
    me = os.path.abspath(__file__)
    loads = {}
    for kind, rate in (("http", 40), ("dns", 50), ("udp", 50)):
        loads[kind] = cluster.procs.start(cluster.ns.argv("c", sys.executable, me, "load", kind, duration, rate),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loads["long"] = cluster.procs.start(cluster.ns.argv("c", sys.executable, os.path.join(LIB, "longflows.py"), "probe",
                                                        SERVER, SERVER_PORT, "--seconds", duration, "--idle", 10,
                                                        "--busy", 2, "--interval", 0.5),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    loads["ping"] = cluster.procs.start(cluster.ns.argv("c", "ping", "-n", "-q", "-i", "0.2", "-w", int(duration),
                                                        SERVER), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
    return loads


def flood(cluster, seconds=10, rate=4000):
    """From outside, forged sources at the pool address's ports; from inside, DNS queries from forged private
    sources to the server, which answers them (single exchanges: their flows expire within 30 s)."""
    floods = os.path.join(LIB, "floods.py")
    runs = [cluster.procs.start(cluster.ns.argv("r", sys.executable, floods, "udp-spray", "--dst", "198.18.0.100",
                                                "--first-port", 1024, "--last-port", 65535, "--sources",
                                                "198.18.64.0/18", "--rate", rate, "--seconds", seconds,
                                                "--count", rate * seconds),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            cluster.procs.start(cluster.ns.argv("c", sys.executable, floods, "udp", "--dst", SERVER, "--dport", 53,
                                                "--sources", "10.10.1.0/24", "--rate", rate, "--seconds", seconds,
                                                "--count", rate * seconds,
                                                "--payload", dns_query("flood.soak.test").hex()),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    return runs


def free_management_network():
    """A /24 of 10.78.0.0/16 whose .1 no interface holds: each soak's own, so that soaks run side by side."""
    start = os.getpid() % 250
    for i in range(250):
        net = f"10.78.{(start + i) % 250}"
        if not sh("ip", "-o", "-4", "addr", "show", "to", f"{net}.1/32").stdout.strip():
            return net
    raise RuntimeError("every 10.78.X.0/24 is in use by another run")


def run(o):
    cluster = Cluster(o.tunnat, prefix="tsk", management=free_management_network()).up()
    lives, events = [], []
    started = time.monotonic()
    clock = lambda: time.monotonic() - started
    life_of = {}

    def begin_life(node):
        life = {"node": node.k, "pid": node.pid, "samples": []}
        lives.append(life)
        life_of[node.k] = life

    try:
        a, b = cluster.nodes["a"], cluster.nodes["b"]
        a.start()
        if not wait_for(lambda: a.role() == "active" and cluster.holds_everything("a"), 60, step=0.2):
            raise RuntimeError(f"nat-a did not become the active holding the route:\n{a.log_tail()}")
        b.start()
        if not wait_for(lambda: b.synced(), 60, step=0.2):
            raise RuntimeError(f"nat-b did not become a synced standby:\n{b.log_tail()}")
        begin_life(a)
        begin_life(b)
        servers(cluster)
        loads = start_load(cluster, o.duration)
        active, standby = a, b
        next_handover, next_sighup, next_flood = o.handover_every, o.sighup_every, o.flood_every
        flooding = []
        scrapes = scrape_failures = 0
        while clock() < o.duration:
            t = clock()
            for node in (a, b):
                life = life_of.get(node.k)
                if life is None or not node.alive():
                    continue
                s = proc_sample(node.pid)
                status = node.status(timeout=5)
                if s is None:
                    continue
                s["t"] = round(clock(), 2)
                s["flows"] = status.get("flows") if status else None
                s["packets"] = status.get("nat", {}).get("packets") if status else None
                life["samples"].append(s)
            scrape = subprocess.run(cluster.ns.argv(active.k, "curl", "-sS", "--max-time", "5",
                                                    "http://127.0.0.1:9469/metrics"), capture_output=True, text=True)
            scrapes += 1
            if scrape.returncode != 0 or "tunnat_active_flows" not in scrape.stdout:
                scrape_failures += 1
            if t >= next_sighup:
                active.signal(signal.SIGHUP)
                events.append((round(t), f"SIGHUP to nat-{active.k}"))
                next_sighup += o.sighup_every
            if t >= next_flood:
                flooding += flood(cluster)
                events.append((round(t), "flood: 10 s of forged UDP, outside and inside"))
                next_flood += o.flood_every
            if t >= next_handover and o.duration - t > 30:
                handed = subprocess.run([cluster.tunnat, "handover", "--socket", active.socket], capture_output=True,
                                        text=True, timeout=90)
                active.proc.wait(30)
                ok = wait_for(lambda: standby.role() == "active" and cluster.holds_everything(standby.k), 30, step=0.1)
                events.append((round(t), f"handover nat-{active.k} -> nat-{standby.k}: {handed.stdout.strip()}"
                               f"{'' if ok else ' (the new active did not take everything)'}"))
                if not ok:
                    raise RuntimeError(f"handover to nat-{standby.k} incomplete:\n{standby.log_tail()}")
                old = active
                active, standby = standby, old
                old.start()
                begin_life(old)
                if not wait_for(lambda: old.synced(), 120, step=0.2):
                    raise RuntimeError(f"nat-{old.k} did not resync as the standby:\n{old.log_tail()}")
                events.append((round(clock()), f"nat-{old.k} back as a synced standby"))
                next_handover += o.handover_every
            time.sleep(max(0.0, SAMPLE_SECONDS - (clock() - t)))
        for f in flooding:
            end(f, 15)
        outcome = {}
        for kind in ("http", "dns", "udp"):
            out, err = loads[kind].communicate(timeout=60)
            outcome[kind] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-300:]}
        out, err = loads["long"].communicate(timeout=120)
        try:
            outcome["long"] = json.loads(out)
        except ValueError:
            outcome["long"] = {"error": err[-300:]}
        ping_out, _ = loads["ping"].communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", ping_out or "")
        outcome["ping"] = {"sent": int(m.group(1)), "received": int(m.group(2))} if m else {"error": ping_out[-300:]}
        outcome["scrapes"] = {"done": scrapes, "failed": scrape_failures}
    finally:
        cluster.down()
    return lives, events, outcome


def traffic_problems(outcome):
    problems = []
    for kind in ("http", "dns"):
        r = outcome.get(kind, {})
        total = r.get("ok", 0) + r.get("failed", 0)
        if not total or r.get("failed", 0) > FAILURE_SHARE * total:
            problems.append(f"{kind}: {r}")
    long = outcome.get("long", {})
    busy, idle = long.get("busy", []), long.get("idle", {})
    busy_ok = len(busy) == 2 and all(b.get("error") is None and b.get("answered") == b.get("sent") and b.get("sent")
                                     for b in busy)
    idle_ok = idle.get("total", -1) == idle.get("survived", -2) == 10
    if "error" in long or not busy_ok or not idle_ok:
        problems.append(f"long-lived connections: {json.dumps(long)[:600]}")
    ping = outcome.get("ping", {})
    if not ping.get("sent") or ping["sent"] - ping.get("received", 0) > FAILURE_SHARE * ping["sent"]:
        problems.append(f"ping: {ping}")
    scrapes = outcome.get("scrapes", {})
    if scrapes.get("failed", 1) > FAILURE_SHARE * max(1, scrapes.get("done", 0)):
        problems.append(f"metrics scrapes: {scrapes}")
    return problems


def report(lives, events, outcome, duration, handover_every, seed):
    """The verdict, the table and the summary of a run; the problems found."""
    results, problems = verdict(lives, duration, min(duration / 3, 1.5 * handover_every))
    problems += traffic_problems(outcome)
    print(table(lives))
    print()
    for t, what in events:
        print(f"  {t:5d} s  {what}")
    print()
    for r in results:
        rss = (f"RSS {r['rss_mb_per_min']:+.3f} MB/min from {r['steady_from']} s (limit {RSS_SLOPE_LIMIT})"
               if r["rss_judged"] else "RSS not judged (the table grew until late)")
        print(f"  {r['node']} (pid {r['pid']}, {r['from']}-{r['to']} s): {rss}; second half: fewest descriptors "
              f"{r['fds_floor'][0]} then {r['fds_floor'][1]} (spread {r['fds_spread']}), fewest threads "
              f"{r['threads_floor'][0]} then {r['threads_floor'][1]} (spread {r['threads_spread']}; at most "
              f"{DESCRIPTOR_SPREAD})")
    summary = {"duration": duration, "handover_every": handover_every, "seed": seed, "results": results,
               "traffic": outcome, "problems": problems}
    print(json.dumps(summary))
    for p in problems:
        print(f"soak: FAILED: {p}")
    print(f"soak: {'FAILED' if problems else 'passed'}")
    return summary


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        load(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--judge":
        # A saved run (--json) judged again, by this version's rules.
        with open(sys.argv[2]) as f:
            saved = json.load(f)
        summary = report(saved["lives"], saved["events"], saved["traffic"], saved["duration"],
                         saved.get("handover_every") or min(saved["duration"] / 2, 600), saved["seed"])
        return 1 if summary["problems"] else 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tunnat")
    ap.add_argument("duration", type=float)
    ap.add_argument("--json")
    ap.add_argument("--handover-every", type=float)
    ap.add_argument("--sighup-every", type=float)
    ap.add_argument("--flood-every", type=float)
    o = ap.parse_args()
    # A few of each in any run: a handover at half the run at most, then every ten minutes.
    o.handover_every = o.handover_every or min(o.duration / 2, 600)
    o.sighup_every = o.sighup_every or min(o.duration / 4, 180)
    o.flood_every = o.flood_every or min(o.duration / 3, 300)
    # SIGTERM (a timeout, an operator) ends the run through its clean-up, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = int(os.environ.get("SOAK_SEED", random.randrange(1 << 30)))
    random.seed(seed)
    log(f"soak: {o.duration:.0f} s, seed {seed}: handover every {o.handover_every:.0f} s, SIGHUP every "
        f"{o.sighup_every:.0f} s, flood every {o.flood_every:.0f} s")
    lives, events, outcome = run(o)
    summary = report(lives, events, outcome, o.duration, o.handover_every, seed)
    if o.json:
        with open(o.json, "w") as f:
            json.dump({**summary, "lives": lives, "events": events}, f)
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
