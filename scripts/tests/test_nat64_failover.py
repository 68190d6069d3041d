"""NAT64 sessions across a failover, end to end: the pair of test_failover_e2e.py (scripts/lib/failover_cluster.py)
with NAT64 on (Cluster(nat64=True)). The client, dual-stack, holds long-lived TCP connections, a UDP stream and a ping
to the IPv4-only server through NAT64 (to its address in 64:ff9b:1::/96); the private subnet's route to the NAT64
prefix lives in moto's route table next to its default route, and tunnat's failover moves both. The active is killed
with SIGKILL; then, with the killed node back as a synced standby, a planned handover gives the role back. Every
NAT64 connection must survive both, from the same public address. Needs root.

  .venv/bin/python -m pytest scripts/tests/test_nat64_failover.py [-k NAME] [--tunnat PATH]
"""
import json

import pytest

from failover_cluster import (HANDOVER_OUTAGE_LIMIT, NAT64_PREFIX, OUTAGE_LIMIT, PUBLIC, SERVER6, Cluster,
                              rejected_counters)
from testbed import wait_for

IDLE, BUSY = 5, 2


@pytest.fixture(scope="module")
def cluster(root, tunnat):
    # A management network of its own (10.74.0.0/24): it may run beside the failover and chaos suites.
    c = Cluster(tunnat, idle=IDLE, busy=BUSY, prefix="t64", nat64=True, management="10.74.0")
    try:
        yield c.up()
    finally:
        c.down()


@pytest.fixture(scope="module")
def cold_start(cluster):
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    a.start()
    seen = {"a active": wait_for(lambda: a.role() == "active", 20)}
    b.start()
    seen["b standby synced"] = wait_for(lambda: b.role() == "standby" and b.synced(), 20)
    seen["route6"] = wait_for(lambda: cluster.vpc.applied["route6"] == cluster.vpc.nat["a"]["eni"], 10)
    seen["logs"] = a.log_tail() + "\n" + b.log_tail()
    return seen


@pytest.fixture(scope="module")
def kill_active(cluster, cold_start):
    if not (cold_start["a active"] and cold_start["b standby synced"]):
        pytest.fail(f"prerequisite: nat-a active and nat-b a synced standby:\n{cold_start['logs']}", pytrace=False)
    return cluster.failover_round(cluster.nodes["a"], cluster.nodes["b"], target=SERVER6)


@pytest.fixture(scope="module")
def handover_back(cluster, kill_active):
    """nat-a comes back as a standby and resyncs; then `tunnat handover` on nat-b gives it the role back."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    if not kill_active.figures["took_over"]:
        pytest.fail(f"prerequisite: nat-b took over after the kill:\n{b.log_tail()}", pytrace=False)
    a.start()
    if not wait_for(lambda: a.role() == "standby" and a.synced(), 20):
        pytest.fail(f"prerequisite: nat-a rejoined as a synced standby:\n{a.log_tail()}", pytrace=False)
    return cluster.failover_round(b, a, handover=True, target=SERVER6)


def check_round(r, limit):
    assert r.figures["took_over"] and r.figures["route_moved"], json.dumps(r.figures)
    assert r.busy_tcp_ok, json.dumps(r.busy) + json.dumps(r.flows.get("error"))
    assert r.idle_tcp_ok, f"{r.idle.get('survived')}/{r.idle.get('total')}: {json.dumps(r.idle.get('failures', [])[:5])}"
    assert r.source_addresses == {PUBLIC}, str(sorted(map(str, r.sources)))
    assert len(r.udp.get("sources", [])) == 1, str(r.udp)
    assert r.outage <= limit, f"gaps (s): {r.gaps}, limit {limit}"


def test_cold_start_nat64_route_points_at_nat_a(cold_start):
    assert cold_start["a active"] and cold_start["b standby synced"] and cold_start["route6"], cold_start["logs"]


def test_kill_every_nat64_connection_survives_from_the_same_public_address(kill_active):
    check_round(kill_active, OUTAGE_LIMIT)


def test_kill_nat64_sessions_were_replicated_before_it(kill_active, cluster):
    assert kill_active.figures["replicated_before_kill"], json.dumps(kill_active.figures)
    survivor = cluster.nodes["b"].status() or {}
    assert survivor.get("nat64", {}).get("hosts", 0) >= 1, json.dumps(survivor.get("nat64"))


def test_handover_every_nat64_connection_survives(handover_back):
    check_round(handover_back, HANDOVER_OUTAGE_LIMIT)
    assert handover_back.figures["handover"] and "complete" in handover_back.figures["handover"], \
        handover_back.figures["handover"]


def test_the_nat64_route_follows_the_active_in_moto(handover_back, cluster):
    assert cluster.vpc.route6_target(cluster.vpc.ec2) == cluster.vpc.nat["a"]["eni"]
    assert cluster.vpc.applied["route6"] == cluster.vpc.nat["a"]["eni"] and not cluster.vpc.errors, cluster.vpc.errors
    routes = [r for r in cluster.vpc.ec2.describe_route_tables(RouteTableIds=[cluster.vpc.table])["RouteTables"][0]["Routes"]
              if r.get("DestinationIpv6CidrBlock") == NAT64_PREFIX]
    assert len(routes) == 1, routes


def test_no_message_between_the_peers_was_rejected(handover_back, cluster):
    assert not rejected_counters(cluster.nodes["a"]) and not rejected_counters(cluster.nodes["b"])
