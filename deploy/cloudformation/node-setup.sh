#!/bin/bash
# The first-boot setup of a tunnat node, run as root by cloud-init from the user data of tunnat-pair.yaml, on every
# instance its Auto Scaling group launches. The template puts this node's values in front of it (generate.py writes
# them):
#   TUNNAT_PAIR            the pair's name (its stack's), for logs and the config's header
#   TUNNAT_INTERFACES      node 1's and node 2's network interfaces (eni-...,eni-...): the stack's, attached at boot
#   TUNNAT_ADDRESSES       their primary private IPs, in the same order
# Which node this instance is (1 starts as the active) is its tag tunnat-node, set by its Auto Scaling group and
# read from the instance metadata.
#   TUNNAT_SYNC_PORT       the UDP port of the sync link (tunnat maps no port at or above it)
#   TUNNAT_POOL            the pool: the secondary private IPs with the Elastic IPs, comma-separated
#   TUNNAT_PRIVATE_CIDR    the sources tunnat translates (the VPC's CIDR)
#   TUNNAT_ROUTE_TABLES    the route tables whose 0.0.0.0/0 this pair holds, comma-separated
#   TUNNAT_FALLBACK_ROUTE_TABLES  other zones' tables, held only while their own pair has no healthy node ("": none)
#   TUNNAT_NAT64_CIDR      NAT64: the IPv6 sources to translate ("": no NAT64)
#   TUNNAT_SYNC_KEY_PARAMETER  the SSM parameter (SecureString) holding the sync key
#   TUNNAT_PACKAGE_URL     where to get the .deb when the image has no tunnat ("" : the image must have it)
#   TUNNAT_CLOUDWATCH      true: publish the metrics to CloudWatch (namespace tunnat)
#
# It installs the package if needed, loads the metadata guard (only root and tunnat may reach IMDS), attaches the
# node's interface (waiting while a dying instance still holds it) and moves the default route to it, fetches the
# sync key from SSM Parameter Store with the instance role (the key is never in the template or the user data),
# writes /etc/tunnat/sync.key and /etc/tunnat/tunnat.yaml, and starts tunnat.service, which follows a live active
# as its standby. It then installs itself as /usr/local/bin/tunnat-node and starts tunnat-lifecycle.service, which
# runs it as `tunnat-node lifecycle`: the node's side of its group's lifecycle hooks (see lifecycle() below). Every wait is bounded; any failure stops it with a line saying what failed; nothing is started
# half configured.
#
# AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_SSM and AWS_ENDPOINT_URL_AUTOSCALING, when
# set, replace the instance metadata service and EC2's, SSM's and Auto Scaling's regional endpoints (the names AWS's SDKs use); the tests point them at fakes,
# a VPC endpoint may need the others.
set -euo pipefail
umask 022

mode=${1:-setup}
tag=tunnat-setup
[ "$mode" = lifecycle ] && tag=tunnat-lifecycle
log() { echo "$tag: $*" >&2; logger -t "$tag" -- "$*" 2>/dev/null || true; }
fail() {
  log "FAILED: $*"
  if [ "$mode" = setup ] && [ -n "${instance:-}" ] && [ -n "${TUNNAT_NODE_ID:-}" ] && declare -F complete_hook >/dev/null; then
    # This launch goes no further: its group replaces the instance now, not at the launching hook's timeout.
    complete_hook tunnat-launching ABANDON || true
  fi
  exit 1
}

for v in TUNNAT_PAIR TUNNAT_INTERFACES TUNNAT_ADDRESSES TUNNAT_SYNC_PORT TUNNAT_POOL TUNNAT_PRIVATE_CIDR \
         TUNNAT_ROUTE_TABLES TUNNAT_SYNC_KEY_PARAMETER; do
  [ -n "${!v:-}" ] || fail "$v is not set: the user data is not the one tunnat-pair.yaml makes"
done

