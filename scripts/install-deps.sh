#!/usr/bin/env bash
# Installs what building and testing tunnat needs on a Debian machine with Swift, and nothing that is there.
#
#   scripts/install-deps.sh          the build and unit tests
#   scripts/install-deps.sh --netns  also the namespace tests, demo and benchmarks: iproute2, ping, traceroute,
#                                    dig and dnsmasq, curl, iperf3, nftables, conntrack, tcpdump, ab and nginx; and, in
#                                    .venv/, the failover tests' EC2 emulator (moto[server], with boto3), pytest,
#                                    cfn-lint, python-hcl2 and PyYAML (the deploy tests)
#   scripts/install-deps.sh --package  also what building and testing the Debian package needs: dpkg-dev
#                                    (dpkg-shlibdeps, dpkg-parsechangelog), binutils (strip), lintian, strace
# The two flags combine.
set -euo pipefail
command -v swift >/dev/null || { echo "install-deps.sh: swift is not on PATH; tunnat needs Swift 6.2 or later (swift-tools-version 6.2)" >&2; exit 1; }
netns=0
package=0
for arg in "$@"; do
  case "$arg" in
    --netns) netns=1 ;;
    --package) package=1 ;;
    *) echo "usage: scripts/install-deps.sh [--netns] [--package]" >&2; exit 64 ;;
  esac
done

need=()
want() {  # want COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || need+=("$2")
}
want python3 python3
# OpenSSL's headers (SHA-256 and HMAC for SigV4): a file, not a command.
[ -f /usr/include/openssl/hmac.h ] || need+=(libssl-dev)
# libcurl's headers, OpenSSL flavour (HTTP for the EC2 API, IMDSv2 and health checks).
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || [ -f "/usr/include/$(uname -m)-linux-gnu/curl/curl.h" ] || need+=(libcurl4-openssl-dev)
# liburing's headers (the TUN queues' reads through io_uring).
[ -f /usr/include/liburing.h ] || need+=(liburing-dev)
if [ "$netns" = 1 ]; then
  want ip iproute2
  want ping iputils-ping
  want traceroute traceroute
  want dig dnsutils
  want dnsmasq dnsmasq-base
  want curl curl
  want iperf3 iperf3
  want nft nftables
  want conntrack conntrack
  want tcpdump tcpdump
  want ab apache2-utils
  want nginx nginx-light
  want setpriv util-linux
  want promtool prometheus  # promtool check metrics on the /metrics endpoint (the server it brings is stopped below)
  want cc gcc           # the sync-link flood test builds its flooder (scripts/lib/udpflood.c)
  want unbound unbound  # NAT64 tests: DNS64 (its dns64 module) for the IPv6-only client (the service it brings is stopped below)
  want tayga tayga      # NAT64 benchmark: tayga and the kernel's NAT, the usual Linux NAT64, against tunnat
fi
if [ "$package" = 1 ]; then
  want dpkg-shlibdeps dpkg-dev
  want strip binutils
  want lintian lintian
  want strace strace        # the package test checks the unit's system call and address family filters
  want systemd-analyze systemd
  want setpriv util-linux
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: missing ${need[*]}; run as root to install" >&2; exit 1; fi
  echo "install-deps.sh: installing ${need[*]}" >&2
  # Another apt (unattended-upgrades on a fresh machine, a second checkout's install) may hold dpkg's lock: wait
  # for it, up to five minutes, rather than fail.
  apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
  apt_get update -qq
  # iperf3's package asks whether to start a daemon; the answer is no.
  echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The failover tests' EC2 API emulator and their runner, pytest, in a virtualenv of the repository's own (.venv, not
# in git). Each is checked on its own, so an older .venv with moto alone gets pytest added.
if [ "$netns" = 1 ]; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -x "$repo/.venv/bin/pip" ]; then
    python3 -m venv "$repo/.venv" 2>/dev/null || {
      apt-get -o DPkg::Lock::Timeout=300 update -qq
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3-venv >/dev/null
      rm -rf "$repo/.venv"
      python3 -m venv "$repo/.venv"
    }
  fi
  py=()
  "$repo/.venv/bin/python" -c 'import moto, boto3' 2>/dev/null || py+=('moto[server]>=5.1,<6')
  "$repo/.venv/bin/python" -c 'import pytest' 2>/dev/null || py+=('pytest>=7')
  # The AWS template's linter (moto[server] brings it today; asked for by name so that it stays).
  [ -x "$repo/.venv/bin/cfn-lint" ] || py+=('cfn-lint>=1')
  # The AMI recipe's check reads its HCL (no packer binary is needed), and the deploy tests read YAML.
  "$repo/.venv/bin/python" -c 'import hcl2' 2>/dev/null || py+=('python-hcl2>=4.3')
  "$repo/.venv/bin/python" -c 'import yaml' 2>/dev/null || py+=('PyYAML>=6')
  if [ ${#py[@]} -gt 0 ]; then
    echo "install-deps.sh: installing ${py[*]} into .venv" >&2
    "$repo/.venv/bin/pip" install -q --disable-pip-version-check "${py[@]}"
  fi
  # checkov, the template's security scan, in a venv of its own: it pins versions of libraries moto also uses.
  if [ ! -x "$repo/.venv-checkov/bin/checkov" ]; then
    echo "install-deps.sh: installing checkov into .venv-checkov" >&2
    python3 -m venv "$repo/.venv-checkov"
    "$repo/.venv-checkov/bin/pip" install -q --disable-pip-version-check 'checkov>=3,<4'
  fi
fi
# nginx's package starts a system-wide server; the tests run their own inside namespaces, so stop that one.
# prometheus' package starts a server on :9090 and a node exporter; the tests need only promtool.
if [ "$netns" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl stop nginx 2>/dev/null || true
  systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true
  systemctl disable --now unbound 2>/dev/null || true
fi
