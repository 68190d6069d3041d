#!/usr/bin/env python3
"""Writes tunnat-ha.yaml, the CloudFormation template of a tunnat HA pair in each of two availability zones.

CloudFormation has no loops, and the template repeats itself: per zone two nodes, up to eight pool addresses each
with an Elastic IP, a role. This script is where it is written once; the YAML beside it is its output, kept in git
so that users need only the template. The test suite checks that the two agree.

  .venv/bin/python deploy/cloudformation/generate.py           rewrite tunnat-ha.yaml
  .venv/bin/python deploy/cloudformation/generate.py --check   exit 1 if tunnat-ha.yaml is not what it would write
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tunnat-ha.yaml")
ZONES = ("A", "B")
NODES = ("a", "b")          # a: node id 1, starts as the active and holds the pool first; b: node id 2
MAX_POOL = 8                # as many addresses as a NAT gateway may have
SYNC_PORT = 65535           # tunnat maps no port at or above it (port_range 1024-65534)


def ref(name):
    return {"Ref": name}


def att(resource, attribute):
    return {"Fn::GetAtt": [resource, attribute]}


def sub(text, values=None):
    return {"Fn::Sub": [text, values] if values else text}


def tags(name, zone):
    return [{"Key": "Name", "Value": sub("${AWS::StackName}-" + name)},
            {"Key": "tunnat:pair", "Value": sub("${AWS::StackName}-" + zone)}]


def parameters():
    return {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC the NAT serves."},
        "PrivateCidr": {
            "Type": "String", "AllowedPattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$",
            "Description": "The sources tunnat translates: the private subnets' CIDR (or their supernet), which "
                           "must not contain the public subnets (the pool addresses are there). Other sources are "
                           "dropped, never translated."},
        **{f"PublicSubnet{z}": {
            "Type": "AWS::EC2::Subnet::Id",
            "Description": f"Zone {z}: the public subnet (its default route to the internet gateway) of the pair."}
           for z in ZONES},
        **{f"PrivateRouteTables{z}": {
            "Type": "CommaDelimitedList",
            "Description": f"Zone {z}: the route tables (rtb-...) of the private subnets whose 0.0.0.0/0 the pair "
                           "of this zone holds. Only these may be changed by that pair's role."}
           for z in ZONES},
        "ImageId": {
            "Type": "AWS::EC2::Image::Id",
            "Description": "The AMI: one baked by deploy/packer (tunnat installed), or Debian 12 with PackageUrl."},
        "PackageUrl": {
            "Type": "String", "Default": "", "AllowedPattern": r"^(https://\S+)?$",
            "Description": "An https URL of the tunnat .deb, installed at first boot when the image has no tunnat. "
                           "Empty: the image must have it."},
        "InstanceType": {"Type": "String", "Default": "c6i.large",
                         "Description": "The nodes' instance type (docs/aws.md, Sizing)."},
        "KeyName": {"Type": "String", "Default": "",
                    "Description": "An EC2 key pair for SSH from inside the VPC; empty for none."},
        "PoolAddressCount": {
            "Type": "String", "Default": "1", "AllowedValues": [str(n) for n in range(1, MAX_POOL + 1)],
            "Description": "Pool addresses per zone, each a secondary private IP with an Elastic IP (at most 8)."},
        "SyncKeyParameter": {
            "Type": "String", "Default": "/tunnat/sync-key", "AllowedPattern": r"^/[A-Za-z0-9_.\-/]+$",
            "Description": "The SSM parameter (SecureString, at least 32 bytes) holding the sync link's key; "
                           "make it before the stack (docs/aws.md). Never put the key in the template."},
        "CloudWatchMetrics": {
            "Type": "String", "Default": "false", "AllowedValues": ["false", "true"],
            "Description": "Publish tunnat's figures to CloudWatch (namespace tunnat, every 60 s; custom metrics "
                           "cost money)."},
    }


def conditions():
    c = {"HasKeyName": {"Fn::Not": [{"Fn::Equals": [ref("KeyName"), ""]}]},
         "PublishMetrics": {"Fn::Equals": [ref("CloudWatchMetrics"), "true"]}}
    for i in range(2, MAX_POOL + 1):
        # Pool address i exists when the count is i or more.
        c[f"HasPool{i}"] = {"Fn::Or": [{"Fn::Equals": [ref("PoolAddressCount"), str(n)]}
                                       for n in range(i, MAX_POOL + 1)]} if i < MAX_POOL else \
            {"Fn::Equals": [ref("PoolAddressCount"), str(MAX_POOL)]}
    return c


def policy(z):
    """The zone's role: exactly the calls tunnat makes, on this zone's route tables and this pair's interfaces."""
    eni_arn = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/${Eni}"
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
         "Resource": sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:route-table/*"),
         # The tables by id (a condition takes the parameter's list as it is), in this VPC.
         "Condition": {"StringEquals": {
             "ec2:RouteTableID": ref(f"PrivateRouteTables{z}"),
             "ec2:Vpc": sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${VpcId}")}}},
        {"Sid": "PoolAddressesOfThisPair",
         "Effect": "Allow",
         "Action": ["ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
         "Resource": [sub(eni_arn, {"Eni": ref(f"Interface{z}{n}")}) for n in NODES]},
        {"Sid": "SyncKey",
         # Read by the user data at boot. A SecureString under the default key (aws/ssm) needs no kms:Decrypt here.
         "Effect": "Allow",
         "Action": ["ssm:GetParameter"],
         "Resource": sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SyncKeyParameter}")},
        {"Fn::If": ["PublishMetrics",
                    {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
                     "Condition": {"StringEquals": {"cloudwatch:namespace": "tunnat"}}},
                    ref("AWS::NoValue")]},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def user_data(z, n):
    """This node's values, then node-setup.sh as it is (Join: its ${...} are bash's, not CloudFormation's)."""
    other = NODES[1 - NODES.index(n)]
    header = "\n".join([
        "#!/bin/bash",
        "# tunnat node setup (tunnat-ha.yaml): this node's values, then deploy/cloudformation/node-setup.sh.",
        "TUNNAT_PAIR='${AWS::StackName}-" + z + "'",
        f"TUNNAT_NODE_ID={NODES.index(n) + 1}",
        f"TUNNAT_PEER_ID={NODES.index(other) + 1}",
        "TUNNAT_PEER_IP='${PeerIp}'",
        f"TUNNAT_SYNC_PORT={SYNC_PORT}",
        "TUNNAT_POOL='${Pool}'",
        "TUNNAT_PRIVATE_CIDR='${PrivateCidr}'",
        "TUNNAT_ROUTE_TABLES='${Tables}'",
        "TUNNAT_SYNC_KEY_PARAMETER='${SyncKeyParameter}'",
        "TUNNAT_PACKAGE_URL='${PackageUrl}'",
        "TUNNAT_CLOUDWATCH='${CloudWatchMetrics}'",
        "",
    ])
    values = {"PeerIp": att(f"Interface{z}{other}", "PrimaryPrivateIpAddress"),
              # The pool is created on node a's interface; both nodes' configurations name it.
              "Pool": {"Fn::Join": [",", att(f"Interface{z}a", "SecondaryPrivateIpAddresses")]},
              "Tables": {"Fn::Join": [",", ref(f"PrivateRouteTables{z}")]}}
    with open(os.path.join(HERE, "node-setup.sh")) as f:
        body = f.read()
    body = body.split("\n", 1)[1]  # its own #! line: the header has one
    return {"Fn::Base64": {"Fn::Join": ["", [sub(header, values), body]]}}


def resources():
    r = {
        "LaunchTemplate": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {"LaunchTemplateData": {
                "ImageId": ref("ImageId"),
                "InstanceType": ref("InstanceType"),
                "KeyName": {"Fn::If": ["HasKeyName", ref("KeyName"), ref("AWS::NoValue")]},
                # IMDSv2 only, one hop: nothing behind the NAT can reach the node's credentials.
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                    "HttpEndpoint": "enabled"},
            }}},
    }
    for z in ZONES:
        r[f"SecurityGroup{z}"] = {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": sub("tunnat pair ${AWS::StackName}-" + z),
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
                "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}],
                "Tags": tags("pair-" + z, z),
            }}
        for n in NODES:
            other = NODES[1 - NODES.index(n)]
            eni = {"SubnetId": ref(f"PublicSubnet{z}"), "GroupSet": [ref(f"SecurityGroup{z}")],
                   "SourceDestCheck": False, "Description": sub(f"tunnat ${{AWS::StackName}}-{z} node {n}"),
                   "Tags": tags(f"{z}{n}", z)}
            if n == "a":
                eni["SecondaryPrivateIpAddressCount"] = ref("PoolAddressCount")
            r[f"Interface{z}{n}"] = {"Type": "AWS::EC2::NetworkInterface", "Properties": eni}
            # The sync link: only from the peer's primary address.
            r[f"SyncFrom{z}{other}"] = {
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {"GroupId": ref(f"SecurityGroup{z}"), "IpProtocol": "udp",
                               "FromPort": SYNC_PORT, "ToPort": SYNC_PORT,
                               "CidrIp": sub("${Ip}/32", {"Ip": att(f"Interface{z}{other}", "PrimaryPrivateIpAddress")}),
                               "Description": f"tunnat sync link from node {other}"}}
            r[f"Node{z}{n}"] = {
                "Type": "AWS::EC2::Instance",
                "Properties": {
                    "LaunchTemplate": {"LaunchTemplateId": ref("LaunchTemplate"),
                                       "Version": att("LaunchTemplate", "LatestVersionNumber")},
                    "IamInstanceProfile": ref(f"InstanceProfile{z}"),
                    "NetworkInterfaces": [{"DeviceIndex": "0", "NetworkInterfaceId": ref(f"Interface{z}{n}")}],
                    "UserData": user_data(z, n),
                    "Tags": tags(f"{z}{n}", z),
                }}
            # The node's own address to the internet (its updates, SSM): not a pool address, never moved.
            r[f"NodeAddress{z}{n}"] = {"Type": "AWS::EC2::EIP",
                                      "Properties": {"Domain": "vpc", "InstanceId": ref(f"Node{z}{n}"),
                                                     "Tags": tags(f"{z}{n}", z)}}
        for i in range(1, MAX_POOL + 1):
            cond = {} if i == 1 else {"Condition": f"HasPool{i}"}
            r[f"PoolAddress{z}{i}"] = {"Type": "AWS::EC2::EIP", **cond,
                                      "Properties": {"Domain": "vpc", "Tags": tags(f"pool-{z}{i}", z)}}
            r[f"PoolAssociation{z}{i}"] = {
                "Type": "AWS::EC2::EIPAssociation", **cond,
                "Properties": {"AllocationId": att(f"PoolAddress{z}{i}", "AllocationId"),
                               "NetworkInterfaceId": ref(f"Interface{z}a"),
                               "PrivateIpAddress": {"Fn::Select": [i - 1, att(f"Interface{z}a",
                                                                             "SecondaryPrivateIpAddresses")]}}}
        r[f"Role{z}"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                "Policies": [{"PolicyName": "tunnat", "PolicyDocument": policy(z)}],
                "Tags": tags("pair-" + z, z),
            }}
        r[f"InstanceProfile{z}"] = {"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [ref(f"Role{z}")]}}
    return r


def outputs():
    o = {}
    for z in ZONES:
        for n in NODES:
            o[f"Node{z}{n}"] = {"Description": f"Zone {z}, node {n}", "Value": ref(f"Node{z}{n}")}
            o[f"Interface{z}{n}"] = {"Value": ref(f"Interface{z}{n}")}
        o[f"PoolAddresses{z}"] = {"Description": f"Zone {z}: the pool's private addresses (on node a at first)",
                                 "Value": {"Fn::Join": [",", att(f"Interface{z}a", "SecondaryPrivateIpAddresses")]}}
        o[f"PublicAddress{z}"] = {"Description": f"Zone {z}: the first pool address's Elastic IP",
                                 "Value": ref(f"PoolAddress{z}1")}
    return o


def template():
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "tunnat: a connection-preserving NAT pair in each of two availability zones "
                       "(generated by deploy/cloudformation/generate.py; docs/aws.md)",
        "Metadata": {"AWS::CloudFormation::Interface": {"ParameterGroups": [
            {"Label": {"default": "Network"},
             "Parameters": ["VpcId", "PrivateCidr", "PublicSubnetA", "PublicSubnetB", "PrivateRouteTablesA",
                            "PrivateRouteTablesB", "PoolAddressCount"]},
            {"Label": {"default": "Instances"},
             "Parameters": ["ImageId", "PackageUrl", "InstanceType", "KeyName", "SyncKeyParameter",
                            "CloudWatchMetrics"]}]}},
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Resources": resources(),
        "Outputs": outputs(),
    }


def render():
    head = "# Generated by deploy/cloudformation/generate.py: edit that, then run it. docs/aws.md explains the stack.\n"
    return head + yaml.safe_dump(template(), sort_keys=False, width=120, default_flow_style=False)


def main():
    text = render()
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
