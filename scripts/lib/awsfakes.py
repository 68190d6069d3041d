"""Stand-ins for the parts of AWS that cannot run here, behaving like the real ones, errors included.

- FakeIMDS: the EC2 instance metadata service, version 2 only. PUT /latest/api/token needs the header
  X-aws-ec2-metadata-token-ttl-seconds (1-21600, else 400); every GET needs a live token in X-aws-ec2-metadata-token
  (else 401). It serves the instance identity, the network interface items and role credentials, and reads the
  interface's private addresses from the EC2 emulator, so an address move shows up as it does on EC2.
- EC2Front: a pass-through in front of moto_server (which verifies SigV4 itself) that adds what moto lacks: routes
  to an interface whose instance is gone or stopped read as "blackhole"; RouteAlreadyExists on CreateRoute;
  an instance can be marked impaired; an Elastic IP associated through it stays with its private IP when that IP
  moves to another interface, as DescribeAddresses then reports (moto ties it to the interface's primary address);
  and throttling (RequestLimitExceeded, 503) or InternalError (500) can be injected for the next N calls, or every
  call held unanswered for a while (hang_until: EC2 hanging). After a
  change to routes or private addresses, on_change (if set) runs before the answer goes back.
- Moto: moto_server itself on loopback, bootstrapped so that it verifies SigV4 from then on.

scripts/lib/testbed.py starts these for the tests (AWS); nothing here knows about namespaces or tunnat.
"""
import http.client
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import boto3


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(host, port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Moto:
    """moto_server on loopback that verifies SigV4 after its first three calls: those make an IAM user with every
    permission and its access key (`key`, `secret`), which every later call must sign with."""

    def __init__(self, procs, region, cloudformation=False):
        # procs: anything with append(), where the moto_server process goes to be ended with the rest.
        # cloudformation: moto_server with what its CloudFormation lacks for tunnat-pair.yaml (moto_cfn.py).
        self.port = free_port()
        self.region = region
        server = [os.path.join(os.path.dirname(sys.executable), "moto_server")]
        if cloudformation:
            server = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_cfn.py")]
        procs.append(subprocess.Popen([*server, "-H", "127.0.0.1", "-p", str(self.port)],
                                      env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3"),
                                      stdout=subprocess.DEVNULL, stderr=self._log()))
        if not wait_port("127.0.0.1", self.port):
            raise RuntimeError("moto_server did not start")
        self.url = f"http://127.0.0.1:{self.port}"
        iam = boto3.client("iam", endpoint_url=self.url, region_name=region, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="tunnat")
        iam.put_user_policy(UserName="tunnat", PolicyName="all", PolicyDocument=
                            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
        key = iam.create_access_key(UserName="tunnat")["AccessKey"]
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]

    @staticmethod
    def _log():
        """Where moto_server's log goes: $TUNNAT_MOTO_LOG (appended to) when set, for debugging; else nowhere."""
        path = os.environ.get("TUNNAT_MOTO_LOG")
        return open(path, "a") if path else subprocess.DEVNULL

    def client(self, service):
        """A client signing with the user's key (boto3 clients are not to be shared between threads)."""
        return boto3.client(service, endpoint_url=self.url, region_name=self.region, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret)


class FakeIMDS:
    def __init__(self, ec2, identity, role=None, host="127.0.0.1"):
        self.ec2 = ec2              # a boto3 EC2 client with admin keys, for the live interface addresses
        self.identity = identity    # instance_id, az, region, mac, vpc_id, subnet_id, interface_id
        self.role = role            # None or dict(name, AccessKeyId, SecretAccessKey, Token, Expiration)
        self.tokens = {}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body="", ctype="text/plain"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                outer.requests.append(("PUT", self.path))
                if self.path != "/latest/api/token":
                    return self.reply(404, "Not Found")
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return self.reply(400, "Bad Request")
                token = secrets.token_urlsafe(32)
                outer.tokens[token] = time.monotonic() + int(ttl)
                self.send_response(200)
                self.send_header("X-aws-ec2-metadata-token-ttl-seconds", ttl)
                self.send_header("Content-Length", str(len(token)))
                self.end_headers()
                self.wfile.write(token.encode())

            def do_GET(self):
                outer.requests.append(("GET", self.path))
                token = self.headers.get("X-aws-ec2-metadata-token")
                if token is None or outer.tokens.get(token, 0) < time.monotonic():
                    return self.reply(401, "Unauthorized")
                prefix = "/latest/meta-data/"
                if not self.path.startswith(prefix):
                    return self.reply(404, "Not Found")
                value = outer.item(self.path[len(prefix):])
                if value is None:
                    return self.reply(404, "Not Found")
                self.reply(200, value)

            def do_POST(self):
                self.reply(405, "Method Not Allowed")

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def item(self, path):
        i = self.identity
        mac = i["mac"]
        items = {
            "instance-id": i["instance_id"],
            "placement/availability-zone": i["az"],
            "placement/region": i["region"],
            "mac": mac,
            "local-ipv4": i.get("private_ip", ""),
            f"network/interfaces/macs/{mac}/vpc-id": i["vpc_id"],
            f"network/interfaces/macs/{mac}/subnet-id": i["subnet_id"],
            f"network/interfaces/macs/{mac}/interface-id": i["interface_id"],
        }
        if path in items:
            return items[path]
        if path == f"network/interfaces/macs/{mac}/local-ipv4s":
            eni = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[i["interface_id"]])["NetworkInterfaces"][0]
            return "\n".join(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"])
        if path.startswith("network/interfaces/macs/"):
            return self.interface_item(*path[len("network/interfaces/macs/"):].split("/", 1))
        if path == "autoscaling/target-lifecycle-state" and i.get("lifecycle"):
            # An instance of an Auto Scaling group: where its group is taking it (InService, Terminated, ...).
            return i["lifecycle"]
        if path.startswith("tags/instance/") and i.get("tags"):
            # Instance tags (InstanceMetadataTags enabled): the instance's tags in EC2, as EC2 holds them now.
            found = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [i["instance_id"]]}])["Tags"]
            tags = {t["Key"]: t["Value"] for t in found}
            key = path[len("tags/instance/"):]
            return "\n".join(sorted(tags)) if key == "" else tags.get(key)
        if self.role is not None:
            if path == "iam/security-credentials/":
                return self.role["name"]
            if path == "iam/security-credentials/" + self.role["name"]:
                doc = {"Code": "Success", "LastUpdated": "2026-11-21T00:00:00Z", "Type": "AWS-HMAC"}
                doc.update({k: v for k, v in self.role.items() if k != "name"})
                return json.dumps(doc)
        return None

    def interface_item(self, mac, item):
        """network/interfaces/macs/MAC/ITEM of any interface attached to this instance now, as EC2 shows it (an
        interface attached after boot appears there; one not attached here is Not Found)."""
        if item not in ("vpc-id", "subnet-id", "interface-id", "local-ipv4s", "subnet-ipv4-cidr-block"):
            return None
        found = self.ec2.describe_network_interfaces(Filters=[{"Name": "mac-address", "Values": [mac]}])
        eni = next((e for e in found["NetworkInterfaces"]
                    if e.get("Attachment", {}).get("InstanceId") == self.identity["instance_id"]), None)
        if eni is None:
            return None
        if item == "local-ipv4s":
            return "\n".join(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"])
        if item == "subnet-ipv4-cidr-block":
            return self.ec2.describe_subnets(SubnetIds=[eni["SubnetId"]])["Subnets"][0]["CidrBlock"]
        return {"vpc-id": eni["VpcId"], "subnet-id": eni["SubnetId"], "interface-id": eni["NetworkInterfaceId"]}[item]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def query_server(host, answer):
    """An HTTP server for an AWS Query API on HOST (a free port), in a thread: each POST's form goes to
    answer(form, body, headers), which returns (status, XML bytes). Returns the server and its URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            form = dict(urllib.parse.parse_qsl(body.decode()))
            status, payload = answer(form, body, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Type", "text/xml;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def error_document(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f'<Message>{message}</Message></Error></Errors><RequestID>fake-{secrets.token_hex(8)}</RequestID>'
            f'</Response>').encode()


CHANGES = {"CreateRoute", "ReplaceRoute", "DeleteRoute", "AssignPrivateIpAddresses", "UnassignPrivateIpAddresses"}


class EC2Front:
    def __init__(self, moto_port, ec2, host="127.0.0.1"):
        self.moto_port = moto_port
        self.ec2 = ec2
        self.lock = threading.Lock()
        self.inject = []            # [(status, code, message)] served to the next calls, in order
        self.impaired = set()
        self.races = {}             # (table, cidr) -> eni: created just before our CreateRoute reaches moto
        self.eips = {}              # allocation id -> the private IP it is associated with (see associate_address)
        self.calls = []             # (action, status)
        self.hang_until = 0.0       # time.monotonic() until which every call waits before it is answered (EC2 hanging)
        # Called with the action after moto accepted a change to routes or private addresses, before the caller
        # gets the answer (a VPC's router follows here: in line with moto by the time the call returns).
        self.on_change = None
        self.server, self.url = query_server(host, self.answer)

    def answer(self, form, body, headers):
        action = form.get("Action", "?")
        status, payload = self.handle(action, form, body, headers)
        with self.lock:
            self.calls.append((action, status))
        return status, payload

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def forward(self, body, headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=30)
        # The Host header stays what the client signed.
        conn.request("POST", "/", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def handle(self, action, form, body, headers):
        # EC2 hanging: the call gets no answer until the hang ends (at most 30 s), as a stalled endpoint does; the
        # caller's own timeout decides when it gives up.
        deadline = time.monotonic() + 30
        while time.monotonic() < min(self.hang_until, deadline):
            time.sleep(0.05)
        with self.lock:
            if self.inject:
                status, code, message = self.inject.pop(0)
                return status, error_document(code, message)
        if action == "CreateRoute":
            key = (form.get("RouteTableId"), form.get("DestinationCidrBlock"))
            race = self.races.pop(key, None)
            if race:
                self.ec2.create_route(RouteTableId=key[0], DestinationCidrBlock=key[1], NetworkInterfaceId=race)
            tables = self.ec2.describe_route_tables(Filters=[{"Name": "route-table-id", "Values": [key[0]]}])["RouteTables"]
            if tables and any(r.get("DestinationCidrBlock") == key[1] for r in tables[0]["Routes"]):
                return 400, error_document("RouteAlreadyExists", f"The route identified by {key[1]} already exists.")
        status, data = self.forward(body, headers)
        if status == 200 and action == "DescribeRouteTables":
            data = self.mark_blackholes(data)
        if status == 200 and action == "DescribeInstanceStatus" and self.impaired:
            data = self.mark_impaired(data)
        if status == 200 and action == "DescribeAddresses":
            data = self.describe_addresses(data, form)
        if status == 200 and action in CHANGES and self.on_change:
            self.on_change(action)
        return status, data

    def associate_address(self, allocation_id, eni, private_ip):
        """AssociateAddress as EC2 does it: the Elastic IP is associated with the private IP, and stays with that IP
        when AssignPrivateIpAddresses with AllowReassignment moves it to another interface. moto associates it with
        the interface alone and reports the interface's primary address, so the front keeps the private IP."""
        self.ec2.associate_address(AllocationId=allocation_id, NetworkInterfaceId=eni, PrivateIpAddress=private_ip)
        with self.lock:
            self.eips[allocation_id] = private_ip

    def addresses(self):
        """The Elastic IPs as EC2 would describe them: one associated through associate_address has its private IP
        and the interface that lists that IP now (none once no interface does)."""
        enis = self.ec2.describe_network_interfaces()["NetworkInterfaces"]
        holders = {a["PrivateIpAddress"]: e["NetworkInterfaceId"] for e in enis for a in e["PrivateIpAddresses"]}
        with self.lock:
            eips = dict(self.eips)
        found = []
        for a in self.ec2.describe_addresses()["Addresses"]:
            private = eips.get(a.get("AllocationId"))
            if private:
                a = {k: v for k, v in a.items() if k not in ("PrivateIpAddress", "NetworkInterfaceId")}
                a["PrivateIpAddress"] = private
                if private in holders:
                    a["NetworkInterfaceId"] = holders[private]
            found.append(a)
        return found

    def describe_addresses(self, data, form):
        """moto's answer (SigV4 checked) with its items replaced by addresses(), filtered by private-ip-address as
        EC2 filters them; a request with any other filter keeps moto's answer."""
        names = {k[:-len("Name")]: v for k, v in form.items() if k.startswith("Filter.") and k.endswith(".Name")}
        if set(names.values()) - {"private-ip-address"}:
            return data
        wanted = None
        for prefix in names:
            wanted = {v for k, v in form.items() if k.startswith(prefix + "Value.")}
        root = ET.fromstring(data)
        ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        listing = self.find(root, "addressesSet")
        if listing is None:
            listing = ET.SubElement(root, ns + "addressesSet")
        for item in list(listing):
            listing.remove(item)
        fields = (("publicIp", "PublicIp"), ("allocationId", "AllocationId"), ("domain", "Domain"),
                  ("networkInterfaceId", "NetworkInterfaceId"), ("privateIpAddress", "PrivateIpAddress"))
        for a in self.addresses():
            if wanted is not None and a.get("PrivateIpAddress") not in wanted:
                continue
            item = ET.SubElement(listing, ns + "item")
            for tag, key in fields:
                if a.get(key):
                    ET.SubElement(item, ns + tag).text = a[key]
        return ET.tostring(root)

    @staticmethod
    def children(element, name):
        return [c for c in element if c.tag.rsplit("}", 1)[-1] == name]

    def find(self, element, path):
        for name in path.split("/"):
            found = self.children(element, name)
            if not found:
                return None
            element = found[0]
        return element

    def mark_blackholes(self, data):
        root = ET.fromstring(data)
        cache = {}
        for table in self.children(self.find(root, "routeTableSet"), "item"):
            for route in self.children(self.find(table, "routeSet"), "item"):
                eni = self.find(route, "networkInterfaceId")
                state = self.find(route, "state")
                if eni is None or state is None:
                    continue
                if eni.text not in cache:
                    cache[eni.text] = self.interface_is_dead(eni.text)
                if cache[eni.text]:
                    state.text = "blackhole"
        return ET.tostring(root)

    def interface_is_dead(self, eni):
        found = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": [eni]}])["NetworkInterfaces"]
        if not found:
            return True
        instance = found[0].get("Attachment", {}).get("InstanceId")
        if not instance:
            return False
        state = self.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]
        return state not in ("running", "pending")

    def mark_impaired(self, data):
        root = ET.fromstring(data)
        for item in self.children(self.find(root, "instanceStatusSet"), "item"):
            instance = self.find(item, "instanceId")
            status = self.find(item, "instanceStatus/status")
            if instance is not None and status is not None and instance.text in self.impaired:
                status.text = "impaired"
        return ET.tostring(root)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeLifecycleHooks:
    """Auto Scaling's CompleteLifecycleAction, which moto lacks, as AWS answers it: an action waits for each
    (group, hook, instance) the test starts (`start`, as the group does when it launches or terminates an
    instance); completing one that waits answers 200 and ends it, anything else ValidationError ("No active
    Lifecycle Action found"). A request without a SigV4 Authorization for service autoscaling in this region, or
    without the session token, gets 403 (MissingAuthenticationToken, IncompleteSignature), as AWS would refuse it;
    the signature itself is not verified (moto, which holds the secret, has no such call)."""

    def __init__(self, region, host="127.0.0.1"):
        self.region = region
        self.waiting = set()      # (group, hook, instance)
        self.calls = []           # (form, status, code)
        self.server, self.url = query_server(host, self.answer)

    def answer(self, form, body, headers):
        status, code = self.handle(form, headers)
        self.calls.append((form, status, code))
        if status == 200:
            return status, ('<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                            '<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>1</RequestId>'
                            '</ResponseMetadata></CompleteLifecycleActionResponse>').encode()
        return status, (f'<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error>'
                        f'<Type>Sender</Type><Code>{code}</Code><Message>{self.message(code, form)}</Message>'
                        f'</Error><RequestId>1</RequestId></ErrorResponse>').encode()

    def start(self, group, hook, instance):
        self.waiting.add((group, hook, instance))

    def handle(self, form, headers):
        headers = {k.lower(): v for k, v in headers.items()}
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
            return 403, "MissingAuthenticationToken"
        if f"/{self.region}/autoscaling/aws4_request" not in auth or not headers.get("x-amz-security-token"):
            return 403, "IncompleteSignature"
        if form.get("Action") != "CompleteLifecycleAction" or form.get("Version") != "2011-01-01":
            return 400, "InvalidAction"
        key = (form.get("AutoScalingGroupName"), form.get("LifecycleHookName"), form.get("InstanceId"))
        if form.get("LifecycleActionResult") not in ("CONTINUE", "ABANDON") or key not in self.waiting:
            return 400, "ValidationError"
        self.waiting.discard(key)
        return 200, None

    @staticmethod
    def message(code, form):
        if code == "ValidationError":
            return f"No active Lifecycle Action found with instance ID {form.get('InstanceId')}"
        return code

    def close(self):
        self.server.shutdown()
        self.server.server_close()
