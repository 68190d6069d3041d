"""What the failover test suites (scripts/tests/) and the failover benchmark stand on, in one place.

- sh, wait_for, end: a command with a time limit whose failure says what it printed; a condition polled for a bounded
  time; a process ended with a signal and a bounded wait, killed after it.
- Processes: every process a test starts, ended by stop() (SIGTERM, then SIGKILL after 5 s), newest first.
- Namespaces: network namespaces and root-namespace links named per run (a prefix and this process's id, so that
  runs side by side never meet), removed by cleanup() together with every process still inside them.
- AWS: moto_server verifying SigV4, the EC2 front and fake IMDSv2 servers of awsfakes.py, and instances launched as
  a NAT instance is (source/dest check off).

Nothing here asserts: the suites do, with pytest; the benchmark counts. Nothing here needs pytest.
"""
import os
import re
import signal
import subprocess
import time

from awsfakes import EC2Front, FakeIMDS, Moto, free_port, wait_port  # noqa: F401  (free_port, wait_port re-exported)

LIB = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(LIB))
REGION = "us-east-1"


class CommandFailed(RuntimeError):
    pass


def sh(*args, check=True, timeout=30):
    """Runs a command (no shell), output captured. With check, a non-zero exit raises with the command's stderr."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, args))}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-500:]}")
    return p


def wait_for(condition, seconds, step=0.05):
    """Polls condition until it holds or `seconds` have passed; one last look at the deadline. Returns its value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def end(proc, seconds=5, sig=signal.SIGTERM):
    """Ends a process: `sig`, then SIGKILL if it has not exited within `seconds`. Returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def run_id():
    """This run's number for names: the process id, short enough that a prefix and a suffix fit IFNAMSIZ (15)."""
    return os.getpid() % 100000


class Processes:
    """The processes a test started. awsfakes.Moto appends its moto_server here too."""

    def __init__(self):
        self.procs = []

    def append(self, proc):
        self.procs.append(proc)
        return proc

    def start(self, argv, **popen):
        return self.append(subprocess.Popen([str(a) for a in argv], **popen))

    def stop(self, kill=False):
        """Ends every process still running, the newest first: SIGKILL with kill, else SIGTERM and SIGKILL 5 s on."""
        for p in reversed(self.procs):
            end(p, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.procs.clear()


class Namespaces:
    """Network namespaces named PREFIX + run id + key, and the root-namespace links made beside them."""

    def __init__(self, prefix):
        self.prefix = f"{prefix}{run_id()}"
        self.names = {}
        self.root_links = []
        self.sweep(prefix)

    @classmethod
    def sweep(cls, prefix):
        """Removes the namespaces and root-namespace links of earlier runs with this prefix whose process is gone (a run
        killed before its cleanup, as at the end of a session). A stale bridge would still hold the fixed management
        address and take its replies away from this run's bridge."""
        live = {int(pid) % 100000 for pid in os.listdir("/proc") if pid.isdigit()}
        pattern = re.compile(rf"^{re.escape(prefix)}(\d+)")

        def stale(name):
            m = pattern.match(name)
            return m is not None and int(m.group(1)) not in live

        for name in sh("ip", "netns", "list", check=False).stdout.split("\n"):
            name = name.split(" ")[0]
            if stale(name):
                cls._remove(name)
        for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
            name = line.split(": ")[1].split("@")[0] if ": " in line else ""
            if stale(name):
                sh("ip", "link", "del", name, check=False)

    def __getitem__(self, key):
        return self.names[key]

    def add(self, key):
        name = self.prefix + key
        self._remove(name)  # one left by an earlier run that had this process id and was killed
        sh("ip", "netns", "add", name)
        self.names[key] = name
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def root_link(self, name):
        """Records a link in the root namespace (a veth end, a bridge) to delete at cleanup; returns its name."""
        sh("ip", "link", "del", name, check=False)
        self.root_links.append(name)
        return name

    def veth(self, key, link, root_address, ns_address, ns_ifname="eth0"):
        """A veth pair from the root namespace (end LINK, ROOT_ADDRESS) into namespace KEY (end NS_IFNAME,
        NS_ADDRESS), both up; the root end is removed at cleanup. Addresses with their length (198.18.250.1/30)."""
        self.root_link(link)
        sh("ip", "link", "add", link, "type", "veth", "peer", "name", ns_ifname, "netns", self[key])
        sh("ip", "addr", "add", root_address, "dev", link)
        sh("ip", "link", "set", link, "up")
        sh("ip", "-n", self[key], "addr", "add", ns_address, "dev", ns_ifname)
        sh("ip", "-n", self[key], "link", "set", ns_ifname, "up")

    def argv(self, key, *args):
        return ["ip", "netns", "exec", self[key], *map(str, args)]

    def exec(self, key, *args, **kw):
        return sh(*self.argv(key, *args), **kw)

    @staticmethod
    def _remove(name):
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", name, check=False)

    def cleanup(self):
        """Kills what still runs in the namespaces, then removes them and the root-namespace links. Idempotent."""
        for name in self.names.values():
            self._remove(name)
        self.names.clear()
        for link in self.root_links:
            sh("ip", "link", "del", link, check=False)
        self.root_links.clear()


class AWS:
    """moto_server (SigV4 verified after its bootstrap), admin clients, the EC2 front; fake IMDS servers on demand.
    host: where the front and the IMDS servers listen (moto itself stays on loopback behind the front)."""

    def __init__(self, procs, region=REGION, host="127.0.0.1", cloudformation=False):
        self.region, self.host = region, host
        self.moto = Moto(procs, region, cloudformation)
        self.url, self.key, self.secret = self.moto.url, self.moto.key, self.moto.secret
        self.ec2 = self.moto.client("ec2")
        self.front = EC2Front(self.moto.port, self.ec2, host=host)
        self.imds_servers = []

    def client(self, service):
        """A new client signing with the admin key (boto3 clients are not shared between threads)."""
        return self.moto.client(service)

    def imds(self, identity=None, role=None):
        server = FakeIMDS(self.ec2, identity or {}, role, host=self.host)
        self.imds_servers.append(server)
        return server

    def launch(self, subnet, ip):
        """An instance with this private address and its ENI's source/dest check off, as a NAT instance has it."""
        i = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                                   PrivateIpAddress=ip)["Instances"][0]
        eni = i["NetworkInterfaces"][0]
        self.ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                                    SourceDestCheck={"Value": False})
        return {"id": i["InstanceId"], "eni": eni["NetworkInterfaceId"], "mac": eni["MacAddress"], "ip": ip}

    def identity(self, instance, vpc, subnet, az="us-east-1a"):
        """The instance identity a FakeIMDS serves for an instance from launch()."""
        return {"instance_id": instance["id"], "az": az, "region": self.region, "mac": instance["mac"],
                "vpc_id": vpc, "subnet_id": subnet, "interface_id": instance["eni"], "private_ip": instance["ip"]}

    def close(self):
        """Stops the in-process servers; moto_server ends with the Processes it was started into."""
        for server in self.imds_servers:
            server.close()
        self.front.close()
