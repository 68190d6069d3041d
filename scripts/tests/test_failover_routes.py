"""The failover control plane, `tunnat routes`, against a real EC2 API emulator: moto_server on loopback with SigV4
verification on (INITIAL_NO_AUTH_ACTION_COUNT), a fake IMDSv2 and the EC2 front of awsfakes.py, and a network
namespace whose addresses stand in for the other NAT instance (ping, tcp, http and remote health checks reach only it).

  .venv/bin/python -m pytest scripts/tests/test_failover_routes.py [-k NAME] [--tunnat PATH]

Each test makes its own VPC in the one moto of the module, so any test runs alone. Where one `tunnat routes` pass
decides many things (the finders, the health checks, the takeovers, the pool address move, the daemon's timeline),
a module fixture runs that pass once and each test asserts one of its outcomes. The health check and takeover tests
need root (the namespace); the others do not.
"""
import collections
import os
import subprocess
import sys
import time

import pytest

from testbed import AWS, REGION, Namespaces, end, sh, wait_for, wait_port

Result = collections.namedtuple("Result", "rc out err")
Result.__str__ = lambda r: f"rc={r.rc} stdout={r.out[-300:]!r} stderr={r.err[-400:]!r}"


class Routes:
    """Worlds (a VPC, this instance, others) in moto, and `tunnat routes` runs against them."""

    def __init__(self, tunnat, aws, imds, home):
        self.tunnat, self.aws, self.ec2, self.imds, self.home = tunnat, aws, aws.ec2, imds, str(home)

    def world(self, others=("10.77.0.2",)):
        vpc = self.ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/24",
                                        AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        me = self.aws.launch(subnet, "10.77.0.1")
        return {"vpc": vpc, "subnet": subnet, "me": me, "others": [self.aws.launch(subnet, ip) for ip in others],
                "identity": self.aws.identity(me, vpc, subnet)}

    def world_with_table(self, name):
        """A world and one table tagged Name=name in it, with no route yet: (world, table id)."""
        w = self.world()
        return w, self.table(w, {"Name": name})

    def table(self, w, tags, subnet=None):
        t = self.ec2.create_route_table(VpcId=w["vpc"])["RouteTable"]["RouteTableId"]
        self.ec2.create_tags(Resources=[t], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        if subnet:
            self.ec2.associate_route_table(RouteTableId=t, SubnetId=subnet)
        return t

    def route(self, t, cidr):
        tables = self.ec2.describe_route_tables(RouteTableIds=[t])["RouteTables"]
        key = "DestinationIpv6CidrBlock" if ":" in cidr else "DestinationCidrBlock"
        return next((r for r in tables[0]["Routes"] if r.get(key) == cidr), None)

    def target(self, t, cidr):
        r = self.route(t, cidr)
        return r and r.get("NetworkInterfaceId")

    def tables_with(self, tables, cidr):
        return {name for name, t in tables.items() if self.route(t, cidr)}

    def env(self, extra=None):
        e = {"PATH": os.environ["PATH"], "HOME": self.home, "AWS_ACCESS_KEY_ID": self.aws.key,
             "AWS_SECRET_ACCESS_KEY": self.aws.secret, "AWS_ENDPOINT_URL_EC2": self.aws.front.url,
             "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.url}
        e.update(extra or {})
        return {k: v for k, v in e.items() if v is not None}

    def write_config(self, config, name="config.yaml"):
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(config)
        return path

    def run(self, w, config, *flags, env=None, timeout=120):
        """`tunnat routes` as world w's instance (the IMDS answers with its identity)."""
        self.imds.identity = w["identity"]
        p = subprocess.run([self.tunnat, "routes", "--config", self.write_config(config), *flags], env=self.env(env),
                           capture_output=True, text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def aws(module_procs):
    a = AWS(module_procs, REGION)
    yield a
    a.close()


@pytest.fixture(scope="module")
def imds(aws):
    return aws.imds()


def reset_fakes(aws, imds):
    aws.front.inject, aws.front.impaired, aws.front.races = [], set(), {}
    aws.front.calls.clear()
    imds.role = None
    imds.requests.clear()


@pytest.fixture(autouse=True)
def fresh_fakes(aws, imds):
    """No injected errors, races, impaired instances or role, and empty request logs: before every test, and after
    it, so that a module fixture set up between two tests finds them clean too."""
    reset_fakes(aws, imds)
    yield
    reset_fakes(aws, imds)


@pytest.fixture
def routes(tunnat, aws, imds, tmp_path):
    return Routes(tunnat, aws, imds, tmp_path)


@pytest.fixture(scope="module")
def module_routes(tunnat, aws, imds, tmp_path_factory):
    return Routes(tunnat, aws, imds, tmp_path_factory.mktemp("routes"))


@pytest.fixture(scope="module")
def peer(root, module_procs, tmp_path_factory):
    """The other NAT's addresses, 10.77.0.2 and 10.77.0.3, in a namespace of our own behind a veth pair (we are
    10.77.0.1): an HTTP server on 10.77.0.2:8080 and a TLS one with our own certificate for web.test on :8443."""
    work = str(tmp_path_factory.mktemp("peer"))
    ns = Namespaces("tnfo")
    va, vb = ns.root_link(f"{ns.prefix}a"), f"{ns.prefix}b"
    try:
        name = ns.add("p")
        sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        sh("ip", "link", "set", vb, "netns", name)
        sh("ip", "addr", "add", "10.77.0.1/24", "dev", va)
        sh("ip", "link", "set", va, "up")
        ns.exec("p", "ip", "addr", "add", "10.77.0.2/24", "dev", vb)
        ns.exec("p", "ip", "addr", "add", "10.77.0.3/24", "dev", vb)
        ns.exec("p", "ip", "link", "set", vb, "up")
        module_procs.start(ns.argv("p", sys.executable, "-m", "http.server", "--bind", "10.77.0.2", "8080",
                                   "--directory", work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cert, keyfile = os.path.join(work, "web.pem"), os.path.join(work, "web.key")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=web.test",
           "-addext", "subjectAltName=DNS:web.test", "-keyout", keyfile, "-out", cert)
        tls_server = ("import http.server, ssl\n"
                      "s = http.server.HTTPServer(('10.77.0.2', 8443), http.server.SimpleHTTPRequestHandler)\n"
                      "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
                      f"c.load_cert_chain({cert!r}, {keyfile!r})\n"
                      "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
                      "s.serve_forever()\n")
        module_procs.start(ns.argv("p", sys.executable, "-c", tls_server), cwd=work, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        assert wait_port("10.77.0.2", 8080) and wait_port("10.77.0.2", 8443), "the namespace's web servers did not start"
        yield {"ns": ns, "link": vb, "cert": cert, "work": work}
    finally:
        ns.cleanup()


# --- SigV4 and credentials against moto ------------------------------------------------------------------------

ONE_ROUTE = """
routetables:
  a:
    find: {type: by_tag, config: {key: Name, value: private a}}
    manage_routes:
      - {cidr: 0.0.0.0/0, instance: SELF}
"""


@pytest.fixture
def private_a(routes):
    """A world with one table, "private a", and no route in it yet."""
    return routes.world_with_table("private a")


def test_credentials_wrong_secret_gets_auth_failure_and_is_never_printed(routes, private_a, aws):
    w, _ = private_a
    r = routes.run(w, ONE_ROUTE, "--oneshot", env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert r.rc == 1 and "AuthFailure" in r.err, f"a wrong secret gets AuthFailure from moto, exit 1: {r}"
    assert aws.secret not in r.out + r.err and "not-the-secret" not in r.out + r.err, \
        "credentials never appear in the output"


def test_credentials_shared_file_profile_from_aws_profile(routes, private_a, aws):
    w, _ = private_a
    os.makedirs(os.path.join(routes.home, ".aws"), exist_ok=True)
    with open(os.path.join(routes.home, ".aws", "credentials"), "w") as f:
        f.write(f"[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[nat]\n"
                f"aws_access_key_id = {aws.key}\naws_secret_access_key = {aws.secret}\n")
    r = routes.run(w, ONE_ROUTE, "--oneshot", "--noop", "--log-level", "info",
                   env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": "nat"})
    assert r.rc == 3 and "sharedFile" in r.err and "[nat]" not in r.err and "profile: \"nat\"" in r.err, str(r)


def test_credentials_instance_role_through_imdsv2_never_printed(routes, private_a, aws, imds):
    w, _ = private_a
    iam = aws.client("iam")
    iam.create_role(RoleName="nat", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":'
                    '"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}')
    iam.put_role_policy(RoleName="nat", PolicyName="all", PolicyDocument=
                        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
    session = aws.client("sts").assume_role(RoleArn="arn:aws:iam::123456789012:role/nat",
                                            RoleSessionName="tunnat")["Credentials"]
    imds.role = {"name": "nat-role", "AccessKeyId": session["AccessKeyId"], "SecretAccessKey": session["SecretAccessKey"],
                 "Token": session["SessionToken"], "Expiration": session["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}
    r = routes.run(w, ONE_ROUTE, "--oneshot", "--noop", "--log-level", "info",
                   env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    assert r.rc == 3 and "instanceRole" in r.err, f"instance role credentials (with a session token): {r}"
    assert session["SecretAccessKey"] not in r.out + r.err and session["SessionToken"] not in r.out + r.err, \
        "the role's secret and token never appear in the output"


def test_credentials_none_anywhere_one_clear_line(routes, private_a):
    w, _ = private_a
    r = routes.run(w, ONE_ROUTE, "--oneshot", env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    assert r.rc == 1 and "no AWS credentials" in r.err, str(r)


# --- create, noop, oneshot ---------------------------------------------------------------------------------------

def test_noop_prints_the_change_exits_3_changes_nothing(routes, private_a):
    w, t = private_a
    r = routes.run(w, ONE_ROUTE, "--oneshot", "--noop")
    assert r.rc == 3 and "noop: would create route 0.0.0.0/0" in r.out and routes.route(t, "0.0.0.0/0") is None, str(r)


def test_oneshot_creates_the_route_to_this_instances_eni(routes, private_a):
    w, t = private_a
    r = routes.run(w, ONE_ROUTE, "--oneshot")
    assert r.rc == 3 and routes.target(t, "0.0.0.0/0") == w["me"]["eni"], str(r)


def test_oneshot_second_pass_changes_nothing(routes, private_a):
    w, t = private_a
    first = routes.run(w, ONE_ROUTE, "--oneshot")
    assert first.rc == 3, f"the first pass creates the route: {first}"
    r = routes.run(w, ONE_ROUTE, "--oneshot")
    assert r.rc == 0 and "no changes" in r.out, str(r)


NAT64_ROUTE = """
routetables:
  a:
    find: {type: by_tag, config: {key: Name, value: private a}}
    manage_routes:
      - {cidr: 0.0.0.0/0, instance: SELF}
      - {cidr: 64:ff9b::/96, instance: SELF}
"""


def test_nat64_route_of_ipv6_only_subnets_created_then_replaced(routes, private_a):
    """NAT64: the IPv6 route to the prefix (DestinationIpv6CidrBlock) is made, and taken over from another ENI."""
    w, t = private_a
    r = routes.run(w, NAT64_ROUTE, "--oneshot")
    assert r.rc == 3 and routes.target(t, "64:ff9b::/96") == w["me"]["eni"], str(r)
    other = routes.ec2.create_network_interface(SubnetId=w["subnet"])["NetworkInterface"]["NetworkInterfaceId"]
    routes.ec2.replace_route(RouteTableId=t, DestinationIpv6CidrBlock="64:ff9b::/96", NetworkInterfaceId=other)
    assert routes.target(t, "64:ff9b::/96") == other
    r = routes.run(w, NAT64_ROUTE, "--oneshot")
    assert r.rc == 3 and routes.target(t, "64:ff9b::/96") == w["me"]["eni"], str(r)
    assert "replace route 64:ff9b::/96" in r.out, str(r)


def test_instance_identity_from_imdsv2_with_a_token(routes, private_a, imds):
    w, _ = private_a
    routes.run(w, ONE_ROUTE, "--oneshot")
    assert ("PUT", "/latest/api/token") in imds.requests and ("GET", "/latest/meta-data/instance-id") in imds.requests, \
        str(imds.requests)


# --- route table finders, in this VPC only -----------------------------------------------------------------------

FINDERS = {  # cidr: (finder, tables it must find)
    "192.168.1.1/32": ("{type: by_tag, config: {key: type, value: private}}", {"t1", "t2"}),
    "192.168.2.1/32": ("{type: by_tag_regexp, config: {key: Name, regexp: '^pub-[0-9]+$'}}", {"t3"}),
    "192.168.3.1/32": ("{type: and, config: {filters: [{type: by_tag, config: {key: type, value: private}}, "
                       "{type: by_tag, not: true, config: {key: az, value: a}}]}}", {"t2"}),
    "192.168.4.1/32": ("{type: or, config: {filters: [{type: by_tag, config: {key: az, value: a}}, "
                       "{type: by_tag, config: {key: Name, value: pub-1}}]}}", {"t1", "t3"}),
    "192.168.5.1/32": ("{type: main}", {"main"}),
    "192.168.6.1/32": ("{type: subnet, config: {subnet_id: SUBNET}}", {"t1"}),
    "192.168.7.1/32": ("{type: has_route_to, config: {cidr: 192.168.99.0/24}}", {"t3"}),
    "192.168.8.1/32": ("{type: main, not: true}", {"t1", "t2", "t3"}),
}
FINDER_IDS = ["by_tag", "by_tag_regexp", "and_with_not", "or", "main", "subnet", "has_route_to", "not_main"]


@pytest.fixture(scope="module")
def finders(module_routes):
    """One pass over a table per finder, each managing its own /32 (route_tables spelling, instance defaults to
    SELF); t1 private in az a on subnet s1, t2 private in az b, t3 public with a route to 192.168.99.0/24, the main
    table, and a table tagged private in another VPC."""
    routes, ec2 = module_routes, module_routes.ec2
    w = routes.world()
    s1 = ec2.create_subnet(VpcId=w["vpc"], CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    tables = {"t1": routes.table(w, {"type": "private", "az": "a"}, subnet=s1),
              "t2": routes.table(w, {"type": "private", "az": "b"}),
              "t3": routes.table(w, {"type": "public", "Name": "pub-1"})}
    ec2.create_route(RouteTableId=tables["t3"], DestinationCidrBlock="192.168.99.0/24",
                     NetworkInterfaceId=w["others"][0]["eni"])
    tables["main"] = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [w["vpc"]]},
                                                        {"Name": "association.main", "Values": ["true"]}]
                                               )["RouteTables"][0]["RouteTableId"]
    foreign_vpc = ec2.create_vpc(CidrBlock="10.78.0.0/16")["Vpc"]["VpcId"]
    foreign = ec2.create_route_table(VpcId=foreign_vpc)["RouteTable"]["RouteTableId"]
    ec2.create_tags(Resources=[foreign], Tags=[{"Key": "type", "Value": "private"}])
    cfg = "route_tables:\n" + "".join(f"  f{i}:\n    find: {f.replace('SUBNET', s1)}\n    manage_routes: [{{cidr: '{c}'}}]\n"
                                      for i, (c, (f, _)) in enumerate(FINDERS.items()))
    return {"result": routes.run(w, cfg, "--oneshot"), "tables": tables, "foreign": foreign}


def test_finders_pass_ran(finders):
    assert finders["result"].rc == 3, str(finders["result"])


@pytest.mark.parametrize("cidr", list(FINDERS), ids=FINDER_IDS)
def test_finder(finders, module_routes, cidr):
    finder, expected = FINDERS[cidr]
    got = module_routes.tables_with(finders["tables"], cidr)
    assert got == expected, f"{finder} found {sorted(got)}, wanted {sorted(expected)}"


def test_finder_never_touches_a_matching_table_in_another_vpc(finders, module_routes):
    assert module_routes.route(finders["foreign"], "192.168.1.1/32") is None


NOTHING = "routetables:\n  x:\n    find: {type: by_tag, config: {key: type, value: none}}\n" \
          "    manage_routes: [{cidr: 10.99.0.0/16}]\n"


def test_finder_finding_nothing_is_an_error(routes):
    r = routes.run(routes.world(), NOTHING, "--oneshot")
    assert r.rc == 1 and "found no route table" in r.err, str(r)


def test_finder_finding_nothing_is_fine_with_no_results_ok(routes):
    r = routes.run(routes.world(), NOTHING.replace("find: {", "find: {no_results_ok: true, "), "--oneshot")
    assert r.rc == 0, str(r)


# --- health checks (ping on its own socket, tcp, http, command) and what they decide -----------------------------

HEALTH = """
healthchecks:
  ping_up: {{type: ping, destination: 10.77.0.2, rise: 2, fall: 2, every: 1}}
  ping_down: {{type: ping, destination: 10.77.0.9, rise: 1, fall: 1, every: 1}}
  tcp_up:
    type: tcp
    destination: 10.77.0.2
    rise: 1
    every: 1
    config: {{port: 8080, send: "HEAD / HTTP/1.0\\r\\n\\r\\n", expect: 200 OK}}
  tcp_down: {{type: tcp, destination: 10.77.0.2, fall: 1, every: 1, config: {{port: 8081}}}}
  http_up: {{type: http, destination: 10.77.0.2, rise: 1, every: 1, config: {{port: 8080, path: /, status: 200}}}}
  http_wrong_status: {{type: http, destination: 10.77.0.2, fall: 1, every: 1, config: {{port: 8080, status: [201]}}}}
  cmd_up:
    type: command
    destination: 10.77.0.2
    rise: 1
    every: 1
    config: {{command: test, arguments: ["%DESTINATION%", "=", "10.77.0.2"]}}
    run_on_healthy: [touch, {marker}]
  cmd_down: {{type: command, destination: 10.77.0.2, fall: 1, every: 1, config: {{command: "false"}}}}
  https_ca: {{type: https, destination: 10.77.0.2, rise: 1, every: 1, config: {{port: 8443, certPath: {cert}, serverName: web.test}}}}
  https_untrusted: {{type: https, destination: 10.77.0.2, fall: 1, every: 1, config: {{port: 8443, serverName: web.test}}}}
  https_skip: {{type: https, destination: 10.77.0.2, rise: 1, every: 1, config: {{port: 8443, skipVerify: true}}}}
  tls_tcp:
    type: tcp
    destination: 10.77.0.2
    rise: 1
    every: 1
    config: {{port: 8443, ssl: true, certPath: {cert}, serverName: web.test, send: "HEAD / HTTP/1.0\\r\\n\\r\\n", expect: 200 OK}}
  tls_tcp_wrong_name: {{type: tcp, destination: 10.77.0.2, fall: 1, every: 1, config: {{port: 8443, ssl: true, certPath: {cert}, serverName: other.test}}}}
routetables:
  hc:
    find: {{type: by_tag, config: {{key: Name, value: hc}}}}
    manage_routes:
      - {{cidr: 172.16.1.0/24, healthcheck: ping_up}}
      - {{cidr: 172.16.2.0/24, healthcheck: ping_down}}
      - {{cidr: 172.16.3.0/24, healthcheck: tcp_up}}
      - {{cidr: 172.16.4.0/24, healthcheck: tcp_down}}
      - {{cidr: 172.16.5.0/24, healthcheck: http_up}}
      - {{cidr: 172.16.6.0/24, healthcheck: http_wrong_status}}
      - {{cidr: 172.16.7.0/24, healthcheck: cmd_up}}
      - {{cidr: 172.16.8.0/24, healthcheck: cmd_down}}
      - {{cidr: 172.16.9.0/24, healthcheck: https_ca}}
      - {{cidr: 172.16.10.0/24, healthcheck: https_untrusted}}
      - {{cidr: 172.16.11.0/24, healthcheck: https_skip}}
      - {{cidr: 172.16.12.0/24, healthcheck: tls_tcp}}
      - {{cidr: 172.16.13.0/24, healthcheck: tls_tcp_wrong_name}}
      - {{cidr: 10.1.0.0/16, healthcheck: cmd_down}}
      - {{cidr: 10.2.0.0/16, healthcheck: cmd_down, never_delete: true}}
"""

HEALTH_CASES = [  # n (the route 172.16.n.0/24), what it checks, healthy
    (1, "ping", True), (2, "ping to a silent address", False), (3, "tcp send/expect", True),
    (4, "tcp to a closed port", False), (5, "http status 200", True), (6, "http expecting 201", False),
    (7, "command with %DESTINATION%", True), (8, "command exiting 1", False), (9, "https, our CA, serverName", True),
    (10, "https, certificate not trusted (verification is on)", False), (11, "https, skipVerify", True),
    (12, "tcp over TLS, send/expect", True), (13, "tcp over TLS, wrong serverName", False)]
HEALTH_IDS = ["ping", "ping_silent", "tcp_expect", "tcp_closed", "http_200", "http_201", "command_destination",
              "command_false", "https_ca", "https_untrusted", "https_skip_verify", "tls_tcp", "tls_tcp_wrong_name"]


@pytest.fixture(scope="module")
def health(module_routes, peer):
    """One pass with a route per health check, and two routes of ours (10.1/16, 10.2/16 never_delete) behind a
    failing one."""
    routes = module_routes
    w = routes.world()
    t = routes.table(w, {"Name": "hc"})
    for c in ("10.1.0.0/16", "10.2.0.0/16"):
        routes.ec2.create_route(RouteTableId=t, DestinationCidrBlock=c, NetworkInterfaceId=w["me"]["eni"])
    marker = os.path.join(routes.home, "ran")
    cfg = HEALTH.format(marker=marker, cert=peer["cert"])
    return {"world": w, "table": t, "marker": marker, "config": cfg, "result": routes.run(w, cfg, "--oneshot")}


def test_health_check_pass_ran(health):
    assert health["result"].rc == 3, str(health["result"])


@pytest.mark.parametrize("n,what,healthy", HEALTH_CASES, ids=HEALTH_IDS)
def test_health_check(health, module_routes, n, what, healthy):
    got = module_routes.target(health["table"], f"172.16.{n}.0/24")
    log = " | ".join(line for line in health["result"].err.splitlines()
                     if f"172.16.{n}.0/24" in line or "health check" in line)[-600:]
    if healthy:
        assert got == health["world"]["me"]["eni"], f"{what}: healthy, so the route is created; route {got}; {log}"
    else:
        assert got is None, f"{what}: unhealthy, so no route is created; route {got}; {log}"


def test_health_check_run_on_healthy_ran(health):
    assert os.path.exists(health["marker"])


def test_health_check_failing_deletes_our_route(health, module_routes):
    assert module_routes.route(health["table"], "10.1.0.0/16") is None


def test_health_check_failing_keeps_our_route_with_never_delete(health, module_routes):
    assert module_routes.target(health["table"], "10.2.0.0/16") == health["world"]["me"]["eni"]


def test_health_check_ping_fails_once_the_link_is_down_and_our_route_goes(health, module_routes, peer):
    routes, t = module_routes, health["table"]
    assert routes.route(t, "172.16.1.0/24") is not None, "the first pass made the ping-checked route"
    peer["ns"].exec("p", "ip", "link", "set", peer["link"], "down")
    try:
        r = routes.run(health["world"], health["config"].replace(
            "ping_up: {type: ping, destination: 10.77.0.2, rise: 2, fall: 2",
            "ping_up: {type: ping, destination: 10.77.0.2, rise: 2, fall: 1"), "--oneshot")
    finally:
        peer["ns"].exec("p", "ip", "link", "set", peer["link"], "up")
    assert routes.route(t, "172.16.1.0/24") is None, str(r)


# --- taking over another instance's route (if_unhealthy, remote checks, instance status) --------------------------

TAKEOVER_CASES = {  # name: (holder: ok, impaired, stopped or down, spec, taken over)
    "plain": ("ok", "", True),
    "healthy-holder": ("ok", "if_unhealthy: true", False),
    "impaired-holder": ("impaired", "if_unhealthy: true", True),
    "stopped-holder": ("stopped", "if_unhealthy: true", True),
    "remote-up": ("ok", "if_unhealthy: true, remote_healthcheck: web", False),
    "remote-down": ("down", "if_unhealthy: true, remote_healthcheck: web", True),
    "local-failing": ("ok", "healthcheck: down", False),
}


@pytest.fixture(scope="module")
def takeover(module_routes, peer):
    """A table per case whose 0.0.0.0/0 points at another instance: ok 10.77.0.2 (answers on :8080), impaired
    10.77.0.3, stopped 10.77.0.4, down 10.77.0.5 (nothing answers); one pass with instance SELF on each."""
    routes, ec2 = module_routes, module_routes.ec2
    w = routes.world(others=("10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5"))
    holders = dict(zip(("ok", "impaired", "stopped", "down"), w["others"]))
    ids = {}
    for name, (holder, _, _) in TAKEOVER_CASES.items():
        ids[name] = routes.table(w, {"case": name})
        ec2.create_route(RouteTableId=ids[name], DestinationCidrBlock="0.0.0.0/0",
                         NetworkInterfaceId=holders[holder]["eni"])
    routes.aws.front.impaired.add(holders["impaired"]["id"])
    ec2.stop_instances(InstanceIds=[holders["stopped"]["id"]])
    cfg = "healthchecks:\n  down: {type: command, destination: 10.77.0.2, fall: 1, every: 1, config: {command: \"false\"}}\n"
    cfg += "remote_healthchecks:\n  web: {type: tcp, rise: 1, fall: 1, every: 1, config: {port: 8080}}\nroutetables:\n"
    for name, (_, spec, _) in TAKEOVER_CASES.items():
        cfg += f"  {name}:\n    find: {{type: by_tag, config: {{key: case, value: {name}}}}}\n"
        cfg += f"    manage_routes: [{{cidr: 0.0.0.0/0, instance: SELF{', ' + spec if spec else ''}}}]\n"
    try:
        result = routes.run(w, cfg, "--oneshot")
    finally:
        routes.aws.front.impaired.clear()
    return {"world": w, "holders": holders, "tables": ids, "result": result}


@pytest.mark.parametrize("case", list(TAKEOVER_CASES))
def test_takeover(takeover, module_routes, case):
    holder, _, taken = TAKEOVER_CASES[case]
    got = module_routes.target(takeover["tables"][case], "0.0.0.0/0")
    want = takeover["world"]["me"]["eni"] if taken else takeover["holders"][holder]["eni"]
    assert got == want, f"{case}: {'taken over' if taken else 'left with its holder'}: route -> {got}; " \
                        f"{takeover['result'].err[-300:]}"


# --- the pool addresses move with the route ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool_move(module_routes, aws, imds):
    """The route and the pool address 10.77.0.50 (with an Elastic IP) on a stopped instance; one pass taking over."""
    routes, ec2 = module_routes, module_routes.ec2
    w = routes.world(others=("10.77.0.2",))
    other = w["others"][0]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=other["eni"], PrivateIpAddresses=["10.77.0.50"])
    eip = ec2.allocate_address(Domain="vpc")
    aws.front.associate_address(eip["AllocationId"], other["eni"], "10.77.0.50")
    t = routes.table(w, {"Name": "pool"})
    ec2.create_route(RouteTableId=t, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=other["eni"])
    ec2.stop_instances(InstanceIds=[other["id"]])
    cfg = """
pool_address: 10.77.0.50
routetables:
  pool:
    find: {type: by_tag, config: {key: Name, value: pool}}
    manage_routes: [{cidr: 0.0.0.0/0, if_unhealthy: true}]
"""
    imds.requests.clear()
    aws.front.calls.clear()
    result = routes.run(w, cfg, "--oneshot")
    return {"world": w, "other": other, "table": t, "result": result, "eip": eip["PublicIp"],
            "imds_requests": list(imds.requests), "ec2_calls": list(aws.front.calls)}


def private_ips(ec2, eni):
    return [a["PrivateIpAddress"] for a in
            ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["PrivateIpAddresses"]]


def test_pool_route_taken_over_from_the_stopped_blackholed_holder(pool_move, module_routes):
    assert module_routes.target(pool_move["table"], "0.0.0.0/0") == pool_move["world"]["me"]["eni"], \
        pool_move["result"].err[-300:]


def test_pool_address_now_on_our_eni(pool_move, module_routes):
    """AssignPrivateIpAddresses with AllowReassignment."""
    assert "10.77.0.50" in private_ips(module_routes.ec2, pool_move["world"]["me"]["eni"])


def test_pool_address_off_the_old_holders_eni(pool_move, module_routes):
    """UnassignPrivateIpAddresses."""
    assert "10.77.0.50" not in private_ips(module_routes.ec2, pool_move["other"]["eni"])


def test_pool_address_elastic_ip_described(pool_move):
    """DescribeAddresses filtered by the private IP (the EC2 front keeps the association with it, as EC2 does)."""
    assert ("DescribeAddresses", 200) in pool_move["ec2_calls"], str(pool_move["ec2_calls"])
    assert f"pool address 10.77.0.50 carries Elastic IP {pool_move['eip']}" in pool_move["result"].err, \
        pool_move["result"].err[-600:]


def test_pool_address_move_confirmed_in_instance_metadata(pool_move):
    """local-ipv4s, read again after the move."""
    assert any(p.endswith("/local-ipv4s") for _, p in pool_move["imds_requests"]), str(pool_move["imds_requests"])


POOL = ["10.77.0.51", "10.77.0.52", "10.77.0.53"]


@pytest.fixture(scope="module")
def pool_move_all(module_routes, aws, imds):
    """Three pool addresses, each with an Elastic IP, on a stopped instance whose route is a blackhole; a tunnat
    configuration whose failover section says `pool_addresses: all` (nat.pool is those three): a noop pass, then one
    pass taking over."""
    routes, ec2 = module_routes, module_routes.ec2
    w = routes.world(others=("10.77.0.2",))
    other = w["others"][0]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=other["eni"], PrivateIpAddresses=POOL)
    eips = {}
    for ip in POOL:
        eip = ec2.allocate_address(Domain="vpc")
        aws.front.associate_address(eip["AllocationId"], other["eni"], ip)
        eips[ip] = eip["PublicIp"]
    t = routes.table(w, {"Name": "pool all"})
    ec2.create_route(RouteTableId=t, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=other["eni"])
    ec2.stop_instances(InstanceIds=[other["id"]])
    cfg = f"""
nat: {{private_prefixes: [10.77.1.0/24], pool: [{", ".join(POOL)}]}}
failover:
  pool_addresses: all
  routetables:
    pool:
      find: {{type: by_tag, config: {{key: Name, value: pool all}}}}
      manage_routes: [{{cidr: 0.0.0.0/0, if_unhealthy: true}}]
"""
    noop = routes.run(w, cfg, "--oneshot", "--noop")
    noop_calls, noop_ips = list(aws.front.calls), private_ips(ec2, w["me"]["eni"])
    imds.requests.clear()
    aws.front.calls.clear()
    result = routes.run(w, cfg, "--oneshot")
    return {"world": w, "other": other, "table": t, "eips": eips, "noop": noop, "noop_calls": noop_calls,
            "noop_ips": noop_ips, "result": result, "imds_requests": list(imds.requests),
            "ec2_calls": list(aws.front.calls)}


def calls_of(calls, action):
    return sum(1 for a, _ in calls if a == action)


def test_pool_all_noop_says_what_would_move_and_moves_nothing(pool_move_all):
    r, me, other = pool_move_all["noop"], pool_move_all["world"]["me"]["eni"], pool_move_all["other"]["eni"]
    assert r.rc == 3, str(r)
    assert f"noop: would assign pool address(es) {', '.join(POOL)} to {me} (from {other})" in r.err, r.err[-600:]
    assert f"noop: would unassign pool address(es) {', '.join(POOL)} from {other}" in r.err, r.err[-600:]
    calls = pool_move_all["noop_calls"]
    assert calls_of(calls, "AssignPrivateIpAddresses") == 0 and calls_of(calls, "UnassignPrivateIpAddresses") == 0, \
        str(calls)
    assert not set(POOL) & set(pool_move_all["noop_ips"]), pool_move_all["noop_ips"]


def test_pool_all_route_taken_over(pool_move_all, module_routes):
    assert module_routes.target(pool_move_all["table"], "0.0.0.0/0") == pool_move_all["world"]["me"]["eni"], \
        pool_move_all["result"].err[-600:]


def test_pool_all_moved_in_one_assign_and_one_unassign(pool_move_all):
    """AssignPrivateIpAddresses with all three (EC2 moves them together or not at all), and one
    UnassignPrivateIpAddresses for the one other ENI that listed them."""
    calls = pool_move_all["ec2_calls"]
    assert calls_of(calls, "AssignPrivateIpAddresses") == 1, str(calls)
    assert calls_of(calls, "UnassignPrivateIpAddresses") == 1, str(calls)
    assert calls_of(calls, "DescribeAddresses") == 1, str(calls)


def test_pool_all_addresses_now_on_our_eni(pool_move_all, module_routes):
    ips = private_ips(module_routes.ec2, pool_move_all["world"]["me"]["eni"])
    assert set(POOL) <= set(ips), ips


def test_pool_all_addresses_off_the_old_holders_eni(pool_move_all, module_routes):
    ips = private_ips(module_routes.ec2, pool_move_all["other"]["eni"])
    assert not set(POOL) & set(ips), ips


def test_pool_all_elastic_ips_stay_with_their_private_ips(pool_move_all, aws):
    """Each Elastic IP is still associated with its private IP, which is now on our ENI, and tunnat said so."""
    me, err = pool_move_all["world"]["me"]["eni"], pool_move_all["result"].err
    by_public = {a["PublicIp"]: a for a in aws.front.addresses()}
    for ip, public in pool_move_all["eips"].items():
        a = by_public[public]
        assert a.get("PrivateIpAddress") == ip and a.get("NetworkInterfaceId") == me, f"{public}: {a}"
        assert f"pool address {ip} carries Elastic IP {public}" in err, err[-600:]


def test_pool_all_move_confirmed_in_instance_metadata(pool_move_all):
    assert any(p.endswith("/local-ipv4s") for _, p in pool_move_all["imds_requests"]), \
        str(pool_move_all["imds_requests"])
    assert "instance metadata does not show" not in pool_move_all["result"].err, pool_move_all["result"].err[-600:]


# --- EC2 errors and retries --------------------------------------------------------------------------------------

ERRORS = "routetables:\n  e:\n    find: {type: by_tag, config: {key: Name, value: errors}}\n    manage_routes: [{cidr: 0.0.0.0/0}]\n"
THROTTLED = (503, "RequestLimitExceeded", "Request limit exceeded.")


@pytest.fixture
def errors_world(routes):
    return routes.world_with_table("errors")


def test_ec2_throttling_retried_with_backoff(routes, errors_world, aws):
    w, _ = errors_world
    aws.front.inject = [THROTTLED, THROTTLED]
    r = routes.run(w, ERRORS, "--oneshot", "--noop")
    throttled = sum(1 for _, s in aws.front.calls if s == 503)
    assert r.rc == 3 and throttled == 2 and "retry 2" in r.err, f"throttled={throttled} {r}"


def test_ec2_internal_error_retried(routes, errors_world, aws):
    w, _ = errors_world
    aws.front.inject = [(500, "InternalError", "An internal error has occurred.")]
    r = routes.run(w, ERRORS, "--oneshot", "--noop")
    assert r.rc == 3 and "InternalError" in r.err and "retry 1" in r.err, str(r)


def test_ec2_throttling_that_does_not_stop_gives_up_after_max_attempts(routes, errors_world, aws):
    w, _ = errors_world
    aws.front.inject = [THROTTLED] * 10
    r = routes.run(w, ERRORS.replace("routetables:", "aws: {max_attempts: 3}\nroutetables:"), "--oneshot")
    assert r.rc == 1 and "RequestLimitExceeded" in r.err and sum(1 for _, s in aws.front.calls if s == 503) == 3, \
        f"calls={aws.front.calls} {r}"


def test_ec2_not_found_reaches_the_operator(routes, errors_world):
    w, _ = errors_world
    r = routes.run(w, ERRORS.replace("routetables:", "aws: {interface_id: eni-00000000000000000}\nroutetables:"),
                   "--oneshot")
    assert r.rc == 1 and ".NotFound" in r.err, str(r)


def test_ec2_route_already_exists_another_instance_won_the_race(routes, errors_world, aws):
    w, t = errors_world
    aws.front.races[(t, "0.0.0.0/0")] = w["others"][0]["eni"]
    r = routes.run(w, ERRORS, "--oneshot")
    assert r.rc == 0 and "RouteAlreadyExists" in r.err and routes.target(t, "0.0.0.0/0") == w["others"][0]["eni"], str(r)


def test_ec2_refuses_to_run_while_source_dest_check_is_on(routes, errors_world):
    w, _ = errors_world
    routes.ec2.modify_network_interface_attribute(NetworkInterfaceId=w["me"]["eni"], SourceDestCheck={"Value": True})
    r = routes.run(w, ERRORS, "--oneshot", "--noop")
    assert r.rc == 1 and "source/dest check is on" in r.err, str(r)


# --- the daemon waits for the first verdict, and hold-down damps a flap ------------------------------------------

@pytest.fixture(scope="module")
def daemon(module_routes, module_procs):
    """`tunnat routes` as a daemon (poll 1 s, hold-down 5 s) behind a file check (rise 3, fall 1, every 1 s): what
    the route did as the file came and went, then what SIGTERM did."""
    routes = module_routes
    w = routes.world()
    t = routes.table(w, {"Name": "daemon"})
    flag = os.path.join(routes.home, "healthy")
    open(flag, "w").close()
    path = routes.write_config(f"""
poll_time: 1
hold_down: 5
healthchecks:
  file: {{type: command, destination: 10.77.0.2, rise: 3, fall: 1, every: 1, config: {{command: test, arguments: [-e, {flag}]}}}}
routetables:
  d:
    find: {{type: by_tag, config: {{key: Name, value: daemon}}}}
    manage_routes: [{{cidr: 0.0.0.0/0, healthcheck: file}}]
""", "daemon.yaml")
    logpath = os.path.join(routes.home, "daemon.log")
    seen = {}
    routes.imds.identity = w["identity"]
    with open(logpath, "w") as logfile:
        proc = module_procs.start([routes.tunnat, "routes", "--config", path, "--log-level", "info"], env=routes.env(),
                                  stdout=subprocess.DEVNULL, stderr=logfile)
    def logged(since=0):
        with open(logpath) as f:
            return f.read()[since:]

    try:
        # A pass has run and waited for the check's first verdict (rise 3, every 1 s): no route yet.
        seen["waited for the first verdict"] = wait_for(lambda: "no verdict yet" in logged(), 10, step=0.1)
        seen["before first verdict"] = routes.route(t, "0.0.0.0/0")
        seen["created"] = wait_for(lambda: routes.route(t, "0.0.0.0/0") is not None, 8, step=0.1)
        created_at = time.monotonic()
        before_unhealthy = len(logged())
        os.remove(flag)
        # The check fails (fall 1, every 1 s) and a pass holds the deletion back: the 5 s since the creation.
        seen["held down"] = wait_for(lambda: "hold-down:" in logged(before_unhealthy), 10, step=0.1)
        seen["while held down"] = routes.route(t, "0.0.0.0/0")
        seen["deleted"] = wait_for(lambda: routes.route(t, "0.0.0.0/0") is None, 8, step=0.1)
        seen["deleted after"] = time.monotonic() - created_at
    finally:
        seen["exit"] = end(proc, 10)
    seen["log"] = logged()
    return seen


def test_daemon_no_route_before_the_first_verdict(daemon):
    """rise 3, every 1 s: the first pass waits for the verdict."""
    assert daemon["waited for the first verdict"], daemon["log"][-600:]
    assert daemon["before first verdict"] is None, str(daemon["before first verdict"])


def test_daemon_route_created_once_healthy(daemon):
    assert daemon["created"]


def test_daemon_unhealthy_but_held_down(daemon):
    """Once the check fails, a pass leaves the route: the 5 s hold-down since its creation still holds it."""
    assert daemon["held down"], daemon["log"][-600:]
    assert daemon["while held down"] is not None


def test_daemon_route_deleted_after_the_hold_down(daemon):
    assert daemon["deleted"] and daemon["deleted after"] >= 5, f"{daemon['deleted after']:.1f}s after creation"


def test_daemon_sigterm_stops_it_cleanly(daemon):
    """SIGTERM ends it within 10 s, with exit status 0."""
    assert daemon["exit"] == 0 and "hold-down" in daemon["log"], f"exit {daemon['exit']}: {daemon['log'][-300:]}"
