#!/usr/bin/env python3
"""The failover control plane against a real EC2 API emulator: moto_server on loopback with SigV4 verification on
(INITIAL_NO_AUTH_ACTION_COUNT), a fake IMDSv2 and the EC2 front of awsfakes.py, and a network namespace whose
addresses stand in for the other NAT instance (ping, tcp, http and remote health checks reach only it).

usage: failover-test.py TUNNAT_BINARY        (as root: it makes a namespace and a veth pair)
Prints one line per check and "failover: N passed, M failed"; exits 1 if any failed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
import botocore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from awsfakes import EC2Front, FakeIMDS, Moto, stop_processes, wait_port  # noqa: E402

TUNNAT = os.path.abspath(sys.argv[1])
REGION = "us-east-1"
passed, failed = 0, 0
PID = os.getpid()
NS, VA, VB = f"tnfo{PID}", f"tfo{PID}a", f"tfo{PID}b"
work = tempfile.mkdtemp(prefix="tunnat-failover-")
procs = []


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok   {name}")
    else:
        failed += 1
        print(f"  FAIL {name}" + (f": {detail}" if detail else ""))


def sh(*args, check_rc=True):
    return subprocess.run(list(args), check=check_rc, capture_output=True, text=True, timeout=30)




def cleanup():
    stop_processes(procs)
    sh("ip", "link", "del", VA, check_rc=False)
    sh("ip", "netns", "del", NS, check_rc=False)
    shutil.rmtree(work, ignore_errors=True)


if os.geteuid() != 0:
    print("failover-test.py: needs root (a network namespace and a veth pair); not run")
    sys.exit(1)

try:
    # --- the other NAT's addresses, in a namespace of our own: 10.77.0.2 and 10.77.0.3 ---
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", VA, "type", "veth", "peer", "name", VB)
    sh("ip", "link", "set", VB, "netns", NS)
    sh("ip", "addr", "add", "10.77.0.1/24", "dev", VA)
    sh("ip", "link", "set", VA, "up")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", "10.77.0.2/24", "dev", VB)
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", "10.77.0.3/24", "dev", VB)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", VB, "up")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    web = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-m", "http.server", "--bind", "10.77.0.2",
                            "8080", "--directory", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(web)
    # A TLS server with a certificate of our own for web.test, for the https and tcp+TLS checks.
    cert, keyfile = os.path.join(work, "web.pem"), os.path.join(work, "web.key")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=web.test",
       "-addext", "subjectAltName=DNS:web.test", "-keyout", keyfile, "-out", cert)
    tls_server = ("import http.server, ssl\n"
                  "s = http.server.HTTPServer(('10.77.0.2', 8443), http.server.SimpleHTTPRequestHandler)\n"
                  "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
                  f"c.load_cert_chain({cert!r}, {keyfile!r})\n"
                  "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
                  "s.serve_forever()\n")
    procs.append(subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", tls_server], cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    # --- moto: the first three calls (the IAM user and its key) go unsigned, everything after is verified ---
    if not wait_port("10.77.0.2", 8080) or not wait_port("10.77.0.2", 8443):
        print("failover-test.py: the namespace's web server did not start")
        sys.exit(1)
    aws = Moto(procs, REGION)
    moto, moto_port, KEY, SECRET = aws.url, aws.port, aws.key, aws.secret
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name=REGION, aws_access_key_id=KEY,
                       aws_secret_access_key=SECRET)
    front = EC2Front(moto_port, ec2)
    imds = FakeIMDS(ec2, {})

    def instance(subnet, ip):
        i = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                              PrivateIpAddress=ip)["Instances"][0]
        eni = i["NetworkInterfaces"][0]
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                               SourceDestCheck={"Value": False})
        return {"id": i["InstanceId"], "eni": eni["NetworkInterfaceId"], "mac": eni["MacAddress"], "ip": ip}

    def world(others=("10.77.0.2",)):
        vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        me = instance(subnet, "10.77.0.1")
        w = {"vpc": vpc, "subnet": subnet, "me": me, "others": [instance(subnet, ip) for ip in others]}
        imds.identity = {"instance_id": me["id"], "az": "us-east-1a", "region": REGION, "mac": me["mac"],
                         "vpc_id": vpc, "subnet_id": subnet, "interface_id": me["eni"], "private_ip": me["ip"]}
        return w

    def table(w, tags, subnet=None):
        t = ec2.create_route_table(VpcId=w["vpc"])["RouteTable"]["RouteTableId"]
        ec2.create_tags(Resources=[t], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        if subnet:
            ec2.associate_route_table(RouteTableId=t, SubnetId=subnet)
        return t

    def route(t, cidr):
        tables = ec2.describe_route_tables(RouteTableIds=[t])["RouteTables"]
        return next((r for r in tables[0]["Routes"] if r.get("DestinationCidrBlock") == cidr), None)

    def target(t, cidr):
        r = route(t, cidr)
        return r and r.get("NetworkInterfaceId")

    def run(config, *flags, env=None, timeout=120):
        path = os.path.join(work, "config.yaml")
        with open(path, "w") as f:
            f.write(config)
        e = {"PATH": os.environ["PATH"], "HOME": work, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
             "AWS_ENDPOINT_URL_EC2": front.url, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        e.update(env or {})
        e = {k: v for k, v in e.items() if v is not None}
        p = subprocess.run([TUNNAT, "routes", "--config", path, *flags], env=e, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def tables_with(tables, cidr):
        return {name for name, t in tables.items() if route(t, cidr)}

    print("failover: SigV4 and credentials against moto")
    w = world()
    t = table(w, {"Name": "private a"})
    cfg = """
