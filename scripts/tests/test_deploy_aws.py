"""The AWS deployment, deploy/cloudformation/tunnat-ha.yaml, proven against moto_server with SigV4 verification on.

  .venv/bin/python -m pytest scripts/tests/test_deploy_aws.py [-k NAME] [--tunnat PATH]

- The template: it is what generate.py writes, and cfn-lint passes.
- Its IAM policy allows exactly the EC2 and CloudWatch calls tunnat's code makes (read from Sources/), plus the
  user data's ssm:GetParameter, each zone's role only on its own route tables and its own pair's interfaces.
- The stack is created in moto's CloudFormation (with the additions of scripts/lib/moto_cfn.py, each listed there:
  what moto lacks, done as CloudFormation does it). Then, for each of the four nodes, the user data moto holds for
  that instance runs as root in a network namespace whose interface has the ENI's MAC, under a copy of /etc (a
  mount namespace), against a fake IMDSv2 answering as that instance with the instance role's credentials and
  moto's SSM holding the sync key: it writes the configuration and the key, takes the pool addresses off the
  interface, and enables and starts the unit (systemctl is the one fake: there is no systemd in the namespace).
- With those configurations, `tunnat routes --oneshot` runs as the user tunnat, in that namespace, as each node:
  the zone's routes go to the node's interface, a failover moves every pool address, and the other zone's tables
  are never touched.

Needs root (namespaces, mounts). Nothing here reaches beyond loopback and 198.18.251.0/30.
"""
import base64
import json
import os
import re
import stat
import subprocess

import pytest
import yaml

from testbed import AWS, REGION, REPO, Namespaces, run_id, sh

TEMPLATE = os.path.join(REPO, "deploy", "cloudformation", "tunnat-ha.yaml")
GENERATE = os.path.join(REPO, "deploy", "cloudformation", "generate.py")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
SYNC_KEY = "c3luYy1rZXktZm9yLXRoZS10ZXN0LW9mLXR1bm5hdC1oYS15YW1s"  # 52 bytes, as `head -c 39 | base64` makes
POOL_COUNT = 3
PRIVATE = "10.0.128.0/17"  # the private subnets of the VPC 10.0.0.0/16; the public ones are 10.0.0.0/24 and 10.0.1.0/24
ZONES = ("A", "B")


