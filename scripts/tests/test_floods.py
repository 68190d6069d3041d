"""Bounded floods against `tunnat run` in network namespaces (the topology of scripts/lib/topology.sh), while
long-lived "established" traffic runs across all of them; one test per attack, and a flood table. Needs root.

  .venv/bin/python -m pytest scripts/tests/test_floods.py [-k NAME] [--tunnat PATH]

A module fixture builds the topology (per-run namespace names), starts tunnat (tun output), the servers in srv
(longflows.py on PROBE_PORT, an echo server on ECHO_PORT), a UDP socket in c1 that holds a mapping (the target of
rows 1, 2 and 5), and longflows.py's probe from c1: busy and idle TCP connections and a UDP stream for the whole
suite. Each test sends one flood (scripts/lib/floods.py, raw sockets, paced and bounded in packets and seconds),
then records one row: packets sent, the counters tunnat reports that matter for it (and any other drop reason that
grew, and packets the kernel dropped at tun0's queue, which tunnat cannot count), flows and tunnat's resident
memory before and after, whether the established connections still flow (each busy one still sending, and a UDP
stream of the row's own), and whether c1 can still open a new TCP connection. The last test reads the probe's
verdict over the whole run.

The floods are paced at RATE packets per second: tunnat's TUN path handles about 80,000 on this machine, and a
faster flood would overflow the TUN queue and drop the established traffic too, which is not what is tested.

The table is written, whatever the outcome, to $FLOOD_TABLE (default /tmp/tunnat-flood-table.md) and to stderr
when the module ends. A row whose check fails says exactly why, in its test's failure and in the table.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from testbed import LIB, end, run_id, sh, wait_for
from tunnat_process import TunnatProcess

FLOODS = os.path.join(LIB, "floods.py")
LONGFLOWS = os.path.join(LIB, "longflows.py")
NETTOOLS = os.path.join(LIB, "nettools.py")
TOPOLOGY = os.path.join(LIB, "topology.sh")
PYTHON = sys.executable

POOL = "198.18.0.1"           # the pool address; configured on no interface, routed by rtr to nat
SERVER = "198.19.0.10"        # srv
C1, C2 = "10.0.1.1", "10.0.2.1"
PROBE_PORT = 7000             # longflows.py serve: the established traffic, and the UDP mapping rows 1, 2, 5 use
ECHO_PORT = 8000              # nettools.py echo-server: the new-flow checks
COUNT_PORT = 9100             # floods.py udp-count in srv (row 7)
SPOOFED = "198.18.64.0/18,198.19.128.0/17"  # spoofed "internet" sources: routed by nat to wan, by rtr nowhere

RATE = 25_000                 # packets per second of the big floods (see above)
PROBE_SECONDS = 100           # the established traffic's lifetime: longer than every flood together (about 70 s)
IDLE, BUSY, INTERVAL = 4, 3, 0.02
# The established UDP stream may lose nothing, except when the kernel dropped packets at tun0's queue (tunnat did
# not get the CPU to read it in time: the floods are paced far below its capacity, but this 2-core machine may be
# busy with other work): then up to 1% of the stream, each such loss reported in the table.
UDP_LOSS_BOUND = 0.01

# The limits rows 1 and 4 check are the binary's own defaults (`tunnat default-config`, docs/configuration.md):
# nat.max_inbound_flows_per_mapping and nat.max_flows_per_host. A binary without them, or with no per-host limit,
# is held to the defaults issue 12 set: 16 and 16,384.
INBOUND_FLOWS_PER_MAPPING = 16
HOST_LIMIT = 16_384
FLOW_SLACK = 16               # flows a row makes besides the flood's: its UDP stream, c1's new-flow check
# Repeated first fragments must not grow memory. The engine before issue 12 remembered each copy in a list, about
# 12 bytes a copy: 1.3 MiB for 100,000 copies, so a bound of 8 MiB would take 700,000 copies (28 s) to fail. With
# 250,000 copies it grows about 3 MiB; rows that make no flows move RSS by at most 0.1 MiB here.
FIRST_FRAGMENT_COPIES = 250_000
RSS_GROWTH_BOUND = 1 << 20    # bytes
FRAGMENT_DROPS = ("fragment-quota", "fragment-evicted", "fragment-buffer-full")

ROWS = []                     # one dict per test, in the order run; the table is made from it


# --- the test bed -------------------------------------------------------------------------------------------------

def last_json(text):
    """The last line of a tool's output that is a JSON object, or None."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


