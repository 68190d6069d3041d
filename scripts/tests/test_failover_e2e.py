"""Connection-preserving failover, end to end: two tunnat instances in network namespaces replicating their table,
an AWS VPC simulated by a router namespace whose routes follow moto's route table and private-IP assignments, and a
client holding long-lived TCP, UDP and ping flows to a server on the "internet" (scripts/lib/failover_cluster.py has
the topology). The active is killed with SIGKILL: the flows must continue through the standby, from the same public
address, and nothing may be reset. Then the killed node comes back, and must stay the standby. Needs root.

  .venv/bin/python -m pytest scripts/tests/test_failover_e2e.py [-k NAME] [--tunnat PATH]

The phases depend on each other, so each is a module fixture that first brings up the one before it: cold start
(nat-a active, nat-b standby), the kill of nat-a, nat-a's return. Any test runs alone; a phase whose prerequisite
did not hold errors its tests with the reason instead of measuring nonsense.
"""
import json

import pytest

from failover_cluster import OUTAGE_LIMIT, PUBLIC, Cluster, rejected_counters, wait_heartbeats
from testbed import wait_for

IDLE, BUSY = 20, 2  # idle and busy TCP connections held across the kill


@pytest.fixture(scope="module")
def cluster(root, tunnat):
    c = Cluster(tunnat, idle=IDLE, busy=BUSY)
    try:
        yield c.up()
    finally:
        c.down()


@pytest.fixture(scope="module")
def cold_start(cluster):
    """nat-a starts alone and becomes the active; then nat-b starts, becomes the standby and syncs."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    a.start()
    seen = {"a active": wait_for(lambda: a.role() == "active", 20), "a log": a.log_tail()}
    seen["state"] = cluster.vpc.state()
    seen["a holds everything"] = cluster.holds_everything("a")
    b.start()
    seen["b standby synced"] = wait_for(lambda: b.role() == "standby" and b.synced(), 20)
    seen["b log"] = b.log_tail()
    seen["client reaches server"] = wait_for(cluster.client_reaches_server, 10)
    return seen


@pytest.fixture(scope="module")
def kill_active(cluster, cold_start):
    """Flows through nat-a, then kill -9 nat-a three seconds in."""
    if not (cold_start["a active"] and cold_start["b standby synced"]):
        pytest.fail(f"prerequisite: nat-a active ({cold_start['a active']}) and nat-b a synced standby "
                    f"({cold_start['b standby synced']}):\n{cold_start['a log']}\n{cold_start['b log']}", pytrace=False)
    return cluster.failover_round(cluster.nodes["a"], cluster.nodes["b"])


@pytest.fixture(scope="module")
def rejoin(cluster, kill_active):
    """nat-a comes back; twenty heartbeat rounds after it has resynced (what it would do, it has done by then), who
    holds what."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    if not kill_active.figures["took_over"]:
        pytest.fail(f"prerequisite: nat-b took over after the kill:\n{b.log_tail()}", pytrace=False)
    a.start()
    seen = {"a standby synced": wait_for(lambda: a.role() == "standby" and a.synced(), 20), "a log": a.log_tail()}
    seen["rounds"] = wait_heartbeats((a, b), 20)
    seen["state"] = cluster.vpc.state()
    seen["b holds everything"] = cluster.holds_everything("b")
    seen["roles"] = (a.role(), b.role())
    seen["rejected"] = rejected_counters(b)
    return seen


# --- cold start ---------------------------------------------------------------------------------------------------

def test_cold_start_nat_a_becomes_the_active(cold_start):
    assert cold_start["a active"], cold_start["a log"]


def test_cold_start_route_and_pool_address_are_nat_a(cold_start):
    route, holders = cold_start["state"]
    assert cold_start["a holds everything"], f"route {route}, pool on {holders}"


def test_cold_start_nat_b_follows_as_standby_and_completes_its_bulk_sync(cold_start):
    assert cold_start["b standby synced"], cold_start["b log"]


def test_cold_start_client_reaches_the_server_through_nat_a(cold_start):
    assert cold_start["client reaches server"]


# --- kill -9 of the active ----------------------------------------------------------------------------------------

def test_kill_nat_b_takes_over(kill_active, cluster):
    assert kill_active.figures["took_over"], cluster.nodes["b"].log_tail()


def test_kill_route_and_pool_address_move_to_nat_b_and_the_router_follows(kill_active, cluster):
    assert kill_active.figures["route_moved"], f"{cluster.vpc.state()} applied {cluster.vpc.applied}"


def test_kill_every_busy_tcp_connection_survives_nothing_reset_or_lost(kill_active):
    assert kill_active.busy_tcp_ok, json.dumps(kill_active.busy) + json.dumps(kill_active.flows.get("error"))


def test_kill_every_idle_tcp_connection_survives(kill_active):
    idle = kill_active.idle
    assert kill_active.idle_tcp_ok, f"{idle.get('survived')}/{idle.get('total')}: " \
                                    f"{json.dumps(idle.get('failures', [])[:5])}"


def test_kill_the_server_sees_one_public_address_throughout(kill_active):
    assert kill_active.source_addresses == {PUBLIC}, str(sorted(map(str, kill_active.sources)))


def test_kill_the_udp_stream_keeps_its_public_address_and_port(kill_active):
    assert len(kill_active.udp.get("sources", [])) == 1, str(kill_active.udp)


def test_kill_outage_at_most_2_seconds(kill_active):
    assert kill_active.outage <= OUTAGE_LIMIT, f"gaps (s): {kill_active.gaps}, limit {OUTAGE_LIMIT}"


# --- the old active comes back ------------------------------------------------------------------------------------

def test_rejoin_nat_a_rejoins_as_standby_and_resyncs(rejoin):
    assert rejoin["a standby synced"], rejoin["a log"]


def test_rejoin_nat_a_does_not_take_the_route_or_the_pool_address_back(rejoin):
    route, holders = rejoin["state"]
    assert rejoin["rounds"], "the nodes did not send 20 heartbeats each within 30 s"
    assert rejoin["b holds everything"] and rejoin["roles"] == ("standby", "active"), \
        f"route {route}, pool {holders}, roles (a, b) {rejoin['roles']}"


def test_rejoin_no_message_between_the_peers_was_rejected(rejoin):
    assert not rejoin["rejected"], str(rejoin["rejected"])


def test_router_follows_moto(rejoin, cluster):
    """Over the whole run (cold start, the kill and the return), every change to moto's route and pool address was
    in the router before the call that made it returned, and the router routes as moto says at the end."""
    assert not cluster.vpc.errors, cluster.vpc.errors
    assert cluster.vpc.in_line(), f"moto {cluster.vpc.state()}, router {cluster.vpc.applied}"
