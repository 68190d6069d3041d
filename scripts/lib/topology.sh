#!/usr/bin/env bash
# The test topology, in network namespaces named PREFIX-*:
#
#   c1 10.0.1.1 --.                                            .-- srv  198.19.0.10
#                  nat 10.0.1.254|10.0.2.254 -- 198.18.1.1 == rtr
#   c2 10.0.2.1 --'     wan 198.18.1.1/24, gw 198.18.1.254      '-- srv2 198.19.1.10 (link MTU 1400)
#
# Private side 10.0.0.0/8, pool address 198.18.0.1 (routed by rtr to nat), "internet" 198.18.0.0/15, all inside
# the namespaces made here. srv2 sits behind a 1400-byte link and advertises an MSS of 1460, so that traffic to
# it depends on path MTU discovery through the NAT.
#
#   scripts/lib/topology.sh up PREFIX      build it (PREFIX: short, letters and digits)
#   scripts/lib/topology.sh down PREFIX    remove every namespace PREFIX-*
#   source scripts/lib/topology.sh          for topology_up / topology_down / topology_kernel_nat in a script
set -euo pipefail

topology_namespaces() { echo "$1-c1 $1-c2 $1-nat $1-rtr $1-srv $1-srv2"; }

topology_down() {
  local p=$1 ns
  # c6: topology_ipv6_client's, when it was made.
  for ns in $(topology_namespaces "$p") "$p-c6"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

# link NS1 IF1 NS2 IF2: a veth pair between two namespaces.
topology_link() { ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"; }

topology_up() {
  local p=$1
  [[ "$p" =~ ^[a-zA-Z0-9]{1,16}$ ]] || { echo "topology.sh: prefix must be 1-16 letters or digits, got '$p'" >&2; return 64; }
  topology_down "$p"
  local ns
  for ns in $(topology_namespaces "$p"); do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  topology_link "$p-c1" eth0 "$p-nat" lan1
  topology_link "$p-c2" eth0 "$p-nat" lan2
  topology_link "$p-nat" wan "$p-rtr" nat
  topology_link "$p-rtr" srv "$p-srv" eth0
  topology_link "$p-rtr" srv2 "$p-srv2" eth0

  ip -n "$p-c1" addr add 10.0.1.1/24 dev eth0
  ip -n "$p-c2" addr add 10.0.2.1/24 dev eth0
  ip -n "$p-nat" addr add 10.0.1.254/24 dev lan1
  ip -n "$p-nat" addr add 10.0.2.254/24 dev lan2
  ip -n "$p-nat" addr add 198.18.1.1/24 dev wan
  ip -n "$p-rtr" addr add 198.18.1.254/24 dev nat
  ip -n "$p-rtr" addr add 198.19.0.1/24 dev srv
  ip -n "$p-rtr" addr add 198.19.1.1/24 dev srv2
  ip -n "$p-srv" addr add 198.19.0.10/24 dev eth0
  ip -n "$p-srv2" addr add 198.19.1.10/24 dev eth0
  ip -n "$p-rtr" link set srv2 mtu 1400
  ip -n "$p-srv2" link set eth0 mtu 1400

  for ns in $(topology_namespaces "$p"); do
    for dev in $(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do
      ip -n "$ns" link set "$dev" up
    done
  done
  ip -n "$p-c1" route add default via 10.0.1.254
  ip -n "$p-c2" route add default via 10.0.2.254
  ip -n "$p-nat" route add default via 198.18.1.254
  ip -n "$p-rtr" route add 198.18.0.0/24 via 198.18.1.1
  ip -n "$p-srv" route add default via 198.19.0.1
  # A larger MSS than the link carries: the server's segments are sized by the MTU, the client's by PMTUD.
  ip -n "$p-srv2" route add default via 198.19.1.1 advmss 1460
  ip netns exec "$p-nat" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$p-rtr" sysctl -qw net.ipv4.ip_forward=1
}

# topology_ipv6_client PREFIX: NAT64's IPv6-only client, PREFIX-c6 fd00:64:1::1/64, on the NAT's lan6
# (fd00:64:1::fe), with IPv6 forwarding on in nat. topology_down removes it with the rest.
topology_ipv6_client() {
  local p=$1
  ip netns add "$p-c6"
  ip -n "$p-c6" link set lo up
  topology_link "$p-c6" eth0 "$p-nat" lan6
  ip -n "$p-c6" addr add fd00:64:1::1/64 dev eth0 nodad
  ip -n "$p-nat" addr add fd00:64:1::fe/64 dev lan6 nodad
  ip -n "$p-c6" link set eth0 up
  ip -n "$p-nat" link set lan6 up
  ip -n "$p-c6" -6 route add default via fd00:64:1::fe
  ip netns exec "$p-nat" sysctl -qw net.ipv6.conf.all.forwarding=1
}

# For scripts that build a topology: background processes to kill are added to topology_pids, and
#   trap 'topology_cleanup PREFIX WORKDIR' EXIT
# kills them, removes the namespaces and the work directory.
topology_pids=()
topology_cleanup() {
  local pid
  for pid in "${topology_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  topology_down "$1"
  rm -rf "$2"
}

# topology_servers PREFIX DIR SECONDS: in srv, an HTTP server of DIR on 198.19.0.10:80 (log DIR/http.log) and
# dnsmasq answering tunnat.test with 198.19.0.77 (log DIR/dns.log), each living at most SECONDS; their pids go to
# topology_pids. Does not wait for them to listen.
topology_servers() {
  local p=$1 dir=$2 seconds=$3
  (cd "$dir" && exec timeout "$seconds" ip netns exec "$p-srv" python3 -m http.server 80 --bind 198.19.0.10 \
     > "$dir/http.log" 2>&1) &
  topology_pids+=($!)
  timeout "$seconds" ip netns exec "$p-srv" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --listen-address=198.19.0.10 --bind-interfaces --address=/tunnat.test/198.19.0.77 --pid-file= \
    > "$dir/dns.log" 2>&1 &
  topology_pids+=($!)
}

# topology_dns_queries PREFIX COUNT: COUNT A queries from c1 to topology_servers' dnsmasq (q1.tunnat.test, ...), each
# answered 198.19.0.77; the first wrong answer is printed and fails it.
topology_dns_queries() {
  local i answer
  for i in $(seq "$2"); do
    answer=$(ip netns exec "$1-c1" dig @198.19.0.10 +short +tries=1 +time=2 "q$i.tunnat.test" A)
    [ "$answer" = 198.19.0.77 ] || { echo "query $i: got '$answer'"; return 1; }
  done
}

# The kernel's NAT in place of tunnat, for comparison: nftables masquerade of the private side on wan.
topology_kernel_nat() {
  ip netns exec "$1-nat" nft -f - <<'EOF'
table ip tunnat_compare {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ip saddr 10.0.0.0/8 masquerade
  }
}
EOF
}

topology_kernel_nat_off() { ip netns exec "$1-nat" nft delete table ip tunnat_compare 2>/dev/null || true; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) topology_up "${2:?usage: topology.sh up PREFIX}" ;;
    down) topology_down "${2:?usage: topology.sh down PREFIX}" ;;
    *) echo "usage: scripts/lib/topology.sh up|down PREFIX" >&2; exit 64 ;;
  esac
fi
