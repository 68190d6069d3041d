"""moto_server with what its CloudFormation lacks for tunnat-pair.yaml, added the way CloudFormation does it.

  python scripts/lib/moto_cfn.py -H 127.0.0.1 -p PORT      (as moto_server; awsfakes.Moto(cloudformation=True))

moto 5 creates most of the template's resources but ignores or refuses some of what the template says. Each addition
below does, with moto's own EC2 backend, what CloudFormation does for that property; nothing else is changed, and
the EC2 API the tests and tunnat call is moto's own. docs/testing.md lists them, and what they leave unchecked:

1. AWS::EC2::NetworkInterface: GroupSet, SourceDestCheck, SecondaryPrivateIpAddressCount (addresses free and not
   reserved in the subnet) and Tags (moto reads only SubnetId, PrivateIpAddress, Description, and a SecurityGroups
   key that the resource does not have), and the attribute SecondaryPrivateIpAddresses (moto raises
   NotImplementedError).
2. AWS::EC2::EIPAssociation: AllocationId with NetworkInterfaceId (moto has no such resource and skips it).
3. Fn::Base64 (moto leaves it unresolved).
4. AWS::EC2::SecurityGroup rules of every protocol (-1) without FromPort and ToPort (moto needs both).
5. AWS::CloudWatch::Alarm (moto has alarms, but not this resource).
6. AWS::EC2::SecurityGroupIngress with CidrIpv6 (moto accepts the property, then authorizes the rule with no
   range at all).
"""
import base64
import ipaddress
import sys

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.cloudwatch.models import cloudwatch_backends
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.security_groups import SecurityGroup, SecurityGroupIngress


def _tags(properties):
    return {t["Key"]: t["Value"] for t in properties.get("Tags", [])}


def _eni_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    p = cloudformation_json["Properties"]
    backend = ec2_backends[account_id][region_name]
    subnet = backend.get_subnet(p["SubnetId"]) if p.get("SubnetId") else None
    eni = backend.create_network_interface(subnet, p.get("PrivateIpAddress"),
                                           group_ids=p.get("GroupSet") or p.get("SecurityGroups") or [],
                                           description=p.get("Description"), tags=_tags(p))
    if "SourceDestCheck" in p:
        eni.source_dest_check = str(p["SourceDestCheck"]).lower() == "true"
    count = int(p.get("SecondaryPrivateIpAddressCount") or 0)
    if count:
        # moto picks at random within the subnet, and records nothing: an address in use, or one EC2 reserves (the
        # first four and the last of a subnet), is picked again, and each one chosen is recorded with the subnet so
        # that no later interface gets it as its primary address, as in EC2.
        network = ipaddress.ip_network(subnet.cidr_block)
        taken = {a["PrivateIpAddress"] for other in backend.enis.values() for a in other.private_ip_addresses}
        taken |= {other.private_ip_address for other in backend.enis.values()} | set(subnet._subnet_ips)
        chosen = 0
        while chosen < count:
            before = {a["PrivateIpAddress"] for a in eni.private_ip_addresses}
            backend.assign_private_ip_addresses(eni.id, secondary_ips_count=1)
            new = [a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in before][0]
            offset = int(ipaddress.ip_address(new["PrivateIpAddress"])) - int(network.network_address)
            if new["PrivateIpAddress"] in taken or offset < 4 or offset == network.num_addresses - 1:
                eni.private_ip_addresses.remove(new)
                continue
            taken.add(new["PrivateIpAddress"])
            subnet.request_ip(new["PrivateIpAddress"], eni)
            chosen += 1
    return eni


_eni_attribute = NetworkInterface.get_cfn_attribute


def _eni_get_cfn_attribute(self, attribute_name):
    if attribute_name == "SecondaryPrivateIpAddresses":
        return [a["PrivateIpAddress"] for a in self.private_ip_addresses
                if not a.get("Primary") and a["PrivateIpAddress"] != self.private_ip_address]
    return _eni_attribute(self, attribute_name)


