"""The AWS deployment, deploy/cloudformation/tunnat-pair.yaml (one stack per zone), proven against moto_server with
SigV4 verification on.

  .venv/bin/python -m pytest scripts/tests/test_deploy_aws.py [-k NAME] [--tunnat PATH]

- The template: it is what generate.py writes, within the 51,200 bytes CloudFormation takes, and cfn-lint passes.
- Its IAM policy allows exactly the EC2 and CloudWatch calls tunnat's code makes (read from Sources/), plus the
  user data's (read from node-setup.sh), each pair's role only on its own route tables (and its fallback tables),
  and its own interfaces.
- Three stacks, one per zone, are created in moto's CloudFormation (with the additions of scripts/lib/moto_cfn.py,
  each listed there: what moto lacks, done as CloudFormation does it); each node is an Auto Scaling group of one,
  whose instance moto launches from the launch template. Then, for each of the six nodes, the user data moto holds
  for that instance runs as root in a network namespace with the instance's own interface and one with the node
  interface's MAC, under a copy of /etc (a mount namespace), against a fake IMDSv2 answering as that instance (its
  tags, the interfaces attached to it in moto) with the instance role's credentials and moto's SSM holding the sync
  key: it attaches the node's interface, writes the configuration and the key, takes the pool addresses off the
  interface, and enables and starts the units (systemctl is the one fake: there is no systemd in the namespace).
- A terminated instance's replacement, launched by its group, waits while the interface is still attached to the
  old one, attaches it once EC2 releases it, and writes the same node's configuration.
- With those configurations, `tunnat routes --oneshot` runs as the user tunnat, in that namespace, as each node:
  the zone's routes go to the node's interface, a failover moves every pool address, the other zones' tables are
  never touched, and a zone that loses both nodes is served by its fallback zone until its own pair is back.

Needs root (namespaces, mounts). Nothing here reaches beyond loopback and 198.18.251.0/30.
"""
import base64
import fcntl
import gzip
import json
import os
import re
import stat
import subprocess
import time

import pytest
import yaml

from awsfakes import FakeLifecycleHooks
from testbed import AWS, REGION, REPO, Namespaces, run_id, sh, wait_for

TEMPLATE = os.path.join(REPO, "deploy", "cloudformation", "tunnat-pair.yaml")
NODE_SETUP = os.path.join(REPO, "deploy", "cloudformation", "node-setup.sh")
GENERATE = os.path.join(REPO, "deploy", "cloudformation", "generate.py")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
SYNC_KEY = "c3luYy1rZXktZm9yLXRoZS10ZXN0LW9mLXR1bm5hdC1oYS15YW1s"  # 52 bytes, as `head -c 39 | base64` makes
POOL_COUNT = 3
PRIVATE = "10.0.128.0/17"  # the private subnets of the VPC 10.0.0.0/16; the public ones are 10.0.0-2.0/24
ZONES = ("A", "B", "C")
FALLBACK = {"B": "A"}  # zone B's pair holds zone A's tables while zone A's pair has no healthy node
MONITORED = "C"        # zone C's stack: CloudWatchMetrics (with its alarms and dashboard) and Session Manager
NAT64_CIDR = "fd00:10::/56"  # zone C's stack also serves IPv6-only subnets (Nat64PrivateCidr)


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


def test_template_is_a_body_cloudformation_takes():
    """`aws cloudformation deploy --template-file` sends the template as its body: at most 51,200 bytes."""
    size = os.path.getsize(TEMPLATE)
    assert 0 < size <= 51200, size


def test_pool_addresses_outlive_the_stack():
    """Users allow-list the pool's Elastic IPs: deleting or replacing the stack keeps them."""
    eips = {k: v for k, v in template()["Resources"].items() if k.startswith("PoolAddress")}
    assert len(eips) == 8
    assert all(v["DeletionPolicy"] == "Retain" and v["UpdateReplacePolicy"] == "Retain" for v in eips.values())


def test_each_node_is_an_auto_scaling_group_of_one_in_the_pair_subnet():
    r = template()["Resources"]
    for n in "ab":
        g = r[f"NodeGroup{n}"]["Properties"]
        assert (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) == ("1", "1", "1")
        assert g["VPCZoneIdentifier"] == [{"Ref": "PublicSubnet"}]
        assert {"Key": "tunnat-node", "Value": str("ab".index(n) + 1),
                "PropagateAtLaunch": True} in g["Tags"]
    assert not any(v["Type"] == "AWS::EC2::Instance" for v in r.values())


def test_cfn_lint_passes():
    p = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), TEMPLATE], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


# checkov's findings the template answers with a reason (its Metadata says why, resource by resource).
CHECKOV_EXCEPTIONS = {"CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260", "CKV_AWS_88"}