# --- the instance metadata (IMDSv2) ---
imds=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
imds=${imds%/}
imds_token() {
  token=$(curl -sSf --max-time 5 --retry 5 --retry-connrefused -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$imds/latest/api/token")
}
imds_token || fail "no IMDSv2 token from $imds"
md() { curl -sSf --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"; }
region=$(md placement/region) || fail "no region in the instance metadata"
mac=$(md mac) || fail "no MAC in the instance metadata"
instance=$(md instance-id) || fail "no instance-id in the instance metadata"
TUNNAT_NODE_ID=$(md tags/instance/tunnat-node) || fail "no tag tunnat-node in the instance metadata (the launch template enables instance tags there)"
case $TUNNAT_NODE_ID in
  1) TUNNAT_PEER_ID=2 ;;
  2) TUNNAT_PEER_ID=1 ;;
  *) fail "the tag tunnat-node is '$TUNNAT_NODE_ID': 1 or 2 expected" ;;
esac
IFS=, read -r -a interfaces <<<"$TUNNAT_INTERFACES"
IFS=, read -r -a addresses <<<"$TUNNAT_ADDRESSES"
TUNNAT_INTERFACE=${interfaces[TUNNAT_NODE_ID - 1]:-}
TUNNAT_PEER_IP=${addresses[TUNNAT_PEER_ID - 1]:-}
[ -n "$TUNNAT_INTERFACE" ] && [ -n "$TUNNAT_PEER_IP" ] || fail "TUNNAT_INTERFACES or TUNNAT_ADDRESSES lacks node $TUNNAT_NODE_ID's or its peer's"
# --- AWS calls, with the instance role's credentials ---
credentials() {  # sets access, secret and session from the metadata service (they rotate: fetched for each use)
  local role creds
  role=$(md iam/security-credentials/) || { log "the instance has no IAM role"; return 1; }
  creds=$(md "iam/security-credentials/$role") || { log "no credentials for the role $role"; return 1; }
  read -r access secret session < <(python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["AccessKeyId"], c["SecretAccessKey"], c["Token"])' <<<"$creds") || { log "the role's credentials are not JSON"; return 1; }
}
signed() {  # signed SERVICE URL CURL-ARGUMENTS...: a SigV4-signed request; the body, then the HTTP status
  local service=$1 url=$2; shift 2
  # The credentials go to curl on its standard input (a config file), never on a command line.
  printf 'user = "%s:%s"\nheader = "X-Amz-Security-Token: %s"\n' "$access" "$secret" "$session" |
    curl -sS --max-time 10 --retry 3 -K - --aws-sigv4 "aws:amz:$region:$service" "$@" -w '\n%{http_code}' "${url%/}/"
}
query() {  # query SERVICE URL VERSION ACTION PARAMETERS: the XML answer of a Query API call; else fails, printing
           # "HTTP status Code: message" (AWS's error code) on standard error
  local answer status body
  answer=$(signed "$1" "$2" --data "Action=$4&Version=$3&$5") || { echo "no answer from $2" >&2; return 1; }
  status=${answer##*$'\n'} body=${answer%$'\n'*}
  if [ "$status" != 200 ]; then
    echo "HTTP $status $(python3 -c '
import re, sys
t = sys.stdin.read()
c = re.search(r"<Code>([^<]*)</Code>", t); m = re.search(r"<Message>([^<]*)</Message>", t)
print((c.group(1) if c else "?") + ":", m.group(1) if m else "")' <<<"$body")" >&2
    return 1
  fi
  printf '%s' "$body"
}
ec2() { query ec2 "${AWS_ENDPOINT_URL_EC2:-https://ec2.$region.amazonaws.com}" 2016-11-15 "$@"; }
node_group() { echo "$TUNNAT_PAIR-node-$([ "$TUNNAT_NODE_ID" = 1 ] && echo a || echo b)"; }
complete_hook() {  # complete_hook HOOK RESULT: CompleteLifecycleAction for this instance in its group
  local url=${AWS_ENDPOINT_URL_AUTOSCALING:-https://autoscaling.$region.amazonaws.com} error
  credentials || return 1
  if error=$(query autoscaling "$url" 2011-01-01 CompleteLifecycleAction \
      "AutoScalingGroupName=$(node_group)&LifecycleHookName=$1&InstanceId=$instance&LifecycleActionResult=$2" 2>&1 >/dev/null); then
    log "lifecycle hook $1 of $(node_group): $2"
  elif [[ $error == *"No active Lifecycle Action"* ]]; then
    # No action of that hook waits for this instance (none was started, or its timeout ended it).
    log "lifecycle hook $1 of $(node_group): nothing to complete ($error)"
  else
    log "lifecycle hook $1 of $(node_group): $error"
    return 1
  fi
}

# --- the lifecycle agent: `tunnat-node lifecycle` (tunnat-lifecycle.service) ---
# The node's side of its Auto Scaling group's lifecycle hooks, from the instance metadata's target lifecycle state,
# every 5 s: launching, the hook tunnat-launching is completed once `tunnat status --ready` (the active, or a
# standby with a complete replica), so that an instance refresh moves on only then; terminating, an active hands
# over to its synced standby (`tunnat handover`), then tunnat-terminating is completed. Either hook's timeout
# completes it anyway if this agent cannot.
lifecycle() {
  local group config=/etc/tunnat/tunnat.yaml launched= state try
  group=$(node_group)
  complete() {  # complete HOOK: CompleteLifecycleAction CONTINUE for this instance
    complete_hook "$1" CONTINUE
  }
  log "lifecycle agent: instance $instance of group $group"
  while :; do
    imds_token || true
    state=$(md autoscaling/target-lifecycle-state 2>/dev/null) || state=
    case $state in
      InService)
        if [ -z "$launched" ] && tunnat status --ready --config "$config" >/dev/null 2>&1; then
          complete tunnat-launching && launched=yes
        fi ;;
      Terminated)
        log "instance $instance is terminating"
        if tunnat status --json --config "$config" 2>/dev/null |
            python3 -c 'import json, sys; sys.exit(json.load(sys.stdin).get("replication", {}).get("role") != "active")'; then
          log "this node is the active: handing over"
          # Within the hook's 300 s, leaving time to complete it.
          timeout 240 tunnat handover --config "$config" ||
            log "the handover did not complete: the standby takes over when this node stops"
        fi
        for try in $(seq 1 60); do
          complete tunnat-terminating && exit 0
          sleep 5
        done
        exit 1 ;;
    esac
    sleep 5
  done
}
if [ "$mode" = lifecycle ]; then
  lifecycle
