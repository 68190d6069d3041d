#!/usr/bin/env python3
"""Connection-preserving failover, end to end: two tunnat instances in network namespaces replicating their table,
an AWS VPC simulated by a router namespace whose routes follow moto's route table and private-IP assignments, and a
client holding long-lived TCP, UDP and ping flows to a server on the "internet". The active is killed with SIGKILL:
the flows must continue through the standby, from the same public address, and nothing may be reset.

usage: failover-e2e.py TUNNAT_BINARY                 the test (prints checks, then "failover-e2e: N passed, M failed")
       failover-e2e.py TUNNAT_BINARY --bench N [--idle I] [--busy B]
                                                     N kills, figures as JSON on the last line (bench-failover.sh)

Topology (namespaces named per run; the root namespace holds moto, the fake IMDS and the EC2 front on a bridge):

  client 10.10.1.10 -- rtr (VPC router: table 200 for the private subnet's default route, and the public address
                             198.18.0.100 routed to whichever ENI holds its private IP 10.10.0.100, as the internet
                             gateway does; each read from moto in a loop, at most 100 ms behind)
  rtr -- nat-a 10.10.0.10 (ENI a)     rtr -- nat-b 10.10.0.11 (ENI b)     rtr -- server 198.18.1.10
  nat-a, nat-b -- bridge 10.79.0.1 in the root namespace (moto, IMDS, EC2 front), as 10.79.0.2 and 10.79.0.3

The internet gateway's 1:1 rewrite of the Elastic IP to the private IP is left out: the NATs use the public address
as their pool address, and the router sends it to the ENI that holds the private one.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from awsfakes import EC2Front, FakeIMDS, Moto, stop_processes  # noqa: E402

TUNNAT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else sys.exit(__doc__)
BENCH = int(sys.argv[sys.argv.index("--bench") + 1]) if "--bench" in sys.argv else 0
IDLE = int(sys.argv[sys.argv.index("--idle") + 1]) if "--idle" in sys.argv else 20
BUSY = int(sys.argv[sys.argv.index("--busy") + 1]) if "--busy" in sys.argv else 2
REGION = "us-east-1"
PUBLIC, POOL_PRIVATE, SERVER, CLIENT = "198.18.0.100", "10.10.0.100", "198.18.1.10", "10.10.1.10"
NAT_IP = {"a": "10.10.0.10", "b": "10.10.0.11"}
MGMT_IP = {"a": "10.79.0.2", "b": "10.79.0.3"}
OUTAGE_LIMIT = 2.0

P = f"tfe{os.getpid() % 100000}"
NS = {k: f"{P}{k}" for k in ("c", "r", "a", "b", "s")}
BRIDGE = f"{P}br"
work = tempfile.mkdtemp(prefix="tunnat-e2e-")
procs = []
passed, failed = 0, 0
log = print if not BENCH else (lambda *a, **k: print(*a, **k, file=sys.stderr))


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        log(f"  ok   {name}")
    else:
        failed += 1
        log(f"  FAIL {name}" + (f": {detail}" if detail else ""))
    return ok


def sh(*args, check_rc=True, timeout=30):
    return subprocess.run(list(args), check=check_rc, capture_output=True, text=True, timeout=timeout)


def nsx(ns, *args, **kw):
    return sh("ip", "netns", "exec", NS[ns], *args, **kw)


def wait_for(condition, seconds, step=0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()



def cleanup():
    stop_processes(procs, kill=True)
    for ns in NS.values():
        for pid in sh("ip", "netns", "pids", ns, check_rc=False).stdout.split():
            sh("kill", "-9", pid, check_rc=False)
        sh("ip", "netns", "del", ns, check_rc=False)
    sh("ip", "link", "del", BRIDGE, check_rc=False)
    shutil.rmtree(work, ignore_errors=True)


def build_namespaces():
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def link(a, dev_a, b, dev_b):
        sh("ip", "-n", NS[a], "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", NS[b])
        sh("ip", "-n", NS[a], "link", "set", dev_a, "up")
        sh("ip", "-n", NS[b], "link", "set", dev_b, "up")

    link("c", "eth0", "r", "cli")
    link("a", "eth0", "r", "nata")
    link("b", "eth0", "r", "natb")
    link("s", "eth0", "r", "srv")
    sh("ip", "-n", NS["c"], "addr", "add", f"{CLIENT}/24", "dev", "eth0")
    sh("ip", "-n", NS["c"], "route", "add", "default", "via", "10.10.1.1")
    sh("ip", "-n", NS["r"], "addr", "add", "10.10.1.1/24", "dev", "cli")
    sh("ip", "-n", NS["r"], "addr", "add", "198.18.1.1/24", "dev", "srv")
    sh("ip", "-n", NS["s"], "addr", "add", f"{SERVER}/24", "dev", "eth0")
    sh("ip", "-n", NS["s"], "route", "add", "default", "via", "198.18.1.1")
    for k, dev in (("a", "nata"), ("b", "natb")):
        sh("ip", "-n", NS["r"], "addr", "add", "10.10.0.1/32", "dev", dev)
        sh("ip", "-n", NS["r"], "route", "add", f"{NAT_IP[k]}/32", "dev", dev)
        sh("ip", "-n", NS[k], "addr", "add", f"{NAT_IP[k]}/32", "dev", "eth0")
        sh("ip", "-n", NS[k], "route", "add", "10.10.0.1/32", "dev", "eth0")
        sh("ip", "-n", NS[k], "route", "add", "default", "via", "10.10.0.1")
        nsx(k, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=2")
    # The private subnet's traffic follows the route table (table 200), everything else the main table.
    sh("ip", "-n", NS["r"], "rule", "add", "from", "10.10.1.0/24", "iif", "cli", "lookup", "200", "pref", "100")
    # The internet gateway drops what comes from an instance with a private source it has no public address for:
    # an untranslated packet that leaves a NAT never reaches the internet.
    for dev in ("nata", "natb"):
        sh("ip", "-n", NS["r"], "rule", "add", "from", "10.10.1.0/24", "iif", dev, "blackhole", "pref", "90")
    nsx("r", "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0")
    # The management bridge: the NATs reach moto, the IMDS and the EC2 front here.
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", "10.79.0.1/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for k in ("a", "b"):
        sh("ip", "link", "add", f"{P}m{k}", "type", "veth", "peer", "name", "mgmt", "netns", NS[k])
        sh("ip", "link", "set", f"{P}m{k}", "master", BRIDGE, "up")
        sh("ip", "-n", NS[k], "addr", "add", f"{MGMT_IP[k]}/24", "dev", "mgmt")
        sh("ip", "-n", NS[k], "link", "set", "mgmt", "up")


class VPC:
    """moto's view of the VPC, and the router namespace kept in line with it."""

    def __init__(self):
        moto = Moto(procs, REGION)
        self.key, self.secret = moto.key, moto.secret
        moto_port = moto.port
        self.ec2 = moto.client("ec2")
        ec2 = self.ec2
        self.front = EC2Front(moto_port, ec2, host="10.79.0.1")
        self.vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
        public = ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.10.0.0/24", AvailabilityZone="us-east-1a")
        private = ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.10.1.0/24", AvailabilityZone="us-east-1a")
        public, private = public["Subnet"]["SubnetId"], private["Subnet"]["SubnetId"]
        self.nat = {}
        self.imds = {}
        for k in ("a", "b"):
            i = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=public,
                                  PrivateIpAddress=NAT_IP[k])["Instances"][0]
            eni = i["NetworkInterfaces"][0]
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                                   SourceDestCheck={"Value": False})
            self.nat[k] = {"id": i["InstanceId"], "eni": eni["NetworkInterfaceId"], "mac": eni["MacAddress"]}
            self.imds[k] = FakeIMDS(ec2, {"instance_id": i["InstanceId"], "az": "us-east-1a", "region": REGION,
                                          "mac": eni["MacAddress"], "vpc_id": self.vpc, "subnet_id": public,
                                          "interface_id": eni["NetworkInterfaceId"], "private_ip": NAT_IP[k]},
                                    host="10.79.0.1")
        self.dev = {self.nat["a"]["eni"]: ("nata", NAT_IP["a"]), self.nat["b"]["eni"]: ("natb", NAT_IP["b"])}
        ec2.assign_private_ip_addresses(NetworkInterfaceId=self.nat["a"]["eni"], PrivateIpAddresses=[POOL_PRIVATE])
        self.table = ec2.create_route_table(VpcId=self.vpc)["RouteTable"]["RouteTableId"]
        ec2.create_tags(Resources=[self.table], Tags=[{"Key": "Name", "Value": "private"}])
        ec2.associate_route_table(RouteTableId=self.table, SubnetId=private)
        ec2.create_route(RouteTableId=self.table, DestinationCidrBlock="0.0.0.0/0",
                         NetworkInterfaceId=self.nat["a"]["eni"])
        self.applied = {"route": None, "pool": None}
        # Per resource, the longest time from the start of one read of moto to the end of the next one: a change
        # made just after a read began is in the router by then at the latest.
        self.lag = {"route": 0.0, "pool": 0.0}
        self.stop = threading.Event()
        self.clients = {"route": moto.client("ec2"), "pool": moto.client("ec2")}
        self.mirror_route(self.clients["route"])
        self.mirror_pool(self.clients["pool"])
        self.threads = [threading.Thread(target=self.mirror, args=(what,), daemon=True) for what in ("route", "pool")]
        for t in self.threads:
            t.start()

    def route_target(self, ec2):
        table = ec2.describe_route_tables(RouteTableIds=[self.table])["RouteTables"][0]
        return next((r.get("NetworkInterfaceId") for r in table["Routes"]
                     if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)

    def pool_holders(self, ec2):
        enis = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [self.vpc]}])["NetworkInterfaces"]
        return sorted(e["NetworkInterfaceId"] for e in enis
                      if any(a["PrivateIpAddress"] == POOL_PRIVATE for a in e["PrivateIpAddresses"]))

    def state(self):
        return self.route_target(self.ec2), self.pool_holders(self.ec2)

    def mirror_route(self, ec2):
        route = self.route_target(ec2)
        if route != self.applied["route"] and route in self.dev:
            dev, via = self.dev[route]
            sh("ip", "-n", NS["r"], "route", "replace", "default", "via", via, "dev", dev, "onlink", "table", "200")
            self.applied["route"] = route

    def mirror_pool(self, ec2):
        holders = self.pool_holders(ec2)
        # While an address moves, moto lists it on both ENIs for a moment: the router keeps the old one until then.
        if len(holders) == 1 and holders[0] != self.applied["pool"] and holders[0] in self.dev:
            dev, via = self.dev[holders[0]]
            sh("ip", "-n", NS["r"], "route", "replace", f"{PUBLIC}/32", "via", via, "dev", dev, "onlink")
            self.applied["pool"] = holders[0]

    def mirror(self, what):
        step = self.mirror_route if what == "route" else self.mirror_pool
        previous_start = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                step(self.clients[what])
            except Exception as e:  # noqa: BLE001 - a failed read is retried; the lag shows it
                if not self.stop.is_set():
                    log(f"  mirror: {e}")
            if previous_start is not None:
                self.lag[what] = max(self.lag[what], time.monotonic() - previous_start)
            previous_start = started
            self.stop.wait(0.01)


