"""A pair's life on AWS, end to end with live traffic: nodes replaced and the release upgraded one node at a time,
then a crash. Two tunnat nodes in network namespaces (scripts/lib/failover_cluster.py's topology: a VPC simulated
over moto), both first on the previous release (main before wire format version 4, built from git), a client with
long-lived TCP connections (idle and busy), a UDP stream and a ping through them. Then, in order:

1. B's instance is terminated (SIGKILL) and a fresh B of this release (an empty table) joins: it speaks wire
   format version 3 with A and syncs;
2. a planned handover to B;
3. A is replaced by a fresh A of this release: it follows B and syncs, in version 4;
4. a planned handover back to A (B, which exits, comes back as the standby);
5. kill -9 of the active, A.

Every connection opened before step 1 must survive all five steps, from one public address; the longest ping gap
of each step is measured. Needs root, and a build of the previous release (made here once, kept under
.build-previous/, or given with --tunnat-previous PATH).

  .venv/bin/python -m pytest scripts/tests/test_lifecycle.py [--tunnat PATH] [--tunnat-previous PATH]
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from failover_cluster import LIB, OUTAGE_LIMIT, PUBLIC, SERVER, SERVER_PORT, Cluster, Round, log
from testbed import REPO, wait_for

# The previous release: the last main whose newest wire format is version 3 (before NAT64's version 4).
PREVIOUS = "2a62519"
IDLE, BUSY = 12, 2
STEPS = ("B replaced by this release", "handover to B", "A replaced by this release", "handover back to A",
         "kill -9 of A")


@pytest.fixture(scope="session")
def previous_tunnat(pytestconfig, root):
    given = pytestconfig.getoption("--tunnat-previous")
    if given:
        return os.path.abspath(given)
    home = os.path.join(REPO, ".build-previous", PREVIOUS)
    binary = os.path.join(home, "build", "debug", "tunnat")
    if os.access(binary, os.X_OK):
        return binary
    source = os.path.join(home, "src")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(source)
    log(f"building the previous release ({PREVIOUS}) in {home}: once, a few minutes")
    archive = subprocess.run(["git", "-C", REPO, "archive", PREVIOUS], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    # The same dependency versions as this build resolved.
    resolved = os.path.join(REPO, "Package.resolved")
    if os.path.exists(resolved):
        shutil.copy(resolved, source)
    p = subprocess.run(["swift", "build", "--package-path", source, "--scratch-path", os.path.join(home, "build"),
                        "--product", "tunnat"], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0 or not os.access(binary, os.X_OK):
        pytest.fail(f"building {PREVIOUS} failed:\n{(p.stdout + p.stderr)[-3000:]}", pytrace=False)
    shutil.rmtree(source, ignore_errors=True)
    return binary


def wire(node):
    """The wire-format version node's status shows for its peer's session (None: a release that does not say)."""
    peers = node.replication().get("peers") or [{}]
    return peers[0].get("wire_version")


def flows(node):
    return (node.status() or {}).get("flows", 0)


def ping_gaps(output, windows):
    """For each (start, end) window of wall-clock time, the longest time between two echo replies of `ping -D`
    that overlaps it."""
    times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=", output, re.M)]
    gaps = []
    for start, end in windows:
        inside = [b - a for a, b in zip(times, times[1:]) if b >= start and a <= end]
        gaps.append(max(inside) if inside else float("inf"))
    return gaps


@pytest.fixture(scope="module")
def lifecycle(root, tunnat, previous_tunnat):
    c = Cluster(previous_tunnat, idle=IDLE, busy=BUSY, prefix="tlc", management="10.76.0")
    seen = {"steps": [], "wire": {}}
    try:
        c.up()
        a, b = c.nodes["a"], c.nodes["b"]
        a.start()
        seen["pair up"] = wait_for(lambda: a.role() == "active", 20)
        b.start()
        seen["pair up"] = seen["pair up"] and wait_for(lambda: b.role() == "standby" and b.synced(), 20)
        seen["wire"]["previous release"] = (wire(a), wire(b))
        until = os.path.join(c.work, "lifecycle-done")
        probe = c.procs.start(c.ns.argv("c", sys.executable, os.path.join(LIB, "longflows.py"), "probe", SERVER,
                                        SERVER_PORT, "--seconds", 300, "--idle", IDLE, "--busy", BUSY,
                                        "--until", until),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # ping's output goes to a file: a pipe read only at the end would fill and stop it.
        ping_log = open(os.path.join(c.work, "lifecycle-ping.txt"), "w+")
        ping = c.procs.start(c.ns.argv("c", "ping", "-D", "-n", "-i", "0.05", "-w", 310, SERVER),
                             stdout=ping_log, stderr=subprocess.DEVNULL)
        expected = IDLE + BUSY + 2
        seen["flows replicated"] = wait_for(lambda: min(flows(a), flows(b)) >= expected, 20, step=0.25)

        def synced_standby(node):
            return wait_for(lambda: node.role() == "standby" and node.synced() and flows(node) >= expected, 30,
                            step=0.1)

        def handover(leaving, taking, cli):
            p = subprocess.run([cli, "handover", "--socket", leaving.socket], capture_output=True, text=True,
                               timeout=90)
            taken = wait_for(lambda: taking.role() == "active" and c.holds_everything(taking.k), 15, step=0.05)
            exited = wait_for(lambda: not leaving.alive(), 30)
            return p.returncode == 0 and taken and exited, p.stdout + p.stderr

        def replace_b():
            b.kill()
            b.tunnat = tunnat
            b.start()
            # A standby: the routes and the pool stay with the live active.
            ok = synced_standby(b) and c.holds_everything("a")
            seen["wire"]["B replaced"] = (wire(a), wire(b))
            return ok, b.log_tail()

        def to_b():
            return handover(a, b, previous_tunnat)

        def replace_a():
            a.tunnat = tunnat
            a.start()
            ok = synced_standby(a) and c.holds_everything("b")
            seen["wire"]["A replaced"] = (wire(a), wire(b))
            return ok, a.log_tail()

        def to_a():
            ok, out = handover(b, a, tunnat)
            b.start()
            return ok and synced_standby(b), out + b.log_tail()

        def kill_a():
            a.kill()
            ok = wait_for(lambda: b.role() == "active" and c.holds_everything("b"), 15, step=0.05)
            return ok, b.log_tail()

        if seen["pair up"] and seen["flows replicated"]:
            for name, action in zip(STEPS, (replace_b, to_b, replace_a, to_a, kill_a)):
                start = time.time()
                ok, detail = action()
                seen["steps"].append({"name": name, "ok": ok, "start": start, "end": time.time(), "detail": detail})
                log(f"lifecycle: {name}: {'done' if ok else 'FAILED'} in {time.time() - start:.1f} s")
                if not ok:
                    break
                # A few seconds of traffic between steps, so that each gap is its own.
                time.sleep(2)
        with open(until, "w"):
            pass
        out, err = probe.communicate(timeout=360)
        ping.send_signal(signal.SIGINT)
        ping.wait(30)
        ping_log.seek(0)
        ping_out = ping_log.read()
        ping_log.close()
        gaps = ping_gaps(ping_out, [(s["start"], s["end"] + 1) for s in seen["steps"]])
        for s, gap in zip(seen["steps"], gaps):
            s["ping_gap"] = round(gap, 3)
        try:
            result = json.loads(out)
        except ValueError:
            result = {"error": f"probe printed no result: {err[-500:]}"}
        seen["round"] = Round(a, b, BUSY, {"flows": result, "ping_gap": max(gaps or [99])})
        log("lifecycle: step | longest ping gap (s)\n" + "\n".join(f"  {s['name']} | {s['ping_gap']}"
                                                                   for s in seen["steps"]))
        yield seen
    finally:
        c.down()


def test_the_pair_of_the_previous_release_comes_up_and_holds_the_flows(lifecycle):
    assert lifecycle["pair up"] and lifecycle["flows replicated"]
    assert lifecycle["wire"]["previous release"] == (3, 3)


@pytest.mark.parametrize("index", range(len(STEPS)), ids=STEPS)
def test_each_step_completes(lifecycle, index):
    steps = lifecycle["steps"]
    assert len(steps) > index, f"an earlier step failed: {[s['name'] for s in steps if not s['ok']]}"
    assert steps[index]["ok"], steps[index]["detail"][-3000:]


def test_a_node_of_this_release_speaks_version_3_to_the_previous_release_and_4_to_its_own(lifecycle):
    assert lifecycle["wire"]["B replaced"] == (3, 3)
    assert lifecycle["wire"]["A replaced"] == (4, 4)


def test_every_tcp_connection_opened_before_the_first_step_survives_every_step(lifecycle):
    r = lifecycle["round"]
    assert len(lifecycle["steps"]) == len(STEPS)
    assert r.busy_tcp_ok, r.busy
    assert r.idle_tcp_ok, r.idle


def test_the_udp_stream_keeps_its_public_address_and_port_throughout(lifecycle):
    udp = lifecycle["round"].udp
    assert udp.get("answered", 0) > 0 and len(udp.get("sources", [])) == 1, udp


def test_the_server_sees_one_public_address_throughout(lifecycle):
    assert lifecycle["round"].source_addresses == {PUBLIC}


@pytest.mark.parametrize("index", range(len(STEPS)), ids=STEPS)
def test_the_longest_gap_of_each_step_is_within_the_outage_limit(lifecycle, index):
    steps = lifecycle["steps"]
    assert len(steps) > index
    assert steps[index]["ping_gap"] <= OUTAGE_LIMIT, steps[index]