def test_checkov_passes_with_the_documented_exceptions_only():
    checkov = os.path.join(REPO, ".venv-checkov", "bin", "checkov")
    p = subprocess.run([checkov, "-f", TEMPLATE, "--framework", "cloudformation", "--skip-download", "--compact",
                        "-o", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(p.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and p.returncode == 0, failed
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == CHECKOV_EXCEPTIONS
    assert all(len(c["check_result"].get("suppress_comment") or "") > 40 for c in skipped), skipped
    assert report["summary"]["passed"] > 10 and report["summary"]["parsing_errors"] == 0


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


def actions_in_user_data():
    """The calls node-setup.sh makes: `ec2 ACTION`, `query SERVICE URL VERSION ACTION` and SSM's X-Amz-Target."""
    text = open(NODE_SETUP).read()
    found = {"ec2:" + a for a in re.findall(r"\$\(ec2 ([A-Z][A-Za-z]+) ", text)}
    found |= {f"{service}:{a}" for service, a in re.findall(r"\bquery (\w+) \S+ \S+ ([A-Z][a-z][A-Za-z]+) ", text)}
    found |= {"ssm:" + a for a in re.findall(r"X-Amz-Target: AmazonSSM\.([A-Za-z]+)", text)}
    return found


def statements(optional=True):
    """The policy's statements, those under a condition as if it held (without `optional`: left out)."""
    policy = template()["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
    out = []
    for s in policy["Statement"]:
        if "Fn::If" in s:  # CloudWatch with PublishMetrics, Session Manager with UseSessionManager
            if not optional:
                continue
            s = s["Fn::If"][1]
        out.append(s)
    return out


SESSION_MANAGER = {"ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                   "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}


def test_the_code_makes_the_calls_the_scan_expects():
    """A guard on the scan itself: if the call sites change shape, the policy test must not pass on an empty set."""
    assert {"ec2:ReplaceRoute", "ec2:AssignPrivateIpAddresses", "ec2:DescribeRouteTables",
            "cloudwatch:PutMetricData"} <= actions_in_code()
    assert {"ec2:AttachNetworkInterface", "ec2:DescribeNetworkInterfaces", "ssm:GetParameter",
            "autoscaling:CompleteLifecycleAction"} == actions_in_user_data()


def test_policy_allows_every_call_of_the_code_and_the_user_data_and_nothing_else():
    allowed = {a for s in statements() if s["Sid"] != "SessionManager" for a in s["Action"]}
    assert all(s["Effect"] == "Allow" for s in statements())
    assert not any("*" in a for a in allowed), allowed
    assert allowed == actions_in_code() | actions_in_user_data()


def test_session_manager_is_an_option_with_its_agents_session_calls_alone():
    policy = template()["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
    optional = {s["Fn::If"][1]["Sid"]: s["Fn::If"][0] for s in policy["Statement"] if "Fn::If" in s}
    assert optional == {"SessionManager": "UseSessionManager", "Metrics": "PublishMetrics"}
    by_sid = {s["Sid"]: s for s in statements()}
    assert set(by_sid["SessionManager"]["Action"]) == SESSION_MANAGER
    assert "SessionManager" not in {s["Sid"] for s in statements(optional=False)}


def test_policy_scopes_each_change_to_the_pair():
    by_sid = {s["Sid"]: s for s in statements()}
    routes = by_sid["RoutesOfThisZone"]
    tables = json.dumps(routes["Condition"]["StringEquals"]["ec2:RouteTableID"])
    assert '"Ref": "PrivateRouteTables"' in tables and '"Ref": "FallbackRouteTables"' in tables
    assert "ec2:Vpc" in routes["Condition"]["StringEquals"]
    pool = json.dumps(by_sid["PoolAddressesOfThisPair"]["Resource"])
    assert "Interfacea" in pool and "Interfaceb" in pool and "*" not in pool
    attach = by_sid["AttachTheNodesInterface"]
    assert attach["Condition"] == {"StringEquals": {"ec2:ResourceTag/tunnat:pair": {"Ref": "AWS::StackName"}}}
    assert "parameter${SyncKeyParameter}" in json.dumps(by_sid["SyncKey"]["Resource"])
    hooks = [r["Fn::Sub"] for r in by_sid["LifecycleHooksOfThisPair"]["Resource"]]
    assert [h.split(":autoScalingGroup:*:", 1)[1] for h in hooks] == [
        "autoScalingGroupName/${AWS::StackName}-node-a", "autoScalingGroupName/${AWS::StackName}-node-b"]
    assert by_sid["Metrics"]["Condition"]["StringEquals"]["cloudwatch:namespace"] == "tunnat"
    # Only the describe calls, which EC2 cannot scope, have "*".
    assert {a for s in statements() if s["Resource"] == "*" for a in s["Action"]} == {
        "ec2:DescribeRouteTables", "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceStatus",
        "ec2:DescribeAddresses", "cloudwatch:PutMetricData"} | SESSION_MANAGER


def test_no_secret_in_the_template():
    text = open(TEMPLATE).read()
    assert "sync-key" in text and "SecureString" in text  # the key is named and fetched, not given
    assert not re.search(r"(?i)(aws_secret_access_key|BEGIN [A-Z ]*PRIVATE KEY)", text)


# --- the stack in moto -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(root, module_procs, tmp_path_factory):
    """A VPC with three zones' public subnets and private route tables (some with a default route to an older NAT),
    the sync key in SSM, a stack per zone (nat-a, nat-b, nat-c; nat-b with zone A's tables as its fallback); a
    namespace for the nodes with the instance's interface (ens5, behind a veth to the fakes) and the node's (ens6)."""
    ns = Namespaces("tdep")
    try:
        node_ns = ns.add("node")
        ns.veth("node", f"tdep{run_id()}r", "198.18.251.1/30", "198.18.251.2/30", ns_ifname="ens5")
        sh("ip", "-n", node_ns, "link", "add", "ens6", "type", "veth", "peer", "name", "ens6p")
        sh("ip", "-n", node_ns, "link", "set", "ens6p", "up")
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
        cfn = aws.client("cloudformation")
        body = open(TEMPLATE).read()
        status, outputs = {}, {}
        for z in ZONES:
            params = {"VpcId": vpc, "PrivateCidr": PRIVATE, "PublicSubnet": subnets[z],
                      "PrivateRouteTables": ",".join(tables[z]), "ImageId": "ami-12c6146b",
                      "PoolAddressCount": str(POOL_COUNT)}
            if z in FALLBACK:
                params["FallbackRouteTables"] = ",".join(tables[FALLBACK[z]])
            if z == MONITORED:
                params.update(CloudWatchMetrics="true", SessionManager="true", DropsAlarmThreshold="5000",
                              AlarmTopicArn=f"arn:aws:sns:{REGION}:123456789012:nat-alarms",
                              Nat64PrivateCidr=NAT64_CIDR)
            name = f"nat-{z.lower()}"
            cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
                             Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
            described = cfn.describe_stacks(StackName=name)["Stacks"][0]
            status[z] = described["StackStatus"]
            # One namespace of outputs: Interfacea of zone A's stack is InterfaceAa, PoolAddresses is PoolAddressesA.
            for o in described.get("Outputs", []):
                key = o["OutputKey"]
                key = key[:-1] + z + key[-1] if key[-1] in "ab" else key + z
                outputs[key] = o["OutputValue"]
        yield {"aws": aws, "ec2": ec2, "vpc": vpc, "subnets": subnets, "tables": tables, "old": old,
               "status": status, "outputs": outputs, "ns": ns, "node_ns": node_ns,
               "home": tmp_path_factory.mktemp("deploy")}
        aws.close()
    finally:
        ns.cleanup()


def test_each_group_has_the_lifecycle_hooks_its_agent_completes():
    for n in "ab":
        g = template()["Resources"][f"NodeGroup{n}"]["Properties"]
        assert g["AutoScalingGroupName"] == {"Fn::Sub": "${AWS::StackName}-node-" + n}
        hooks = {h["LifecycleHookName"]: h for h in g["LifecycleHookSpecificationList"]}
        assert hooks["tunnat-launching"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert hooks["tunnat-terminating"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        # A launch whose setup failed is abandoned (the group launches another); a termination goes on.
        assert (hooks["tunnat-launching"]["DefaultResult"], hooks["tunnat-terminating"]["DefaultResult"]) == \
            ("ABANDON", "CONTINUE")


def user_data_parts():
    joined = template()["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    (header, values), script = joined["Fn::Join"][1][0]["Fn::Sub"], joined["Fn::Join"][1][1]
    return header, values, script


def test_the_user_data_carries_node_setup_sh_whole():
    """Compressed, since EC2 takes 16 KB of user data: it decompresses to the script in git, byte for byte."""
    _, _, script = user_data_parts()
    m = re.fullmatch(r"body=\$\(base64 -d <<'TUNNAT_NODE_SETUP' \| gunzip\) \|\| \{ [^\n]*exit 1; \}\n"
                     r"([A-Za-z0-9+/=\n]+)TUNNAT_NODE_SETUP\neval \"\$body\"\n", script)
    assert m, script[:300]
    assert gzip.decompress(base64.b64decode(m.group(1))) == open(NODE_SETUP, "rb").read()


def test_the_user_data_stays_within_ec2s_16_kb_at_the_largest_parameters():
    header, values, script = user_data_parts()
    widest = {"AWS::StackName": "s" * 128, "Enis": ",".join(["eni-0123456789abcdef0"] * 2),
              "Addresses": ",".join(["100.100.100.100"] * 2), "Pool": ",".join(["100.100.100.100"] * 8),
              "Tables": ",".join(["rtb-0123456789abcdef0"] * 20), "Fallback": ",".join(["rtb-0123456789abcdef0"] * 20),
              "PrivateCidr": "100.100.100.100/32", "SyncKeyParameter": "/" * 256, "PackageUrl": "h" * 1024,
              "CloudWatchMetrics": "false", "Nat64PrivateCidr": "f" * 43}
    params = template()["Parameters"]
    assert params["PackageUrl"]["MaxLength"] == 1024 and params["SyncKeyParameter"]["MaxLength"] == 256
    assert params["Nat64PrivateCidr"]["MaxLength"] == 43
    rendered = re.sub(r"\$\{([^}]+)\}", lambda m: widest[m.group(1)], header) + script
    assert len(rendered.encode()) <= 16384, len(rendered.encode())


def test_stacks_are_created_each_node_a_group_of_one_instance(stack):
    assert stack["status"] == {z: "CREATE_COMPLETE" for z in ZONES}
    groups = [stack["outputs"][f"NodeGroup{z}{n}"] for z in ZONES for n in "ab"]
    found = stack["aws"].client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=groups)
    assert len(found["AutoScalingGroups"]) == 6
    for g in found["AutoScalingGroups"]:
        assert (g["MinSize"], g["MaxSize"], g["DesiredCapacity"], len(g["Instances"])) == (1, 1, 1, 1)
        assert {t["Key"] for t in g["Tags"] if t["PropagateAtLaunch"]} >= {"Name", "tunnat:pair", "tunnat-node"}


def test_a_monitored_pair_has_its_alarms_and_dashboard_on_the_pair_dimension(stack):
    cloudwatch = stack["aws"].client("cloudwatch")
    topic = f"arn:aws:sns:{REGION}:123456789012:nat-alarms"
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="nat-")["MetricAlarms"]}
    assert set(found) == {f"nat-c-{n}" for n in ("NoActive", "StandbyNotSynced", "PortAllocation", "Drops",
                                                 "TunQueueDrops")}
    for a in found.values():
        assert a["Namespace"] == "tunnat" and a["Dimensions"] == [{"Name": "Pair", "Value": "nat-c"}]
        assert a["AlarmActions"] == [topic] and a["OKActions"] == [topic]
    assert (found["nat-c-NoActive"]["MetricName"], found["nat-c-NoActive"]["TreatMissingData"]) == \
        ("RoutesHeld", "breaching")
    assert found["nat-c-StandbyNotSynced"]["EvaluationPeriods"] * found["nat-c-StandbyNotSynced"]["Period"] == 300
    assert found["nat-c-Drops"]["Threshold"] == 5000
    body = json.loads(cloudwatch.get_dashboard(DashboardName="nat-c-tunnat")["DashboardBody"])
    metrics = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    assert metrics and all(m[0] == "tunnat" and m[2:] == ["Pair", "nat-c"] for m in metrics)
    assert {m[1] for m in metrics} >= {"BytesInFromSource", "BytesInFromDestination", "PacketsInFromSource",
                                       "PacketsInFromDestination", "PeakPacketsPerSecond", "ConnectionAttemptCount"}
    assert "nat-a-tunnat" not in {d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]}


def instance(stack, zone, n):
    """The instance node N of ZONE's group has now."""
    group = stack["outputs"][f"NodeGroup{zone}{n}"]
    g = stack["aws"].client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    return g["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]


def enis(stack, zone):
    ids = [stack["outputs"][f"Interface{zone}{n}"] for n in "ab"]
    found = stack["ec2"].describe_network_interfaces(NetworkInterfaceIds=ids)["NetworkInterfaces"]
    return {n: next(e for e in found if e["NetworkInterfaceId"] == i) for n, i in zip("ab", ids)}


def secondaries(eni):
    return sorted(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"] if not a["Primary"])


@pytest.mark.parametrize("zone", ZONES)
def test_each_node_has_its_interface_with_source_dest_check_off_and_node_a_the_pool(stack, nodes, zone):
    e = enis(stack, zone)
    for n in "ab":
        assert e[n]["SourceDestCheck"] is False
        assert e[n]["SubnetId"] == stack["subnets"][zone]
        # Attached by the user data, as the instance's second interface.
        assert e[n]["Attachment"]["InstanceId"] == instance(stack, zone, n)
        assert e[n]["Attachment"]["DeviceIndex"] == 1
    assert len(secondaries(e["a"])) == POOL_COUNT and secondaries(e["b"]) == []
    assert stack["outputs"][f"PoolAddresses{zone}"].split(",") and \
        sorted(stack["outputs"][f"PoolAddresses{zone}"].split(",")) == secondaries(e["a"])


@pytest.mark.parametrize("zone", ZONES)
def test_every_pool_address_has_an_elastic_ip_on_node_a(stack, zone):
    e = enis(stack, zone)
    on = {n: [a for a in stack["ec2"].describe_addresses()["Addresses"]
              if a.get("NetworkInterfaceId") == e[n]["NetworkInterfaceId"]] for n in "ab"}
    # Node a: the pool's and its own (on its primary address); node b: its own.
    assert len(on["a"]) == POOL_COUNT + 1 and len(on["b"]) == 1
    assert on["b"][0]["PrivateIpAddress"] == e["b"]["PrivateIpAddress"]


def test_nat64_is_an_option_that_admits_the_ipv6_only_side(stack):
    """Zone C serves IPv6-only subnets: its security group admits TCP, UDP (not the sync port) and ICMPv6 from their
    CIDR; the other zones' admit no IPv6 at all."""
    for z in ZONES:
        group = stack["ec2"].describe_security_groups(
            GroupIds=[enis(stack, z)["a"]["Groups"][0]["GroupId"]])["SecurityGroups"][0]
        v6 = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in group["IpPermissions"]
              if p.get("Ipv6Ranges")}
        if z == MONITORED:
            assert v6 == {("tcp", 0, 65535), ("udp", 0, 65534), ("58", -1, -1)}, group["IpPermissions"]
            assert all(r["CidrIpv6"] == NAT64_CIDR for p in group["IpPermissions"] for r in p.get("Ipv6Ranges", []))
        else:
            assert not v6, group["IpPermissions"]


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
    """The IMDS's view of node N's instance now: its own interface (device 0, the group's), its tags."""
    instance_id = instance(stack, zone, n)
    found = stack["ec2"].describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    own = next(e for e in found["NetworkInterfaces"] if e["Attachment"]["DeviceIndex"] == 0)
    return {"instance_id": instance_id, "az": f"{REGION}{zone.lower()}", "region": REGION,
            "mac": own["MacAddress"], "vpc_id": stack["vpc"], "subnet_id": own["SubnetId"],
            "interface_id": own["NetworkInterfaceId"], "private_ip": own["PrivateIpAddress"], "tags": True}


def in_node(stack, etc, command, env, timeout=120, background=False):
    """COMMAND (a shell line) in the node namespace, in a mount namespace of its own with ETC mounted over /etc and
    the bin folder beside it (tunnat, the fake systemctl) over /usr/local/bin, where the user tunnat can reach it."""
    script = f"mount --bind {etc} /etc && mount --bind {etc.parent / 'bin'} /usr/local/bin && {command}"
    argv = ["ip", "netns", "exec", stack["node_ns"], "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script]
    if background:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def run_node(stack, imds, name, root, tunnat, etc=None, script_text=None, background=False):
    """Node NAME's user data (as moto holds it for the group's instance now), as root in the node namespace under
    ROOT (a copy of /etc, the bin folder with tunnat and the fake systemctl), against IMDS answering as it."""
    zone, n = name[0], name[1]
    identity = node_identity(stack, zone, n)
    imds.identity = identity
    imds.requests.clear()
    root.mkdir(exist_ok=True)
    if etc is None:
        etc = root / "etc"
        sh("cp", "-a", "/etc", str(etc))
        # What the package makes: the user and group tunnat (unless this host kept them from an install).
        if "\ntunnat:" not in "\n" + (etc / "passwd").read_text():
            with open(etc / "passwd", "a") as f:
                f.write("tunnat:x:64990:64990:tunnat:/nonexistent:/usr/sbin/nologin\n")
            with open(etc / "group", "a") as f:
                f.write("tunnat:x:64990:\n")
    user = next(line.split(":") for line in (etc / "passwd").read_text().splitlines() if line.startswith("tunnat:"))
    bin_dir = root / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        os.symlink(tunnat, bin_dir / "tunnat")
        (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho \"$*\" >> {root}/systemctl.calls\n")
        (bin_dir / "systemctl").chmod(0o755)
    script = root / "user-data"
    script.write_text(script_text or user_data(stack, identity["instance_id"]))
    # The interfaces as EC2 presents them: the instance's own (ens5) and the node's (ens6, which appears when it is
    # attached; here it is there already), on node a with the pool addresses that cloud-init may have put there.
    node_eni = enis(stack, zone)[n]
    sh("ip", "-n", stack["node_ns"], "link", "set", "ens5", "address", identity["mac"])
    sh("ip", "-n", stack["node_ns"], "link", "set", "ens6", "down")
    sh("ip", "-n", stack["node_ns"], "link", "set", "ens6", "address", node_eni["MacAddress"])
    sh("ip", "-n", stack["node_ns"], "-4", "addr", "flush", "dev", "ens6")
    pool = stack["outputs"][f"PoolAddresses{zone}"].split(",")
    if n == "a":
        sh("ip", "-n", stack["node_ns"], "link", "set", "ens6", "up")
        for address in pool:
            sh("ip", "-n", stack["node_ns"], "addr", "add", f"{address}/24", "dev", "ens6")
    env = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
           "AWS_ENDPOINT_URL_SSM": stack["aws"].front.url, "AWS_ENDPOINT_URL_EC2": stack["aws"].front.url,
           "AWS_ENDPOINT_URL_AUTOSCALING": stack["hooks"].url, "LANG": "C.UTF-8"}
    result = {"etc": etc, "env": env, "identity": identity, "pool": pool, "root": root,
              "uid": int(user[2]), "gid": int(user[3]), "role": imds.role, "interface": node_eni}
    if background:
        result["process"] = in_node(stack, etc, f"exec bash {script}", env, background=True)
        return result
    p = in_node(stack, etc, f"exec bash {script}", env)
    return finish_node(stack, imds, result, p.returncode, p.stdout, p.stderr)


def finish_node(stack, imds, result, rc, out, err):
    root = result["root"]
    left = sh("ip", "-n", stack["node_ns"], "-4", "-o", "addr", "show", "dev", "ens6").stdout
    routes = sh("ip", "-n", stack["node_ns"], "-4", "route", "show", "default").stdout
    calls = (root / "systemctl.calls").read_text() if (root / "systemctl.calls").exists() else ""
    # The metadata guard it loaded into the kernel (nft is real; the namespace is the node's), then removed so that
    # the next node's run starts without one; likewise the default route it set.
    guard = sh("ip", "netns", "exec", stack["node_ns"], "nft", "list", "table", "inet", "tunnat_imds_guard",
               check=False).stdout
    sh("ip", "netns", "exec", stack["node_ns"], "nft", "delete", "table", "inet", "tunnat_imds_guard", check=False)
    sh("ip", "-n", stack["node_ns"], "route", "flush", "exact", "0.0.0.0/0", check=False)
    result.update({"rc": rc, "out": out, "err": err, "left": left, "routes": routes, "systemctl": calls,
                   "guard": guard, "imds": list(imds.requests)})
    return result


@pytest.fixture(scope="module")
def lifecycle_hooks(stack):
    hooks = FakeLifecycleHooks(REGION, host="198.18.251.1")
    stack["hooks"] = hooks
    yield hooks
    hooks.close()


@pytest.fixture(scope="module")
def node_imds(stack, lifecycle_hooks):
    imds = stack["aws"].imds()
    imds.role = role_credentials(stack["aws"], "node-setup")
    yield imds
    imds.close()


@pytest.fixture(scope="module")
def nodes(stack, tunnat, node_imds):
    """The user data of each node run as that node's instance; returns per node what it wrote and printed."""
    return {f"{z}{n}": run_node(stack, node_imds, f"{z}{n}", stack["home"] / f"{z}{n}", tunnat)
            for z in ZONES for n in "ab"}


NODE_NAMES = [f"{z}{n}" for z in ZONES for n in "ab"]


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_runs_to_the_end(nodes, name):
    r = nodes[name]
    assert r["rc"] == 0, r["err"][-1500:]
    assert "tunnat.service started" in r["err"]


def expected_config(stack, name, result):
    zone, n = name[0], name[1]
    peer = enis(stack, zone)["b" if n == "a" else "a"]["PrivateIpAddress"]
    own = result["interface"]
    nat64 = zone == MONITORED
    tables = {"private": {"find": {"type": "or", "config": {"filters": [
        {"type": "by_id", "config": {"route_table_id": t}} for t in stack["tables"][zone]]}},
        "manage_routes": [{"cidr": "0.0.0.0/0"}] + ([{"cidr": "64:ff9b::/96"}] if nat64 else [])}}
    if zone in FALLBACK:
        tables["fallback"] = {"find": {"type": "or", "config": {"filters": [
            {"type": "by_id", "config": {"route_table_id": t}} for t in stack["tables"][FALLBACK[zone]]]}},
            "manage_routes": [{"cidr": "0.0.0.0/0", "if_unhealthy": True}]
            + ([{"cidr": "64:ff9b::/96", "if_unhealthy": True}] if nat64 else [])}
    metrics = {"metrics": {"cloudwatch": {"namespace": "tunnat", "interval": "60s", "pair": f"nat-{zone.lower()}"}}} \
        if zone == MONITORED else {}
    return metrics | {
        "nat": {"private_prefixes": [PRIVATE], "pool": result["pool"], "port_range": "1024-65534",
                **({"nat64": {"prefix": "64:ff9b::/96", "private_prefixes": [NAT64_CIDR]}} if nat64 else {})},
        "tun": {"routing": {"interface": "ens6"}},
        "control_socket": "/run/tunnat/tunnat.sock",
        "replication": {"listen": f"{own['PrivateIpAddress']}:65535", "node_id": 1 if n == "a" else 2,
                        "key_file": "/etc/tunnat/sync.key",
                        "peers": [{"node_id": 2 if n == "a" else 1, "address": f"{peer}:65535"}]},
        "failover": {"pool_addresses": "all",
                     "aws": {"mac": own["MacAddress"], "interface_id": own["NetworkInterfaceId"]},
                     "routetables": tables}}


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_writes_the_configuration_of_its_node(nodes, stack, name):
    r = nodes[name]
    config = yaml.safe_load((r["etc"] / "tunnat" / "tunnat.yaml").read_text())
    # CloudWatchMetrics defaults to false: no metrics section, no PutMetricData, no cost (zone C has it).
    assert config == expected_config(stack, name, r)


@pytest.mark.parametrize("name", NODE_NAMES)
def test_user_data_attaches_the_nodes_interface_and_routes_through_it(nodes, stack, name):
    r = nodes[name]
    own = r["interface"]
    assert f"attached {own['NetworkInterfaceId']}" in r["err"]
    gateway = "10.0.%d.1" % ZONES.index(name[0])
    assert f"default via {gateway} dev ens6 metric 10" in r["routes"], (r["routes"], r["left"], r["err"][-2500:])
    assert f"inet {own['PrivateIpAddress']}/24" in r["left"], r["left"]
    unit = (r["etc"] / "systemd" / "system" / "tunnat-node-interface.service").read_text()
    assert f"ip route replace default via {gateway} dev ens6 metric 10" in unit and "Before=tunnat.service" in unit


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
    assert r["systemctl"].split("\n")[:4] == ["enable tunnat-imds-guard.service",
                                              "enable tunnat-node-interface.service", "enable tunnat.service",
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


def test_user_data_stops_on_a_missing_key_and_starts_nothing(stack, nodes, node_imds, tunnat):
    """The parameter missing: a line naming SSM's error code, no configuration, no tunnat started."""
    r = nodes["Aa"]
    root = r["root"]
    etc = root / "etc-missing"
    sh("cp", "-a", str(r["etc"]), str(etc))
    for leftover in ("tunnat/tunnat.yaml", "tunnat/sync.key"):
        (etc / leftover).unlink()
    script = (root / "user-data").read_text().replace("TUNNAT_SYNC_KEY_PARAMETER='/tunnat/sync-key'",
                                                      "TUNNAT_SYNC_KEY_PARAMETER='/tunnat/no-such-key'")
    (root / "systemctl.calls").write_text("")
    hooks = stack["hooks"]
    hooks.calls.clear()
    hooks.start(stack["outputs"]["NodeGroupAa"], "tunnat-launching", r["identity"]["instance_id"])
    p = run_node(stack, node_imds, "Aa", root, tunnat, etc=etc, script_text=script)
    assert p["rc"] != 0
    assert "ParameterNotFound" in p["err"], p["err"][-800:]
    # The launch is abandoned at once: the group replaces the instance.
    assert [(c[0]["LifecycleHookName"], c[0]["LifecycleActionResult"], c[1]) for c in hooks.calls] == \
        [("tunnat-launching", "ABANDON", 200)]
    assert not (etc / "tunnat" / "tunnat.yaml").exists() and not (etc / "tunnat" / "sync.key").exists()
    # The guard, loaded before the key was asked for, stays; tunnat is neither enabled nor started.
    assert p["systemctl"] == "enable tunnat-imds-guard.service\nenable tunnat-node-interface.service\n"


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
    user tunnat with the role's credentials from the IMDS:
    - the old NATs of zones A and B stopped: Aa, then Ba;
    - Aa's instance stopped (a failover): Ab;
    - Ab's instance stopped too, zone A has no node: Ba (zone A's fallback), Bb (the standby, same rules);
    - Ab's instance back: Ab takes zone A's tables back; then Ba leaves them.
    What the tables and interfaces were after each."""
    ec2, aws = stack["ec2"], stack["aws"]
    imds = aws.imds()
    imds.role = role_credentials(aws, "node-routes")
    seen = {"before": {z: targets(stack, z) for z in ZONES}}

    def run(name, label=None):
        r = nodes[name]
        imds.identity = r["identity"]
        env = dict(r["env"], AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url, AWS_ENDPOINT_URL_EC2=aws.front.url)
        p = in_node(stack, r["etc"], "exec runuser -u tunnat -- tunnat routes --oneshot "
                                     "--config /etc/tunnat/tunnat.yaml --log-level info", env)
        seen[label or name] = {"rc": p.returncode, "err": p.stderr, "tables": {z: targets(stack, z) for z in ZONES},
                               "enis": {z: {n: secondaries(e) for n, e in enis(stack, z).items()} for z in ZONES}}

    # The NAT being replaced is stopped first (a route held by a healthy instance is left to it: if_unhealthy).
    ec2.stop_instances(InstanceIds=[stack["old"]["A"]["id"]])
    run("Aa")
    ec2.stop_instances(InstanceIds=[stack["old"]["B"]["id"]])
    run("Ba")
    ec2.stop_instances(InstanceIds=[nodes["Aa"]["identity"]["instance_id"]])
    run("Ab")
    ec2.stop_instances(InstanceIds=[nodes["Ab"]["identity"]["instance_id"]])
    run("Ba", "Ba-fallback")
    ec2.start_instances(InstanceIds=[nodes["Ab"]["identity"]["instance_id"]])
    run("Ab", "Ab-back")
    run("Ba", "Ba-after")
    seen["role"] = imds.role
    yield seen
    imds.close()


def test_node_a_takes_its_zones_routes_and_leaves_the_other_zones(takeovers, stack):
    r = takeovers["Aa"]
    assert r["rc"] == 3, r["err"][-1500:]
    assert r["tables"]["A"] == [stack["outputs"]["InterfaceAa"]] * 2
    assert r["tables"]["B"] == takeovers["before"]["B"] == [None, stack["old"]["B"]["eni"]]
    assert r["tables"]["C"] == takeovers["before"]["C"]


def test_node_a_of_the_fallback_zone_takes_only_its_own_while_zone_a_is_served(takeovers, stack):
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


def test_a_zone_without_a_node_is_served_by_its_fallback_zone_until_its_pair_is_back(takeovers, stack):
    """AWSnycast's remote rule: zone B's active takes zone A's tables only from a holder that is not running, and
    zone A's active takes them back when it is; zone B then leaves them. The pool addresses never cross zones."""
    down, back, after = takeovers["Ba-fallback"], takeovers["Ab-back"], takeovers["Ba-after"]
    assert down["rc"] == 3, down["err"][-1500:]
    assert down["tables"]["A"] == [stack["outputs"]["InterfaceBa"]] * 2
    assert down["tables"]["B"] == takeovers["Ba"]["tables"]["B"]
    assert down["enis"]["A"] == takeovers["Ab"]["enis"]["A"]
    assert back["rc"] == 3, back["err"][-1500:]
    assert back["tables"]["A"] == [stack["outputs"]["InterfaceAb"]] * 2
    assert after["tables"]["A"] == back["tables"]["A"] and after["tables"]["B"] == back["tables"]["B"]


def test_no_credential_in_tunnats_output(takeovers, stack):
    for name in ("Aa", "Ba", "Ab", "Ba-fallback", "Ab-back", "Ba-after"):
        text = takeovers[name]["err"]
        role = takeovers["role"]
        assert role["SecretAccessKey"] not in text and role["Token"] not in text


# --- a replaced node ---------------------------------------------------------------------------------------------

def test_a_replaced_node_waits_for_its_interface_attaches_it_and_is_the_same_node(stack, nodes, node_imds, tunnat,
                                                                                   takeovers):
    """Zone C's node b: its instance terminated through its group, which launches another from the launch
    template. EC2 releases the node's interface only once the old instance is gone: the new one's user data waits
    while the interface is still attached to it, then attaches it and writes the same node's configuration."""
    autoscaling = stack["aws"].client("autoscaling")
    old = instance(stack, "C", "b")
    eni = stack["outputs"]["InterfaceCb"]
    attachment = enis(stack, "C")["b"]["Attachment"]["AttachmentId"]
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=old, ShouldDecrementDesiredCapacity=False)
    new = instance(stack, "C", "b")
    assert new != old
    # As EC2 does, the interface stays with the terminating instance for a while (moto releases it at once: the
    # test attaches it back to the old instance, then releases it once the new one has been seen waiting).
    if enis(stack, "C")["b"].get("Attachment", {}).get("InstanceId") != old:
        attachment = stack["ec2"].attach_network_interface(NetworkInterfaceId=eni, InstanceId=old,
                                                           DeviceIndex=1)["AttachmentId"]
    root = stack["home"] / "Cb-replaced"
    r = run_node(stack, node_imds, "Cb", root, tunnat, background=True)
    p = r["process"]
    waiting = f"interface {eni} is still attached to {old}"
    err = ""
    deadline = time.monotonic() + 60
    fcntl.fcntl(p.stderr, fcntl.F_SETFL, fcntl.fcntl(p.stderr, fcntl.F_GETFL) | os.O_NONBLOCK)
    while waiting not in err and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        err += p.stderr.read() or ""
    assert waiting in err, err[-1500:]
    stack["ec2"].detach_network_interface(AttachmentId=attachment, Force=True)
    out, rest = p.communicate(timeout=120)
    r = finish_node(stack, node_imds, r, p.returncode, out, err + rest)
    assert r["rc"] == 0, r["err"][-1500:]
    assert enis(stack, "C")["b"]["Attachment"]["InstanceId"] == new
    config = yaml.safe_load((r["etc"] / "tunnat" / "tunnat.yaml").read_text())
    assert config == expected_config(stack, "Cb", r) == \
        yaml.safe_load((nodes["Cb"]["etc"] / "tunnat" / "tunnat.yaml").read_text())
    # Zone C's tables and pool were not touched by the replacement: only the active manages them.
    assert targets(stack, "C") == takeovers["Ba-after"]["tables"]["C"]


# --- the lifecycle agent ---------------------------------------------------------------------------------------

FAKE_TUNNAT = """#!/bin/sh
# tunnat as the lifecycle agent sees it: a standby that becomes ready once READY exists, then the active.
echo "$*" >> {calls}
case "$1 $2" in
  "status --ready") [ -e {ready} ] ;;
  "status --json") echo '{{"replication": {{"role": "active"}}}}' ;;
  "handover --config") exit 0 ;;
  *) exit 2 ;;
esac
"""


def test_the_lifecycle_agent_completes_the_launch_once_ready_and_hands_over_before_termination(stack, nodes,
                                                                                                node_imds, lifecycle_hooks):
    """`tunnat-node lifecycle` (the user data in its lifecycle mode, as tunnat-lifecycle.service runs it) as zone A's
    node a, against the fake IMDS's target lifecycle state and Auto Scaling's CompleteLifecycleAction (a fake: moto
    has none). tunnat itself is a stand-in here (the real handover is test_lifecycle.py's). Launching: nothing is
    completed while tunnat is not ready; once it is, tunnat-launching is. Terminating: the active hands over, then
    tunnat-terminating is completed and the agent exits."""
    r = nodes["Aa"]
    root = r["root"]
    hooks = stack["hooks"]
    hooks.calls.clear()
    installed = root / "bin" / "tunnat-node"
    assert installed.exists() and "enable --now tunnat-lifecycle.service" in r["systemctl"]
    unit = (r["etc"] / "systemd" / "system" / "tunnat-lifecycle.service").read_text()
    assert "ExecStart=/usr/local/bin/tunnat-node lifecycle" in unit
    # A bin of its own: the installed agent and the stand-in tunnat.
    agent_root = root.parent / "Aa-lifecycle"
    (agent_root / "bin").mkdir(parents=True)
    calls, ready = agent_root / "tunnat.calls", agent_root / "ready"
    (agent_root / "bin" / "tunnat").write_text(FAKE_TUNNAT.format(calls=calls, ready=ready))
    (agent_root / "bin" / "tunnat").chmod(0o755)
    (agent_root / "bin" / "tunnat-node").write_bytes(installed.read_bytes())
    (agent_root / "bin" / "tunnat-node").chmod(0o755)
    sh("cp", "-a", str(r["etc"]), str(agent_root / "etc"))
    identity = dict(r["identity"], lifecycle="InService")
    node_imds.identity = identity
    instance_id = identity["instance_id"]
    group = stack["outputs"]["NodeGroupAa"]
    hooks.start(group, "tunnat-launching", instance_id)
    env = dict(r["env"], AWS_ENDPOINT_URL_AUTOSCALING=hooks.url)
    p = in_node(stack, agent_root / "etc", "exec /usr/local/bin/tunnat-node lifecycle", env, background=True)
    try:
        assert wait_for(lambda: calls.exists() and "status --ready" in calls.read_text(), 30)
        assert hooks.calls == [], "completed before tunnat was ready"
        ready.touch()
        assert wait_for(lambda: hooks.calls, 30), calls.read_text()
        assert [(c[0]["LifecycleHookName"], c[1]) for c in hooks.calls] == [("tunnat-launching", 200)]
        form = hooks.calls[0][0]
        assert (form["AutoScalingGroupName"], form["InstanceId"], form["LifecycleActionResult"]) == \
            (group, instance_id, "CONTINUE")
        # The group terminates the instance: the terminating hook's action waits.
        hooks.start(group, "tunnat-terminating", instance_id)
        identity["lifecycle"] = "Terminated"
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err[-1500:]
    assert [(c[0]["LifecycleHookName"], c[1]) for c in hooks.calls] == [("tunnat-launching", 200),
                                                                         ("tunnat-terminating", 200)]
    told = calls.read_text()
    assert told.index("status --json") < told.index("handover --config /etc/tunnat/tunnat.yaml")
    assert hooks.calls[-1][0]["LifecycleActionResult"] == "CONTINUE"
    assert "this node is the active: handing over" in err and "tunnat-terminating of nat-a-node-a: CONTINUE" in err
    role = r["role"]
    assert role["SecretAccessKey"] not in out + err and role["Token"] not in out + err
    assert hooks.waiting == set()