def write_config(k, vpc):
    other = "b" if k == "a" else "a"
    path = os.path.join(work, f"{k}.yaml")
    with open(path, "w") as f:
        f.write(f"""nat:
  private_prefixes: [10.10.1.0/24]
  pool: [{PUBLIC}]
tun: {{name: tnat0, queues: 1, routing: {{interface: eth0}}}}
control_socket: {work}/{k}.sock
stats_interval: 0
replication:
  listen: {NAT_IP[k]}:7800
  peers: [{NAT_IP[other]}:7800]
  key_file: {work}/sync.key
  heartbeat_ms: 100
  peer_timeout_ms: 400
  startup_wait_ms: 1500
failover:
  poll_time: 5
  pool_address: {POOL_PRIVATE}
  aws: {{endpoint: "{vpc.front.url}", metadata_endpoint: "{vpc.imds[k].url}", timeout: 5}}
  healthchecks:
    router: {{type: ping, destination: 10.10.0.1, rise: 1, fall: 2, every: 1}}
  routetables:
    private:
      find: {{type: by_tag, config: {{key: Name, value: private}}}}
      manage_routes: [{{cidr: 0.0.0.0/0, healthcheck: router}}]
""")
    return path


class Node:
    def __init__(self, k, vpc):
        self.k, self.vpc = k, vpc
        self.config = write_config(k, vpc)
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        env = {"PATH": os.environ["PATH"], "HOME": work, "AWS_ACCESS_KEY_ID": self.vpc.key,
               "AWS_SECRET_ACCESS_KEY": self.vpc.secret}
        self.logfile = open(os.path.join(work, f"{self.k}.{self.runs}.log"), "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NS[self.k], TUNNAT, "run", "--config", self.config],
                                     env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        procs.append(self.proc)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def status(self):
        r = subprocess.run([TUNNAT, "status", "--socket", os.path.join(work, f"{self.k}.sock"), "--json"],
                           capture_output=True, text=True, timeout=10)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def role(self):
        s = self.status()
        return s and s.get("replication", {}).get("role")

    def synced(self):
        s = self.status()
        return bool(s and s.get("replication", {}).get("synced"))

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, n=15):
        path = os.path.join(work, f"{self.k}.{self.runs}.log")
        with open(path) as f:
            return "".join(f.readlines()[-n:])