fi

log "pair $TUNNAT_PAIR node $TUNNAT_NODE_ID: $instance, region $region, interface $TUNNAT_INTERFACE"

# --- the package ---
if ! command -v tunnat >/dev/null; then
  [ -n "${TUNNAT_PACKAGE_URL:-}" ] || fail "tunnat is not on the image and the stack's PackageUrl is empty"
  deb=$(mktemp --suffix=.deb)
  curl -sSfL --max-time 300 --retry 3 -o "$deb" "$TUNNAT_PACKAGE_URL" || fail "downloading $TUNNAT_PACKAGE_URL"
  apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" nftables || fail "installing $TUNNAT_PACKAGE_URL"
  rm -f "$deb"
fi
getent passwd tunnat >/dev/null || fail "the package made no user tunnat"

# --- the metadata guard ---
# From here on only root and tunnat reach the instance metadata service, where the role's credentials are (and the
# role may read the sync key): no other local user can use them. Loaded now, and at every boot by its unit.
tunnat imds-guard --user tunnat | nft -f - || fail "loading the metadata guard ('tunnat imds-guard | nft -f -')"
systemctl enable tunnat-imds-guard.service
log "metadata guard loaded: only root and tunnat reach the instance metadata service"

credentials || fail "no credentials of the instance role"

