#!/usr/bin/env bash
# Debian packages the test suite needs beyond Node: nats-server (the cluster tests), openssl (the TLS test makes a
# self-signed certificate), prometheus for its promtool (the /metrics test runs
# `promtool check metrics`; the Prometheus server itself is not started), chromium (the
# dashboard test drives it headless through playwright-core) and python3-pika with python3-aio-pika (the
# AMQP interop test runs the RabbitMQ tutorials with them). Installs only what is missing, so CI
# on a warm machine is quick.
set -euo pipefail
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The cluster tests (test/e2e/cluster-*.test.ts) join brokers through a real nats-server on loopback.
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
# The README test runs the README's curl commands.
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The AMQP interop test (test/e2e/amqp-python.test.ts) runs the RabbitMQ tutorials with Python pika
# and aio-pika under the system interpreter, /usr/bin/python3 (not whatever python3 PATH finds first).
if ! /usr/bin/python3 -c 'import pika, aio_pika' >/dev/null 2>&1; then
  missing+=(python3-pika python3-aio-pika)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "ci-deps: missing ${missing[*]} and not root; install them" >&2
    exit 1
  fi
fi
