#!/usr/bin/env python3
"""Writes tunnat-pair.yaml, the CloudFormation template of a tunnat HA pair in one availability zone.

One stack per zone, each from this template: two nodes (each an Auto Scaling group of one with an interface that
outlives its instances), up to eight pool addresses with Elastic IPs, a role. CloudFormation has no loops and the
template repeats itself; this script is where it is written once. The YAML beside it is its output, kept in git so
that users need only the template. The test suite checks that the two agree, and that the template stays within
the 51,200 bytes CloudFormation takes as a template body.

  .venv/bin/python deploy/cloudformation/generate.py           rewrite tunnat-pair.yaml
  .venv/bin/python deploy/cloudformation/generate.py --check   exit 1 if tunnat-pair.yaml is not what it would write
"""
import base64
import gzip
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tunnat-pair.yaml")
NODES = ("a", "b")          # a: node id 1, starts as the active and holds the pool first; b: node id 2
MAX_POOL = 8                # as many addresses as a NAT gateway may have
SYNC_PORT = 65535           # tunnat maps no port at or above it (port_range 1024-65534)
MAX_BYTES = 51200           # the largest template body CloudFormation takes (larger ones only from S3)


def ref(name):
    return {"Ref": name}


def att(resource, attribute):
    return {"Fn::GetAtt": [resource, attribute]}


def sub(text, values=None):
    return {"Fn::Sub": [text, values] if values else text}


def tags(name, propagate=None):
    out = [{"Key": "Name", "Value": sub("${AWS::StackName}-" + name)},
           {"Key": "tunnat:pair", "Value": ref("AWS::StackName")}]
    if propagate is not None:
        for t in out:
            t["PropagateAtLaunch"] = propagate
    return out


def parameters():
    return {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC the NAT serves."},
        "PrivateCidr": {
            "Type": "String", "AllowedPattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$",
            "Description": "The sources tunnat translates: the private subnets' CIDR (or their supernet), which "
                           "must not contain the public subnets (the pool addresses are there). Other sources are "
                           "dropped, never translated."},
        "Nat64PrivateCidr": {
            "Type": "String", "Default": "", "AllowedPattern": r"^([0-9a-fA-F:]+/\d{1,3})?$", "MaxLength": 43,
            "Description": "NAT64 for IPv6-only subnets: their IPv6 CIDR (or the VPC's), the IPv6 sources tunnat "
                           "translates to IPv4 from the same pool; the pair then also holds 64:ff9b::/96 in "
                           "PrivateRouteTables. Turn on DNS64 on those subnets (docs/aws.md, NAT64). Empty: none."},
        "PublicSubnet": {
            "Type": "AWS::EC2::Subnet::Id",
            "Description": "The pair's public subnet (its default route to the internet gateway), in its zone."},
        "PrivateRouteTables": {
            "Type": "CommaDelimitedList",
            "Description": "The route tables (rtb-...) of this zone's private subnets, whose 0.0.0.0/0 the pair "
                           "holds. Only these (and FallbackRouteTables) may be changed by the pair's role."},
        "FallbackRouteTables": {
            "Type": "CommaDelimitedList", "Default": "",
            "Description": "Other zones' private route tables that this pair takes while their own pair has no "
                           "healthy node, and gives back when it has one (docs/aws.md, Zones). Empty: none."},
        "ImageId": {
            "Type": "AWS::EC2::Image::Id",
            "Description": "The AMI: one baked by deploy/packer (tunnat installed), or Debian 12 with PackageUrl."},
        "PackageUrl": {
            "Type": "String", "Default": "", "AllowedPattern": r"^(https://[^\s']+)?$", "MaxLength": 1024,
            "Description": "An https URL of the tunnat .deb, installed at first boot when the image has no tunnat. "
                           "Empty: the image must have it."},
        "InstanceType": {"Type": "String", "Default": "c6i.large",
                         "Description": "The nodes' instance type (docs/aws.md, Sizing); its architecture must "
                                        "be the image's."},
        "KeyName": {"Type": "String", "Default": "",
                    "Description": "An EC2 key pair for SSH from inside the VPC; empty for none."},
        "PoolAddressCount": {
            "Type": "String", "Default": "1", "AllowedValues": [str(n) for n in range(1, MAX_POOL + 1)],
            "Description": "Pool addresses, each a secondary private IP with an Elastic IP (at most 8)."},
        "SyncKeyParameter": {
            "Type": "String", "Default": "/tunnat/sync-key", "AllowedPattern": r"^/[A-Za-z0-9_.\-/]+$", "MaxLength": 256,
            "Description": "The SSM parameter (SecureString, at least 32 bytes) holding the sync link's key; "
                           "make it before the stack (docs/aws.md). Never put the key in the template."},
        "CloudWatchMetrics": {
            "Type": "String", "Default": "false", "AllowedValues": ["false", "true"],
            "Description": "Publish tunnat's figures to CloudWatch (namespace tunnat, every 60 s, dimension Pair "
                           "from the active; custom metrics cost money), with the pair's alarms and dashboard."},
        "AlarmTopicArn": {
            "Type": "String", "Default": "", "AllowedPattern": r"^(arn:aws[a-z-]*:sns:\S+)?$",
            "Description": "An SNS topic the alarms notify (with CloudWatchMetrics); empty: none."},
        "DropsAlarmThreshold": {
            "Type": "Number", "Default": 10000, "MinValue": 1,
            "Description": "Packets dropped in 5 minutes that raise the drops alarm (with CloudWatchMetrics)."},
        "SessionManager": {
            "Type": "String", "Default": "false", "AllowedValues": ["false", "true"],
            "Description": "Let Session Manager open shells on the nodes (the SSM agent must be on the image); "
                           "the role gains only the calls its agent makes for sessions."},
    }