class EIPAssociation(CloudFormationModel):
    __module__ = "moto.ec2.tunnat"  # moto files its models by service, from the module's second name

    def __init__(self, association_id):
        self.association_id = association_id

    @staticmethod
    def cloudformation_type():
        return "AWS::EC2::EIPAssociation"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @property
    def physical_resource_id(self):
        return self.association_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        backend = ec2_backends[account_id][region_name]
        eni = backend.get_network_interface(p["NetworkInterfaceId"]) if p.get("NetworkInterfaceId") else None
        instance = backend.get_instance_by_id(p["InstanceId"]) if p.get("InstanceId") else None
        # moto's association has no private address of its own: it is the interface's (its primary address).
        eip = backend.associate_address(instance=instance, eni=eni, allocation_id=p.get("AllocationId"),
                                        address=p.get("EIP"))
        return cls(eip.association_id)


class MetricAlarm(CloudFormationModel):
    __module__ = "moto.cloudwatch.tunnat"

    def __init__(self, name):
        self.name = name

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @property
    def physical_resource_id(self):
        return self.name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        name = p.get("AlarmName") or resource_name
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name, namespace=p["Namespace"], metric_name=p["MetricName"],
            comparison_operator=p["ComparisonOperator"], evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]), threshold=float(p["Threshold"]), statistic=p.get("Statistic"),
            description=p.get("AlarmDescription", ""), dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []), ok_actions=p.get("OKActions", []),
            treat_missing_data=p.get("TreatMissingData"))
        return cls(name)


_security_group_from_cloudformation = SecurityGroup.create_from_cloudformation_json.__func__


def _security_group_with_all_protocol_rules(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
    for key in ("SecurityGroupIngress", "SecurityGroupEgress"):
        for rule in cloudformation_json["Properties"].get(key, []):
            if str(rule.get("IpProtocol")) == "-1":
                rule.setdefault("FromPort", -1)
                rule.setdefault("ToPort", -1)
    return _security_group_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name,
                                               **kwargs)


_ingress_from_cloudformation = SecurityGroupIngress.create_from_cloudformation_json.__func__


def _ingress_with_ipv6(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    p = cloudformation_json["Properties"]
    if not p.get("CidrIpv6") or p.get("CidrIp"):
        return _ingress_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    backend = ec2_backends[account_id][region_name]
    group = backend.describe_security_groups(group_ids=[p["GroupId"]])[0]
    backend.authorize_security_group_ingress(
        group_name_or_id=group.id, ip_protocol=str(p["IpProtocol"]), from_port=p.get("FromPort"),
        to_port=p.get("ToPort"), ip_ranges=[{"CidrIpv6": p["CidrIpv6"], "Description": p.get("Description")}])
    return cls(group, p)


_clean_json = parsing.clean_json


def _clean_json_with_base64(resource_json, resources_map):
    if isinstance(resource_json, dict) and list(resource_json) == ["Fn::Base64"]:
        text = _clean_json(resource_json["Fn::Base64"], resources_map)
        return base64.b64encode(str(text).encode()).decode()
    return _clean_json(resource_json, resources_map)


def install():
    NetworkInterface.create_from_cloudformation_json = classmethod(_eni_from_cloudformation)
    NetworkInterface.get_cfn_attribute = _eni_get_cfn_attribute
    SecurityGroup.create_from_cloudformation_json = classmethod(_security_group_with_all_protocol_rules)
    SecurityGroupIngress.create_from_cloudformation_json = classmethod(_ingress_with_ipv6)
    parsing.clean_json = _clean_json_with_base64
    for cache in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cache.cache_clear()
    assert "AWS::EC2::EIPAssociation" in parsing.get_model_map()
    assert "AWS::CloudWatch::Alarm" in parsing.get_model_map()


if __name__ == "__main__":
    install()
    from moto.server import main
    main(sys.argv[1:])
