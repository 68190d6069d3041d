#!/usr/bin/env python3
"""The HA pair under a seeded random schedule of faults, with live traffic and the EC2 emulator: the chaos suite.

  chaos.py TUNNAT --seed S (--episodes N | --minutes M) [--kinds K1,K2] [--json PATH]
      As root. Prints the seed first, each episode's faults and checks on stderr, then a summary table (markdown)
      on stdout; exit 1 if any check failed. The same seed gives the same schedule of faults (their timing on the
      machine still varies): a failure is replayed with its seed.

The world is the failover cluster (scripts/lib/failover_cluster.py: two nodes, a VPC router that follows moto,
a client and a server), with the sync link passed through scripts/lib/syncnet.py in the router namespace, which
loses, duplicates, delays, reorders, blocks, forges and replays the nodes' datagrams (tc netem stands in for none
of it: the test machines' kernels have no netem).

An episode: long-lived flows start through the active (idle and busy TCP, a UDP stream, ping); once the standby
holds them, one or two faults are applied, held for a random 1.5 to 4 s, and healed (a node killed or restarted
with the wrong key is started again, with the right key). Then, within CONVERGE_LIMIT seconds, the pair must
converge (counted from the heal, the restarts included): both nodes answer, exactly one is active, the other a synced standby following it, moto shows the route
and the pool address on the active's interface only, and the router routes as moto says. The flows must survive,
unless the rules allow their loss: the active died while no standby held a complete replica (a cold start).

Fault kinds (a schedule draws from these):
  sync-loss            a share (10-40 %) of the sync datagrams lost, both ways
  sync-disorder        sync datagrams duplicated (20 %), delayed (10-80 ms, jitter) and reordered (30 %)
  partition-oneway     one direction of the sync link blocked
  partition-twoway     both directions blocked
  kill-active          kill -9 of the active
  kill-standby         kill -9 of the standby
  kill-during-resync   the standby restarted, and the active killed 0-1.5 s later (during its resync, or just after)
  kill-during-handover `tunnat handover` on the active, and 0-0.8 s later kill -9 of the active or the standby
  wrong-key            a node (either) restarted with a key its peer does not hold
  forged               2,000 forged datagrams from one node's address to the other (headers of real ones with new
                       nonces, sequence and tag, hellos among them, and garbage)
  forged-restart       the standby restarted while forged hellos come from the active's address, 1,000 a second
                       for the whole hold (they once used up the hello budget, and the node started as an active)
  replayed             the last 1,000 datagrams one node sent, replayed to the other
  stranded             the route and the pool address moved by hand (through moto) to the standby's interface, as a
                       node that claimed and stepped down leaves them: the active must take them back
  ec2-hang             every EC2 call unanswered for 2-6 s, with a kill of the active at its start
  ec2-throttle         the next 3-10 EC2 calls answered 503 RequestLimitExceeded, with a kill of the active
  ec2-fail             the next 3-10 EC2 calls answered 500 InternalError, with a kill of the active
  clock-step           CLOCK_REALTIME stepped 20-300 s (either way), stepped back at the heal. Linux has no
                       per-namespace realtime clock: the step hits the whole machine, both nodes at once.

Split-brain is measured by a monitor that reads both nodes' roles every 0.25 s: time with both nodes active while
no partition is in force (counted from 1.5 s after a partition heals: a peer timeout and a heartbeat), and time
with moto's route and pool address on different interfaces for longer than 2 s at a stretch.
"""
import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

from failover_cluster import NAT_IP, PUBLIC, SERVER, SERVER_PORT, Cluster
from testbed import LIB, sh, wait_for

KINDS = ("sync-loss", "sync-disorder", "partition-oneway", "partition-twoway", "kill-active", "kill-standby",
         "kill-during-resync", "kill-during-handover", "wrong-key", "forged", "forged-restart", "replayed",
         "stranded", "ec2-hang", "ec2-throttle", "ec2-fail", "clock-step")
# Faults that can share an episode: those on different parts (the sync link, EC2, the clock, a process).
LINK = {"sync-loss", "sync-disorder", "partition-oneway", "partition-twoway", "forged", "replayed"}
CONVERGE_LIMIT = 30.0   # seconds after the heal for the pair to be whole again
FLOW_SECONDS = 60.0     # the longest an episode's long-lived flows run (they end 2 s after the pair converged)
MONITOR_STEP = 0.25
# A busy TCP connection counts as lost when reset or closed, or silent this long: an outage of a few seconds (EC2
# throttled during a takeover) leaves TCP's retransmission timer backed off to several seconds, and the
# connection lives on.
PATIENCE = 45.0
PORT = 7800