def conditions():
    c = {"HasKeyName": {"Fn::Not": [{"Fn::Equals": [ref("KeyName"), ""]}]},
         "HasFallback": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", ref("FallbackRouteTables")]}, ""]}]},
         "PublishMetrics": {"Fn::Equals": [ref("CloudWatchMetrics"), "true"]},
         "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [ref("AlarmTopicArn"), ""]}]},
         "UseSessionManager": {"Fn::Equals": [ref("SessionManager"), "true"]},
         "ServeNat64": {"Fn::Not": [{"Fn::Equals": [ref("Nat64PrivateCidr"), ""]}]}}
    for i in range(2, MAX_POOL + 1):
        # Pool address i exists when the count is i or more.
        c[f"HasPool{i}"] = {"Fn::Or": [{"Fn::Equals": [ref("PoolAddressCount"), str(n)]}
                                       for n in range(i, MAX_POOL + 1)]} if i < MAX_POOL else \
            {"Fn::Equals": [ref("PoolAddressCount"), str(MAX_POOL)]}
    return c


def policy():
    """The pair's role: exactly the calls tunnat and the user data make, on this pair's route tables and
    interfaces."""
    arn = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
    eni_arn = arn + "network-interface/${Eni}"
    tables = {"Fn::If": ["HasFallback",
                         {"Fn::Split": [",", {"Fn::Join": [",", [{"Fn::Join": [",", ref("PrivateRouteTables")]},
                                                                 {"Fn::Join": [",", ref("FallbackRouteTables")]}]]}]},
                         ref("PrivateRouteTables")]}
    statements = [
        {"Sid": "ReadTheVpc",
         # Describe calls take no resource-level permissions: "*" is the only resource EC2 accepts for them.
         "Effect": "Allow",
         "Action": ["ec2:DescribeRouteTables", "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceStatus",
                    "ec2:DescribeAddresses"],
         "Resource": "*"},
        {"Sid": "RoutesOfThisZone",
         "Effect": "Allow",
         "Action": ["ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"],
         "Resource": sub(arn + "route-table/*"),
         # The tables by id (a condition takes the parameter's list as it is), in this VPC.
         "Condition": {"StringEquals": {"ec2:RouteTableID": tables, "ec2:Vpc": sub(arn + "vpc/${VpcId}")}}},
        {"Sid": "PoolAddressesOfThisPair",
         "Effect": "Allow",
         "Action": ["ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
         "Resource": [sub(eni_arn, {"Eni": ref(f"Interface{n}")}) for n in NODES]},
        {"Sid": "AttachTheNodesInterface",
         # At boot a node attaches its interface (the stack's, which outlives instances) to itself: only this
         # pair's interfaces, only to an instance of this pair (the groups tag their instances).
         "Effect": "Allow",
         "Action": ["ec2:AttachNetworkInterface"],
         "Resource": [sub(eni_arn, {"Eni": ref(f"Interface{n}")}) for n in NODES] + [sub(arn + "instance/*")],
         "Condition": {"StringEquals": {"ec2:ResourceTag/tunnat:pair": ref("AWS::StackName")}}},
        {"Sid": "LifecycleHooksOfThisPair",
         # The lifecycle agent (node-setup.sh) completes its own group's hooks.
         "Effect": "Allow",
         "Action": ["autoscaling:CompleteLifecycleAction"],
         "Resource": [sub("arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
                          "autoScalingGroupName/${AWS::StackName}-node-" + n) for n in NODES]},
        {"Sid": "SyncKey",
         # Read by the user data at boot. A SecureString under the default key (aws/ssm) needs no kms:Decrypt here.
         "Effect": "Allow",
         "Action": ["ssm:GetParameter"],
         "Resource": sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SyncKeyParameter}")},
        {"Fn::If": ["UseSessionManager",
                    # Session Manager's shells, and nothing of Run Command: these take no resource-level
                    # permissions ("*" is the only resource).
                    {"Sid": "SessionManager", "Effect": "Allow",
                     "Action": ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                                "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                                "ssmmessages:OpenDataChannel"],
                     "Resource": "*"},
                    ref("AWS::NoValue")]},
        {"Fn::If": ["PublishMetrics",
                    {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
                     "Condition": {"StringEquals": {"cloudwatch:namespace": "tunnat"}}},
                    ref("AWS::NoValue")]},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def user_data():
    """The pair's values, then node-setup.sh, compressed (EC2 takes 16 KB of user data; the script is 20 KB with
    its comments) and run in the same shell. Both groups launch from it; an instance learns which node it is from
    its group's tag tunnat-node."""
    header = "\n".join([
        "#!/bin/bash",
        "# tunnat node setup (tunnat-pair.yaml): the pair's values, then deploy/cloudformation/node-setup.sh, gzipped",
        "# and base64-encoded (EC2 takes at most 16 KB of user data), run in this shell.",
        "TUNNAT_PAIR='${AWS::StackName}'",
        "TUNNAT_INTERFACES='${Enis}'",
        "TUNNAT_ADDRESSES='${Addresses}'",
        f"TUNNAT_SYNC_PORT={SYNC_PORT}",
        "TUNNAT_POOL='${Pool}'",
        "TUNNAT_PRIVATE_CIDR='${PrivateCidr}'",
        "TUNNAT_NAT64_CIDR='${Nat64PrivateCidr}'",
        "TUNNAT_ROUTE_TABLES='${Tables}'",
        "TUNNAT_FALLBACK_ROUTE_TABLES='${Fallback}'",
        "TUNNAT_SYNC_KEY_PARAMETER='${SyncKeyParameter}'",
        "TUNNAT_PACKAGE_URL='${PackageUrl}'",
        "TUNNAT_CLOUDWATCH='${CloudWatchMetrics}'",
        "",
    ])
    values = {"Enis": {"Fn::Join": [",", [ref(f"Interface{n}") for n in NODES]]},
              "Addresses": {"Fn::Join": [",", [att(f"Interface{n}", "PrimaryPrivateIpAddress") for n in NODES]]},
              # The pool is created on node a's interface; both nodes' configurations name it.
              "Pool": {"Fn::Join": [",", att("Interfacea", "SecondaryPrivateIpAddresses")]},
              "Tables": {"Fn::Join": [",", ref("PrivateRouteTables")]},
              "Fallback": {"Fn::Join": [",", ref("FallbackRouteTables")]}}
    return {"Fn::Base64": {"Fn::Join": ["", [sub(header, values), script()]]}}


def script():
    """node-setup.sh as the user data carries it: decompressed into a variable (a failure stops the boot with a
    line saying so) and run by eval, so that $0 and the arguments stay the user data's own."""
    with open(os.path.join(HERE, "node-setup.sh"), "rb") as f:
        packed = base64.encodebytes(gzip.compress(f.read(), compresslevel=9, mtime=0)).decode()
    return ("body=$(base64 -d <<'TUNNAT_NODE_SETUP' | gunzip) || "
            "{ echo 'tunnat-setup: FAILED: the node setup script in the user data does not decompress' >&2; exit 1; }\n"
            + packed + "TUNNAT_NODE_SETUP\n" + 'eval "$body"\n')


def launch_template():
    return {
        "Type": "AWS::EC2::LaunchTemplate",
        "Metadata": {"checkov": {"skip": [
            {"id": "CKV_AWS_88", "comment": "The instance's own interface needs a public IP to reach EC2 at first "
                                           "boot, to attach the node's interface; it admits nothing inbound."}]}},
        "Properties": {"LaunchTemplateData": {
            "ImageId": ref("ImageId"),
            "InstanceType": ref("InstanceType"),
            "KeyName": {"Fn::If": ["HasKeyName", ref("KeyName"), ref("AWS::NoValue")]},
            "IamInstanceProfile": {"Arn": att("InstanceProfile", "Arn")},
            # The instance's own interface: with a public IP until the node's interface is attached, so that the
            # first boot reaches EC2 (to attach it) and the package's URL.
            "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": True,
                                   "Groups": [ref("InstanceSecurityGroup")], "DeleteOnTermination": True}],
            # IMDSv2 only, one hop: nothing behind the NAT can reach the node's credentials. Tags: the node's
            # number (tunnat-node), from its group.
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                "HttpEndpoint": "enabled", "InstanceMetadataTags": "enabled"},
            "UserData": user_data(),
        }}}


