"""tunnat as a service: what systemd, Prometheus, CloudWatch and an operator see of a running `tunnat run`, in
network namespaces (scripts/lib/topology.sh) with real clients (curl, ping), a NOTIFY_SOCKET listened to as
systemd does, promtool, and moto (CloudWatch, EC2) with SigV4 verification for the failover and CloudWatch parts.

  .venv/bin/python -m pytest scripts/tests/test_service.py [-k NAME] [--tunnat PATH]

systemd is not PID 1 here: the tests play its part (the notification socket, WATCHDOG_USEC, SIGHUP) and check what
tunnat says and does. Needs root.
"""
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from testbed import AWS, REGION, REPO, Namespaces, run_id, sh, wait_for

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

    def drain(self, seconds):
        """Collects what arrives during `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def wait(self, key, seconds):
        """Collects until a message with KEY= arrives (or `seconds` pass); returns its value or None."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _, m in self.messages:
                for line in m.splitlines():
                    if line.startswith(key + "="):
                        return line.split("=", 1)[1]
            self.drain(0.2)
        return None

    def times(self, key):
        return [t for t, m in self.messages if any(line.startswith(key + "=") for line in m.splitlines())]

    def close(self):
        self.sock.close()


class Node:
    """The test topology and one `tunnat run` in its nat namespace."""

    def __init__(self, tunnat, work, prefix):
        self.tunnat, self.work, self.p = tunnat, str(work), prefix
        self.proc = None
        self.log = os.path.join(self.work, "tunnat.log")
        self.socket = os.path.join(self.work, "control.sock")
        self.config = os.path.join(self.work, "tunnat.yaml")

    def up(self):
        sh(TOPOLOGY, "up", self.p, timeout=60)
        # The "internet" side: an HTTP server on srv.
        with open(os.path.join(self.work, "index.html"), "w") as f:
            f.write("hello through the NAT\n" * 100)
        self.http = subprocess.Popen(["ip", "netns", "exec", f"{self.p}-srv", "timeout", "600", "python3", "-m",
                                      "http.server", "80", "--bind", "198.19.0.10"], cwd=self.work,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: ":80 " in self.ns("srv", "ss", "-ltn").stdout, 10)

    def ns(self, key, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", f"{self.p}-{key}", *args, check=check, timeout=timeout)

    def write_config(self, extra="", pool="198.18.0.1"):
        with open(self.config, "w") as f:
            f.write(f"""nat:
  private_prefixes: [10.0.0.0/8]
  pool: [{pool}]
tun:
  name: tun0
  queues: 2
control_socket: {self.socket}
stats_interval: 0
{extra}""")

    def start(self, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(["ip", "netns", "exec", f"{self.p}-nat", self.tunnat, "run", "--config", self.config],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=e)
        assert wait_for(lambda: "translating" in self.logged() or self.proc.poll() is not None, 20), self.logged()
        assert self.proc.poll() is None, self.logged()

    def logged(self):
        with open(self.log) as f:
            return f.read()

    def status(self, *flags, check=True):
        return sh(self.tunnat, "status", "--socket", self.socket, *flags, check=check)

    def report(self):
        return json.loads(self.status("--json").stdout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def down(self):
        try:
            self.stop()
        except Exception:
            self.proc.kill()
        if getattr(self, "http", None):
            self.http.kill()
            self.http.wait(5)
        sh(TOPOLOGY, "down", self.p, check=False, timeout=60)

    def thread_ids(self, name):
        """The ids of tunnat's threads called `name` (tunnat-q0, ...)."""
        found = []
        for tid in os.listdir(f"/proc/{self.pid()}/task"):
            with open(f"/proc/{self.pid()}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    found.append(int(tid))
        return found

    def pid(self):
        """tunnat's pid (the child of `ip netns exec`, which execs it: the same process)."""
        return self.proc.pid


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
        node.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"})
        assert listener.wait("READY", 10) == "1", listener.messages
        status = listener.wait("STATUS", 1)
        assert status and "flow(s)" in status and "active" in status, status
        # Pings at the watchdog's half period (1 s) while the workers turn, idle or not.
        listener.drain(5)
        pings = listener.times("WATCHDOG")
        assert len(pings) >= 3, listener.messages
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 2.0, gaps
        # Traffic changes the STATUS line (flows).
        node.ns("c1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "198.19.0.10")
        listener.drain(2)
        assert any("STATUS=" in m and " 0 flow(s)" not in m for _, m in listener.messages[-10:]), listener.messages[-10:]
        node.stop()
        listener.drain(0.5)
        assert listener.times("STOPPING"), listener.messages[-5:]
        assert node.proc.returncode == 0, node.logged()
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
        node.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"})
        assert listener.wait("READY", 10) == "1"
        listener.drain(3)
        assert len(listener.times("WATCHDOG")) >= 2, listener.messages
        (tid,) = node.thread_ids("tunnat-q1")
        assert libc.ptrace(PTRACE_SEIZE, tid, None, None) == 0, os.strerror(ctypes.get_errno())
        try:
            assert libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, os.strerror(ctypes.get_errno())
            os.waitpid(tid, WALL)
            stalled_at = time.monotonic()
            listener.drain(5)
            late = [t for t in listener.times("WATCHDOG") if t > stalled_at + 1.2]
            assert not late, f"pings while q1 was stopped: {late}"
            assert wait_for(lambda: "queue(s) 1 have not turned" in node.logged(), 2), node.logged()[-800:]
            assert node.proc.poll() is None
        finally:
            if libc.ptrace(PTRACE_DETACH, tid, None, None) != 0:
                node.proc.kill()  # still traced: nothing else would end it
                raise AssertionError(f"PTRACE_DETACH: {os.strerror(ctypes.get_errno())}")
        released = time.monotonic()
        listener.drain(3)
        assert [t for t in listener.times("WATCHDOG") if t > released], "pings did not resume"
        assert "watchdog pings resumed" in node.logged()
    finally:
        node.stop()
        listener.close()


def test_status_ready_single_node(node):
    node.write_config()
    node.start()
    r = node.status("--ready", check=False)
    assert r.returncode == 0 and r.stdout.startswith("ready:"), r


# ---- metrics -----------------------------------------------------------------------------------------------------

def test_metrics_scrape_promtool_and_status_agree(node, tmp_path):
    node.write_config()
    node.start()
    # Traffic while scraping: HTTP and ping through the NAT.
    load = subprocess.Popen(["ip", "netns", "exec", f"{node.p}-c1", "sh", "-c",
                             "for i in $(seq 30); do curl -s --max-time 5 -o /dev/null http://198.19.0.10/; done"])
    scrapes = []
    deadline = time.monotonic() + 30
    while load.poll() is None and time.monotonic() < deadline:
        scrapes.append(scrape(node).stdout)
        time.sleep(0.2)
    load.wait(30)
    assert len(scrapes) >= 2
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
    time.sleep(0.5)
    report = node.report()
    rest = scrape(node)
    metrics = parse_metrics(rest.stdout.partition("\n\n")[2])
    assert metrics, rest
    nat = report["nat"]
    assert nat["outbound"] > 0 and nat["tcp-attempts"] >= 30 and nat["tcp-established"] >= 30, nat
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


def test_metrics_off_and_port_taken(node):
    node.write_config('metrics: {listen: ""}\n')
    node.start()
    assert scrape(node).returncode != 0
    node.stop()
    # The port taken: tunnat refuses to start and says which key and address.
    holder = subprocess.Popen(["ip", "netns", "exec", f"{node.p}-nat", "python3", "-c",
                               "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',9469)); s.listen(); time.sleep(30)"])
    try:
        time.sleep(0.5)
        node.write_config()
        out = node.ns("nat", "timeout", "20", node.tunnat, "run", "--config", node.config, check=False)
        assert out.returncode == 1 and "metrics.listen 127.0.0.1:9469: cannot listen" in out.stderr, out
    finally:
        holder.kill()
        holder.wait(5)


# ---- SIGHUP, failover and CloudWatch against moto ----------------------------------------------------------------

@pytest.fixture
def cloud(root, tunnat, tmp_path):
    """moto behind the EC2 front and a fake IMDS, listening on a veth address the nat namespace reaches
    (198.18.250.1); a VPC with this instance and a route table tagged for tunnat."""
    from testbed import Processes
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
    aws, ns = cloud["aws"], cloud["ns"]
    config = tmp_path / "tunnat.yaml"
    sock = tmp_path / "control.sock"
    cw = f"""metrics:
  cloudwatch: {{namespace: tunnat-test, interval: 10s, region: {REGION}, endpoint: "{aws.front.url}"}}
"""

    def write(pool, check, level="info"):
        config.write_text(f"""nat:
  private_prefixes: [10.0.0.0/8]
  pool: [{pool}]
tun:
  name: tun0
  routing: {{install: false}}
control_socket: {sock}
stats_interval: 0
log_level: {level}
{cw}{failover_section(cloud, check)}""")

    write("198.18.0.1", "up: {type: ping, destination: 198.18.250.1, rise: 1, every: 1}")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=aws.key, AWS_SECRET_ACCESS_KEY=aws.secret)
    log = tmp_path / "tunnat.log"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, tunnat, "run", "--config", str(config)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    cloud["procs"].append(proc)

    def report():
        r = sh(tunnat, "status", "--socket", sock, "--json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    assert wait_for(lambda: (report() or {}).get("failover", {}).get("checks", {}).get("up") == "healthy", 30), log.read_text()[-2000:]
    assert wait_for(lambda: (report() or {})["failover"]["routes_held"] == 1, 20), log.read_text()[-2000:]
    # A changed health check takes effect: the new one (a TCP port nobody listens on) replaces the old.
    write("198.18.0.1", "down: {type: tcp, destination: 198.18.250.1, fall: 1, every: 1, config: {port: 9}}", level="debug")
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: (report() or {}).get("failover", {}).get("checks") == {"down": "unhealthy"}, 30), log.read_text()[-2000:]
    assert "SIGHUP: failover reloaded" in log.read_text() and "SIGHUP: log level debug" in log.read_text()
    # A changed pool is refused, and the running configuration stays.
    write("198.18.0.9", "down: {type: tcp, destination: 198.18.250.1, fall: 1, every: 1, config: {port: 9}}", level="debug")
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "SIGHUP: " + str(config) + ": nat changed" in log.read_text(), 10), log.read_text()[-2000:]
    assert proc.poll() is None and report()["failover"]["checks"] == {"down": "unhealthy"}
    # CloudWatch: PutMetricData reached moto, under the NAT gateway's names, with the instance's id.
    cloudwatch = aws.client("cloudwatch")

    def names():
        listed = cloudwatch.list_metrics(Namespace="tunnat-test")["Metrics"]
        return {m["MetricName"]: m["Dimensions"] for m in listed}

    assert wait_for(lambda: "ActiveConnectionCount" in names(), 25), log.read_text()[-2000:]
    found = names()
    for name in ("ActiveConnectionCount", "PacketsOutToDestination", "BytesOutToSource", "ConnectionAttemptCount",
                 "ConnectionEstablishedCount", "ErrorPortAllocation", "IdleTimeoutCount", "PacketsDropCount", "RoutesHeld"):
        assert name in found, (name, sorted(found))
    assert found["ActiveConnectionCount"] == [{"Name": "InstanceId", "Value": cloud["me"]["id"]}]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log.read_text()[-2000:]
    assert "AWS_SECRET_ACCESS_KEY" not in log.read_text() and aws.secret not in log.read_text()
