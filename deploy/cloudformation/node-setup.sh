#!/bin/bash
# The first-boot setup of a tunnat node, run as root by cloud-init from the user data of tunnat-ha.yaml. The
# template puts this node's values in front of it (generate.py writes them):
#   TUNNAT_PAIR            the pair's name (stack and availability zone), for logs and the config's header
#   TUNNAT_NODE_ID         1 or 2: this node's replication id (1 starts as the active)
#   TUNNAT_PEER_ID         the other node's id
#   TUNNAT_PEER_IP         the other node's primary private IP
#   TUNNAT_SYNC_PORT       the UDP port of the sync link (tunnat maps no port at or above it)
#   TUNNAT_POOL            the pool: the secondary private IPs with the Elastic IPs, comma-separated
#   TUNNAT_PRIVATE_CIDR    the sources tunnat translates (the VPC's CIDR)
#   TUNNAT_ROUTE_TABLES    the route tables whose 0.0.0.0/0 this pair holds, comma-separated
#   TUNNAT_SYNC_KEY_PARAMETER  the SSM parameter (SecureString) holding the sync key
#   TUNNAT_PACKAGE_URL     where to get the .deb when the image has no tunnat ("" : the image must have it)
#   TUNNAT_CLOUDWATCH      true: publish the metrics to CloudWatch (namespace tunnat)
#
# It installs the package if needed, loads the metadata guard (only root and tunnat may reach IMDS), fetches the sync key from SSM Parameter Store with the instance role (the key
# is never in the template or the user data), writes /etc/tunnat/sync.key and /etc/tunnat/tunnat.yaml, and starts
# tunnat.service. Any failure stops it with a line saying what failed; nothing is started half configured.
#
# AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_ENDPOINT_URL_SSM, when set, replace the instance metadata service and
# SSM's regional endpoint (the names AWS's SDKs use); the tests point them at fakes, a VPC endpoint may need the second.
set -euo pipefail
umask 022

log() { echo "tunnat-setup: $*" >&2; logger -t tunnat-setup -- "$*" 2>/dev/null || true; }
fail() { log "FAILED: $*"; exit 1; }

for v in TUNNAT_PAIR TUNNAT_NODE_ID TUNNAT_PEER_ID TUNNAT_PEER_IP TUNNAT_SYNC_PORT TUNNAT_POOL TUNNAT_PRIVATE_CIDR \
         TUNNAT_ROUTE_TABLES TUNNAT_SYNC_KEY_PARAMETER; do
  [ -n "${!v:-}" ] || fail "$v is not set: the user data is not the one tunnat-ha.yaml makes"
done

# --- the instance metadata (IMDSv2) ---
imds=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
imds=${imds%/}
token=$(curl -sSf --max-time 5 --retry 5 --retry-connrefused -X PUT \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' "$imds/latest/api/token") || fail "no IMDSv2 token from $imds"
md() { curl -sSf --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"; }
region=$(md placement/region) || fail "no region in the instance metadata"
mac=$(md mac) || fail "no MAC in the instance metadata"
own_ip=$(md local-ipv4) || fail "no local-ipv4 in the instance metadata"
instance=$(md instance-id) || fail "no instance-id in the instance metadata"

# The interface with the ENI's MAC: where the private side's traffic arrives.
iface=
for dev in /sys/class/net/*; do
  if [ "$(cat "$dev/address" 2>/dev/null)" = "$mac" ]; then iface=${dev##*/}; break; fi
done
[ -n "$iface" ] || fail "no interface has the ENI's MAC $mac"
log "pair $TUNNAT_PAIR node $TUNNAT_NODE_ID: $instance, $own_ip on $iface, region $region"

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

# --- the sync key, from SSM Parameter Store with the instance role's credentials ---
role=$(md iam/security-credentials/) || fail "the instance has no IAM role"
creds=$(md "iam/security-credentials/$role") || fail "no credentials for the role $role"
# The credentials go to curl on its standard input (a config file), never on a command line.
read -r access secret session < <(python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["AccessKeyId"], c["SecretAccessKey"], c["Token"])' <<<"$creds") || fail "the role's credentials are not JSON"
ssm=${AWS_ENDPOINT_URL_SSM:-https://ssm.$region.amazonaws.com}
request=$(python3 -c 'import json, sys; print(json.dumps({"Name": sys.argv[1], "WithDecryption": True}))' \
  "$TUNNAT_SYNC_KEY_PARAMETER")
answer=$(printf 'user = "%s:%s"\nheader = "X-Amz-Security-Token: %s"\n' "$access" "$secret" "$session" |
  curl -sS --max-time 10 --retry 3 -K - --aws-sigv4 "aws:amz:$region:ssm" \
    -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AmazonSSM.GetParameter' \
    --data-binary "$request" -w '\n%{http_code}' "${ssm%/}/") || fail "no answer from SSM at $ssm"
unset access secret session creds
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

# --- the pool addresses stay off the OS interface ---
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
# tunnat: the ENI's secondary private IPs are the NAT pool, handled by tunnat, not the OS (tunnat-ha.yaml).
datasource:
  Ec2:
    apply_full_imds_network_config: false
CLOUDCFG

# --- the configuration ---
IFS=, read -r -a tables <<<"$TUNNAT_ROUTE_TABLES"
yaml_list() { local IFS=,; local items="$*"; echo "[${items//,/, }]"; }
config=/etc/tunnat/tunnat.yaml
tmp=$(mktemp /etc/tunnat/.tunnat.yaml.XXXXXX)
{
  echo "# Written at first boot by the user data of tunnat-ha.yaml: pair $TUNNAT_PAIR, node $TUNNAT_NODE_ID ($instance)."
  echo "# Keys not here have their defaults ('tunnat default-config' prints them all)."
  echo "nat:"
  echo "  private_prefixes: [$TUNNAT_PRIVATE_CIDR]"
  echo "  pool: $(yaml_list "${pool[@]}")"
  echo "  # Ports from $TUNNAT_SYNC_PORT up are left to the sync link: the security group admits them only from the peer."
  echo "  port_range: 1024-$((TUNNAT_SYNC_PORT - 1))"
  echo "tun:"
  echo "  routing:"
  echo "    interface: $iface"
  echo "control_socket: /run/tunnat/tunnat.sock"
  echo "replication:"
  echo "  listen: $own_ip:$TUNNAT_SYNC_PORT"
  echo "  node_id: $TUNNAT_NODE_ID"
  echo "  peers: [{node_id: $TUNNAT_PEER_ID, address: '$TUNNAT_PEER_IP:$TUNNAT_SYNC_PORT'}]"
  echo "  key_file: $keyfile"
  echo "failover:"
  echo "  pool_addresses: all"
  echo "  routetables:"
  echo "    private:"
  echo "      find:"
  echo "        type: or"
  echo "        config:"
  echo "          filters:"
  for t in "${tables[@]}"; do
    echo "            - {type: by_id, config: {route_table_id: $t}}"
  done
  echo "      manage_routes: [{cidr: 0.0.0.0/0, if_unhealthy: true}]"
  if [ "${TUNNAT_CLOUDWATCH:-false}" = true ]; then
    echo "metrics:"
    echo "  cloudwatch: {namespace: tunnat, interval: 60s}"
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