routetables:
  a:
    find: {type: by_tag, config: {key: Name, value: private a}}
    manage_routes:
      - {cidr: 0.0.0.0/0, instance: SELF}
"""
    rc, out, err = run(cfg, "--oneshot", env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    check("a wrong secret gets AuthFailure from moto, exit 1", rc == 1 and "AuthFailure" in err, f"rc={rc} {err[-300:]}")
    check("credentials never appear in the output", SECRET not in out + err and "not-the-secret" not in out + err)
    os.makedirs(os.path.join(work, ".aws"), exist_ok=True)
    with open(os.path.join(work, ".aws", "credentials"), "w") as f:
        f.write(f"[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[nat]\n"
                f"aws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    rc, out, err = run(cfg, "--oneshot", "--noop", "--log-level", "info",
                       env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": "nat"})
    check("shared credentials file, profile from AWS_PROFILE", rc == 3 and "sharedFile" in err and "[nat]" not in err
          and "profile: \"nat\"" in err, f"rc={rc} {err[-400:]}")
    os.remove(os.path.join(work, ".aws", "credentials"))
    admin_iam = boto3.client("iam", endpoint_url=moto, region_name=REGION, aws_access_key_id=KEY,
                             aws_secret_access_key=SECRET)
    admin_iam.create_role(RoleName="nat", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":'
                          '"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}')
    admin_iam.put_role_policy(RoleName="nat", PolicyName="all", PolicyDocument=
                              '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
    sts = boto3.client("sts", endpoint_url=moto, region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    session = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/nat", RoleSessionName="tunnat")["Credentials"]
    imds.role = {"name": "nat-role", "AccessKeyId": session["AccessKeyId"], "SecretAccessKey": session["SecretAccessKey"],
                 "Token": session["SessionToken"], "Expiration": session["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}
    rc, out, err = run(cfg, "--oneshot", "--noop", "--log-level", "info",
                       env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    check("instance role credentials (with a session token) through IMDSv2",
          rc == 3 and "instanceRole" in err, f"rc={rc} {err[-400:]}")
    check("the role's secret and token never appear in the output",
          session["SecretAccessKey"] not in out + err and session["SessionToken"] not in out + err)
    imds.role = None
    rc, out, err = run(cfg, "--oneshot", env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    check("no credentials anywhere: one clear line, exit 1", rc == 1 and "no AWS credentials" in err, f"rc={rc} {err[-300:]}")

    print("failover: create, noop, oneshot")
    rc, out, err = run(cfg, "--oneshot", "--noop")
    check("noop prints the change, exit 3, changes nothing", rc == 3 and "noop: would create route 0.0.0.0/0" in out
          and route(t, "0.0.0.0/0") is None, f"rc={rc} {out} {err[-300:]}")
    rc, out, err = run(cfg, "--oneshot")
    check("oneshot creates the route to this instance's ENI, exit 3", rc == 3 and target(t, "0.0.0.0/0") == w["me"]["eni"],
          f"rc={rc} {out} {err[-300:]}")
    rc, out, err = run(cfg, "--oneshot")
    check("a second pass changes nothing, exit 0", rc == 0 and "no changes" in out, f"rc={rc} {out} {err[-300:]}")
    check("the instance identity came from IMDSv2 with a token",
          ("PUT", "/latest/api/token") in imds.requests and ("GET", "/latest/meta-data/instance-id") in imds.requests)

    print("failover: route table finders, in this VPC only")
    w = world()
    s1 = ec2.create_subnet(VpcId=w["vpc"], CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    tables = {"t1": table(w, {"type": "private", "az": "a"}, subnet=s1), "t2": table(w, {"type": "private", "az": "b"}),
              "t3": table(w, {"type": "public", "Name": "pub-1"})}
    ec2.create_route(RouteTableId=tables["t3"], DestinationCidrBlock="192.168.99.0/24", NetworkInterfaceId=w["others"][0]["eni"])
    tables["main"] = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [w["vpc"]]},
                                                        {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]["RouteTableId"]
    foreign_vpc = ec2.create_vpc(CidrBlock="10.78.0.0/16")["Vpc"]["VpcId"]
    foreign = ec2.create_route_table(VpcId=foreign_vpc)["RouteTable"]["RouteTableId"]
    ec2.create_tags(Resources=[foreign], Tags=[{"Key": "type", "Value": "private"}])
    finders = {
        "192.168.1.1/32": ("{type: by_tag, config: {key: type, value: private}}", {"t1", "t2"}),
        "192.168.2.1/32": ("{type: by_tag_regexp, config: {key: Name, regexp: '^pub-[0-9]+$'}}", {"t3"}),
        "192.168.3.1/32": ("{type: and, config: {filters: [{type: by_tag, config: {key: type, value: private}}, "
                           "{type: by_tag, not: true, config: {key: az, value: a}}]}}", {"t2"}),
        "192.168.4.1/32": ("{type: or, config: {filters: [{type: by_tag, config: {key: az, value: a}}, "
                           "{type: by_tag, config: {key: Name, value: pub-1}}]}}", {"t1", "t3"}),
        "192.168.5.1/32": ("{type: main}", {"main"}),
        "192.168.6.1/32": (f"{{type: subnet, config: {{subnet_id: {s1}}}}}", {"t1"}),
        "192.168.7.1/32": ("{type: has_route_to, config: {cidr: 192.168.99.0/24}}", {"t3"}),
        "192.168.8.1/32": ("{type: main, not: true}", {"t1", "t2", "t3"}),
    }
    cfg = "route_tables:\n" + "".join(f"  f{i}:\n    find: {f}\n    manage_routes: [{{cidr: '{c}'}}]\n"
                                      for i, (c, (f, _)) in enumerate(finders.items()))
    rc, out, err = run(cfg, "--oneshot")
    check("finders pass ran (route_tables spelling, instance defaults to SELF)", rc == 3, f"rc={rc} {err[-400:]}")
    for cidr, (f, expected) in finders.items():
        got = tables_with(tables, cidr)
        check(f"finder {f.split(',')[0].strip('{')} {'(not) ' if 'not: true' in f else ''}-> {sorted(expected)}",
              got == expected, f"got {sorted(got)}")
    check("a matching table in another VPC is never touched", route(foreign, "192.168.1.1/32") is None)
    nothing = "routetables:\n  x:\n    find: {type: by_tag, config: {key: type, value: none}%s}\n    manage_routes: [{cidr: 10.99.0.0/16}]\n"
    rc, out, err = run(nothing % "", "--oneshot")
    check("a finder that finds nothing is an error", rc == 1 and "found no route table" in err, f"rc={rc} {err[-300:]}")
    rc, out, err = run(nothing.replace("find: {", "find: {no_results_ok: true, ") % "", "--oneshot")
    check("... unless no_results_ok", rc == 0, f"rc={rc} {err[-300:]}")

    print("failover: health checks (ping on its own socket, tcp, http, command) and what they decide")
    w = world()
    t = table(w, {"Name": "hc"})
    mine = ["10.1.0.0/16", "10.2.0.0/16"]
    for c in mine:
        ec2.create_route(RouteTableId=t, DestinationCidrBlock=c, NetworkInterfaceId=w["me"]["eni"])
    marker = os.path.join(work, "ran")
    cfg = f"""
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
    rc, out, err = run(cfg, "--oneshot")
    check("health check pass ran", rc == 3, f"rc={rc} {err[-400:]}")
    for n, name, up in [(1, "ping", True), (2, "ping to a silent address", False), (3, "tcp send/expect", True),
                        (4, "tcp to a closed port", False), (5, "http status 200", True),
                        (6, "http expecting 201", False), (7, "command with %DESTINATION%", True),
                        (8, "command exiting 1", False), (9, "https, our CA, serverName", True),
                        (10, "https, certificate not trusted (verification is on)", False),
                        (11, "https, skipVerify", True), (12, "tcp over TLS, send/expect", True),
                        (13, "tcp over TLS, wrong serverName", False)]:
        got = target(t, f"172.16.{n}.0/24")
        check(f"{name}: {'healthy, route created' if up else 'unhealthy, no route created'}",
              (got == w["me"]["eni"]) if up else got is None,
              f"route {got}; " + " | ".join(l for l in err.splitlines() if f"172.16.{n}.0/24" in l or "health check" in l)[-600:])
    check("run_on_healthy ran", os.path.exists(marker))
    check("our route is deleted when its health check fails", route(t, "10.1.0.0/16") is None)
    check("... but kept with never_delete", target(t, "10.2.0.0/16") == w["me"]["eni"])
    sh("ip", "netns", "exec", NS, "ip", "link", "set", VB, "down")
    rc, out, err = run(cfg.replace("ping_up: {type: ping, destination: 10.77.0.2, rise: 2, fall: 2",
                                   "ping_up: {type: ping, destination: 10.77.0.2, rise: 2, fall: 1"), "--oneshot")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", VB, "up")
    check("ping fails once the namespace's link is down, and our route goes", route(t, "172.16.1.0/24") is None,
          f"rc={rc} {err[-300:]}")

    print("failover: taking over another instance's route (if_unhealthy, remote checks, instance status)")
    w = world(others=("10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5"))
    ok_i, impaired_i, stopped_i, down_i = w["others"]
    cases = {  # name: (holder, spec, expect taken over)
        "plain": (ok_i, "", True),
        "healthy-holder": (ok_i, "if_unhealthy: true", False),
        "impaired-holder": (impaired_i, "if_unhealthy: true", True),
        "stopped-holder": (stopped_i, "if_unhealthy: true", True),
        "remote-up": (ok_i, "if_unhealthy: true, remote_healthcheck: web", False),
        "remote-down": (down_i, "if_unhealthy: true, remote_healthcheck: web", True),
        "local-failing": (ok_i, "healthcheck: down", False),
    }
    ids = {}
    for name, (holder, _, _) in cases.items():
        ids[name] = table(w, {"case": name})
        ec2.create_route(RouteTableId=ids[name], DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=holder["eni"])
    front.impaired.add(impaired_i["id"])
    ec2.stop_instances(InstanceIds=[stopped_i["id"]])
    cfg = "healthchecks:\n  down: {type: command, destination: 10.77.0.2, fall: 1, every: 1, config: {command: \"false\"}}\n"
    cfg += "remote_healthchecks:\n  web: {type: tcp, rise: 1, fall: 1, every: 1, config: {port: 8080}}\nroutetables:\n"
    for name, (_, spec, _) in cases.items():
        cfg += f"  {name}:\n    find: {{type: by_tag, config: {{key: case, value: {name}}}}}\n"
        cfg += f"    manage_routes: [{{cidr: 0.0.0.0/0, instance: SELF{', ' + spec if spec else ''}}}]\n"
    rc, out, err = run(cfg, "--oneshot")
    for name, (holder, spec, taken) in cases.items():
        got = target(ids[name], "0.0.0.0/0")
        want = w["me"]["eni"] if taken else holder["eni"]
        check(f"{name}: {'taken over' if taken else 'left with its holder'}", got == want, f"route -> {got}; {err[-300:]}")

    print("failover: the pool address moves with the route")
    w = world(others=("10.77.0.2",))
    other = w["others"][0]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=other["eni"], PrivateIpAddresses=["10.77.0.50"])
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=other["eni"], PrivateIpAddress="10.77.0.50")
    t = table(w, {"Name": "pool"})
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
    front.calls.clear()
    rc, out, err = run(cfg, "--oneshot")

    def ips(eni):
        return [a["PrivateIpAddress"] for a in
                ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["PrivateIpAddresses"]]
    check("route taken over from the stopped (blackholed) holder", target(t, "0.0.0.0/0") == w["me"]["eni"], err[-300:])
    check("pool address now on our ENI (AssignPrivateIpAddresses, AllowReassignment)", "10.77.0.50" in ips(w["me"]["eni"]))
    check("... and off the old holder's (UnassignPrivateIpAddresses)", "10.77.0.50" not in ips(other["eni"]))
    # moto records an association on the ENI's primary address whatever PrivateIpAddress says, so the Elastic IP
    # cannot be matched to the pool address here; that the signed call succeeds is what can be checked.
    check("DescribeAddresses for the pool address's Elastic IP answered", ("DescribeAddresses", 200) in front.calls)
    check("the move was confirmed in the instance metadata (local-ipv4s)",
          any(p.endswith("/local-ipv4s") for _, p in imds.requests))

    print("failover: EC2 errors and retries")
    w = world()
    t = table(w, {"Name": "errors"})
    cfg = "routetables:\n  e:\n    find: {type: by_tag, config: {key: Name, value: errors}}\n    manage_routes: [{cidr: 0.0.0.0/0}]\n"
    front.calls.clear()
    front.inject = [(503, "RequestLimitExceeded", "Request limit exceeded."), (503, "RequestLimitExceeded", "Request limit exceeded.")]
    rc, out, err = run(cfg, "--oneshot", "--noop")
    throttled = sum(1 for _, s in front.calls if s == 503)
    check("throttling (RequestLimitExceeded) is retried with backoff and the pass succeeds",
          rc == 3 and throttled == 2 and "retry 2" in err, f"rc={rc} throttled={throttled} {err[-300:]}")
    front.inject = [(500, "InternalError", "An internal error has occurred.")]
    rc, out, err = run(cfg, "--oneshot", "--noop")
    check("a 500 InternalError is retried", rc == 3 and "InternalError" in err and "retry 1" in err, f"rc={rc} {err[-300:]}")
    front.calls.clear()
    front.inject = [(503, "RequestLimitExceeded", "Request limit exceeded.")] * 10
    rc, out, err = run(cfg.replace("routetables:", "aws: {max_attempts: 3}\nroutetables:"), "--oneshot")
    check("throttling that does not stop: 3 attempts, then an error with its code, exit 1",
          rc == 1 and "RequestLimitExceeded" in err and sum(1 for _, s in front.calls if s == 503) == 3,
          f"rc={rc} calls={front.calls} {err[-300:]}")
    front.inject = []
    rc, out, err = run(cfg.replace("routetables:", "aws: {interface_id: eni-00000000000000000}\nroutetables:"), "--oneshot")
    check("not found: the error code and message reach the operator", rc == 1 and ".NotFound" in err, f"rc={rc} {err[-300:]}")
    front.races[(t, "0.0.0.0/0")] = w["others"][0]["eni"]
    rc, out, err = run(cfg, "--oneshot")
    check("already exists: another instance won the race; its route stays", rc == 0 and "RouteAlreadyExists" in err
          and target(t, "0.0.0.0/0") == w["others"][0]["eni"], f"rc={rc} {err[-300:]}")
    ec2.modify_network_interface_attribute(NetworkInterfaceId=w["me"]["eni"], SourceDestCheck={"Value": True})
    rc, out, err = run(cfg, "--oneshot", "--noop")
    check("refuses to run while source/dest check is on", rc == 1 and "source/dest check is on" in err, f"rc={rc} {err[-300:]}")

    print("failover: the daemon waits for the first verdict, and hold-down damps a flap")
    w = world()
    t = table(w, {"Name": "daemon"})
    flag = os.path.join(work, "healthy")
    open(flag, "w").close()
    cfg = f"""
poll_time: 1
hold_down: 5
healthchecks:
  file: {{type: command, destination: 10.77.0.2, rise: 3, fall: 1, every: 1, config: {{command: test, arguments: [-e, {flag}]}}}}
routetables:
  d:
    find: {{type: by_tag, config: {{key: Name, value: daemon}}}}
    manage_routes: [{{cidr: 0.0.0.0/0, healthcheck: file}}]
"""
    path = os.path.join(work, "daemon.yaml")
    with open(path, "w") as f:
        f.write(cfg)
    env = {"PATH": os.environ["PATH"], "HOME": work, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_ENDPOINT_URL_EC2": front.url, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
    daemon = subprocess.Popen([TUNNAT, "routes", "--config", path, "--log-level", "info"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "daemon.log"), "w"))
    procs.append(daemon)
    time.sleep(1.2)
    check("no route before the first verdict (rise 3, every 1s)", route(t, "0.0.0.0/0") is None)

    def wait_for(cond, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.1)
        return False
    created = wait_for(lambda: route(t, "0.0.0.0/0") is not None, 8)
    check("route created once healthy", created)
    created_at = time.monotonic()
    os.remove(flag)
    time.sleep(2.5)
    check("unhealthy 2.5s after the change: held down, route still there", route(t, "0.0.0.0/0") is not None)
    deleted = wait_for(lambda: route(t, "0.0.0.0/0") is None, 8)
    check(f"deleted after the 5s hold-down ({time.monotonic() - created_at:.1f}s after creation)",
          deleted and time.monotonic() - created_at >= 5)
    daemon.send_signal(15)
    try:
        rc = daemon.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    log = open(os.path.join(work, "daemon.log")).read()
    check("SIGTERM stops the daemon cleanly", rc == 0 and "hold-down" in log, f"rc={rc} {log[-300:]}")
finally:
    cleanup()

print(f"failover: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