def log(message):
    print(message, file=sys.stderr, flush=True)


class Monitor(threading.Thread):
    """Reads both nodes' roles (and moto's route and pool address) every MONITOR_STEP: split-brain time."""

    def __init__(self, chaos):
        super().__init__(daemon=True)
        self.chaos = chaos
        self.stop = threading.Event()
        self.split_seconds = 0.0
        self.apart_seconds = 0.0
        self.apart_since = None
        self.samples = 0

    def run(self):
        c = self.chaos
        last = time.monotonic()
        while not self.stop.wait(MONITOR_STEP):
            # Each sample stands for the time since the last one (two status calls and moto's can take a while).
            now = time.monotonic()
            step, last = now - last, now
            reps = [((n.status(timeout=2) or {}).get("replication") or {}) if n.alive() else {}
                    for n in c.cluster.nodes.values()]
            roles = [r.get("role") for r in reps]
            # During a planned handover both nodes are active by design, until the old one leaves.
            handing = any(r.get("handover") not in (None, "none") for r in reps)
            self.samples += 1
            quiet = not c.partitioned and time.monotonic() - c.partition_healed > 1.5
            if roles.count("active") > 1 and quiet and not handing:
                self.split_seconds += step
                log(f"  monitor: two actives during episode {c.current} (no partition, no handover in force)")
            try:
                route, holders = c.cluster.vpc.state()
            except Exception:  # noqa: BLE001 - moto busy: the next sample
                continue
            if holders and holders != [route]:
                self.apart_since = self.apart_since or time.monotonic()
                if time.monotonic() - self.apart_since > 2:
                    self.apart_seconds += step
            else:
                self.apart_since = None