class CfnLoader(yaml.SafeLoader):
    """The template is written in long form (Fn::...), but a short-form tag must not break the reading of it."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: {suffix: loader.construct_scalar(node)
                                                                   if isinstance(node, yaml.ScalarNode)
                                                                   else loader.construct_object(node)})


def template():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=CfnLoader)


# --- the template ----------------------------------------------------------------------------------------------

def test_template_is_what_generate_py_writes():
    p = subprocess.run([os.path.join(VENV_BIN, "python"), GENERATE, "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_cfn_lint_passes():
    p = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), TEMPLATE], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def actions_in_code():
    """Every AWS action tunnat's Swift code can call: the literal names given to EC2Client's call and paged (the
    one way requests are made), as IAM names. PutMetricData is CloudWatch's; the rest are EC2's."""
    found = set()
    for folder, _, files in os.walk(os.path.join(REPO, "Sources")):
        for name in files:
            if name.endswith(".swift"):
                with open(os.path.join(folder, name)) as f:
                    found |= set(re.findall(r'\b(?:call|paged)\("([A-Z][A-Za-z0-9]+)"', f.read()))
    return {("cloudwatch:" if a == "PutMetricData" else "ec2:") + a for a in found}


def statements(zone):
    policy = template()["Resources"][f"Role{zone}"]["Properties"]["Policies"][0]["PolicyDocument"]
    out = []
    for s in policy["Statement"]:
        if "Fn::If" in s:  # the CloudWatch statement, present when PublishMetrics holds
            s = s["Fn::If"][1]
        out.append(s)
    return out


def test_the_code_makes_the_calls_the_scan_expects():
    """A guard on the scan itself: if the call sites change shape, the policy test must not pass on an empty set."""
    assert {"ec2:ReplaceRoute", "ec2:AssignPrivateIpAddresses", "ec2:DescribeRouteTables",
            "cloudwatch:PutMetricData"} <= actions_in_code()


@pytest.mark.parametrize("zone", ZONES)
def test_policy_allows_every_call_of_the_code_and_nothing_else(zone):
    allowed = {a for s in statements(zone) for a in s["Action"]}
    assert all(s["Effect"] == "Allow" for s in statements(zone))
    assert not any("*" in a for a in allowed), allowed
    # The one call that is not tunnat's: the user data reads the sync key.
    assert allowed - {"ssm:GetParameter"} == actions_in_code()


@pytest.mark.parametrize("zone", ZONES)
def test_policy_scopes_each_change_to_the_zone(zone):
    other = "B" if zone == "A" else "A"
    by_sid = {s["Sid"]: s for s in statements(zone)}
    routes = by_sid["RoutesOfThisZone"]
    assert routes["Condition"]["StringEquals"]["ec2:RouteTableID"] == {"Ref": f"PrivateRouteTables{zone}"}
    assert "ec2:Vpc" in routes["Condition"]["StringEquals"]
    pool = json.dumps(by_sid["PoolAddressesOfThisPair"]["Resource"])
    assert f"Interface{zone}a" in pool and f"Interface{zone}b" in pool and f"Interface{other}" not in pool
    assert "parameter${SyncKeyParameter}" in json.dumps(by_sid["SyncKey"]["Resource"])
    assert by_sid["Metrics"]["Condition"]["StringEquals"]["cloudwatch:namespace"] == "tunnat"
    # Only the describe calls, which EC2 cannot scope, have "*".
    assert {a for s in statements(zone) if s["Resource"] == "*" for a in s["Action"]} == {
        "ec2:DescribeRouteTables", "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceStatus",
        "ec2:DescribeAddresses", "cloudwatch:PutMetricData"}


def test_no_secret_in_the_template():
    text = open(TEMPLATE).read()
    assert "sync-key" in text and "SecureString" in text  # the key is named and fetched, not given
    assert not re.search(r"(?i)(aws_secret_access_key|BEGIN [A-Z ]*PRIVATE KEY)", text)


# --- the stack in moto -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(root, module_procs, tmp_path_factory):
    """A VPC with two zones' public subnets and private route tables (some with a default route to an older NAT),
    the sync key in SSM, the stack created; a namespace for the nodes behind a veth to the fakes."""
    ns = Namespaces("tdep")
    try:
        node_ns = ns.add("node")
        ns.veth("node", f"tdep{run_id()}r", "198.18.251.1/30", "198.18.251.2/30", ns_ifname="ens5")
        aws = AWS(module_procs, REGION, host="198.18.251.1", cloudformation=True)
        ec2 = aws.ec2
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = {z: ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                                        AvailabilityZone=f"{REGION}{z.lower()}")["Subnet"]["SubnetId"]
                   for i, z in enumerate(ZONES)}
        # The NAT being replaced, one per zone, each with an interface the private tables route to today.
        old = {z: aws.launch(subnets[z], f"10.0.{i}.250") for i, z in enumerate(ZONES)}
        tables = {}
        for z in ZONES:
            tables[z] = [ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(2)]
            # The first has no default route yet; the second routes to the old NAT.
            ec2.create_route(RouteTableId=tables[z][1], DestinationCidrBlock="0.0.0.0/0",
                             NetworkInterfaceId=old[z]["eni"])
        aws.client("ssm").put_parameter(Name="/tunnat/sync-key", Type="SecureString", Value=SYNC_KEY)
        params = {"VpcId": vpc, "PrivateCidr": PRIVATE, "PublicSubnetA": subnets["A"],
                  "PublicSubnetB": subnets["B"], "PrivateRouteTablesA": ",".join(tables["A"]),
                  "PrivateRouteTablesB": ",".join(tables["B"]), "ImageId": "ami-12c6146b",
                  "PoolAddressCount": str(POOL_COUNT)}
        cfn = aws.client("cloudformation")
        with open(TEMPLATE) as f:
            cfn.create_stack(StackName="nat", TemplateBody=f.read(), Capabilities=["CAPABILITY_IAM"],
                             Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
        described = cfn.describe_stacks(StackName="nat")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        yield {"aws": aws, "ec2": ec2, "vpc": vpc, "subnets": subnets, "tables": tables, "old": old,
               "status": described["StackStatus"], "outputs": outputs, "ns": ns, "node_ns": node_ns,
               "home": tmp_path_factory.mktemp("deploy")}
        aws.close()
    finally:
        ns.cleanup()


def test_stack_is_created(stack):
    assert stack["status"] == "CREATE_COMPLETE"
    assert {f"Node{z}{n}" for z in ZONES for n in "ab"} <= set(stack["outputs"])


def enis(stack, zone):
    ids = [stack["outputs"][f"Interface{zone}{n}"] for n in "ab"]
    found = stack["ec2"].describe_network_interfaces(NetworkInterfaceIds=ids)["NetworkInterfaces"]
    return {n: next(e for e in found if e["NetworkInterfaceId"] == i) for n, i in zip("ab", ids)}


def secondaries(eni):
    return sorted(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"] if not a["Primary"])


@pytest.mark.parametrize("zone", ZONES)
def test_each_node_has_its_interface_with_source_dest_check_off_and_node_a_the_pool(stack, zone):
    e = enis(stack, zone)
    for n in "ab":
        assert e[n]["SourceDestCheck"] is False
        assert e[n]["SubnetId"] == stack["subnets"][zone]
        assert e[n]["Attachment"]["InstanceId"] == stack["outputs"][f"Node{zone}{n}"]
    assert len(secondaries(e["a"])) == POOL_COUNT and secondaries(e["b"]) == []
    assert stack["outputs"][f"PoolAddresses{zone}"].split(",") and \
        sorted(stack["outputs"][f"PoolAddresses{zone}"].split(",")) == secondaries(e["a"])


@pytest.mark.parametrize("zone", ZONES)
def test_every_pool_address_has_an_elastic_ip_on_node_a(stack, zone):
    e = enis(stack, zone)
    on_a = [a for a in stack["ec2"].describe_addresses()["Addresses"]
            if a.get("NetworkInterfaceId") == e["a"]["NetworkInterfaceId"] and not a.get("InstanceId")]
    # The node's own address is associated through its instance; the pool's through the interface.
    assert len(on_a) == POOL_COUNT


@pytest.mark.parametrize("zone", ZONES)
def test_security_group_admits_the_sync_port_only_from_the_pair(stack, zone):
    e = enis(stack, zone)
    group = e["a"]["Groups"][0]["GroupId"]
    assert [g["GroupId"] for g in e["b"]["Groups"]] == [group]
    rules = stack["ec2"].describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    pair = {e[n]["PrivateIpAddress"] + "/32" for n in "ab"}
    admitting_sync = set()
    for r in rules:
        if r["IpProtocol"] in ("udp", "-1") and r.get("FromPort", 0) <= 65535 <= r.get("ToPort", 65535):
            admitting_sync |= {c["CidrIp"] for c in r.get("IpRanges", [])}
    assert admitting_sync == pair, admitting_sync
    ssh_from = {c["CidrIp"] for r in rules if r["IpProtocol"] in ("tcp", "-1")
                and r.get("FromPort", 0) <= 22 <= r.get("ToPort", 65535) for c in r.get("IpRanges", [])}
    assert ssh_from == {PRIVATE}


# --- the user data -----------------------------------------------------------------------------------------------

def user_data(stack, instance):
    value = stack["ec2"].describe_instance_attribute(InstanceId=instance, Attribute="userData")["UserData"]["Value"]
    return base64.b64decode(value).decode()


def node_identity(stack, zone, n):
    eni = enis(stack, zone)[n]
    return {"instance_id": stack["outputs"][f"Node{zone}{n}"], "az": f"{REGION}{zone.lower()}", "region": REGION,
            "mac": eni["MacAddress"], "vpc_id": stack["vpc"], "subnet_id": stack["subnets"][zone],
            "interface_id": eni["NetworkInterfaceId"], "private_ip": eni["PrivateIpAddress"]}


def in_node(stack, etc, command, env, timeout=120):
    """COMMAND (a shell line) in the node namespace, in a mount namespace of its own with ETC mounted over /etc and
    the bin folder beside it (tunnat, the fake systemctl) over /usr/local/bin, where the user tunnat can reach it."""
    script = f"mount --bind {etc} /etc && mount --bind {etc.parent / 'bin'} /usr/local/bin && {command}"
    argv = ["ip", "netns", "exec", stack["node_ns"], "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def role_credentials(aws, name):
    """Temporary credentials of a role, as the IMDS serves an instance role's (moto accepts only session tokens it
    issued). moto evaluates a policy's actions but not its resources or conditions: the role used here allows
    everything, and the template's scoping is checked by reading the policy above, not by moto."""
    iam = aws.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":'
                    '"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}')
    iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=
                        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
    session = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::123456789012:role/{name}",
                                            RoleSessionName="tunnat")["Credentials"]
    return {"name": name, "AccessKeyId": session["AccessKeyId"], "SecretAccessKey": session["SecretAccessKey"],
            "Token": session["SessionToken"], "Expiration": session["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture(scope="module")
def nodes(stack, tunnat):
    """The user data of each node run as that node; returns per node what it wrote and printed."""
    aws, home = stack["aws"], stack["home"]
    imds = aws.imds()
    imds.role = role_credentials(aws, "node-setup")
    done = {}
    for zone in ZONES:
        for n in "ab":
            name = f"{zone}{n}"
            identity = node_identity(stack, zone, name[1])
            imds.identity = identity
            imds.requests.clear()
            root = home / name
            root.mkdir()
            etc = root / "etc"
            sh("cp", "-a", "/etc", str(etc))
            # What the package makes: the user and group tunnat (unless this host kept them from an install).
            if "\ntunnat:" not in "\n" + (etc / "passwd").read_text():
                with open(etc / "passwd", "a") as f:
                    f.write("tunnat:x:64990:64990:tunnat:/nonexistent:/usr/sbin/nologin\n")
                with open(etc / "group", "a") as f:
                    f.write("tunnat:x:64990:\n")
            user = next(line.split(":") for line in (etc / "passwd").read_text().splitlines()
                        if line.startswith("tunnat:"))
            bin_dir = root / "bin"
            bin_dir.mkdir()
            os.symlink(tunnat, bin_dir / "tunnat")
            (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho \"$*\" >> {root}/systemctl.calls\n")
            (bin_dir / "systemctl").chmod(0o755)
            script = root / "user-data"
            script.write_text(user_data(stack, identity["instance_id"]))
            # The interface as EC2 presents it: the ENI's MAC; on node a, the pool addresses put there by cloud-init.
            sh("ip", "-n", stack["node_ns"], "link", "set", "ens5", "address", identity["mac"])
            sh("ip", "-n", stack["node_ns"], "-4", "addr", "flush", "dev", "ens5", "scope", "global")
            sh("ip", "-n", stack["node_ns"], "addr", "add", "198.18.251.2/30", "dev", "ens5")
            pool = stack["outputs"][f"PoolAddresses{zone}"].split(",")
            if n == "a":
                for address in pool:
                    sh("ip", "-n", stack["node_ns"], "addr", "add", f"{address}/24", "dev", "ens5")
            env = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
                   "AWS_ENDPOINT_URL_SSM": aws.front.url, "LANG": "C.UTF-8"}
            p = in_node(stack, etc, f"exec bash {script}", env)
            left = sh("ip", "-n", stack["node_ns"], "-4", "-o", "addr", "show", "dev", "ens5").stdout
            calls = (root / "systemctl.calls").read_text() if (root / "systemctl.calls").exists() else ""
            # The metadata guard it loaded into the kernel (nft is real; the namespace is the node's), then removed
            # so that the next node's run starts without one.
            guard = sh("ip", "netns", "exec", stack["node_ns"], "nft", "list", "table", "inet", "tunnat_imds_guard",
                       check=False).stdout
            sh("ip", "netns", "exec", stack["node_ns"], "nft", "delete", "table", "inet", "tunnat_imds_guard", check=False)
            done[name] = {"rc": p.returncode, "out": p.stdout, "err": p.stderr, "etc": etc, "env": env,
                          "identity": identity, "left": left, "systemctl": calls, "pool": pool, "guard": guard,
                          "imds": list(imds.requests), "role": imds.role, "uid": int(user[2]), "gid": int(user[3])}
    yield done
    imds.close()


NODE_NAMES = [f"{z}{n}" for z in ZONES for n in "ab"]


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_runs_to_the_end(nodes, name):
    r = nodes[name]
    assert r["rc"] == 0, r["err"][-1500:]
    assert "tunnat.service started" in r["err"]


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_writes_the_configuration_of_its_node(nodes, stack, name):
    r = nodes[name]
    zone, n = name[0], name[1]
    config = yaml.safe_load((r["etc"] / "tunnat" / "tunnat.yaml").read_text())
    peer = enis(stack, zone)["b" if n == "a" else "a"]["PrivateIpAddress"]
    own = r["identity"]["private_ip"]
    assert config["nat"] == {"private_prefixes": [PRIVATE], "pool": r["pool"], "port_range": "1024-65534"}
    assert config["tun"] == {"routing": {"interface": "ens5"}}
    assert config["replication"] == {
        "listen": f"{own}:65535", "node_id": 1 if n == "a" else 2, "key_file": "/etc/tunnat/sync.key",
        "peers": [{"node_id": 2 if n == "a" else 1, "address": f"{peer}:65535"}]}
    finders = config["failover"]["routetables"]["private"]["find"]["config"]["filters"]
    assert [f["config"]["route_table_id"] for f in finders] == stack["tables"][zone]
    assert config["failover"]["pool_addresses"] == "all"
    assert "metrics" not in config  # CloudWatchMetrics defaults to false: no PutMetricData, no cost


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_writes_the_key_from_ssm_for_the_user_tunnat_alone(nodes, name):
    key = nodes[name]["etc"] / "tunnat" / "sync.key"
    st = os.stat(key)
    assert key.read_text() == SYNC_KEY + "\n"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nodes[name]["uid"], nodes[name]["gid"], 0o400)
    # The key and the role's secret never reach the output.
    for text in (nodes[name]["out"], nodes[name]["err"]):
        role = nodes[name]["role"]
        assert SYNC_KEY not in text and role["SecretAccessKey"] not in text and role["Token"] not in text


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_uses_imdsv2_and_takes_the_pool_off_the_interface(nodes, name):
    r = nodes[name]
    assert ("PUT", "/latest/api/token") in r["imds"]
    assert not any(address in r["left"] for address in r["pool"]), r["left"]
    assert "apply_full_imds_network_config: false" in (r["etc"] / "cloud" / "cloud.cfg.d" / "99-tunnat.cfg").read_text()
    assert r["systemctl"].split("\n")[:3] == ["enable tunnat-imds-guard.service", "enable tunnat.service",
                                              "restart tunnat.service"]


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_loads_the_metadata_guard_for_root_and_tunnat(nodes, name):
    """The user data loads `tunnat imds-guard` (for its user tunnat's uid) into the kernel before it asks the
    metadata service for the role's credentials, and enables the unit that loads it at every boot."""
    r = nodes[name]
    admitted = "{ 0, %d }" % r["uid"]
    assert f"ip daddr 169.254.169.254 meta skuid != {admitted}" in r["guard"], r["guard"]
    assert f"ip6 daddr fd00:ec2::254 meta skuid != {admitted}" in r["guard"], r["guard"]
    assert r["err"].index("metadata guard loaded") < r["err"].index("wrote /etc/tunnat/tunnat.yaml")