# --- this node's interface ---
# The stack's interface outlives instances: its primary address is what the peer knows, and the active's carries
# the pool. EC2 releases it from a terminated instance; until then it is still attached to the one this instance
# replaces, and we wait (10 s between looks, 10 minutes at most), never taking it from a running instance.
eni_field() {  # eni_field XML: "status attached-instance mac primary-ip" of the interface
  python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
ns = {"e": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
q = (lambda p: "/".join("e:" + x for x in p.split("/"))) if ns else (lambda p: p)
item = root.find(q("networkInterfaceSet/item"), ns)
if item is None:
    sys.exit("no such interface")
def text(p):
    e = item.find(q(p), ns)
    return e.text if e is not None and e.text else "-"
print(text("status"), text("attachment/instanceId"), text("macAddress"), text("privateIpAddress"))'
}
attached=
for try in $(seq 1 60); do
  answer=$(ec2 DescribeNetworkInterfaces "NetworkInterfaceId.1=$TUNNAT_INTERFACE") || fail "DescribeNetworkInterfaces $TUNNAT_INTERFACE"
  read -r eni_status holder eni_mac eni_ip < <(eni_field <<<"$answer") || fail "interface $TUNNAT_INTERFACE: not in EC2's answer"
  if [ "$holder" = "$instance" ]; then attached=yes; break; fi
  if [ "$eni_status" = available ]; then
    if error=$(ec2 AttachNetworkInterface "NetworkInterfaceId=$TUNNAT_INTERFACE&InstanceId=$instance&DeviceIndex=1" 2>&1 >/dev/null); then
      log "attached $TUNNAT_INTERFACE ($eni_ip) to $instance"
      continue
    fi
    log "AttachNetworkInterface $TUNNAT_INTERFACE: $error (try $try of 60)"
  else
    log "interface $TUNNAT_INTERFACE is still attached to $holder ($eni_status): waiting for EC2 to release it (try $try of 60)"
  fi
  sleep 10
done
[ -n "$attached" ] || fail "interface $TUNNAT_INTERFACE was not attached to $instance within 10 minutes"
eni_mac=${eni_mac,,}
iface=
for try in $(seq 1 60); do
  for dev in /sys/class/net/*; do
    if [ "$(cat "$dev/address" 2>/dev/null)" = "$eni_mac" ]; then iface=${dev##*/}; break 2; fi
  done
  sleep 1
done
[ -n "$iface" ] || fail "no network device with $TUNNAT_INTERFACE's MAC $eni_mac appeared within 60 s"
# The pool addresses stay off the OS interface (before our address goes on it: removing a primary address removes
# its secondaries).
# They are secondary IPs of the ENI for EC2 only: tunnat receives their traffic through its TUN. If cloud-init put
# them on the interface (its full IMDS network configuration), the kernel would take their traffic as its own.
IFS=, read -r -a pool <<<"$TUNNAT_POOL"
for address in "${pool[@]}"; do
  for cidr in $(ip -4 -o addr show dev "$iface" | awk -v a="$address" '{split($4, p, "/"); if (p[1] == a) print $4}'); do
    ip addr del "$cidr" dev "$iface" && log "removed pool address $cidr from $iface"
  done
done
mkdir -p /etc/cloud/cloud.cfg.d
cat >/etc/cloud/cloud.cfg.d/99-tunnat.cfg <<'CLOUDCFG'
# tunnat: the ENI's secondary private IPs are the NAT pool, handled by tunnat, not the OS (tunnat-pair.yaml).
datasource:
  Ec2:
    apply_full_imds_network_config: false
CLOUDCFG

subnet=
for try in $(seq 1 30); do
  subnet=$(md "network/interfaces/macs/$eni_mac/subnet-ipv4-cidr-block" 2>/dev/null) && break
  sleep 2