class Chaos:
    def __init__(self, tunnat, seed, idle=4, busy=2, kinds=None):
        self.seed = seed
        self.kinds = list(kinds or [])
        self.rng = random.Random(seed)
        self.cluster = Cluster(tunnat, idle=idle, busy=busy)
        self.relay = None
        self.partitioned = False
        self.partition_healed = 0.0
        self.clock_offset = 0.0
        self.episodes = []
        self.monitor = None
        self.current = None     # the episode under way: its number and faults

    # -- the world

    def up(self):
        self.world()
        self.start_pair()
        return self

    def world(self):
        """The cluster, the relay on the sync link and a wrong key; no node started."""
        c = self.cluster.up()
        r = c.ns["r"]
        # The sync datagrams from either NAT are delivered to the relay instead of forwarded (see syncnet.py).
        sh("ip", "-n", r, "rule", "add", "iif", "nata", "ipproto", "udp", "dport", PORT, "lookup", "300", "pref", "50")
        sh("ip", "-n", r, "rule", "add", "iif", "natb", "ipproto", "udp", "dport", PORT, "lookup", "300", "pref", "51")
        sh("ip", "-n", r, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "300")
        env = dict(os.environ, SYNCNET_SEED=str(self.seed))
        self.relay = c.procs.start(c.ns.argv("r", sys.executable, os.path.join(LIB, "syncnet.py"), NAT_IP["a"],
                                             NAT_IP["b"], PORT),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
        assert json.loads(self.relay.stdout.readline()).get("ready"), "syncnet did not start"
        wrong = os.path.join(c.work, "wrong.key")
        with open(wrong, "wb") as f:
            f.write(os.urandom(48).hex().encode())
        os.chmod(wrong, 0o600)
        self.wrong_key = wrong
        return self

    def start_pair(self):
        """nat-a active, nat-b its synced standby (either started already is left as it is), and the monitor."""
        a, b = self.cluster.nodes["a"], self.cluster.nodes["b"]
        if not a.alive():
            a.start()
        assert wait_for(lambda: a.role() == "active", 20), a.log_tail()
        if not b.alive():
            b.start()
        assert wait_for(lambda: b.role() == "standby" and b.synced(), 20), b.log_tail()
        self.monitor = Monitor(self)
        self.monitor.start()

    def down(self):
        if self.monitor:
            self.monitor.stop.set()
            self.monitor.join(5)
        if self.clock_offset:
            self.step_clock(-self.clock_offset)
        if self.relay and self.relay.poll() is None:
            try:
                self.relay.stdin.write(json.dumps({"quit": True}) + "\n")
                self.relay.stdin.flush()
            except OSError:
                pass
        self.cluster.down()

    def syncnet(self, **command):
        self.relay.stdin.write(json.dumps(command) + "\n")
        self.relay.stdin.flush()
        if not select.select([self.relay.stdout], [], [], 10)[0]:
            raise RuntimeError(f"syncnet did not answer {command} within 10 s")
        return json.loads(self.relay.stdout.readline())

    def step_clock(self, seconds):
        time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME) + seconds)
        self.clock_offset += seconds

    # -- who is who

    def roles(self):
        out = {}
        for k, n in self.cluster.nodes.items():
            st = (n.status(timeout=3) or {}) if n.alive() else {}
            out[k] = st.get("replication") or {}
        return out

    def active(self):
        r = self.roles()
        return next((k for k, v in r.items() if v.get("role") == "active"), None)

    def converged(self):
        """Both nodes up; exactly one active, the other a synced standby following it; moto's route and pool on the
        active's interface only; the router in line with moto."""
        c = self.cluster
        if not all(n.alive() for n in c.nodes.values()):
            return False
        r = self.roles()
        actives = [k for k, v in r.items() if v.get("role") == "active"]
        if len(actives) != 1:
            return False
        k = actives[0]
        other = "b" if k == "a" else "a"
        o = r[other]
        if o.get("role") != "standby" or not o.get("synced") or o.get("leader") != r[k].get("node"):
            return False
        return c.holds_everything(k) and c.vpc.in_line()

    def start_node(self, k, key=None):
        n = self.cluster.nodes[k]
        n.key_file = key or os.path.join(self.cluster.work, "sync.key")
        n.write_config(n.config_text())
        n.start()

    def restart_all_down(self):
        """Every node that is not running, or runs with the wrong key, is started again with the right key."""
        right = os.path.join(self.cluster.work, "sync.key")
        for k, n in self.cluster.nodes.items():
            if n.alive() and n.key_file != right:
                n.kill()
            if not n.alive():
                self.start_node(k)

    # -- one episode

    def draw(self):
        if self.kinds:
            return self.rng.choice(self.kinds).split("+")
        first = self.rng.choice(KINDS)
        faults = [first]
        if self.rng.random() < 0.6:
            # A second fault on another part: a link fault with a process or EC2 fault, or the other way round.
            pool = [k for k in KINDS if (k in LINK) != (first in LINK) and k != "clock-step"]
            faults.append(self.rng.choice(pool))
        return faults

    def apply(self, fault, active, standby, notes, hold):
        """Applies one fault; returns its heal (or None: healed by restart_all_down)."""
        c, rng = self.cluster, self.rng
        nodes = c.nodes

        def kill_active():
            other = self.roles()[standby]
            notes["standby_synced_at_kill"] = notes.get("standby_synced_at_kill", True) and bool(other.get("synced"))
            nodes[active].kill()

        if fault == "sync-loss":
            loss = round(rng.uniform(0.1, 0.4), 2)
            self.syncnet(impair={"a>b": {"loss": loss}, "b>a": {"loss": loss}})
            notes["loss"] = loss
            return lambda: self.syncnet(clear=True)
        if fault == "sync-disorder":
            rule = {"dup": 0.2, "delay": round(rng.uniform(0.01, 0.08), 3), "jitter": 0.01, "reorder": 0.3}
            self.syncnet(impair={"a>b": rule, "b>a": rule})
            return lambda: self.syncnet(clear=True)
        if fault in ("partition-oneway", "partition-twoway"):
            ways = ["a>b", "b>a"] if fault == "partition-twoway" else [rng.choice(["a>b", "b>a"])]
            self.syncnet(impair={w: {"block": True} for w in ways})
            self.partitioned = True
            notes["blocked"] = ways

            def heal():
                self.syncnet(clear=True)
                self.partitioned = False
                self.partition_healed = time.monotonic()
            return heal
        if fault == "kill-active":
            kill_active()
            return None
        if fault == "kill-standby":
            nodes[standby].kill()
            return None
        if fault == "kill-during-resync":
            nodes[standby].kill()
            self.start_node(standby)
            time.sleep(rng.uniform(0, 1.5))
            kill_active()
            return None
        if fault == "kill-during-handover":
            handing = subprocess.Popen([c.tunnat, "handover", "--socket", nodes[active].socket],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c.procs.append(handing)
            time.sleep(rng.uniform(0, 0.8))
            victim = rng.choice([active, standby])
            notes["killed"] = "active" if victim == active else "standby"
            if victim == active:
                kill_active()
            else:
                nodes[standby].kill()
            # The `tunnat handover` command is left to finish by itself; a handover that completes (or fails, after
            # its timeout) stops the old active, which the convergence wait starts again.
            return None
        if fault == "wrong-key":
            victim = rng.choice([active, standby])
            notes["restarted"] = "active" if victim == active else "standby"
            if victim == active:
                kill_active()
            else:
                nodes[victim].kill()
            self.start_node(victim, key=self.wrong_key)
            return None
        if fault == "forged-restart":
            nodes[standby].kill()
            self.syncnet(forge=int(1000 * (hold + 1)), rate=1000, hellos=True, **{"from": active})
            self.start_node(standby)
            return None
        if fault == "stranded":
            v, eni = c.vpc, c.vpc.nat[standby]["eni"]
            v.ec2.replace_route(RouteTableId=v.table, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=eni)
            v.ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[PUBLIC],
                                              AllowReassignment=True)
            v.ec2.unassign_private_ip_addresses(NetworkInterfaceId=c.vpc.nat[active]["eni"],
                                                PrivateIpAddresses=[PUBLIC])
            v.follow("stranded by hand")
            return None
        if fault in ("forged", "replayed"):
            sender = rng.choice(["a", "b"])
            if fault == "forged":
                self.syncnet(forge=2000, **{"from": sender})
            else:
                self.syncnet(replay=1000, **{"from": sender})
            return None
        if fault == "ec2-hang":
            seconds = round(rng.uniform(2, 6), 1)
            c.aws.front.hang_until = time.monotonic() + seconds
            notes["hang"] = seconds
            kill_active()

            def heal():
                c.aws.front.hang_until = 0.0
            return heal
        if fault in ("ec2-throttle", "ec2-fail"):
            n = rng.randint(3, 10)
            error = (503, "RequestLimitExceeded", "Request limit exceeded.") if fault == "ec2-throttle" \
                else (500, "InternalError", "An internal error has occurred")
            with c.aws.front.lock:
                c.aws.front.inject.extend([error] * n)
            notes["calls"] = n
            kill_active()

            def heal():
                with c.aws.front.lock:
                    c.aws.front.inject.clear()
            return heal
        if fault == "clock-step":
            seconds = round(rng.uniform(20, 300), 1) * rng.choice([1, -1])
            self.step_clock(seconds)
            notes["step"] = seconds
            return lambda: self.step_clock(-seconds)
        raise ValueError(fault)

    def episode(self, number):
        c = self.cluster
        faults = self.draw()
        active = self.active()
        if active is None or not self.converged():
            # The last episode left the pair broken: recorded there; this one waits for it before anything else.
            wait_for(lambda: self.restart_all_down() or self.converged(), CONVERGE_LIMIT, step=0.25)
            active = self.active()
        if active is None:
            record = {"episode": number, "faults": faults, "notes": {"skipped": "no active to start from"},
                      "converged": False, "converge_seconds": CONVERGE_LIMIT, "tcp_survived": False,
                      "loss_allowed": None, "ok": False, "split_seconds": 0, "apart_seconds": 0}
            self.episodes.append(record)
            log(f"episode {number}: NOT RUN: the pair has no active after {int(CONVERGE_LIMIT)} s\n{self.diagnose()}")
            return record
        standby = "b" if active == "a" else "a"
        hold = round(self.rng.uniform(1.5, 4.0), 2)
        until = os.path.join(c.work, f"flows-{number}.done")
        probe = c.procs.start(c.ns.argv("c", sys.executable, os.path.join(LIB, "longflows.py"), "probe", SERVER,
                                        SERVER_PORT, "--seconds", FLOW_SECONDS, "--idle", c.idle, "--busy", c.busy,
                                        "--until", until, "--patience", PATIENCE, "--settle", 1),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        expected = c.idle + c.busy + 1
        replicated = wait_for(lambda: min((n.status() or {}).get("flows", 0) for n in c.nodes.values()) >= expected,
                              5, step=0.1)
        notes = {}
        split_before = self.monitor.split_seconds if self.monitor else 0
        apart_before = self.monitor.apart_seconds if self.monitor else 0
        self.current = f"{number} ({'+'.join(faults)})"
        applied = time.monotonic()
        heals = []
        for fault in faults:
            heal = self.apply(fault, active, standby, notes, hold)
            if heal:
                heals.append(heal)
        time.sleep(hold)
        healed = time.monotonic()
        for heal in reversed(heals):
            heal()
        self.restart_all_down()
        # A node may also stop by itself after the heal (an old active once its handover ends): started again.
        converged = wait_for(lambda: self.restart_all_down() or self.converged(), CONVERGE_LIMIT, step=0.1)
        converge_seconds = time.monotonic() - healed
        # The flows go on for 2 s through the converged pair, then end.
        time.sleep(2)
        sockets = {k: subprocess.run(c.ns.argv(k, "ss", "-tnio", "state", "established"), capture_output=True,
                                     text=True, timeout=10).stdout for k in ("c", "s")}
        with open(until, "w"):
            pass
        out, err = probe.communicate(timeout=FLOW_SECONDS + 120)
        try:
            flows = json.loads(out)
        except ValueError:
            flows = {"error": f"probe printed no result: {err[-300:]}"}
        busy = flows.get("busy", [])
        idle = flows.get("idle", {})
        tcp_ok = all(b.get("error") is None and b.get("answered") == b.get("sent") and b.get("sent", 0) > 0
                     for b in busy) and len(busy) == c.busy and idle.get("total", -1) == idle.get("survived", -2)
        allowed = None
        if not notes.get("standby_synced_at_kill", True):
            allowed = "the active died while the standby's replica was incomplete (a cold start)"
        if not replicated and ("kill" in " ".join(faults) or notes.get("standby_synced_at_kill") is not None):
            allowed = allowed or "the standby did not hold the new flows yet when the active died"
        record = {"episode": number, "faults": faults, "notes": notes, "hold": hold, "active": active,
                  "converged": converged, "converge_seconds": round(converge_seconds, 2),
                  "tcp_survived": tcp_ok, "loss_allowed": allowed,
                  "busy": [(b.get("answered"), b.get("sent"), b.get("error")) for b in busy],
                  "idle": (idle.get("survived"), idle.get("total")),
                  "udp_gap": flows.get("udp", {}).get("max_gap"), "since_apply": round(healed - applied, 2)}
        record["ok"] = converged and (tcp_ok or allowed is not None)
        self.episodes.append(record)
        log(f"episode {number}: {'+'.join(faults)} {notes} held {hold}s: "
            f"{'converged in %.1fs' % converge_seconds if converged else 'NOT CONVERGED within %ds' % CONVERGE_LIMIT}, "
            f"tcp {'survived' if tcp_ok else 'LOST' + (' (allowed: ' + allowed + ')' if allowed else '')}")
        if not tcp_ok:
            log(f"  client sockets at the end:\n{sockets['c']}\n  server sockets:\n{sockets['s']}")
            log(f"  flows: busy (answered, sent, error) {record['busy']}, idle (survived, total) {record['idle']}, "
                f"idle failures {idle.get('failures')}, {flows.get('error', '')}")
        split = (self.monitor.split_seconds if self.monitor else 0) - split_before
        record["split_seconds"] = split
        record["apart_seconds"] = (self.monitor.apart_seconds if self.monitor else 0) - apart_before
        if not converged or not tcp_ok or split or record["apart_seconds"]:
            log(self.diagnose(40 if split or record["apart_seconds"] else 15))
        return record

    def diagnose(self, lines=15):
        c = self.cluster
        out = [f"  roles: { {k: (v.get('role'), v.get('synced'), v.get('leader')) for k, v in self.roles().items()} }",
                 f"  moto: {c.vpc.state()}, router in line: {c.vpc.in_line()}"]
        for k, n in c.nodes.items():
            st = (n.status(timeout=3) or {}) if n.alive() else {}
            drops = {r: v for r, v in (st.get("drops") or {}).items() if v}
            out.append(f"  --- {k} ({'up' if n.alive() else 'down'}): flows {st.get('flows')}, drops {drops}\n"
                         + n.log_tail(lines))
        return "\n".join(out)

    # -- the summary

    def summary(self):
        kinds = {}
        for e in self.episodes:
            for f in e["faults"]:
                kinds[f] = kinds.get(f, 0) + 1
        faults = sum(kinds.values())
        worst = max((e["converge_seconds"] for e in self.episodes if e["converged"]), default=0)
        lost = [e for e in self.episodes if not e["tcp_survived"]]
        return {"seed": self.seed, "episodes": len(self.episodes), "faults": faults, "by_kind": kinds,
                "worst_converge_seconds": worst,
                "not_converged": sum(1 for e in self.episodes if not e["converged"]),
                "episodes_with_lost_connections": len(lost),
                "lost_allowed": [(e["episode"], e["faults"], e["loss_allowed"]) for e in lost if e["loss_allowed"]],
                "lost_not_allowed": [(e["episode"], e["faults"]) for e in lost if not e["loss_allowed"]],
                "split_brain_seconds": self.monitor.split_seconds if self.monitor else None,
                "route_pool_apart_seconds": self.monitor.apart_seconds if self.monitor else None,
                "ok": all(e["ok"] for e in self.episodes)
                and (self.monitor is None or (self.monitor.split_seconds == 0 and self.monitor.apart_seconds == 0))}

    @staticmethod
    def table(s):
        def seconds(v):  # None: the run ended before its monitor started
            return "not measured" if v is None else f"{v:.2f} s"

        rows = ["| fault | count |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(s["by_kind"].items())]
        rows += ["", "| figure | value |", "|---|---|",
                 f"| seed | {s['seed']} |", f"| episodes | {s['episodes']} |", f"| faults | {s['faults']} |",
                 f"| worst time to converge after a heal | {s['worst_converge_seconds']:.1f} s |",
                 f"| episodes that did not converge within {int(CONVERGE_LIMIT)} s | {s['not_converged']} |",
                 f"| episodes with a lost TCP connection | {s['episodes_with_lost_connections']} "
                 f"({len(s['lost_allowed'])} allowed by the rules) |",
                 f"| split-brain seconds (two actives that hear each other) | {seconds(s['split_brain_seconds'])} |",
                 f"| route and pool address apart, over 2 s at a stretch | {seconds(s['route_pool_apart_seconds'])} |"]
        for number, faults, why in s["lost_allowed"]:
            rows.append(f"\nEpisode {number} ({'+'.join(faults)}) lost connections, allowed: {why}.")
        for number, faults in s["lost_not_allowed"]:
            rows.append(f"\nEpisode {number} ({'+'.join(faults)}) LOST connections the rules say survive.")
        return "\n".join(rows)


def run(tunnat, seed, episodes=None, minutes=None, json_path=None, kinds=None):
    # SIGTERM ends the run through its clean-up (the clock stepped back, the namespaces removed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chaos = Chaos(tunnat, seed, kinds=kinds)
    log(f"chaos: seed {seed} (replay with --seed {seed})")
    try:
        chaos.up()
        started = time.monotonic()
        number = 0
        while True:
            if episodes is not None and number >= episodes:
                break
            if minutes is not None and time.monotonic() - started >= minutes * 60:
                break
            number += 1
            chaos.episode(number)
    finally:
        summary = chaos.summary()
        chaos.down()
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"summary": summary, "episodes": chaos.episodes}, f, indent=1)
    return summary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tunnat")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--kinds", default="", help="only these fault kinds, comma-separated, one per episode (K1+K2: both)")
    o = p.parse_args()
    kinds = [k for k in o.kinds.split(",") if k]
    unknown = [k for combo in kinds for k in combo.split("+") if k not in KINDS]
    if unknown:
        sys.exit(f"chaos.py: unknown fault kind(s) {', '.join(unknown)}; the kinds: {', '.join(KINDS)}")
    if os.geteuid() != 0:
        sys.exit("chaos.py needs root (network namespaces, raw sockets, the realtime clock)")
    seed = o.seed if o.seed is not None else random.SystemRandom().randrange(1 << 31)
    if o.episodes is None and o.minutes is None:
        o.episodes = 10
    s = run(o.tunnat, seed, o.episodes, o.minutes, o.json, kinds)
    print(Chaos.table(s))
    sys.exit(0 if s["ok"] else 1)


if __name__ == "__main__":
    main()
