#!/usr/bin/env bash
# Installs what `shardmq bench --only peers` compares against:
#   - nats-server and redis-server from Debian (apt-get), started by the harness on 127.0.0.1 and a
#     free port, never as system services;
#   - their Node clients (`nats`, `ioredis`) into benchmarks/peers/node_modules, a dependency island
#     that never enters shardmq's own package.json (style.md §8.5.7).
# Safe to run again. Usage: bash scripts/install-bench-peers.sh [--no-apt]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="$root/benchmarks/peers"

want_apt=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) want_apt=0 ;;
    *) echo "install-bench-peers: unknown argument $arg (known: --no-apt)" >&2; exit 2 ;;
  esac
done

if [[ $want_apt -eq 1 ]]; then
  missing=()
  command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [[ ${#missing[@]} -gt 0 ]]; then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "install-bench-peers: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1
      fi
    fi
    echo "install-bench-peers: apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    # The harness starts its own servers on free ports; do not leave distro services running.
    # RUNLEVEL=1 keeps invoke-rc.d from starting redis-server's service during the install.
    $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  echo "install-bench-peers: $(nats-server --version 2>&1 | head -n1); $(redis-server --version 2>&1 | head -n1)"
fi

cd "$peers"
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
echo "install-bench-peers: clients installed in $peers/node_modules"