def security_group():
    return {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": sub("tunnat pair ${AWS::StackName}"),
            "VpcId": ref("VpcId"),
            "SecurityGroupIngress": [
                # The traffic to translate, from the private side: what tunnat translates (TCP, UDP, ICMP),
                # every port but the sync port.
                {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIp": ref("PrivateCidr"),
                 "Description": "TCP to translate, from the private side"},
                {"IpProtocol": "udp", "FromPort": 0, "ToPort": SYNC_PORT - 1, "CidrIp": ref("PrivateCidr"),
                 "Description": "UDP to translate, from the private side (not the sync port)"},
                {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "CidrIp": ref("PrivateCidr"),
                 "Description": "ICMP to translate, from the private side"},
                # Replies to translated flows, by rule rather than by connection tracking: after a failover
                # the new active's interface has tracked none of them. tunnat itself drops what no mapping
                # admits. TCP 22 (sshd) and the sync port are left out.
                {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 21, "CidrIp": "0.0.0.0/0",
                 "Description": "replies to translated TCP flows"},
                {"IpProtocol": "tcp", "FromPort": 23, "ToPort": 65535, "CidrIp": "0.0.0.0/0",
                 "Description": "replies to translated TCP flows"},
                {"IpProtocol": "udp", "FromPort": 1, "ToPort": SYNC_PORT - 1, "CidrIp": "0.0.0.0/0",
                 "Description": "replies to translated UDP flows (not the sync port)"},
                {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "CidrIp": "0.0.0.0/0",
                 "Description": "ICMP replies and errors for translated flows"},
            ],
            "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0",
                                     "Description": "translated traffic, the sync link, AWS's APIs"}],
            "Tags": tags("pair"),
        },
        "Metadata": {"checkov": {"skip": [
            {"id": i, "comment": "A NAT admits the replies of every flow it translates, by rule: after a failover the "
                                 "new active's interface has tracked none of them (tunnat drops what no mapping "
                                 "admits). TCP 22 itself is not open to the internet."}
            for i in ("CKV_AWS_24", "CKV_AWS_25", "CKV_AWS_260")]}}}