def test_user_data_stops_on_a_missing_key_and_starts_nothing(stack, nodes):
    """The parameter missing: a line naming SSM's error code, no configuration, no tunnat started."""
    r = nodes["Aa"]
    root = r["etc"].parent
    etc = root / "etc-missing"
    sh("cp", "-a", str(r["etc"]), str(etc))
    for leftover in ("tunnat/tunnat.yaml", "tunnat/sync.key"):
        (etc / leftover).unlink()
    script = (root / "user-data").read_text().replace("TUNNAT_SYNC_KEY_PARAMETER='/tunnat/sync-key'",
                                                      "TUNNAT_SYNC_KEY_PARAMETER='/tunnat/no-such-key'")
    (root / "user-data-missing").write_text(script)
    (root / "systemctl.calls").write_text("")
    p = in_node(stack, etc, f"exec bash {root / 'user-data-missing'}", r["env"])
    assert p.returncode != 0
    assert "ParameterNotFound" in p.stderr, p.stderr[-800:]
    assert not (etc / "tunnat" / "tunnat.yaml").exists() and not (etc / "tunnat" / "sync.key").exists()
    # The guard, loaded before the key was asked for, stays; tunnat is neither enabled nor started.
    assert (root / "systemctl.calls").read_text() == "enable tunnat-imds-guard.service\n"
    sh("ip", "netns", "exec", stack["node_ns"], "nft", "delete", "table", "inet", "tunnat_imds_guard", check=False)