done
[ -n "$subnet" ] || fail "the instance metadata shows no subnet for $eni_mac"
gateway=$(python3 -c 'import ipaddress, sys; print(ipaddress.ip_network(sys.argv[1]).network_address + 1)' "$subnet")
# Its address and the default route through it, now and at every boot (tunnat-node-interface.service): the
# translated traffic leaves with pool addresses of this interface, and the node's own with its Elastic IP.
mkdir -p /etc/systemd/system
cat >/etc/systemd/system/tunnat-node-interface.service <<UNIT
# Written by the user data of tunnat-pair.yaml: node $TUNNAT_NODE_ID's interface $TUNNAT_INTERFACE ($eni_mac).
[Unit]
Description=tunnat node interface $TUNNAT_INTERFACE
Before=tunnat.service
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set dev $iface up
ExecStart=/usr/sbin/ip addr replace $eni_ip/${subnet#*/} dev $iface
ExecStart=/usr/sbin/ip route replace default via $gateway dev $iface metric 10

[Install]
WantedBy=multi-user.target
UNIT
ip link set dev "$iface" up || fail "ip link set $iface up"
ip addr replace "$eni_ip/${subnet#*/}" dev "$iface" || fail "adding $eni_ip to $iface"
ip route replace default via "$gateway" dev "$iface" metric 10 || fail "the default route via $gateway on $iface"
systemctl enable tunnat-node-interface.service
log "interface $TUNNAT_INTERFACE: $eni_ip on $iface, default route via $gateway"

# --- the sync key, from SSM Parameter Store ---
ssm=${AWS_ENDPOINT_URL_SSM:-https://ssm.$region.amazonaws.com}
request=$(python3 -c 'import json, sys; print(json.dumps({"Name": sys.argv[1], "WithDecryption": True}))' \
  "$TUNNAT_SYNC_KEY_PARAMETER")
answer=$(signed ssm "$ssm" -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AmazonSSM.GetParameter' \
    --data-binary "$request") || fail "no answer from SSM at $ssm"
unset access secret session
status=${answer##*$'\n'}
body=${answer%$'\n'*}
if [ "$status" != 200 ]; then
  # SSM's error: its __type (the code) and message; never the request, which is signed.
  fail "SSM GetParameter $TUNNAT_SYNC_KEY_PARAMETER: HTTP $status $(python3 -c '
import json, sys
try:
    e = json.loads(sys.stdin.read()); print(e.get("__type", "?").split("#")[-1] + ":", e.get("message", e.get("Message", "")))
except ValueError:
    print("(not JSON)")' <<<"$body")"
fi
install -d -m 0755 /etc/tunnat
keyfile=/etc/tunnat/sync.key
tmp=$(mktemp /etc/tunnat/.sync.key.XXXXXX)
python3 -c '
import json, sys
value = json.loads(sys.stdin.read())["Parameter"]["Value"]
if len(value.strip().encode()) < 32:
    sys.exit("the sync key is shorter than 32 bytes")
sys.stdout.write(value.strip() + "\n")' <<<"$body" >"$tmp" || { rm -f "$tmp"; fail "the parameter $TUNNAT_SYNC_KEY_PARAMETER holds no usable key"; }
unset body answer
chown tunnat:tunnat "$tmp"
chmod 0400 "$tmp"
mv -f "$tmp" "$keyfile"

# --- the configuration ---
IFS=, read -r -a tables <<<"$TUNNAT_ROUTE_TABLES"
IFS=, read -r -a fallback <<<"${TUNNAT_FALLBACK_ROUTE_TABLES:-}"
yaml_list() { local IFS=,; local items="$*"; echo "[${items//,/, }]"; }
route_tables() {  # route_tables NAME RULE-OPTIONS TABLE...: a routetables entry for these tables by id
  local name=$1 options=$2; shift 2
  echo "    $name:"
  echo "      find:"
  echo "        type: or"
  echo "        config:"
  echo "          filters:"
  for t in "$@"; do
    echo "            - {type: by_id, config: {route_table_id: $t}}"
  done
  local nat64=""
  [ -n "${TUNNAT_NAT64_CIDR:-}" ] && nat64=", {cidr: '64:ff9b::/96'$options}"
  echo "      manage_routes: [{cidr: 0.0.0.0/0$options}$nat64]"
}
if [ -n "${TUNNAT_NAT64_CIDR:-}" ]; then
  # NAT64: IPv6 forwarding, and the router advertisements of the pair subnet (which must have an IPv6 CIDR) kept
  # on the node's interface with forwarding on, for the way back to the IPv6-only hosts. Now and at every boot.
  printf 'net.ipv6.conf.all.forwarding = 1\nnet.ipv6.conf.%s.accept_ra = 2\n' "$iface" >/etc/sysctl.d/61-tunnat-nat64.conf
  sysctl -q -w net.ipv6.conf.all.forwarding=1 "net.ipv6.conf.$iface.accept_ra=2" || fail "cannot turn on IPv6 forwarding for NAT64"
fi
config=/etc/tunnat/tunnat.yaml
tmp=$(mktemp /etc/tunnat/.tunnat.yaml.XXXXXX)
{
  echo "# Written at first boot by the user data of tunnat-pair.yaml: pair $TUNNAT_PAIR, node $TUNNAT_NODE_ID ($instance)."
  echo "# Keys not here have their defaults ('tunnat default-config' prints them all)."
  echo "nat:"
  echo "  private_prefixes: [$TUNNAT_PRIVATE_CIDR]"
  echo "  pool: $(yaml_list "${pool[@]}")"
  echo "  # Ports from $TUNNAT_SYNC_PORT up are left to the sync link: the security group admits them only from the peer."
  echo "  port_range: 1024-$((TUNNAT_SYNC_PORT - 1))"
  if [ -n "${TUNNAT_NAT64_CIDR:-}" ]; then
    echo "  nat64: {prefix: '64:ff9b::/96', private_prefixes: ['$TUNNAT_NAT64_CIDR']}"
  fi
  echo "tun:"
  echo "  routing:"
  echo "    interface: $iface"
  echo "control_socket: /run/tunnat/tunnat.sock"
  echo "replication:"
  echo "  listen: $eni_ip:$TUNNAT_SYNC_PORT"
  echo "  node_id: $TUNNAT_NODE_ID"
  echo "  peers: [{node_id: $TUNNAT_PEER_ID, address: '$TUNNAT_PEER_IP:$TUNNAT_SYNC_PORT'}]"
  echo "  key_file: $keyfile"
  echo "failover:"
  echo "  pool_addresses: all"
  echo "  # Routes point at the node's interface (the stack's), not at the instance's own."
  echo "  aws: {mac: '$eni_mac', interface_id: $TUNNAT_INTERFACE}"
  echo "  routetables:"
  # This zone's tables: the active takes them while healthy, also back from another zone's pair.
  route_tables private "" "${tables[@]}"
  if [ "${#fallback[@]}" -gt 0 ]; then
    # Other zones' tables: taken only from a holder that is gone (its instance not running, or a blackhole), given
    # back when their own pair's active takes them again.
    route_tables fallback ", if_unhealthy: true" "${fallback[@]}"
  fi
  if [ "${TUNNAT_CLOUDWATCH:-false}" = true ]; then
    echo "metrics:"
    echo "  cloudwatch: {namespace: tunnat, interval: 60s, pair: $TUNNAT_PAIR}"
  fi
} >"$tmp"
chmod 0644 "$tmp"
# Checked as the service will read it: as the user tunnat (the key file must be its own).
runuser -u tunnat -- tunnat check-config "$tmp" >/dev/null || { mv -f "$tmp" "$config.rejected"; fail "tunnat refused the configuration it was given (kept as $config.rejected)"; }
mv -f "$tmp" "$config"
log "wrote $config and $keyfile"

# --- start ---
systemctl enable tunnat.service
systemctl restart tunnat.service || fail "tunnat.service did not start: journalctl -u tunnat"
log "tunnat.service started"

# --- the lifecycle agent: this script again, in its lifecycle mode ---
install -m 0755 "$0" /usr/local/bin/tunnat-node
{
  echo "# Written by the user data of tunnat-pair.yaml: the node's side of its group's lifecycle hooks."
  echo "[Unit]"
  echo "Description=tunnat lifecycle hooks of $TUNNAT_PAIR node $TUNNAT_NODE_ID"
  echo "After=tunnat.service"
  echo "[Service]"
  echo "ExecStart=/usr/local/bin/tunnat-node lifecycle"
  echo "Restart=on-failure"
  echo "RestartSec=5"
  for v in AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_ENDPOINT_URL_AUTOSCALING AWS_ENDPOINT_URL_EC2; do
    [ -z "${!v:-}" ] || echo "Environment=$v=${!v}"
  done
  echo "[Install]"
  echo "WantedBy=multi-user.target"
} >/etc/systemd/system/tunnat-lifecycle.service
systemctl enable --now tunnat-lifecycle.service
log "tunnat-lifecycle.service started"