def node(n):
    """Node N: its interface (the stack's: it outlives instances, and its primary address is what the peer
    knows), the node's own Elastic IP on that address, and an Auto Scaling group of one that replaces a lost
    instance; the new instance attaches the interface at boot (node-setup.sh). Its instances carry tunnat-node."""
    other = NODES[1 - NODES.index(n)]
    eni = {"SubnetId": ref("PublicSubnet"), "GroupSet": [ref("SecurityGroup")], "SourceDestCheck": False,
           "Description": sub(f"tunnat ${{AWS::StackName}} node {n}"), "Tags": tags(n)}
    if n == "a":
        eni["SecondaryPrivateIpAddressCount"] = ref("PoolAddressCount")
    r = {f"Interface{n}": {"Type": "AWS::EC2::NetworkInterface", "Properties": eni},
         # The sync link: only from the peer's primary address.
         f"SyncFrom{other}": {
             "Type": "AWS::EC2::SecurityGroupIngress",
             "Properties": {"GroupId": ref("SecurityGroup"), "IpProtocol": "udp",
                            "FromPort": SYNC_PORT, "ToPort": SYNC_PORT,
                            "CidrIp": sub("${Ip}/32", {"Ip": att(f"Interface{other}", "PrimaryPrivateIpAddress")}),
                            "Description": f"tunnat sync link from node {other}"}},
         # The node's own address to the internet (its updates, SSM) once its interface is attached: not a pool
         # address, never moved.
         f"NodeAddress{n}": {"Type": "AWS::EC2::EIP", "Properties": {"Domain": "vpc", "Tags": tags(n)}},
         f"NodeAddressAssociation{n}": {
             "Type": "AWS::EC2::EIPAssociation",
             "Properties": {"AllocationId": att(f"NodeAddress{n}", "AllocationId"),
                            "NetworkInterfaceId": ref(f"Interface{n}"),
                            "PrivateIpAddress": att(f"Interface{n}", "PrimaryPrivateIpAddress")}},
         f"NodeGroup{n}": {
             "Type": "AWS::AutoScaling::AutoScalingGroup",
             "DependsOn": [f"NodeAddressAssociation{n}"],
             "Properties": {
                 # Named, so that the user data (which the group launches from) can name it.
                 "AutoScalingGroupName": sub(f"${{AWS::StackName}}-node-{n}"),
                 "MinSize": "1", "MaxSize": "1", "DesiredCapacity": "1",
                 "VPCZoneIdentifier": [ref("PublicSubnet")],
                 "LaunchTemplate": {"LaunchTemplateId": ref("LaunchTemplate"),
                                    "Version": att("LaunchTemplate", "LatestVersionNumber")},
                 "HealthCheckType": "EC2", "HealthCheckGracePeriod": 300,
                 # The node's lifecycle agent completes these (node-setup.sh): a launching instance once it is a
                 # synced standby (or the active), a terminating one once it has handed over if it was the active.
                 # A launch whose setup failed is abandoned (at once, or at the timeout), and the group launches
                 # another; a termination continues at its timeout.
                 "LifecycleHookSpecificationList": [
                     {"LifecycleHookName": "tunnat-launching", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                      "HeartbeatTimeout": 1800, "DefaultResult": "ABANDON"},
                     {"LifecycleHookName": "tunnat-terminating",
                      "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                      "HeartbeatTimeout": 300, "DefaultResult": "CONTINUE"}],
                 "Tags": tags(n, propagate=True) + [
                     {"Key": "tunnat-node", "Value": str(NODES.index(n) + 1), "PropagateAtLaunch": True}]}}}
    return r


def resources():
    r = {"SecurityGroup": security_group(), "LaunchTemplate": launch_template(),
         # The instance's own interface admits nothing: it only reaches out (EC2, the package) until the node's
         # interface is attached.
         "InstanceSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
             "GroupDescription": sub("tunnat pair ${AWS::StackName}: the own interfaces of its instances"),
             "VpcId": ref("VpcId"),
             "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0",
                                      "Description": "the first boot: EC2, the package's URL"}],
             "Tags": tags("instance")}}}
    # NAT64: the IPv6-only subnets' traffic to translate, as the IPv4 private side's (TCP, UDP but the sync port,
    # ICMPv6); only when the stack serves them.
    for name, proto, low, high in [("Tcp", "tcp", 0, 65535), ("Udp", "udp", 0, SYNC_PORT - 1), ("Icmp", "58", -1, -1)]:
        r[f"Nat64Ingress{name}"] = {"Type": "AWS::EC2::SecurityGroupIngress", "Condition": "ServeNat64", "Properties": {
            "GroupId": att("SecurityGroup", "GroupId"), "IpProtocol": proto, "FromPort": low, "ToPort": high,
            "CidrIpv6": ref("Nat64PrivateCidr"), "Description": f"NAT64: {proto} to translate, from the IPv6-only side"}}
    for n in NODES:
        r.update(node(n))
    for i in range(1, MAX_POOL + 1):
        cond = {} if i == 1 else {"Condition": f"HasPool{i}"}
        # Retained when the stack goes: users allow-list these addresses.
        r[f"PoolAddress{i}"] = {"Type": "AWS::EC2::EIP", **cond, "DeletionPolicy": "Retain",
                                "UpdateReplacePolicy": "Retain",
                                "Properties": {"Domain": "vpc", "Tags": tags(f"pool-{i}")}}
        r[f"PoolAssociation{i}"] = {
            "Type": "AWS::EC2::EIPAssociation", **cond,
            "Properties": {"AllocationId": att(f"PoolAddress{i}", "AllocationId"),
                           "NetworkInterfaceId": ref("Interfacea"),
                           "PrivateIpAddress": {"Fn::Select": [i - 1, att("Interfacea",
                                                                         "SecondaryPrivateIpAddresses")]}}}
    r["Role"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "tunnat", "PolicyDocument": policy()}],
            "Tags": tags("pair"),
        }}
    r["InstanceProfile"] = {"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [ref("Role")]}}
    r.update(alarms())
    r.update(dashboard())
    return r


# The pair's alarms, on the figures its active sends under the dimension Pair: (name, metric, statistic, period,
# periods, comparison, threshold, missing data, what it means).
ALARMS = [
    ("NoActive", "RoutesHeld", "Maximum", 60, 3, "LessThanThreshold", 1, "breaching",
     "No node of the pair has held the routes for 3 minutes: none is active, or it cannot reach EC2."),
    ("StandbyNotSynced", "SyncedPeers", "Maximum", 60, 5, "LessThanThreshold", 1, "breaching",
     "The pair has had no synced standby for 5 minutes: a failover now would lose connections."),
    ("PortAllocation", "ErrorPortAllocation", "Sum", 300, 1, "GreaterThanThreshold", 0, "notBreaching",
     "New flows were refused for want of a free port: add pool addresses."),
    ("Drops", "PacketsDropCount", "Sum", 300, 1, "GreaterThanOrEqualToThreshold", ref("DropsAlarmThreshold"),
     "notBreaching", "Packets dropped in 5 minutes reached DropsAlarmThreshold (tunnat status says why)."),
    ("TunQueueDrops", "TunDroppedCount", "Sum", 300, 1, "GreaterThanThreshold", 0, "notBreaching",
     "The kernel dropped packets queued for tunnat: the data plane is behind (docs/scaling.md)."),
]


def alarms():
    r = {}
    for name, metric, statistic, period, periods, comparison, threshold, missing, what in ALARMS:
        r[f"Alarm{name}"] = {
            "Type": "AWS::CloudWatch::Alarm", "Condition": "PublishMetrics",
            "Properties": {
                "AlarmName": sub("${AWS::StackName}-" + name), "AlarmDescription": what,
                "Namespace": "tunnat", "MetricName": metric,
                "Dimensions": [{"Name": "Pair", "Value": ref("AWS::StackName")}],
                "Statistic": statistic, "Period": period, "EvaluationPeriods": periods,
                "ComparisonOperator": comparison, "Threshold": threshold, "TreatMissingData": missing,
                "AlarmActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], ref("AWS::NoValue")]},
                "OKActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], ref("AWS::NoValue")]},
            }}
    return r


def dashboard():
    """The pair as one set of series (dimension Pair), whichever node is active."""
    def widget(title, metrics, x, y, stat="Sum"):
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": {
            "title": title, "region": "${AWS::Region}", "stat": stat, "period": 60, "view": "timeSeries",
            "metrics": [["tunnat", m, "Pair", "${AWS::StackName}"] for m in metrics]}}
    widgets = [
        widget("Bytes", ["BytesOutToDestination", "BytesInFromDestination", "BytesInFromSource", "BytesOutToSource"],
               0, 0),
        widget("Packets", ["PacketsOutToDestination", "PacketsInFromDestination", "PacketsInFromSource",
                           "PacketsOutToSource"], 12, 0),
        widget("Connections", ["ConnectionAttemptCount", "ConnectionEstablishedCount", "IdleTimeoutCount"], 0, 6),
        widget("Active connections, peak rates", ["ActiveConnectionCount", "PeakPacketsPerSecond"], 12, 6, "Maximum"),
        widget("Drops and errors", ["PacketsDropCount", "ErrorPortAllocation", "TunDroppedCount"], 0, 12),
        widget("Replication and routes", ["SyncedPeers", "RoutesHeld", "ReplicationPendingRecords"], 12, 12,
               "Maximum"),
    ]
    return {"Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Condition": "PublishMetrics",
                          "Properties": {"DashboardName": sub("${AWS::StackName}-tunnat"),
                                         "DashboardBody": sub(json.dumps({"widgets": widgets},
                                                                         separators=(",", ":")))}}}