# --- tunnat routes with the configurations the user data wrote ---------------------------------------------------

def default_route_target(stack, table):
    t = stack["ec2"].describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
    route = next((r for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)
    return route and route.get("NetworkInterfaceId")


def targets(stack, zone):
    return [default_route_target(stack, t) for t in stack["tables"][zone]]


@pytest.fixture(scope="module")
def takeovers(stack, nodes):
    """As each node in turn, one `tunnat routes --oneshot` pass with the configuration its user data wrote, as the
    user tunnat with the role's credentials from the IMDS: the old NAT of zone A stopped, Aa; the old NAT of zone B
    stopped, Ba; then Aa stopped (a failover), Ab. What the tables and interfaces were after each."""
    ec2, aws = stack["ec2"], stack["aws"]
    imds = aws.imds()
    imds.role = role_credentials(aws, "node-routes")
    seen = {"before": {z: targets(stack, z) for z in ZONES}}

    def run(name):
        r = nodes[name]
        imds.identity = r["identity"]
        env = dict(r["env"], AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url, AWS_ENDPOINT_URL_EC2=aws.front.url)
        p = in_node(stack, r["etc"], "exec runuser -u tunnat -- tunnat routes --oneshot "
                                     "--config /etc/tunnat/tunnat.yaml --log-level info", env)
        seen[name] = {"rc": p.returncode, "err": p.stderr, "tables": {z: targets(stack, z) for z in ZONES},
                      "enis": {z: {n: secondaries(e) for n, e in enis(stack, z).items()} for z in ZONES}}

    # The NAT being replaced is stopped first (a route held by a healthy instance is left to it: if_unhealthy).
    ec2.stop_instances(InstanceIds=[stack["old"]["A"]["id"]])
    run("Aa")
    ec2.stop_instances(InstanceIds=[stack["old"]["B"]["id"]])
    run("Ba")
    ec2.stop_instances(InstanceIds=[stack["outputs"]["NodeAa"]])
    run("Ab")
    seen["role"] = imds.role
    yield seen
    imds.close()


def test_node_a_takes_its_zones_routes_and_leaves_the_other_zone(takeovers, stack):
    r = takeovers["Aa"]
    assert r["rc"] == 3, r["err"][-1500:]
    assert r["tables"]["A"] == [stack["outputs"]["InterfaceAa"]] * 2
    assert r["tables"]["B"] == takeovers["before"]["B"] == [None, stack["old"]["B"]["eni"]]


def test_node_a_of_the_other_zone_takes_only_its_own(takeovers, stack):
    r = takeovers["Ba"]
    assert r["rc"] == 3, r["err"][-1500:]
    assert r["tables"]["B"] == [stack["outputs"]["InterfaceBa"]] * 2
    assert r["tables"]["A"] == takeovers["Aa"]["tables"]["A"]


def test_failover_moves_the_routes_and_every_pool_address_to_node_b(takeovers, stack, nodes):
    r = takeovers["Ab"]
    assert r["rc"] == 3, r["err"][-1500:]
    assert r["tables"]["A"] == [stack["outputs"]["InterfaceAb"]] * 2
    assert r["enis"]["A"]["b"] == sorted(nodes["Ab"]["pool"]) and r["enis"]["A"]["a"] == []
    # Zone B: untouched by zone A's failover.
    assert r["tables"]["B"] == takeovers["Ba"]["tables"]["B"]
    assert r["enis"]["B"] == takeovers["Ba"]["enis"]["B"]
    assert len(r["enis"]["B"]["a"]) == POOL_COUNT


def test_no_credential_in_tunnats_output(takeovers, stack):
    for name in ("Aa", "Ba", "Ab"):
        text = takeovers[name]["err"]
        role = takeovers["role"]
        assert role["SecretAccessKey"] not in text and role["Token"] not in text