class Witness:
    """A floods.py listener in a namespace: started, ready once it printed "ready", ended by SIGTERM."""

    def __init__(self, bed, ns, *args):
        self.out = os.path.join(bed.work, f"witness-{len(bed.procs)}.out")
        self.proc = bed.start(ns, PYTHON, FLOODS, *args, "--seconds", 60, stdout=self.out)
        self.what = " ".join(map(str, args))
        if not wait_for(lambda: "ready" in self.text(), 10):
            raise RuntimeError(f"witness {self.what} in {ns} not ready in 10 s: {self.text()[-500:]}")

    def text(self):
        with open(self.out) as f:
            return f.read()

    def finish(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        result = last_json(self.text())
        if result is None:
            raise RuntimeError(f"witness {self.what} printed no result: {self.text()[-500:]}")
        return result


class Bed:
    """The namespaces, tunnat, the servers, the held UDP mapping and the probe; counters and checks on them."""

    def __init__(self, tunnat):
        self.tunnat = tunnat
        self.prefix = f"fl{run_id()}"
        self.work = tempfile.mkdtemp(prefix="tunnat-floods.")
        self.nat = TunnatProcess(tunnat, self.ns("nat"), self.work)
        self.procs = []
        self.probe = None
        self.probe_end = None
        self.last_flood_end = None
        self.new_flow_failing = None  # the row after which c1 could no longer open a new connection

    def ns(self, name):
        return f"{self.prefix}-{name}"

    def argv(self, ns, *args):
        return ["ip", "netns", "exec", self.ns(ns), *map(str, args)]

    def start(self, ns, *args, stdout):
        """A background process in a namespace (ip netns exec execs it: the pid is the process itself)."""
        with open(stdout, "w") as out:
            proc = subprocess.Popen(self.argv(ns, *args), stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def exec(self, ns, *args, timeout=30, check=True):
        return sh(*self.argv(ns, *args), timeout=timeout, check=check)

    def tool(self, ns, *args, timeout=60):
        """Runs a floods.py subcommand to its end; its JSON result (an exit 1 still has one)."""
        p = self.exec(ns, PYTHON, FLOODS, *args, timeout=timeout, check=False)
        result = last_json(p.stdout)
        if result is None:
            raise RuntimeError(f"floods.py {' '.join(map(str, args))} in {ns}: exit {p.returncode}, no result: "
                               f"{(p.stderr or p.stdout).strip()[-500:]}")
        return result

    def flood(self, ns, *args, timeout=60):
        result = self.tool(ns, *args, timeout=timeout)
        self.last_flood_end = time.monotonic()
        return result

    # -- bring-up and teardown

    def up(self):
        defaults = sh(self.tunnat, "default-config").stdout

        def limit(key, required):
            m = re.search(rf"^\s*{key}:\s*(\d+)\s*$", defaults, re.M)
            return int(m.group(1)) if m else required

        self.inbound_flows_per_mapping = limit("max_inbound_flows_per_mapping", INBOUND_FLOWS_PER_MAPPING)
        self.host_limit = limit("max_flows_per_host", HOST_LIMIT)

        sh("bash", TOPOLOGY, "up", self.prefix, timeout=60)
        self.nat.write_config("nat:\n  private_prefixes: [10.0.0.0/8]\n  pool: [198.18.0.1]\n"
                              "tun:\n  name: tun0\n  output: tun\ncontrol_socket: {socket}\nstats_interval: 0\n")
        self.nat.start()

        # Servers, each bounded in time by its own lifetime or by the teardown.
        self.start("srv", PYTHON, LONGFLOWS, "serve", SERVER, PROBE_PORT, stdout=os.path.join(self.work, "serve.out"))
        self.start("srv", PYTHON, NETTOOLS, "echo-server", SERVER, ECHO_PORT, PROBE_SECONDS + 300,
                   stdout=os.path.join(self.work, "echo.out"))
        def listening():
            out = self.exec("srv", "ss", "-ltnH").stdout
            return all(f":{port} " in out for port in (PROBE_PORT, ECHO_PORT))

        if not wait_for(listening, 10):
            raise RuntimeError("the servers in srv are not listening after 10 s")

        # c1's UDP socket holding a mapping; the server's answer names its public address and port.
        self.hold_file = os.path.join(self.work, "hold.json")
        self.start("c1", PYTHON, FLOODS, "udp-hold", "--server", f"{SERVER}:{PROBE_PORT}", "--seconds",
                   PROBE_SECONDS + 300, "--state", self.hold_file, stdout=os.path.join(self.work, "hold.out"))
        if not wait_for(lambda: self.hold().get("external"), 10):
            with open(os.path.join(self.work, "hold.out")) as f:
                raise RuntimeError(f"c1's UDP socket got no answer from srv: {self.hold()} {f.read()[-500:]}")
        self.mapping_port = int(self.hold()["external"].rsplit(":", 1)[1])

        # The established traffic, from now until PROBE_SECONDS later.
        self.tun_drops_start = self.tun_drops()
        self.probe_out = os.path.join(self.work, "probe.json")
        self.probe = self.start("c1", PYTHON, LONGFLOWS, "probe", SERVER, PROBE_PORT, "--seconds", PROBE_SECONDS,
                                "--idle", IDLE, "--busy", BUSY, "--interval", INTERVAL, stdout=self.probe_out)
        self.probe_end = time.monotonic() + PROBE_SECONDS
        if not wait_for(lambda: len(self.connections()) == IDLE + BUSY, 10):
            raise RuntimeError(f"the probe's {IDLE + BUSY} connections are not all up: {self.connections()}")
        ok, seen, _ = self.established()
        if not ok:
            raise RuntimeError(f"the probe's traffic does not flow: {seen}")
        return self

    def down(self):
        """Ends everything started here, tunnat first (SIGTERM, so that it removes its routing), then the rest;
        removes the namespaces and the work directory. Every step runs even when one before it failed."""
        self.nat.stop(5)
        for proc in reversed(self.procs):
            end(proc)
        sh("bash", TOPOLOGY, "down", self.prefix, timeout=60, check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    # -- what tunnat and the hosts report

    def status(self):
        status = self.nat.status()
        if status is None:
            raise RuntimeError(f"tunnat status gave no answer:\n{self.nat.log_tail()}")
        return status

    def tun_drops(self):
        """Packets the kernel dropped because tun0's queue was full (tunnat did not read fast enough): tunnat
        cannot count these itself. None if the device is gone."""
        p = self.exec("nat", "ip", "-s", "-j", "link", "show", "tun0", check=False)
        try:
            return json.loads(p.stdout)[0]["stats64"]["tx"]["dropped"]
        except (ValueError, LookupError):
            return None

    def snapshot(self):
        return {"status": self.status() if self.nat.alive() else None, "rss": self.nat.rss(),
                "tun_drops": self.tun_drops()}

    def settle(self, seconds=5):
        """Waits until tunnat has caught up with a flood: the frames it reads in 0.2 s are back to the background
        traffic's (about 150: the probe's lines and answers). Bounded by `seconds`."""
        last = self.status()["io"]["frames-read"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.status()["io"]["frames-read"]
            if now - last < 500:
                return
            last = now

    def hold(self):
        try:
            with open(self.hold_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def connections(self):
        """The established TCP connections of srv's longflows server: {peer: bytes received}."""
        out = self.exec("srv", "ss", "-tniH", "state", "established", f"( sport = :{PROBE_PORT} )").stdout
        conns, peer = {}, None
        for line in out.splitlines():
            if not line[:1].isspace():
                peer = line.split()[3]
                conns[peer] = 0
            elif peer:
                m = re.search(r"bytes_received:(\d+)", line)
                conns[peer] = int(m.group(1)) if m else 0
        return conns

    def established(self, seconds=10):
        """Whether the established traffic still flows: every one of the probe's connections is still there, and
        each busy one receives more from the client (watched until it has, for at most `seconds`). Returns (ok, what
        was seen, flowing peers)."""
        if self.probe.poll() is not None or time.monotonic() > self.probe_end:
            return False, "the probe has ended", set()
        first = self.connections()
        seen = {}

        def flowing():
            seen["now"] = now = self.connections()
            seen["flowing"] = {p for p, n in now.items() if n > first.get(p, n)}
            return len(now) == IDLE + BUSY and len(seen["flowing"]) >= BUSY

        ok = wait_for(flowing, seconds, step=0.1)
        return ok, f"{len(seen['now'])}/{IDLE + BUSY} conns, {len(seen['flowing'])}/{BUSY} flowing", seen["flowing"]

    def new_flow(self, ns="c1"):
        """A fresh TCP connection from ns to srv's echo server: connect, one line echoed."""
        return self.tool(ns, "new-flow", "--dst", SERVER, "--port", ECHO_PORT, "--timeout", 3)


# --- one row of the table -----------------------------------------------------------------------------------------

def counter(status, name):
    """A counter by name, among the nat counters and the drop reasons; None when this binary has no such counter."""
    if status is None:
        return None
    for group in ("nat", "drops"):
        if name in status.get(group, {}):
            return status[group][name]
    return None


def mib(n):
    return "?" if n is None else f"{n / 2**20:.1f}"


class Row:
    """One attack: the state before, the flood, the checks, and the state after; appended to ROWS in any case.

        with Row(bed, "attack", ["counter", ...]) as row:
            row.packets = ...; row.check(condition, "why it failed")
        row.verdict()   # asserts the checks
    """

    def __init__(self, bed, attack, counters, final=False):
        """final: the new-flow check fails the row even when an earlier row broke new flows already."""
        self.bed, self.attack, self.counters, self.final = bed, attack, counters, final
        self.packets = 0
        self.notes = []
        self.problems = []
        self.after = None
        self.seen = None
        self.before = bed.snapshot()
        # A UDP stream of c1's for the row's duration, as the probe's is for the suite's: what this row cost it.
        self.stream = Witness(bed, "c1", "udp-stream", "--server", f"{SERVER}:{PROBE_PORT}", "--interval", INTERVAL)

    def __enter__(self):
        return self

    def check(self, condition, why):
        if not condition:
            self.problems.append(why)
        return condition

    def delta(self, name):
        """How much a counter grew during the row; None if this binary does not have it."""
        a, b = counter(self.before["status"], name), counter(self.measured()["status"], name)
        return None if a is None or b is None else b - a

    def measured(self):
        """The state after the flood, once tunnat has caught up (taken once, at first use)."""
        if self.after is None:
            if self.bed.nat.alive():
                self.bed.settle()
            self.after = self.bed.snapshot()
        return self.after

    def observe(self):
        """Whether the established traffic still flows after the flood (taken once): (ok, text, flowing peers).
        ok covers the TCP connections; the row's UDP stream is reported (its loss is judged over the whole suite,
        in the last test)."""
        if self.seen is None:
            self.measured()
            ok, text, flowing = self.bed.established()
            stream = self.stream.finish()
            self.seen = ok, f"{text}; UDP {stream['answered']}/{stream['sent']}", flowing
        return self.seen

    def flows(self):
        b, a = self.before["status"], self.measured()["status"]
        return (b["flows"] if b else None), (a["flows"] if a else None)

    def __exit__(self, kind, error, tb):
        if error is not None:
            self.problems.append(f"the test itself failed: {type(error).__name__}: {error}")
        after = self.measured()
        self.check(self.bed.nat.alive(), f"tunnat exited ({self.bed.nat.returncode}):\n{self.bed.nat.log_tail()}")
        established, seen, _ = self.observe()
        self.check(established, f"the established TCP connections no longer all flow: {seen}")
        new = self.bed.new_flow() if self.bed.nat.alive() else {"ok": False, "error": "tunnat is not running"}
        earlier = self.bed.new_flow_failing
        if new["ok"] or self.final or not earlier:
            self.check(new["ok"], f"c1 could not open a new TCP connection to {SERVER}:{ECHO_PORT}: {new['error']}")
        else:
            new["error"] += f"; already failing after {earlier}"  # not this row's doing
        if not new["ok"] and not earlier:
            self.bed.new_flow_failing = "row " + self.attack.split(".", 1)[0]

        counted = []
        for name in self.counters:
            d = self.delta(name)
            counted.append(f"{name} {'absent' if d is None else f'+{d:,}'}")
        # Any other drop reason that grew.
        drops_before = (self.before["status"] or {}).get("drops", {})
        drops_after = (after["status"] or {}).get("drops", {})
        others = [f"{k} +{n - drops_before.get(k, 0):,}" for k, n in drops_after.items()
                  if k not in self.counters and n > drops_before.get(k, 0)]
        if (after["tun_drops"] or 0) > (self.before["tun_drops"] or 0):
            others.append(f"tun0 queue overflow +{after['tun_drops'] - self.before['tun_drops']:,} (kernel)")
        flows = self.flows()
        ROWS.append({
            "attack": self.attack,
            "packets": f"{self.packets:,}",
            "counted": "; ".join(counted + others + self.notes),
            "flows": f"{flows[0]}→{flows[1]}",
            "rss": f"{mib(self.before['rss'])}→{mib(after['rss'])} MiB",
            "established": f"{'yes' if established else 'NO'} ({seen})",
            "new": "yes" if new["ok"] else f"NO ({new['error']})",
            "verdict": "pass" if not self.problems else "FAIL: " + "; ".join(self.problems),
        })
        return False

    def verdict(self):
        assert not self.problems, "\n".join(self.problems)


# --- the fixture and the table --------------------------------------------------------------------------------------

def write_table(config):
    header = ["attack", "packets", "counted", "flows before→after", "RSS before→after", "established ok",
              "new flow ok", "verdict"]
    keys = ["attack", "packets", "counted", "flows", "rss", "established", "new", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        lines.append("| " + " | ".join(str(row[k]).replace("|", "/").replace("\n", " ") for k in keys) + " |")
    table = "\n".join(lines) + "\n"
    path = os.environ.get("FLOOD_TABLE") or "/tmp/tunnat-flood-table.md"
    with open(path, "w") as f:
        f.write(table)
    # To the terminal even without -s: pytest captures stderr, so capturing is suspended for the write.
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write(f"\nflood table ({path}):\n{table}")
        sys.stderr.flush()


@pytest.fixture(scope="module")
def bed(root, tunnat, pytestconfig):
    b = Bed(tunnat)
    try:
        try:
            b.up()
        except Exception as e:  # noqa: BLE001  (any bring-up failure: say what it was, then clean up)
            pytest.fail(f"bring-up failed: {e}\n{b.nat.log_tail()}", pytrace=False)
        yield b
    finally:
        try:
            write_table(pytestconfig)
        finally:
            b.down()


# --- the rows -----------------------------------------------------------------------------------------------------

def test_spoofed_source_udp_to_one_mapping_creates_a_bounded_number_of_flows(bed):
    """100,000 UDP datagrams to c1's mapping from random spoofed sources: with endpoint-independent filtering each
    new remote would make a flow; the engine caps the flows inbound packets create per mapping."""
    with Row(bed, "1. spoofed-source UDP to one mapping", ["inbound-flow-limit", "table-full"]) as row:
        reached = bed.hold().get("tags", {}).get("spoof", 0)
        result = bed.flood("rtr", "udp", "--dst", POOL, "--dport", bed.mapping_port, "--sources", SPOOFED,
                           "--count", 100_000, "--rate", RATE, "--seconds", 15)
        row.packets = result["sent"]
        before, after = row.flows()
        reached = bed.hold().get("tags", {}).get("spoof", 0) - reached
        row.notes.append(f"reached c1 {reached:,}")
        bound = bed.inbound_flows_per_mapping + FLOW_SLACK
        row.check(after - before <= bound,
                  f"flows grew by {after - before:,} (bound {bound}): every spoofed source made a flow on mapping "
                  f"{POOL}:{bed.mapping_port}")
        limited = row.delta("inbound-flow-limit")
        row.check(limited is not None, "tunnat status has no counter 'inbound-flow-limit' (this binary has no "
                                       "per-mapping cap on inbound-created flows)")
        row.check(limited is None or limited > 0, "counter 'inbound-flow-limit' did not grow")
        row.check(row.delta("table-full") == 0, f"drops 'table-full' grew by {row.delta('table-full')}")
    row.verdict()


def test_repeated_first_fragment_does_not_grow_memory(bed):
    """250,000 copies of one first fragment (MF set, offset 0, one IP ID) to c1's mapping from srv's address: one
    datagram, whose translation is one entry however often its first fragment comes."""
    with Row(bed, "2. repeated first fragment", ["inbound", "held-fragments"] + list(FRAGMENT_DROPS)) as row:
        result = bed.flood("rtr", "first-fragment", "--src", SERVER, "--sport", PROBE_PORT, "--dst", POOL,
                           "--dport", bed.mapping_port, "--count", FIRST_FRAGMENT_COPIES, "--rate", RATE,
                           "--seconds", 20)
        row.packets = result["sent"]
        rss_before, rss_after = row.before["rss"], row.measured()["rss"]
        growth = (rss_after or 0) - rss_before
        row.notes.append(f"RSS {growth / max(1, row.packets):+.1f} B/copy")
        row.check(rss_after is not None and growth < RSS_GROWTH_BOUND,
                  f"tunnat's RSS grew by {mib(growth)} MiB (bound {mib(RSS_GROWTH_BOUND)}): fragment state grows "
                  f"with each copy of the same first fragment")
    row.verdict()


def spoof_into_a_busy_connection(bed, row, command, *args):
    """Runs floods.py COMMAND from rtr against the probe's first connection seen on nat's wan while c1 watches for
    RSTs and FINs from srv; returns (its result, what reached c1, the target's public endpoint)."""
    watch = Witness(bed, "c1", "tcp-watch", "--src", SERVER, "--sport", PROBE_PORT)
    result = bed.flood("rtr", command, "--iface", "nat", "--server", f"{SERVER}:{PROBE_PORT}", "--client", POOL, *args)
    row.check("error" not in result, f"no target: {result.get('error')}")
    row.packets = result["sent"]
    row.measured()
    return result, watch.finish(), f"{POOL}:{result.get('client_port')}"


def test_out_of_window_rst_and_fin_are_dropped(bed):
    """10,000 RSTs and 10,000 FIN|ACKs spoofed from the server on one busy connection, with sequence numbers
    2^30 to 1.5 x 2^30 away from the server's (floods.py reads them off the wire first)."""
    with Row(bed, "3. out-of-window RST and FIN", ["out-of-window"]) as row:
        result, seen, target = spoof_into_a_busy_connection(bed, row, "tcp-oow", "--count", 20_000, "--rate", RATE,
                                                            "--seconds", 10)
        row.notes.append(f"target {target}; reached c1: {seen['rst']:,} RST, {seen['fin']:,} FIN")
        dropped = row.delta("out-of-window")
        row.check(dropped is not None, "tunnat status has no drop reason 'out-of-window' (this binary tracks no "
                                       f"sequence windows: {seen['rst']:,} RSTs and {seen['fin']:,} FINs reached c1)")
        row.check(dropped is None or dropped > 0, "drop 'out-of-window' did not grow")
        if dropped is not None:  # (without the counter, the message above says it already)
            row.check(seen["rst"] + seen["fin"] == 0, f"{seen['rst']:,} RSTs and {seen['fin']:,} FINs reached c1")
        row.check(target in row.observe()[2], f"the attacked connection {target} no longer flows")
    row.verdict()


def test_picked_up_flows_are_bounded_per_host(bed):
    """65,535 bare ACKs (no SYN) from c2, one from each source port: each is picked up as a flow (as Linux's
    nf_conntrack_tcp_loose does); the per-host limit bounds them, and c1 can still open connections (the pool
    address is not out of ports)."""
    with Row(bed, "4. picked-up flows (bare ACK sweep from c2)", ["host-limit", "flows-evicted", "ports-exhausted"]) as row:
        result = bed.flood("c2", "ack-sweep", "--src", C2, "--dst", SERVER, "--dport", 80, "--first-port", 1,
                           "--last-port", 65535, "--count", 65535, "--rate", 10_000, "--seconds", 15)
        row.packets = result["sent"]
        before, after = row.flows()
        # At its limit c2 is refused, or (since issue 27) gives up its own oldest unanswered pick-up instead.
        limited = (row.delta("host-limit") or 0) + (row.delta("flows-evicted") or 0)
        row.check(limited > 0, f"neither 'host-limit' nor 'flows-evicted' grew: c2 made {after - before:,} flows")
        bound = bed.host_limit + FLOW_SLACK
        row.check(after - before <= bound, f"flows grew by {after - before:,} (bound {bound:,})")
        c2 = bed.new_flow("c2")
        row.notes.append(f"c2 new flow {'ok' if c2['ok'] else 'refused'}")
    row.verdict()


def test_held_non_first_fragments_do_not_block_others(bed):
    """20,000 non-first fragments from spoofed sources (their first never comes) to the pool address, while c1
    pings with 3,000-byte echoes and srv sends c1 fragmented datagrams last fragment first (so that they must be
    held until their first fragment arrives)."""
    with Row(bed, "5. held non-first fragments", list(FRAGMENT_DROPS)) as row:
        reversed_args = ["reversed-fragments", "--src", SERVER, "--sport", PROBE_PORT, "--dst", POOL,
                         "--dport", bed.mapping_port, "--size", 3000]
        # Without a flood, reordered fragments must get through, or the check below proves nothing.
        got = bed.hold()["tags"].get("frag", 0)
        bed.tool("srv", *reversed_args, "--datagrams", 2, "--interval", 0.1)
        baseline = wait_for(lambda: bed.hold()["tags"].get("frag", 0) - got == 2, 10)
        row.check(baseline, "without a flood, 2 datagrams sent last fragment first did not both reach c1")

        got = bed.hold()["tags"].get("frag", 0)
        flood = bed.start("rtr", PYTHON, FLOODS, "later-fragments", "--dst", POOL, "--sources", SPOOFED,
                          "--count", 20_000, "--rate", 6_000, "--seconds", 10,
                          stdout=os.path.join(bed.work, "later-fragments.out"))
        # The ping and the reordered datagrams go once the flood reaches tunnat.
        packets = row.before["status"]["nat"]["packets"]
        wait_for(lambda: bed.status()["nat"]["packets"] - packets >= 500 or flood.poll() is not None, 10)
        ping = subprocess.Popen(bed.argv("c1", "ping", "-q", "-s", 3000, "-c", 5, "-i", 0.2, "-W", 2, SERVER),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        bed.tool("srv", *reversed_args, "--datagrams", 5, "--interval", 0.3)
        ping_out = ping.communicate(timeout=15)[0]
        flood.wait(20)
        bed.last_flood_end = time.monotonic()
        with open(os.path.join(bed.work, "later-fragments.out")) as f:
            row.packets = (last_json(f.read()) or {}).get("sent", 0)
        row.check(flood.returncode == 0, f"the flood exited {flood.returncode}")
        wait_for(lambda: bed.hold()["tags"].get("frag", 0) - got >= 5, 10)
        delivered = bed.hold()["tags"].get("frag", 0) - got
        row.notes.append(f"reordered datagrams {delivered}/5")
        loss = re.search(r"(\d+)% packet loss", ping_out)
        row.notes.append(f"ping -s 3000 {loss.group(0) if loss else '?'}")
        row.check(loss is not None and loss.group(1) == "0", f"ping -s 3000 from c1: {ping_out.strip()[-200:]}")
        grew = {name: row.delta(name) for name in FRAGMENT_DROPS}
        row.check(delivered == 5, f"{delivered} of 5 datagrams sent last fragment first reached c1 during the flood "
                                  f"(fragment drops {grew}: the flood's fragments kept theirs out of the buffer)")
        row.check(any(d for d in grew.values()), f"no fragment drop counter grew: {grew}")
    row.verdict()


def test_inbound_echo_requests_do_not_reach_the_host(bed):
    """c1 pings srv with identifier 0x4242 (an ICMP query mapping, whose public identifier srv reports); then
    1,000 echo requests from srv's address to the pool address with that identifier."""
    ident = 0x4242
    with Row(bed, "6. inbound echo requests on a query mapping", ["inbound-request"]) as row:
        seen = Witness(bed, "srv", "icmp-watch", "--type", 8, "--src", POOL)
        pinged = bed.tool("c1", "ping-id", "--dst", SERVER, "--ident", ident, "--count", 3)
        public = seen.finish()["idents"]
        row.check(pinged["answered"] == 3 and len(public) == 1,
                  f"c1's echo requests: {pinged['answered']}/3 answered, public identifiers seen by srv {public}")
        public = public[0] if public else ident  # (if srv saw none, the row has failed already)
        watch = Witness(bed, "c1", "icmp-watch", "--type", 8, "--ident", ident)
        result = bed.flood("rtr", "echo-requests", "--src", SERVER, "--dst", POOL, "--ident", public,
                           "--count", 1000, "--rate", 5000, "--seconds", 5)
        row.packets = result["sent"]
        row.measured()
        reached = watch.finish()["count"]
        row.notes.append(f"public id {public:#x}; reached c1 {reached:,}")
        row.check(reached == 0, f"{reached:,} of {row.packets:,} inbound echo requests reached c1")
        dropped = row.delta("inbound-request")
        row.check(dropped is not None and dropped > 0,
                  "drop 'inbound-request' " + ("is absent from tunnat status" if dropped is None else "did not grow"))
    row.verdict()


def test_spoofed_private_source_on_the_public_side_is_not_translated(bed):
    """1,000 UDP datagrams with c1's private address as source, written by rtr straight onto nat's wan (Ethernet
    frames to nat's MAC, for srv): nat must not translate them and send them on."""
    with Row(bed, "7. spoofed private source on the public side", ["not-private-source"]) as row:
        mac = json.loads(bed.exec("nat", "ip", "-j", "link", "show", "wan").stdout)[0]["address"]
        count = Witness(bed, "srv", "udp-count", "--bind", SERVER, "--port", COUNT_PORT)
        # The control: c1's own datagrams, through the NAT as they should be, must be counted.
        bed.tool("c1", "udp", "--dst", SERVER, "--dport", COUNT_PORT, "--sources", f"{C1}/32", "--count", 3,
                 "--rate", 100, "--seconds", 2, "--tag", "control")
        result = bed.flood("rtr", "l2-udp", "--iface", "nat", "--dst-mac", mac, "--src", C1, "--dst", SERVER,
                           "--dport", COUNT_PORT, "--count", 1000, "--rate", 5000, "--seconds", 5)
        row.packets = result["sent"]
        row.measured()
        seen = count.finish()
        spoofed = seen["tags"].get("spoofpriv", 0)
        row.notes.append(f"srv received {spoofed:,} ({', '.join(seen['sources']) or 'nothing'})")
        row.check(seen["tags"].get("control", 0) >= 1, f"the control datagrams from c1 did not reach srv: {seen}")
        rules = bed.exec("nat", "ip", "rule", "show").stdout.splitlines()
        rules = [" ".join(r.split()) for r in rules if "10.0.0.0/8" in r]
        row.check(spoofed == 0, f"srv received {spoofed:,} of {row.packets:,}, from {sorted(seen['sources'])}: "
                                f"nat translated packets with a private source that arrived on its public side "
                                f"(policy rule {rules} takes them into the TUN from any interface)")
    row.verdict()


def test_an_off_path_ack_walk_cannot_place_an_rst(bed):
    """3 bare ACKs spoofed from the server on one busy connection, each 2^30 + 100,000 further along its sequence
    space, each followed by 2 RSTs at its sequence number: a tracker that moved its marker for any segment would
    follow the walk and take the RSTs (issue 27). Segments outside the window are forwarded but move nothing."""
    with Row(bed, "8. off-path ACK walk, then RSTs", ["out-of-window", "out-of-window-ignored"]) as row:
        result, seen, target = spoof_into_a_busy_connection(bed, row, "tcp-walk")
        row.notes.append(f"target {target}; reached c1: {seen['rst']:,} RST")
        row.check(seen["rst"] == 0, f"{seen['rst']:,} of the 6 RSTs reached c1: the walk moved the tracked window")
        ignored = row.delta("out-of-window-ignored")
        row.check(ignored is not None and ignored >= 3, f"'out-of-window-ignored' grew by {ignored}, not 3")
        row.check(target in row.observe()[2], f"the attacked connection {target} no longer flows")
    row.verdict()


HELD_PORTS = (27000, 28099)   # c1's source ports for row 9's mappings: below the ephemeral range, so no real socket
AFTER_PORTS = (28100, 28299)  # row 9's new flows after the spray
SINGLE_PORTS = (2000, 25999)  # row 10's, likewise


def test_an_outsiders_datagrams_to_a_hosts_mappings_never_use_up_its_limit(bed):
    """c1 opens 1,100 UDP mappings (one datagram each, from ports it preserves); an outsider sprays 17,600
    datagrams from spoofed sources over them: 16 flows per mapping, more than c1's whole limit. Then c1 opens 200
    more flows. Flows made from outside have their own budget (issue 27): c1 keeps every flow it may open."""
    first, last = HELD_PORTS
    with Row(bed, "9. an outsider's datagrams to a host's mappings", ["inbound-flow-limit", "host-limit"]) as row:
        bed.tool("c1", "udp-ports", "--src", C1, "--dst", SERVER, "--dport", 9, "--first-port", first,
                 "--last-port", last, "--count", last - first + 1, "--rate", 5000, "--seconds", 5)
        before = bed.status()["flows"]
        result = bed.flood("rtr", "udp-spray", "--dst", POOL, "--first-port", first, "--last-port", last,
                           "--sources", SPOOFED, "--count", 16 * (last - first + 1), "--rate", RATE, "--seconds", 10)
        row.packets = result["sent"]
        made = bed.status()["flows"] - before
        first_after, last_after = AFTER_PORTS
        bed.tool("c1", "udp-ports", "--src", C1, "--dst", SERVER, "--dport", 9, "--first-port", first_after,
                 "--last-port", last_after, "--count", last_after - first_after + 1, "--rate", 2000, "--seconds", 5)
        row.notes.append(f"flows made from outside {made:,}; then c1 opened {last_after - first_after + 1} more")
        row.check(made >= bed.host_limit // 2, f"the spray made {made:,} flows: it did not reach c1's mappings (ports "
                                               f"not preserved?), so the row shows nothing")
        row.check(row.delta("host-limit") == 0, f"c1 was refused {row.delta('host-limit'):,} times ('host-limit')")
    row.verdict()


def test_single_udp_exchanges_never_lock_a_host_out(bed):
    """c1 sends one datagram from each of 24,000 source ports to srv, which answers each: ordinary traffic (a
    resolver, a crawler) past the host's limit. Its oldest single exchanges make room (issue 27); before, the host
    was refused every new flow for the 5 minutes its UDP flows lived."""
    first, last = SINGLE_PORTS
    with Row(bed, "10. single UDP exchanges from one host (24,000 source ports)", ["host-limit", "flows-evicted"]) as row:
        result = bed.flood("c1", "udp-ports", "--src", C1, "--dst", SERVER, "--dport", PROBE_PORT, "--first-port",
                           first, "--last-port", last, "--count", last - first + 1, "--rate", 2_000, "--seconds", 20,
                           timeout=40)
        row.packets = result["sent"]
        row.measured()
        evicted = row.delta("flows-evicted")
        row.check(evicted is not None and evicted > 0, f"'flows-evicted' grew by {evicted}: c1 never reached its limit")
        row.check(row.delta("host-limit") == 0, f"c1 was refused {row.delta('host-limit'):,} times ('host-limit')")
        ping = bed.exec("c1", "ping", "-q", "-c", 2, "-i", 0.2, "-W", 2, SERVER, check=False)
        row.notes.append("c1 ping " + ("ok" if ping.returncode == 0 else "FAILED"))
        row.check(ping.returncode == 0, f"ping from c1 after the exchanges: {ping.stdout.strip()[-200:]}")
    row.verdict()


def test_new_legitimate_flows_after_every_flood(bed):
    """After every flood: c1 opens a new TCP connection and pings; c2 (the attacker of row 4) is reported."""
    with Row(bed, "11. new legitimate flows after the floods", [], final=True) as row:
        ping = bed.exec("c1", "ping", "-q", "-c", 3, "-i", 0.2, "-W", 2, SERVER, check=False)
        row.notes.append("c1 ping " + ("ok" if ping.returncode == 0 else "FAILED"))
        row.check(ping.returncode == 0, f"ping from c1: {ping.stdout.strip()[-200:]}")
        c2 = bed.new_flow("c2")
        row.notes.append(f"c2 new TCP flow {'ok' if c2['ok'] else 'refused: ' + str(c2['error'])}")
    row.verdict()


def test_established_traffic_survives_every_flood(bed):
    """The probe's verdict over the whole run: no TCP error or reset, every busy line answered, every idle
    connection answers at the end, no UDP datagram lost. The floods are paced far below what tunnat's TUN path
    carries, so none of the established traffic should be lost; UDP_LOSS_BOUND says the one exception."""
    try:
        bed.probe.wait(max(1, bed.probe_end - time.monotonic()) + 40)  # it ends by itself, PROBE_SECONDS in
    except subprocess.TimeoutExpired:
        pass
    overflow = (bed.tun_drops() or 0) - (bed.tun_drops_start or 0)
    with open(bed.probe_out) as f:
        output = f.read()
    probe = last_json(output) or {}
    problems = []
    if not probe:
        problems.append(f"the probe printed no verdict: {output[-300:]}")
    if bed.last_flood_end and bed.last_flood_end > bed.probe_end:
        problems.append(f"the last flood ended {bed.last_flood_end - bed.probe_end:.1f} s after the probe: "
                        f"raise PROBE_SECONDS")
    busy, idle, udp = probe.get("busy", []), probe.get("idle", {}), probe.get("udp", {})
    for i, b in enumerate(busy):
        if b["error"] or b["answered"] < b["sent"]:
            problems.append(f"busy connection {i} ({b['source']}): {b['answered']}/{b['sent']} answered, "
                            f"error {b['error']}")
    if len(busy) != BUSY:
        problems.append(f"{len(busy)} of {BUSY} busy connections reported")
    if idle.get("survived") != IDLE:
        problems.append(f"idle connections: {idle.get('survived')}/{IDLE} answered at the end: "
                        f"{idle.get('failures', [])[:3]}")
    lost = udp.get("sent", 0) - udp.get("answered", 0)
    if probe and lost and overflow <= 0:
        problems.append(f"UDP stream: {udp['answered']}/{udp['sent']} answered, {lost} lost, and tun0's queue never "
                        "overflowed")
    elif probe and lost > UDP_LOSS_BOUND * udp["sent"]:
        problems.append(f"UDP stream: {udp['answered']}/{udp['sent']} answered, {lost} lost: more than "
                        f"{UDP_LOSS_BOUND:.0%}, although tun0's queue overflowed {overflow} times")
    if probe and len(udp.get("sources", [])) != 1:
        problems.append(f"UDP stream seen from {udp.get('sources')}")
    lines = sum(b["sent"] for b in busy)
    ROWS.append({
        "attack": f"established traffic ({BUSY} busy, {IDLE} idle TCP, 1 UDP stream, {PROBE_SECONDS} s)",
        "packets": f"{lines:,} TCP lines, {udp.get('sent', 0):,} UDP",
        "counted": f"busy answered {sum(b['answered'] for b in busy):,}/{lines:,}, max gap "
                   f"{max([b['max_gap'] for b in busy] or [0])} s; idle {idle.get('survived')}/{IDLE}; "
                   f"UDP {udp.get('answered')}/{udp.get('sent')}, max gap {udp.get('max_gap')} s; "
                   f"tun0 queue overflow +{overflow:,} (kernel)",
        "flows": "", "rss": "", "established": "yes" if not problems else "NO", "new": "",
        "verdict": "pass" if not problems else "FAIL: " + "; ".join(problems),
    })
    assert not problems, "\n".join(problems)