def outputs():
    o = {}
    for n in NODES:
        o[f"NodeGroup{n}"] = {"Description": f"Node {n}'s Auto Scaling group (of one)", "Value": ref(f"NodeGroup{n}")}
        o[f"Interface{n}"] = {"Description": f"Node {n}'s interface", "Value": ref(f"Interface{n}")}
    o["PoolAddresses"] = {"Description": "The pool's private addresses (on node a at first)",
                          "Value": {"Fn::Join": [",", att("Interfacea", "SecondaryPrivateIpAddresses")]}}
    o["PublicAddress"] = {"Description": "The first pool address's Elastic IP", "Value": ref("PoolAddress1")}
    return o


def template():
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "tunnat: a connection-preserving NAT pair in one availability zone, one stack per zone "
                       "(generated by deploy/cloudformation/generate.py; docs/aws.md)",
        "Metadata": {"AWS::CloudFormation::Interface": {"ParameterGroups": [
            {"Label": {"default": "Network"},
             "Parameters": ["VpcId", "PrivateCidr", "PublicSubnet", "PrivateRouteTables", "FallbackRouteTables",
                            "PoolAddressCount", "Nat64PrivateCidr"]},
            {"Label": {"default": "Instances"},
             "Parameters": ["ImageId", "PackageUrl", "InstanceType", "KeyName", "SyncKeyParameter",
                            "SessionManager"]},
            {"Label": {"default": "Monitoring"},
             "Parameters": ["CloudWatchMetrics", "AlarmTopicArn", "DropsAlarmThreshold"]}]}},
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources(),
        "Outputs": outputs(),
    }


def render():
    head = "# Generated by deploy/cloudformation/generate.py: edit that, then run it. docs/aws.md explains the stack.\n"
    return head + yaml.safe_dump(template(), sort_keys=False, width=200, default_flow_style=None)


def main():
    text = render()
    if len(text.encode()) > MAX_BYTES:
        sys.exit(f"the template would be {len(text.encode())} bytes: CloudFormation takes at most {MAX_BYTES}")
    if sys.argv[1:] == ["--check"]:
        with open(OUT) as f:
            if f.read() != text:
                print(f"{OUT} is not what generate.py writes: run it", file=sys.stderr)
                sys.exit(1)
        return
    if sys.argv[1:]:
        sys.exit("usage: generate.py [--check]")
    with open(OUT, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
