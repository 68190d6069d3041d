#!/usr/bin/env bash
# Installs what building and testing tunnat needs on a Debian machine with Swift, and nothing that is there.
set -euo pipefail
command -v swift >/dev/null || { echo "install-deps.sh: swift is not on PATH; tunnat needs Swift 6.1 or later" >&2; exit 1; }
need=()
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: missing ${need[*]}; run as root to install" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