def ping_gap(output):
    """The longest time between two echo replies in `ping -D` output, and the replies counted."""
    times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=", output, re.M)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return (max(gaps) if gaps else float("inf")), len(times)


def failover_round(active, standby, seconds=9.0, kill_at=3.0):
    """Long-lived flows, then SIGKILL of the active at `kill_at`: what the flows saw and how long takeover took."""
    probe = subprocess.Popen(["ip", "netns", "exec", NS["c"], sys.executable, os.path.join(HERE, "longflows.py"),
                              "probe", SERVER, "5001", "--seconds", str(seconds), "--idle", str(IDLE),
                              "--busy", str(BUSY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(probe)
    ping = subprocess.Popen(["ip", "netns", "exec", NS["c"], "ping", "-D", "-n", "-i", "0.05", "-w",
                             str(int(seconds + 2)), SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(ping)
    time.sleep(kill_at)
    flows_before = (active.status() or {}).get("flows", 0)
    killed = time.monotonic()
    active.kill()
    took_over = wait_for(lambda: standby.role() == "active", 10, step=0.02)
    takeover = time.monotonic() - killed
    route_moved = wait_for(lambda: vpc.applied["route"] == vpc.nat[standby.k]["eni"]
                           and vpc.applied["pool"] == vpc.nat[standby.k]["eni"], 10, step=0.02)
    switched = time.monotonic() - killed
    out, err = probe.communicate(timeout=seconds + 120)
    ping_out, _ = ping.communicate(timeout=seconds + 30)
    try:
        flows = json.loads(out)
    except ValueError:
        flows = {"error": f"probe printed no result: {err[-500:]}"}
    gap, replies = ping_gap(ping_out)
    return {"flows_replicated": flows_before, "took_over": took_over, "takeover_seconds": round(takeover, 3), "route_moved": route_moved,
            "switch_seconds": round(switched, 3), "flows": flows, "ping_gap": round(gap, 3), "ping_replies": replies}


def tcp_ok(flows):
    return all(b["error"] is None and b["answered"] == b["sent"] and b["sent"] > 0 for b in flows.get("busy", [])) \
        and len(flows.get("busy", [])) == BUSY


if os.geteuid() != 0:
    print("failover-e2e.py: needs root (network namespaces, veth pairs, TUN devices); not run")
    sys.exit(1)

try:
    build_namespaces()
    with open(os.path.join(work, "sync.key"), "wb") as f:
        f.write(os.urandom(48).hex().encode())
    os.chmod(os.path.join(work, "sync.key"), 0o600)
    vpc = VPC()
    server = subprocess.Popen(["ip", "netns", "exec", NS["s"], sys.executable, os.path.join(HERE, "longflows.py"),
                               "serve", SERVER, "5001"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(server)
    server.stdout.readline()
    nodes = {"a": Node("a", vpc), "b": Node("b", vpc)}

    log("failover-e2e: nat-a starts alone and becomes the active")
    nodes["a"].start()
    ok = check("nat-a cold-starts as the active", wait_for(lambda: nodes["a"].role() == "active", 20),
               nodes["a"].log_tail())
    route, holders = vpc.state()
    check("the route and the pool address are nat-a's", route == vpc.nat["a"]["eni"] and holders == [vpc.nat["a"]["eni"]],
          f"route {route}, pool on {holders}")
    nodes["b"].start()
    check("nat-b follows as standby and completes its bulk sync",
          wait_for(lambda: nodes["b"].role() == "standby" and nodes["b"].synced(), 20), nodes["b"].log_tail())
    check("the client reaches the server through nat-a", wait_for(
        lambda: subprocess.run(["ip", "netns", "exec", NS["c"], "ping", "-c", "1", "-W", "1", SERVER],
                               capture_output=True, timeout=10).returncode == 0, 10))

    rounds = []
    active, standby = nodes["a"], nodes["b"]
    for round_number in range(max(BENCH, 1)):
        log(f"failover-e2e: round {round_number + 1}: flows through nat-{active.k}, then kill -9 nat-{active.k}")
        result = failover_round(active, standby)
        rounds.append(result)
        f = result["flows"]
        check(f"nat-{standby.k} takes over", result["took_over"], standby.log_tail())
        check(f"moto's route and pool address move to nat-{standby.k}, the router follows", result["route_moved"],
              f"{vpc.state()} applied {vpc.applied}")
        check("every busy TCP connection survives, nothing reset or lost", tcp_ok(f), json.dumps(f.get("busy")))
        idle = f.get("idle", {})
        check(f"every idle TCP connection survives ({idle.get('survived')}/{idle.get('total')})",
              idle.get("total", -1) == idle.get("survived", -2), json.dumps(idle.get("failures", [])[:5]))
        sources = set(idle.get("sources", [])) | {b.get("source") for b in f.get("busy", [])} | set(
            f.get("udp", {}).get("sources", []))
        check("the server sees one public address throughout", {s.split(":")[0] for s in sources} == {PUBLIC},
              str(sorted(sources)))
        check("the UDP stream keeps its public address and port", len(f.get("udp", {}).get("sources", [])) == 1,
              str(f.get("udp")))
        gaps = {"tcp": max([b["max_gap"] for b in f.get("busy", [])] or [99]), "udp": f.get("udp", {}).get("max_gap", 99),
                "ping": result["ping_gap"]}
        result["gaps"] = gaps
        check(f"outage at most {OUTAGE_LIMIT}s (tcp {gaps['tcp']}s, udp {gaps['udp']}s, ping {gaps['ping']}s)",
              max(gaps.values()) <= OUTAGE_LIMIT)

        log(f"failover-e2e: nat-{active.k} comes back")
        active.start()
        check(f"the returning nat-{active.k} rejoins as standby and resyncs",
              wait_for(lambda: active.role() == "standby" and active.synced(), 20), active.log_tail())
        time.sleep(2 if not BENCH else 0.5)
        route, holders = vpc.state()
        check(f"the returning nat-{active.k} does not take the route or the pool address back",
              route == vpc.nat[standby.k]["eni"] and holders == [vpc.nat[standby.k]["eni"]]
              and standby.role() == "active" and active.role() == "standby", f"route {route}, pool {holders}")
        s = standby.status() or {}
        counters = s.get("replication", {}).get("counters", {})
        check("no message between the peers was rejected",
              not any(k.startswith("rejected") for k in counters), str(counters))
        active, standby = standby, active

    lag = max(vpc.lag.values())
    check(f"the router follows moto within 100 ms (at most {lag * 1000:.0f} ms behind)", lag <= 0.1 or BENCH,
          f"route {vpc.lag['route'] * 1000:.0f} ms, pool address {vpc.lag['pool'] * 1000:.0f} ms")

    if BENCH:
        # Replication overhead: a burst of new UDP flows through the active, what it sent, what both spent.
        log("failover-e2e: replication overhead: 2000 new UDP flows")
        status = active.status() or {}
        before = dict(status.get("replication", {}).get("counters", {}))
        before["flows-created"] = status.get("nat", {}).get("flows-created", 0)
        cpu_a, cpu_s = active.cpu_seconds(), standby.cpu_seconds()
        burst = ("import socket\n"
                 "for i in range(2000):\n"
                 "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                 f"    s.sendto(b'x', ('{SERVER}', 9))\n"
                 "    s.close()\n")
        nsx("c", sys.executable, "-c", burst, timeout=60)
        time.sleep(1.5)
        status = active.status() or {}
        after = dict(status.get("replication", {}).get("counters", {}))
        after["flows-created"] = status.get("nat", {}).get("flows-created", 0)
        d = {k: after.get(k, 0) - before.get(k, 0)
             for k in ("sent-entries", "sent-entries-bytes", "records-sent", "flows-created")}
        new = max(d["flows-created"], 1)
        overhead = {"new_flows": d["flows-created"], "entries_messages_per_flow": round(d["sent-entries"] / new, 4),
                    "entries_bytes_per_flow": round(d["sent-entries-bytes"] / new, 1),
                    "records_per_flow": round(d["records-sent"] / new, 3),
                    "active_cpu_seconds": round(active.cpu_seconds() - cpu_a, 3),
                    "standby_cpu_seconds": round(standby.cpu_seconds() - cpu_s, 3)}
        print(json.dumps({"rounds": rounds, "overhead": overhead, "router_lag_max_ms": round(lag * 1000, 1)}))
finally:
    if "vpc" in globals():
        vpc.stop.set()
        for t in vpc.threads:
            t.join(5)
    cleanup()

log(f"failover-e2e: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
