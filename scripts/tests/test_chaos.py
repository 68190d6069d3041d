"""The HA pair under faults, end to end (scripts/lib/chaos.py): two tunnat nodes replicating in namespaces, the EC2
emulator, live TCP and UDP flows, and faults on the sync link (a userspace relay: loss, duplication, delay,
reordering, partitions, forged and replayed datagrams), on the processes (kill -9, a wrong key), on EC2 (hanging,
throttled, failing) and on the clock. Needs root. This is the short form; the long form (30 minutes, 200 faults
and more) is scripts/chaos.sh, and its table is in docs/high-availability.md.

  .venv/bin/python -m pytest scripts/tests/test_chaos.py [--tunnat PATH]      CHAOS_SEED=S replays a schedule

Every packet stays between the cluster's namespaces; every fault is bounded in time and count.
"""
import os
import signal
import sys
import time

import pytest

from chaos import CONVERGE_LIMIT, Chaos
from testbed import wait_for

SEED = int(os.environ.get("CHAOS_SEED", "26"))


@pytest.fixture(scope="module")
def chaos(root, tunnat):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the clean-up steps the clock back
    c = Chaos(tunnat, SEED)
    print(f"\nchaos: seed {SEED} (replay with CHAOS_SEED={SEED})")
    try:
        c.world()
        yield c
    finally:
        c.down()


def status_problem(node):
    return ((node.status() or {}).get("failover") or {}).get("problem")


def test_the_data_plane_starts_and_translates_while_ec2_hangs(chaos):
    """EC2 answers nothing for 8 s while nat-a starts: it starts, becomes the active and translates at once (the
    VPC's route and pool address already point at it), says why routes are not managed, and manages them once EC2
    answers again."""
    c = chaos.cluster
    a = c.nodes["a"]
    c.aws.front.hang_until = time.monotonic() + 8
    a.start()
    assert wait_for(lambda: a.role() == "active", 15), a.log_tail()
    assert wait_for(c.client_reaches_server, 10), "the client reaches the server through nat-a while EC2 hangs"
    assert time.monotonic() < c.aws.front.hang_until, "EC2 was still hanging when the client got through"
    assert wait_for(lambda: status_problem(a) is not None, 10), a.log_tail()
    assert "failover" in (a.status() or {}), "status reports the failover module"
    c.aws.front.hang_until = 0.0
    assert wait_for(lambda: status_problem(a) is None and c.holds_everything("a"), 90), (status_problem(a), a.log_tail())


def test_the_pair_forms(chaos):
    chaos.start_pair()
    assert chaos.converged()


@pytest.mark.parametrize("kind", ["wrong-key", "forged-restart", "stranded", "kill-during-resync", "forged",
                                  "partition-twoway", "ec2-hang", "ec2-throttle"])
def test_a_red_team_fault_heals_to_one_whole_pair(chaos, kind):
    """One episode of one kind: after the heal, one active holding the route and the pool address, a synced standby,
    and the connections the rules say survive, survived."""
    chaos.kinds = [kind]
    e = chaos.episode(len(chaos.episodes) + 1)
    assert e["converged"], chaos.diagnose()
    assert e["tcp_survived"] or e["loss_allowed"], e
    assert e["converge_seconds"] <= CONVERGE_LIMIT
    assert e["split_seconds"] == 0 and e["apart_seconds"] == 0, e


def test_a_seeded_schedule_of_faults_never_splits_the_pair(chaos):
    chaos.kinds = []
    for _ in range(10):
        chaos.episode(len(chaos.episodes) + 1)
    s = chaos.summary()
    print("\n" + Chaos.table(s))
    assert s["not_converged"] == 0, s
    assert not s["lost_not_allowed"], s
    assert s["split_brain_seconds"] == 0 and s["route_pool_apart_seconds"] == 0, s
    assert chaos.cluster.client_reaches_server()
