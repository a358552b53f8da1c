#!/usr/bin/env bash
# Debian packages the test suite needs beyond Node: openssl (the TLS test makes a
# self-signed certificate). Installs only what is missing, so CI on a warm machine is quick.
set -euo pipefail
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
  else
    echo "ci-deps: missing ${missing[*]} and not root; install them" >&2
    exit 1
  fi
fi
