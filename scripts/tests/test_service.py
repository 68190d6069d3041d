"""tunnat as a service: what systemd, Prometheus, CloudWatch and an operator see of a running `tunnat run`, in
network namespaces (scripts/lib/topology.sh) with real clients (curl, ping), a NOTIFY_SOCKET listened to as
systemd does, promtool, and moto (CloudWatch, EC2) with SigV4 verification for the failover and CloudWatch parts.

  .venv/bin/python -m pytest scripts/tests/test_service.py [-k NAME] [--tunnat PATH]

systemd is not PID 1 here: the tests play its part (the notification socket, WATCHDOG_USEC, SIGHUP) and check what
tunnat says and does. Needs root.
"""
import ctypes
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from testbed import AWS, REGION, REPO, Namespaces, Processes, end, run_id, sh, wait_for
from tunnat_process import TunnatProcess

TOPOLOGY = os.path.join(REPO, "scripts", "lib", "topology.sh")


class Notifications:
    """The service manager's side of sd_notify: a datagram socket tunnat is told of in NOTIFY_SOCKET. Each message
    is kept with the monotonic time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        # The descriptor store (FDSTORE=1): {FDNAME: descriptor}, as systemd keeps them for the next start.
        self.store = {}

    def drain(self, seconds):
        """Collects what arrives during `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 4096, 8)
            except socket.timeout:
                continue
            text = data.decode()
            self.messages.append((time.monotonic(), text))
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if fields.get("FDSTORE") == "1" and fds:
                self.store[fields.get("FDNAME", "stored")] = fds[0]
                for extra in fds[1:]:
                    os.close(extra)
            else:
                for fd in fds:
                    os.close(fd)
            if fields.get("FDSTOREREMOVE") == "1" and fields.get("FDNAME") in self.store:
                os.close(self.store.pop(fields["FDNAME"]))

    def until(self, condition, seconds):
        """Collects until condition() holds (or `seconds` pass); returns whether it does."""
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            self.drain(0.2)
        return bool(condition())

    def values(self, key, after=0):
        """The values of KEY= in the messages that arrived after monotonic time `after`, oldest first."""
        return [line.split("=", 1)[1] for t, m in self.messages if t > after
                for line in m.splitlines() if line.startswith(key + "=")]

    def wait(self, key, seconds):
        """Collects until a message with KEY= arrives (or `seconds` pass); returns its value or None."""
        self.until(lambda: self.values(key), seconds)
        return (self.values(key) or [None])[0]

    def times(self, key):
        return [t for t, m in self.messages if any(line.startswith(key + "=") for line in m.splitlines())]

    def count(self, key, n, seconds, after=0):
        """Collects until n messages with KEY= have arrived after `after` (or `seconds` pass); returns whether."""
        return self.until(lambda: len([t for t in self.times(key) if t > after]) >= n, seconds)

    def close(self):
        self.sock.close()
        for fd in self.store.values():
            os.close(fd)
        self.store = {}


class Node:
    """The test topology, an HTTP server on srv, and one `tunnat run` in its nat namespace (nat, a TunnatProcess)."""

    def __init__(self, tunnat, work, prefix):
        self.work, self.p = str(work), prefix
        self.nat = TunnatProcess(tunnat, f"{prefix}-nat", self.work)
        self.http = None

    def up(self):
        sh(TOPOLOGY, "up", self.p, timeout=60)
        # The "internet" side: an HTTP server on srv.
        with open(os.path.join(self.work, "index.html"), "w") as f:
            f.write("hello through the NAT\n" * 100)
        self.http = subprocess.Popen(["ip", "netns", "exec", f"{self.p}-srv", "timeout", "600", "python3", "-m",
                                      "http.server", "80", "--bind", "198.19.0.10"], cwd=self.work,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: self.listening("srv", ":80 "), 10)

    def ns(self, key, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", f"{self.p}-{key}", *args, check=check, timeout=timeout)

    def listening(self, key, port, kind="-ltn"):
        """Whether something in namespace key listens on `port` (":80 "), TCP (kind -ltn) or UDP (-lun)."""
        return port in self.ns(key, "ss", kind).stdout

    def write_config(self, extra="", pool="198.18.0.1"):
        self.nat.write_config(f"""nat:
  private_prefixes: [10.0.0.0/8]
  pool: [{pool}]
tun:
  name: tun0
  queues: 2
control_socket: {{socket}}
stats_interval: 0
{extra}""")

    def down(self):
        self.nat.stop()
        if self.http:
            end(self.http)
        sh(TOPOLOGY, "down", self.p, check=False, timeout=60)


@pytest.fixture
def node(root, tunnat, tmp_path):
    n = Node(tunnat, tmp_path, f"sv{run_id()}")
    n.up()
    yield n
    n.down()


def scrape(node, path="/metrics"):
    out = node.ns("nat", "curl", "-sS", "--max-time", "5", "-D", "-", f"http://127.0.0.1:9469{path}", check=False)
    return out


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, f"not an exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        values[(m.group(1), labels)] = float(m.group(4))
    return values


# ---- systemd notifications and the watchdog ----------------------------------------------------------------------

PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
WALL = 0x40000000  # waitpid's __WALL: wait for a thread that is not a child


def test_notify_ready_status_watchdog_stopping(node, tmp_path):
    listener = Notifications(str(tmp_path / "notify.sock"))
    try:
        node.write_config()
        node.nat.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"})
        assert listener.wait("READY", 10) == "1", listener.messages
        status = listener.wait("STATUS", 1)
        assert status and "flow(s)" in status and "active" in status, status
        # Pings at the watchdog's half period (1 s) while the workers turn, idle or not: each within 2 s of the last.
        assert listener.count("WATCHDOG", 3, 15), listener.messages
        pings = listener.times("WATCHDOG")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 2.0, gaps
        # Traffic changes the STATUS line (flows).
        pinged = time.monotonic()
        node.ns("c1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "198.19.0.10")
        assert listener.until(lambda: any(" 0 flow(s)" not in v for v in listener.values("STATUS", pinged)), 10), \
            listener.messages[-10:]
        node.nat.stop()
        assert listener.wait("STOPPING", 5), listener.messages[-5:]
        assert node.nat.returncode == 0, node.nat.log_text()
    finally:
        listener.close()


def test_watchdog_stops_when_a_worker_stalls(node, tmp_path):
    """One worker thread frozen (ptrace on that thread alone: the process and its other threads run on): the pings
    stop and tunnat says which queue; released, they resume."""
    listener = Notifications(str(tmp_path / "notify.sock"))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    try:
        node.write_config()
        node.nat.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"})
        assert listener.wait("READY", 10) == "1"
        assert listener.count("WATCHDOG", 2, 15), listener.messages
        (tid,) = node.nat.thread_ids("tunnat-q1")
        assert libc.ptrace(PTRACE_SEIZE, tid, None, None) == 0, os.strerror(ctypes.get_errno())
        try:
            assert libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, os.strerror(ctypes.get_errno())
            os.waitpid(tid, WALL)
            stalled_at = time.monotonic()
            # Collecting the pings meanwhile: tunnat says the queue has not turned (its 2 s timeout), then two ping
            # periods more in which no ping may come (what does not happen is watched for a while: no condition
            # can say it never will).
            assert listener.until(lambda: "queue(s) 1 have not turned" in node.nat.log_text(), 15), \
                node.nat.log_text()[-800:]
            listener.drain(2)
            late = [t for t in listener.times("WATCHDOG") if t > stalled_at + 1.2]
            assert not late, f"pings while q1 was stopped: {late}"
            assert node.nat.alive()
        finally:
            if libc.ptrace(PTRACE_DETACH, tid, None, None) != 0:
                node.nat.kill()  # still traced: nothing else would end it
                raise AssertionError(f"PTRACE_DETACH: {os.strerror(ctypes.get_errno())}")
        released = time.monotonic()
        assert listener.count("WATCHDOG", 1, 15, after=released), "pings did not resume"
        assert wait_for(lambda: "watchdog pings resumed" in node.nat.log_text(), 10), node.nat.log_text()[-800:]
    finally:
        node.nat.stop()
        listener.close()


def test_status_ready_single_node(node):
    node.write_config()
    node.nat.start()
    r = node.nat.status_command("--ready", check=False)
    assert r.returncode == 0 and r.stdout.startswith("ready:"), r


# ---- metrics -----------------------------------------------------------------------------------------------------

SCRAPES_DURING_TRAFFIC = 2
FETCHES = 30


def counter_value(scrape_text, name):
    return parse_metrics(scrape_text.partition("\n\n")[2]).get((name, frozenset()), 0)


def at_rest(node):
    """`tunnat status --json` and a scrape taken while nothing changed: a report, the scrape (rendered afresh: more
    than a second after the last), and a second report equal to the first. Tried until they are (for at most 20 s);
    the last try's (report, scrape)."""
    seen = {}
    counted = ("flows", "nat", "drops", "io", "kernel")  # (not the uptime)

    def still():
        # A rendering serves a second's scrapes: the scrape comes more than a second after any other.
        first = node.nat.status()
        time.sleep(1.1)
        rest, second = scrape(node), node.nat.status()
        seen.update(report=second, scrape=rest)
        return first is not None and second is not None and all(first.get(k) == second.get(k) for k in counted)

    wait_for(still, 20, step=0.2)
    return seen["report"], seen["scrape"]


def test_metrics_scrape_promtool_and_status_agree(node, tmp_path):
    node.write_config()
    node.nat.start()
    # Traffic while scraping: HTTP through the NAT, fetched again and again until the scrapes below have seen it
    # flow (the stop file), at most 120 s.
    stop = os.path.join(node.work, "stop-fetching")
    load = subprocess.Popen(["ip", "netns", "exec", f"{node.p}-c1", "timeout", "120", "sh", "-c",
                             f"while [ ! -e {stop} ]; do curl -s --max-time 5 -o /dev/null http://198.19.0.10/; done"])
    # Scrapes until SCRAPES_DURING_TRAFFIC of them each saw more TCP connections than the one before (traffic flowed
    # between them), and FETCHES connections in all.
    attempts = "tunnat_tcp_connection_attempts_total"
    scrapes = [scrape(node).stdout]
    during = 0
    deadline = time.monotonic() + 90
    while (during < SCRAPES_DURING_TRAFFIC or counter_value(scrapes[-1], attempts) < FETCHES) \
            and load.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        scrapes.append(scrape(node).stdout)
        during += counter_value(scrapes[-1], attempts) > counter_value(scrapes[-2], attempts)
    open(stop, "w").close()
    assert end(load, 30) is not None
    assert during >= SCRAPES_DURING_TRAFFIC and counter_value(scrapes[-1], attempts) >= FETCHES, \
        f"{during} scrapes saw traffic, {counter_value(scrapes[-1], attempts)} connections, within 90 s"
    head, _, body = scrapes[-1].partition("\n\n")
    assert " 200 " in head.splitlines()[0] and "text/plain; version=0.0.4" in head, head
    # promtool: the exposition parses and follows Prometheus' naming rules.
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    # Counters never go down between scrapes taken during traffic.
    first, last = parse_metrics(scrapes[0].partition("\n\n")[2]), parse_metrics(body)
    for key, value in first.items():
        if key[0].endswith("_total"):
            assert last[key] >= value, key
    # At rest, the counters equal `tunnat status --json`'s.
    node.ns("c1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.19.0.10")
    report, rest = at_rest(node)
    metrics = parse_metrics(rest.stdout.partition("\n\n")[2])
    assert metrics, rest
    nat = report["nat"]
    assert nat["outbound"] > 0 and nat["tcp-attempts"] >= FETCHES and nat["tcp-established"] >= FETCHES, nat
    for direction in ("outbound", "inbound", "hairpin"):
        assert metrics[("tunnat_packets_translated_total", frozenset({("direction", direction)}))] == nat[direction]
        assert metrics[("tunnat_bytes_translated_total", frozenset({("direction", direction)}))] == nat[f"bytes-{direction}"]
    assert metrics[("tunnat_packets_received_total", frozenset())] == nat["packets"]
    assert metrics[("tunnat_tcp_connection_attempts_total", frozenset())] == nat["tcp-attempts"]
    assert metrics[("tunnat_tcp_connections_established_total", frozenset())] == nat["tcp-established"]
    assert metrics[("tunnat_flows_created_total", frozenset())] == nat["flows-created"]
    assert metrics[("tunnat_active_flows", frozenset())] == report["flows"]
    for reason, count in report["drops"].items():
        assert metrics[("tunnat_dropped_packets_total", frozenset({("reason", reason)}))] == count, reason
    for key, count in report["io"].items():
        if key != "lock-wait-max-us":
            assert metrics[(f"tunnat_io_{key.replace('-', '_')}_total", frozenset())] == count, key
    for key, count in (report.get("kernel") or {}).items():
        _, side, what = key.split("-")
        assert metrics[(f"tunnat_tun_{what}_total", frozenset({("side", side)}))] == count, key
    # Only /metrics, only GET and HEAD.
    assert " 404 " in scrape(node, "/other").stdout.splitlines()[0]
    post = node.ns("nat", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                   "http://127.0.0.1:9469/metrics", check=False)
    assert post.stdout == "405", post
    # Loopback only by default: not reachable on the NAT's private address.
    far = node.ns("c1", "curl", "-sS", "--max-time", "2", "http://10.0.1.254:9469/metrics", check=False)
    assert far.returncode != 0, far


def test_metrics_off(node):
    node.write_config('metrics: {listen: ""}\n')
    node.nat.start()
    assert scrape(node).returncode != 0
    assert not node.listening("nat", ":9469 "), "metrics are off, yet something of tunnat's listens"


# ---- what a local user can do to it: the metrics endpoint, descriptors, ports ---------------------------------
#
# The attacker runs as nobody (uid 65534), in tunnat's namespace, as any local user of the instance could.

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# Debian's own Python, which any user may run (a pyenv shim under /root is not).
SYSTEM_PYTHON = "/usr/bin/python3"


def as_nobody(node, *argv, **kw):
    return subprocess.Popen(["ip", "netns", "exec", f"{node.p}-nat", *NOBODY, *argv], **kw)


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_cpu(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PIPELINER = r"""
import socket, sys, time
end = time.monotonic() + float(sys.argv[1])
requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 64
sent = connections = 0
while time.monotonic() < end:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing; keeps little in its own buffer
    try:
        s.connect(("127.0.0.1", 9469))
        connections += 1
        s.setblocking(False)
        while time.monotonic() < end:
            try:
                sent += s.send(requests)
            except BlockingIOError:
                time.sleep(0.005)
    except OSError:
        time.sleep(0.05)  # closed by the server: connect again
    finally:
        s.close()
print(sent // 34, connections)
"""


def test_pipelined_metrics_requests_never_read_do_not_grow_it(node):
    """Requests pipelined on a connection whose answers are never read: tunnat answers the next only once the
    last has left, so its memory holds one answer per connection, not one per request (615dad9 grew from 36 MB to
    1.43 GB in 45 s). A scrape from someone else is still answered meanwhile."""
    node.write_config()
    node.nat.start()
    assert scrape(node).returncode == 0
    base = node.nat.rss()
    attacker = as_nobody(node, SYSTEM_PYTHON, "-c", PIPELINER, "20", stdout=subprocess.PIPE, text=True)
    try:
        peak, deadline = base, time.monotonic() + 20
        while time.monotonic() < deadline and attacker.poll() is None:
            peak = max(peak, node.nat.rss() or 0)
            time.sleep(0.5)
        during = scrape(node)
        assert during.returncode == 0 and "tunnat_active_flows" in during.stdout, during
        out, _ = attacker.communicate(timeout=30)
    finally:
        end(attacker, sig=signal.SIGKILL)
    requests, connections = map(int, out.split())
    assert requests > 10_000, f"the attacker sent only {requests} requests: it did not press"
    growth = (peak - base) / 2**20
    print(f"pipelined: {requests} requests on {connections} connection(s); RSS {base / 2**20:.0f} MB, peak "
          f"+{growth:.1f} MB")
    assert growth < 48, f"RSS grew {growth:.0f} MB under {requests} unread pipelined requests"


HOLDER = r"""
import socket, sys, time
held = []
for _ in range(int(sys.argv[1])):
    try:
        held.append(socket.create_connection(("127.0.0.1", 9469), timeout=2))
    except OSError:
        break
print(len(held), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_metrics_connections_are_capped_and_the_rest_keeps_running(node):
    """600 connections held open by a local user: tunnat keeps at most 16 (the rest are closed as they are
    accepted), its descriptors stay where they were, the control socket and the NAT go on, and a scrape is answered
    meanwhile (615dad9 kept every one, until its descriptors ran out and the control socket stopped answering)."""
    node.write_config()
    node.nat.start()
    before = descriptors(node.nat.pid)
    attacker = as_nobody(node, SYSTEM_PYTHON, "-c", HOLDER, "600", "30", stdout=subprocess.PIPE, text=True)
    try:
        held = int(attacker.stdout.readline() or 0)
        assert held >= 100, f"the attacker opened only {held} connections"
        during = descriptors(node.nat.pid)
        status = node.nat.status()
        assert status is not None, "the control socket did not answer while metrics connections were held"
        assert during <= before + 16 + 2, f"descriptors {before} -> {during} with {held} connections held"
        refused = status["services"]["metrics_connections_refused"]
        assert refused >= held - 16 - 2, (refused, held)
        node.ns("c1", "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "http://198.19.0.10/")
        # Held connections that ask nothing keep no one out: a scrape takes the place of the quietest.
        time.sleep(1.2)
        during_hold = scrape(node)
        assert during_hold.returncode == 0 and "tunnat_active_flows" in during_hold.stdout, during_hold
        assert descriptors(node.nat.pid) <= before + 16 + 2
    finally:
        end(attacker, sig=signal.SIGKILL)
    print(f"connections: {held} held by nobody, {refused} refused, descriptors {before} -> {during}; a scrape "
          "meanwhile answered")


def test_local_services_wait_when_descriptors_run_out(node):
    """No descriptor left for an accept (the process's limit lowered under it): the control socket and the metrics
    endpoint count it, log it once, and wait between tries instead of spinning on a still-readable socket
    (615dad9's control thread used a whole core); given descriptors again, both answer."""
    node.write_config()
    node.nat.start()
    pid = node.nat.pid
    assert scrape(node).returncode == 0
    (control,) = node.nat.thread_ids("tunnat-control")
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    # A limit below every descriptor but the standard three: whatever tunnat closes meanwhile (the metrics
    # endpoint closes its listening channel to pause) frees no number under it.
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    limit = min(3, next(n for n in range(len(used) + 1) if n not in used))
    soft, hard = sh("prlimit", f"--pid={pid}", "--nofile", "--raw", "--noheadings", "-o", "SOFT,HARD").stdout.split()
    sh("prlimit", f"--pid={pid}", f"--nofile={limit}:{hard}")
    clients = [subprocess.Popen([node.nat.tunnat, "status", "--socket", node.nat.socket],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(3)]
    clients += [subprocess.Popen(["ip", "netns", "exec", f"{node.p}-nat", "curl", "-s", "--max-time", "8",
                                  "http://127.0.0.1:9469/metrics"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(3)]
    try:
        said = ("control socket: cannot accept a client", "metrics: no descriptor for a connection")
        assert wait_for(lambda: all(s in node.nat.log_text() for s in said), 10), node.nat.log_tail()
        cpu = {t: thread_cpu(pid, t) for t in threads}
        time.sleep(3)
        spent = {t: thread_cpu(pid, t) - c for t, c in cpu.items()}
        busiest = max(spent, key=spent.get)
        assert spent[control] < 0.3, f"the control thread used {spent[control]:.2f} s of CPU in 3 s without descriptors"
        name = open(f"/proc/{pid}/task/{busiest}/comm").read().strip()
        assert spent[busiest] < 0.3, f"thread {name} used {spent[busiest]:.2f} s of CPU in 3 s without descriptors"
        for s in said:
            assert node.nat.log_text().count(s) == 1, node.nat.log_tail()
    finally:
        sh("prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}")
        for c in clients:
            end(c, sig=signal.SIGKILL)
    assert wait_for(lambda: node.nat.status(), 20), node.nat.log_tail()
    assert node.nat.status()["services"]["descriptor_shortages"] >= 2
    assert wait_for(lambda: scrape(node).returncode == 0, 20), node.nat.log_tail()
    print(f"without descriptors: the control thread used {spent[control]:.3f} s of CPU in 3 s, the busiest thread "
          f"{spent[busiest]:.3f} s")


def hold_port(node, address, port, udp=False):
    """Someone else (nobody) holding address:port in tunnat's namespace; returns the process."""
    kind = "socket.SOCK_DGRAM" if udp else "socket.SOCK_STREAM"
    listen = "" if udp else "s.listen();"
    holder = as_nobody(node, SYSTEM_PYTHON, "-c", f"import socket,time; s=socket.socket(socket.AF_INET, {kind}); "
                       f"s.bind(('{address}',{port})); {listen} print('held', flush=True); time.sleep(120)",
                       stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held", "the holder could not bind"
    return holder


def test_a_taken_metrics_port_is_a_warning_naming_the_holder_and_is_retried(node):
    """The metrics port held by another user: tunnat starts anyway (the NAT is not held hostage), says who holds
    it, and serves metrics once the port is free (615dad9 refused to start)."""
    holder = hold_port(node, "127.0.0.1", 9469)
    try:
        node.write_config()
        node.nat.start()
        assert "cannot listen: Address already in use (held by uid 65534)" in node.nat.log_text(), node.nat.log_tail()
        node.ns("c1", "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "http://198.19.0.10/")
    finally:
        end(holder, sig=signal.SIGKILL)
    assert wait_for(lambda: scrape(node).returncode == 0 and "tunnat_active_flows" in scrape(node).stdout, 20), \
        node.nat.log_tail()
    assert "after-tries" in node.nat.log_text(), node.nat.log_tail()


def test_a_taken_sync_port_is_refused_naming_the_holder(node, tmp_path):
    """The sync port held by another user: tunnat cannot replicate there, and says which user holds it."""
    write_replication_config(node, tmp_path)
    holder = hold_port(node, "10.0.1.254", 7800, udp=True)
    try:
        out = node.ns("nat", "timeout", "20", node.nat.tunnat, "run", "--config", node.nat.config, check=False)
        assert out.returncode == 1 and "replication.listen 10.0.1.254:7800" in out.stderr \
            and "held by uid 65534" in out.stderr, out
    finally:
        end(holder, sig=signal.SIGKILL)


def write_replication_config(node, tmp_path):
    key = tmp_path / "sync.key"
    key.write_bytes(os.urandom(48))
    key.chmod(0o400)
    # The peer is c1, in the test's own namespaces, where nothing listens on 7800.
    node.write_config(f"""replication:
  listen: 10.0.1.254:7800
  peers: [10.0.1.1:7800]
  key_file: {key}
  startup_wait_ms: 200
""")


def test_sockets_outlive_a_restart_in_the_service_managers_store(node, tmp_path):
    """The metrics and sync sockets are handed to the service manager's descriptor store (played here as systemd
    does) when bound. While tunnat is down (killed), another user cannot take either port; the next start gets
    them back in LISTEN_FDS and serves on them (615dad9 kept nothing: its ports were free for anyone meanwhile)."""
    write_replication_config(node, tmp_path)
    listener = Notifications(str(tmp_path / "notify.sock"))
    try:
        node.nat.start(env={"NOTIFY_SOCKET": listener.path})
        assert listener.until(lambda: {"metrics", "sync"} <= set(listener.store), 10), listener.messages
        node.nat.kill()
        for address, port, udp in [("127.0.0.1", 9469, False), ("10.0.1.254", 7800, True)]:
            squat = node.ns("nat", *NOBODY, SYSTEM_PYTHON, "-c", f"import socket; s=socket.socket(socket.AF_INET, "
                            f"{'socket.SOCK_DGRAM' if udp else 'socket.SOCK_STREAM'}); s.bind(('{address}',{port}))",
                            check=False)
            assert squat.returncode != 0 and "Address already in use" in squat.stderr, (address, port, squat)
        kept = [(listener.store["metrics"], "metrics"), (listener.store["sync"], "sync")]
        node.nat.start(env={"NOTIFY_SOCKET": listener.path}, listen_fds=kept)
        log = node.nat.log_text()
        assert "metrics: socket from the service manager" in log and "sync: socket from the service manager" in log, log
        assert "tunnat_active_flows" in scrape(node).stdout
        assert node.nat.status()["replication"] is not None
    finally:
        node.nat.stop()
        listener.close()


def test_imds_guard_lets_only_root_and_tunnats_user_reach_the_metadata_service(node):
    """`tunnat imds-guard | nft -f -` (what the image and the user data load at boot), with an HTTP server standing
    in for the metadata service at 169.254.169.254 in tunnat's namespace: root and the given user reach it, any
    other user is refused at once (615dad9 had no guard: every local user could read the role's credentials)."""
    tunnat_uid = 64990  # stands for the user tunnat, which need not exist on the test machine
    # On lo: a local address, and the guard's hook (output) sees connections to it as to any other.
    node.ns("nat", "ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
    server = subprocess.Popen(["ip", "netns", "exec", f"{node.p}-nat", "timeout", "120", "python3", "-m", "http.server",
                               "80", "--bind", "169.254.169.254"], cwd=node.work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: node.listening("nat", "169.254.169.254:80 "), 10)
        ruleset = sh(node.nat.tunnat, "imds-guard", "--user", str(tunnat_uid)).stdout
        load = subprocess.run(["ip", "netns", "exec", f"{node.p}-nat", "nft", "-f", "-"], input=ruleset, text=True,
                              capture_output=True, timeout=30)
        assert load.returncode == 0, load.stderr

        def fetch(*user):
            return node.ns("nat", *user, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                           "http://169.254.169.254/", check=False)

        assert fetch().stdout == "200", fetch()
        tunnat_user = ["setpriv", f"--reuid={tunnat_uid}", f"--regid={tunnat_uid}", "--clear-groups"]
        assert fetch(*tunnat_user).stdout == "200", fetch(*tunnat_user)
        refused = fetch(*NOBODY)
        assert refused.returncode != 0 and refused.stdout == "000", refused
        # Loaded again (a second boot, a rerun of the user data): the same one table, not a second.
        load = subprocess.run(["ip", "netns", "exec", f"{node.p}-nat", "nft", "-f", "-"], input=ruleset, text=True,
                              capture_output=True, timeout=30)
        assert load.returncode == 0, load.stderr
        tables = node.ns("nat", "nft", "list", "tables").stdout
        assert tables.count("tunnat_imds_guard") == 1, tables
        assert fetch(*NOBODY).returncode != 0 and fetch(*tunnat_user).stdout == "200"
    finally:
        end(server, sig=signal.SIGKILL)


# ---- SIGHUP, failover and CloudWatch against moto ----------------------------------------------------------------

@pytest.fixture
def cloud(root, tunnat, tmp_path):
    """moto behind the EC2 front and a fake IMDS, listening on a veth address the nat namespace reaches
    (198.18.250.1); a VPC with this instance and a route table tagged for tunnat."""
    procs = Processes()
    nss = Namespaces("svc")
    try:
        ns = nss.add("n")
        nss.veth("n", f"svc{run_id()}r", "198.18.250.1/30", "198.18.250.2/30")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        aws = AWS(procs, REGION, host="198.18.250.1")
        ec2 = aws.ec2
        vpc = ec2.create_vpc(CidrBlock="10.88.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.88.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        me = aws.launch(subnet, "10.88.0.1")
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_tags(Resources=[table], Tags=[{"Key": "tunnat", "Value": "private"}])
        imds = aws.imds(identity=aws.identity(me, vpc, subnet))
        yield {"aws": aws, "ns": ns, "imds": imds, "table": table, "me": me, "procs": procs}
    finally:
        procs.stop(kill=True)
        nss.cleanup()


def failover_section(cloud, check):
    return f"""failover:
  aws: {{endpoint: "{cloud['aws'].front.url}", metadata_endpoint: "{cloud['imds'].url}", timeout: 5}}
  poll_time: 2
  healthchecks:
    {check}
  routetables:
    private:
      find: {{type: by_tag, config: {{key: tunnat, value: private}}}}
      manage_routes:
        - cidr: 0.0.0.0/0
          instance: SELF
          healthcheck: {check.split(':')[0]}
"""


def test_sighup_reloads_health_checks_refuses_pool_and_cloudwatch(cloud, tunnat, tmp_path):
    aws = cloud["aws"]
    nat = TunnatProcess(tunnat, cloud["ns"], tmp_path, procs=cloud["procs"])
    cw = f"""metrics:
  cloudwatch: {{namespace: tunnat-test, interval: 10s, region: {REGION}, endpoint: "{aws.front.url}", pair: nat-test}}
"""

    def write(pool, check, level="info"):
        nat.write_config(f"""nat:
  private_prefixes: [10.0.0.0/8]
  pool: [{pool}]
tun:
  name: tun0
  routing: {{install: false}}
control_socket: {{socket}}
stats_interval: 0
log_level: {level}
{cw}{failover_section(cloud, check)}""")

    def failover():
        return (nat.status() or {}).get("failover", {})

    write("198.18.0.1", "up: {type: ping, destination: 198.18.250.1, rise: 1, every: 1}")
    nat.start(env={"AWS_ACCESS_KEY_ID": aws.key, "AWS_SECRET_ACCESS_KEY": aws.secret})
    assert wait_for(lambda: failover().get("checks", {}).get("up") == "healthy", 30), nat.log_tail(40)
    assert wait_for(lambda: failover().get("routes_held") == 1, 20), nat.log_tail(40)
    # A changed health check takes effect: the new one (a TCP port nobody listens on) replaces the old.
    write("198.18.0.1", "down: {type: tcp, destination: 198.18.250.1, fall: 1, every: 1, config: {port: 9}}", level="debug")
    nat.signal(signal.SIGHUP)
    assert wait_for(lambda: failover().get("checks") == {"down": "unhealthy"}, 30), nat.log_tail(40)
    assert "SIGHUP: failover reloaded" in nat.log_text() and "SIGHUP: log level debug" in nat.log_text()
    # A changed pool is refused, and the running configuration stays.
    write("198.18.0.9", "down: {type: tcp, destination: 198.18.250.1, fall: 1, every: 1, config: {port: 9}}", level="debug")
    nat.signal(signal.SIGHUP)
    assert wait_for(lambda: f"SIGHUP: {nat.config}: nat changed" in nat.log_text(), 10), nat.log_tail(40)
    assert nat.alive() and failover()["checks"] == {"down": "unhealthy"}
    # CloudWatch: PutMetricData reached moto, under the NAT gateway's names, with the instance's id.
    cloudwatch = aws.client("cloudwatch")

    def names():
        found = {}
        for m in cloudwatch.list_metrics(Namespace="tunnat-test")["Metrics"]:
            found.setdefault(m["MetricName"], []).append(m["Dimensions"])
        return found

    assert wait_for(lambda: "ActiveConnectionCount" in names(), 25), nat.log_tail(40)
    found = names()
    for name in ("ActiveConnectionCount", "PacketsOutToDestination", "BytesOutToSource", "PacketsInFromSource",
                 "BytesInFromSource", "PacketsInFromDestination", "BytesInFromDestination", "ConnectionAttemptCount",
                 "ConnectionEstablishedCount", "ErrorPortAllocation", "IdleTimeoutCount", "PacketsDropCount",
                 "RoutesHeld", "PeakPacketsPerSecond", "PeakBytesPerSecond"):
        assert name in found, (name, sorted(found))
        # A node without replication translates: each figure under its instance, and again under its pair.
        assert sorted(found[name], key=str) == [[{"Name": "InstanceId", "Value": cloud["me"]["id"]}],
                                                [{"Name": "Pair", "Value": "nat-test"}]], (name, found[name])
    assert nat.stop(20) == 0, nat.log_tail(40)
    assert "AWS_SECRET_ACCESS_KEY" not in nat.log_text() and aws.secret not in nat.log_text()
