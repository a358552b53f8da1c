#!/usr/bin/env bash
# Installs what `shardmq bench --only peers` (and `--only amqp`) compares against:
#   - nats-server, redis-server and rabbitmq-server from Debian (apt-get), started by the harness on
#     127.0.0.1 and a free port, never as system services (a service the package's postinst started
#     anyway is stopped again below);
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
  # Not on PATH for root's usual PATH on every system: the harness runs this script directly.
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
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
    if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
      # If a postinst started the distro's RabbitMQ anyway (systemd, or an init without runlevels),
      # stop it and keep it from starting at boot: the harness starts its own node on a free port,
      # and a service on 5672 would only take memory and CPU from the runs.
      # Only when it runs (its init script's pid file): `service ... stop` runs rabbitmqctl, an
      # Erlang node of its own that starts an epmd daemon (on 0.0.0.0:4369) as a side effect.
      if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        $sudo systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
      else
        if [[ -e /var/run/rabbitmq/pid ]]; then
          $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
          # Ends that epmd unless an Erlang node is still registered with it (epmd refuses then).
          epmd -kill >/dev/null 2>&1 || true
        fi
        command -v update-rc.d >/dev/null 2>&1 && { $sudo update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true; }
      fi
    fi
  fi
  rabbit_version="$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?')"
  echo "install-bench-peers: $(nats-server --version 2>&1 | head -n1); $(redis-server --version 2>&1 | head -n1); rabbitmq-server $rabbit_version"
fi

cd "$peers"
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
echo "install-bench-peers: clients installed in $peers/node_modules"
